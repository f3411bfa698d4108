//! The render's fetch time apart from its decode time, and how many
//! decoder threads one render gets.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::source::SourceRead;

/// A source reader that adds the time spent in it to a shared counter: the
/// render's fetch time, as opposed to its demuxing and decoding.
pub(super) struct TimedRead {
    pub(super) inner: Box<dyn SourceRead>,
    pub(super) nanos: Arc<AtomicU64>,
}

impl TimedRead {
    fn timed<T>(&mut self, f: impl FnOnce(&mut Box<dyn SourceRead>) -> T) -> T {
        let started = Instant::now();
        let out = f(&mut self.inner);
        let spent = started.elapsed().as_nanos().try_into().unwrap_or(u64::MAX);
        self.nanos.fetch_add(spent, Ordering::Relaxed);
        out
    }
}

impl Read for TimedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.timed(|r| r.read(buf))
    }
}

impl Seek for TimedRead {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.timed(|r| r.seek(pos))
    }
}

impl SourceRead for TimedRead {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn prefetch(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        self.timed(|r| r.prefetch(start, end))
    }

    fn prefetch_many(&mut self, ranges: &[(u64, u64)]) -> std::io::Result<()> {
        self.timed(|r| r.prefetch_many(ranges))
    }
}

/// Decoder threads for one render: the configured number, or when that is
/// 0 (automatic), FFmpeg's frame threads for a render that has the cores to
/// itself and one thread when other renders hold or wait for slots. Their
/// cores are taken then, and frame threads only add hand-over work (14%
/// more CPU for 32 concurrent 1080p renders on 2 cores, bench/RESULTS.md).
pub(super) fn decoder_threads(configured: usize, renders: usize) -> usize {
    match configured {
        0 if renders > 1 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::decoder_threads;

    #[test]
    fn frame_threads_only_for_a_render_alone() {
        assert_eq!(decoder_threads(0, 1), 0, "alone: FFmpeg's choice");
        assert_eq!(decoder_threads(0, 2), 1, "with others: one thread");
        assert_eq!(decoder_threads(4, 1), 4, "configured: as configured");
        assert_eq!(decoder_threads(4, 9), 4);
    }
}
