//! Readers made of other readers: a byte range of one ([`Slice`]), and
//! several one after another ([`Concat`]). A streaming source's segment is
//! read as its init segment followed by the segment (each perhaps a byte
//! range of a larger file), which the demuxer sees as one small file.

use std::io::{self, Read, Seek, SeekFrom};

use super::SourceRead;

/// Bytes `start..end` of `inner`, as a reader of their own.
pub struct Slice {
    inner: Box<dyn SourceRead>,
    start: u64,
    len: u64,
    pos: u64,
}

impl Slice {
    /// `range` must lie within `inner` (checked: past its end is an error).
    pub fn new(inner: Box<dyn SourceRead>, range: (u64, u64)) -> io::Result<Slice> {
        let (start, end) = range;
        if start > end || end > inner.size() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the byte range {start}-{end} is outside the {} bytes of the object",
                    inner.size()
                ),
            ));
        }
        Ok(Slice {
            inner,
            start,
            len: end - start,
            pos: 0,
        })
    }
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - self.pos) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.len, to)?;
        Ok(self.pos)
    }
}

impl SourceRead for Slice {
    fn size(&self) -> u64 {
        self.len
    }

    fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
        let end = end.min(self.len);
        if start < end {
            self.inner.prefetch(self.start + start, self.start + end)?;
        }
        Ok(())
    }
}

/// Readers one after another, as one.
pub struct Concat {
    parts: Vec<Box<dyn SourceRead>>,
    /// Where each part starts.
    starts: Vec<u64>,
    size: u64,
    pos: u64,
}

impl Concat {
    pub fn new(parts: Vec<Box<dyn SourceRead>>) -> Concat {
        let mut starts = Vec::with_capacity(parts.len());
        let mut size = 0;
        for p in &parts {
            starts.push(size);
            size += p.size();
        }
        Concat {
            parts,
            starts,
            size,
            pos: 0,
        }
    }

    /// The part holding byte `pos` (< size).
    fn part_at(&self, pos: u64) -> usize {
        self.starts.partition_point(|&s| s <= pos).saturating_sub(1)
    }
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Empty parts are stepped over.
        while self.pos < self.size && !buf.is_empty() {
            let i = self.part_at(self.pos);
            let part_start = self.starts[i];
            let part = &mut self.parts[i];
            let within = self.pos - part_start;
            if within >= part.size() {
                self.pos = part_start + part.size();
                continue;
            }
            let want = (buf.len() as u64).min(part.size() - within) as usize;
            part.seek(SeekFrom::Start(within))?;
            let n = part.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a part ended before its size",
                ));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

impl Seek for Concat {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = seek_within(self.pos, self.size, to)?;
        Ok(self.pos)
    }
}

impl SourceRead for Concat {
    fn size(&self) -> u64 {
        self.size
    }

    fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
        let end = end.min(self.size);
        let mut at = start;
        while at < end {
            let i = self.part_at(at);
            let part_start = self.starts[i];
            let part_end = part_start + self.parts[i].size();
            let until = end.min(part_end);
            if until > at {
                self.parts[i].prefetch(at - part_start, until - part_start)?;
            }
            at = until.max(at + 1);
        }
        Ok(())
    }
}

/// A reader of which only the start is wanted (see
/// [`SourceRead::start_only`]): a segment's first frame.
pub struct StartOnly(pub Box<dyn SourceRead>);

impl Read for StartOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for StartOnly {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.seek(to)
    }
}

impl SourceRead for StartOnly {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn start_only(&self) -> bool {
        true
    }

    fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
        self.0.prefetch(start, end)
    }
}

/// The position `to` names in a stream of `len` bytes at `pos`.
fn seek_within(pos: u64, len: u64, to: SeekFrom) -> io::Result<u64> {
    let target = match to {
        SeekFrom::Start(n) => Some(n as i128),
        SeekFrom::Current(d) => Some(pos as i128 + d as i128),
        SeekFrom::End(d) => Some(len as i128 + d as i128),
    };
    match target {
        Some(t) if t >= 0 => Ok(t as u64),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "seek before the start",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn part(bytes: &[u8]) -> Box<dyn SourceRead> {
        Box::new(Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn concat_of_slices_reads_as_one() {
        let whole: Vec<u8> = (0..100u8).collect();
        let slice = Slice::new(part(&whole), (10, 20)).unwrap();
        let mut c = Concat::new(vec![part(b"init"), part(b""), Box::new(slice), part(b"!")]);
        assert_eq!(c.size(), 4 + 10 + 1);
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        let mut expected = b"init".to_vec();
        expected.extend(10..20u8);
        expected.push(b'!');
        assert_eq!(all, expected);
        c.seek(SeekFrom::Start(6)).unwrap();
        let mut two = [0u8; 2];
        c.read_exact(&mut two).unwrap();
        assert_eq!(two, [12, 13]);
        c.seek(SeekFrom::End(-1)).unwrap();
        c.read_exact(&mut two[..1]).unwrap();
        assert_eq!(two[0], b'!');
        assert!(c.seek(SeekFrom::Current(-100)).is_err());
        c.prefetch(0, 15).unwrap();
    }

    #[test]
    fn a_slice_past_the_end_is_refused() {
        assert!(Slice::new(part(b"abc"), (1, 4)).is_err());
        assert!(Slice::new(part(b"abc"), (2, 1)).is_err());
        let mut s = Slice::new(part(b"abcdef"), (2, 4)).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"cd");
    }
}
