//! The MP4 top-level box walk that fetches an index in one request, over
//! any bytes.
#![no_main]

use std::io::{Cursor, Read, Seek, SeekFrom};

use libfuzzer_sys::fuzz_target;
use thumbd::source::SourceRead;

struct Bytes(Cursor<Vec<u8>>);

impl Read for Bytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
impl Seek for Bytes {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}
impl SourceRead for Bytes {
    fn size(&self) -> u64 {
        self.0.get_ref().len() as u64
    }
    fn prefetch(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        assert!(start <= end, "prefetch {start}..{end}");
        Ok(())
    }
}

fuzz_target!(|data: Vec<u8>| {
    let mut r = Bytes(Cursor::new(data));
    let _ = thumbd::media::mp4::prefetch_index(&mut r);
});
