//! ISO BMFF (MP4, MOV, 3GP) top-level boxes, walked before FFmpeg opens the
//! file so that the `moov` box (the index of every packet) arrives in one
//! request however large it is and wherever it is: right after `ftyp` in a
//! faststart file, or after the media data.
//!
//! FFmpeg would read it through the range reader too, but in a run of
//! doubling reads (a two-hour video's index is megabytes), and would first
//! learn where a trailing index starts only by reading the header of the
//! box before it.

#![deny(unsafe_code)]

use std::io::{self, SeekFrom};

use crate::source::SourceRead;

/// Box types a file may start with.
const FIRST: [&[u8; 4]; 7] = [
    b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot",
];
/// Top-level boxes walked before giving up (files have a handful).
const MAX_BOXES: usize = 16;
/// The largest index fetched in one request.
const MAX_INDEX: u64 = 64 * 1024 * 1024;
/// A box header with a 64-bit size.
const NEXT_HEADER: u64 = 16;
/// After the media data, what is left of the file is fetched whole if it is
/// at most this: the index is nearly always all that follows.
const MAX_TAIL: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
struct BoxHeader {
    kind: [u8; 4],
    start: u64,
    /// Whole box, header included.
    size: u64,
}

fn read_header(r: &mut dyn SourceRead, at: u64, file_size: u64) -> io::Result<Option<BoxHeader>> {
    if at.checked_add(8).is_none_or(|end| end > file_size) {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(at))?;
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    let kind = [head[4], head[5], head[6], head[7]];
    let size = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
        // To the end of the file.
        0 => file_size - at,
        // A 64-bit size follows the type.
        1 => {
            let mut large = [0u8; 8];
            r.read_exact(&mut large)?;
            u64::from_be_bytes(large)
        }
        n => u64::from(n),
    };
    Ok((size >= 8).then_some(BoxHeader {
        kind,
        start: at,
        size,
    }))
}

/// A prefetch hint; the walk only ever asks for ordered ranges (checked
/// where debug assertions are on, as in the fuzz target).
fn prefetch(r: &mut dyn SourceRead, start: u64, end: u64) -> io::Result<()> {
    debug_assert!(start <= end, "prefetch {start}..{end}");
    r.prefetch(start, end)
}

/// Finds the `moov` box and has the source fetch it in one request. Does
/// nothing for other formats; leaves the reader at byte 0.
pub fn prefetch_index(r: &mut dyn SourceRead) -> io::Result<()> {
    let file_size = r.size();
    let first = read_header(r, 0, file_size)?;
    if first.is_some_and(|b| FIRST.contains(&&b.kind)) {
        let mut at = 0;
        let mut after_media = false;
        for _ in 0..MAX_BOXES {
            if after_media && file_size - at <= MAX_TAIL {
                prefetch(r, at, file_size)?;
            }
            let Some(b) = read_header(r, at, file_size)? else {
                break;
            };
            if &b.kind == b"moov" {
                // With the header of the box after it, which FFmpeg reads
                // next (the media data's, in a faststart file).
                let end = b.start.saturating_add(b.size.min(MAX_INDEX) + NEXT_HEADER);
                prefetch(r, b.start, end.min(file_size))?;
                break;
            }
            after_media = &b.kind == b"mdat";
            match b.start.checked_add(b.size) {
                Some(next) if next < file_size => at = next,
                _ => break,
            }
        }
    }
    r.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// Where a fragmented file's first fragment starts, for one track: what
/// the fragment's own header says, so the first frame's presentation time
/// is known without reading (and fetching) the frame itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentStart {
    /// The first sample's decoding time (`tfdt`), in the track's timescale.
    pub decode_time: u64,
    /// Its composition offset (`trun`): presentation = decoding + this.
    pub composition_offset: i64,
}

/// Boxes read inside one `moof` at most.
const MAX_CHILDREN: usize = 64;
/// The largest `moof` header read whole (a fragment of thousands of samples
/// is tens of KiB).
const MAX_MOOF: u64 = 4 * 1024 * 1024;

/// The first `moof` of a fragmented file, parsed for `track_id`'s first
/// sample; `None` when the file has no fragment before its media data, the
/// track is not in it, or anything is out of the ordinary (the caller then
/// reads the first packet instead). Restores the reader's position.
pub fn first_fragment_start(
    r: &mut dyn SourceRead,
    track_id: u32,
) -> io::Result<Option<FragmentStart>> {
    let pos = r.stream_position()?;
    let found = find_first_fragment(r, track_id);
    r.seek(SeekFrom::Start(pos))?;
    found
}

fn find_first_fragment(r: &mut dyn SourceRead, track_id: u32) -> io::Result<Option<FragmentStart>> {
    let file_size = r.size();
    let mut at = 0;
    for _ in 0..MAX_BOXES {
        let Some(b) = read_header(r, at, file_size)? else {
            return Ok(None);
        };
        match &b.kind {
            b"moof" if b.size <= MAX_MOOF => {
                let mut body = vec![0u8; b.size as usize];
                r.seek(SeekFrom::Start(b.start))?;
                r.read_exact(&mut body)?;
                return Ok(parse_moof(&body, track_id));
            }
            b"mdat" | b"moof" => return Ok(None),
            _ => {}
        }
        match b.start.checked_add(b.size) {
            Some(next) if next < file_size => at = next,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// The children of a box body: (type, body) pairs (at most
/// [`MAX_CHILDREN`]); a child whose size runs past the body ends the walk.
pub(super) fn children(body: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let size = be_u32(body, at)?;
        let kind = body.get(at + 4..at + 8)?;
        let (start, end) = match size {
            // To the end of the body.
            0 => (at + 8, body.len()),
            // A 64-bit size follows the type.
            1 => (
                at + 16,
                at.checked_add(usize::try_from(be_u64(body, at + 8)?).ok()?)?,
            ),
            n => (at + 8, at.checked_add(n as usize)?),
        };
        let inner = body.get(start..end)?;
        at = end;
        Some((kind, inner))
    })
    .take(MAX_CHILDREN)
}

/// The first child of `body` of type `kind`.
pub(super) fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).find(|(k, _)| k == kind).map(|(_, b)| b)
}

pub(super) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(super) fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The body of the file's `moov` box (at most [`MAX_INDEX`] bytes), read
/// where [`prefetch_index`] had the source fetch it; the reader is left
/// where it was.
pub(super) fn read_moov(r: &mut dyn SourceRead) -> io::Result<Option<Vec<u8>>> {
    let pos = r.stream_position()?;
    let found = find_moov(r);
    r.seek(SeekFrom::Start(pos))?;
    found
}

fn find_moov(r: &mut dyn SourceRead) -> io::Result<Option<Vec<u8>>> {
    let file_size = r.size();
    let mut at = 0;
    for _ in 0..MAX_BOXES {
        let Some(b) = read_header(r, at, file_size)? else {
            return Ok(None);
        };
        let end = b.start.checked_add(b.size).filter(|&end| end <= file_size);
        let Some(end) = end else {
            return Ok(None);
        };
        if &b.kind == b"moov" {
            // The header: 8 bytes, or 16 with a 64-bit size.
            let header = r.stream_position()? - b.start;
            if b.size > MAX_INDEX {
                return Ok(None);
            }
            let mut body = vec![0u8; (b.size - header) as usize];
            r.read_exact(&mut body)?;
            return Ok(Some(body));
        }
        at = end;
    }
    Ok(None)
}

/// `moof` body -> the `traf` of `track_id` -> its `tfdt` and its first
/// `trun`'s first sample's composition offset.
fn parse_moof(moof: &[u8], track_id: u32) -> Option<FragmentStart> {
    // The moof's own header is part of `moof` as read: skip it.
    let body = moof.get(8..)?;
    for (kind, traf) in children(body) {
        if kind != b"traf" {
            continue;
        }
        let mut id = None;
        let mut decode_time = None;
        let mut offset = None;
        for (kind, b) in children(traf) {
            match kind {
                b"tfhd" => id = be_u32(b, 4),
                b"tfdt" => {
                    decode_time = match b.first()? {
                        1 => be_u64(b, 4),
                        _ => be_u32(b, 4).map(u64::from),
                    }
                }
                b"trun" if offset.is_none() => offset = Some(first_composition_offset(b)?),
                _ => {}
            }
        }
        if id == Some(track_id) {
            return Some(FragmentStart {
                decode_time: decode_time?,
                composition_offset: offset?,
            });
        }
    }
    None
}

/// The first sample's composition offset in a `trun` body (0 when the
/// box carries none).
fn first_composition_offset(trun: &[u8]) -> Option<i64> {
    let version = *trun.first()?;
    let flags = be_u32(trun, 0)? & 0x00ff_ffff;
    let count = be_u32(trun, 4)?;
    if count == 0 {
        return None;
    }
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4; // data offset
    }
    if flags & 0x4 != 0 {
        at += 4; // first sample's flags
    }
    for (flag, len) in [(0x100, 4), (0x200, 4), (0x400, 4)] {
        if flags & flag != 0 {
            at += len;
        }
    }
    if flags & 0x800 == 0 {
        return Some(0);
    }
    let raw = be_u32(trun, at)?;
    Some(if version == 0 {
        i64::from(raw)
    } else {
        i64::from(raw as i32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, Seek};

    /// An in-memory source that records what it is asked to prefetch.
    struct Recorder {
        bytes: Cursor<Vec<u8>>,
        prefetched: Vec<(u64, u64)>,
    }

    impl Read for Recorder {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.bytes.read(buf)
        }
    }

    impl Seek for Recorder {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.bytes.seek(to)
        }
    }

    impl SourceRead for Recorder {
        fn size(&self) -> u64 {
            self.bytes.get_ref().len() as u64
        }

        fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
            self.prefetched.push((start, end));
            Ok(())
        }
    }

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, 0);
        b
    }

    fn walk(file: Vec<u8>) -> Vec<(u64, u64)> {
        let mut r = Recorder {
            bytes: Cursor::new(file),
            prefetched: Vec::new(),
        };
        prefetch_index(&mut r).unwrap();
        assert_eq!(r.bytes.position(), 0, "left at byte 0");
        r.prefetched
    }

    #[test]
    fn a_faststart_index_is_fetched_whole() {
        let file = [
            boxed(b"ftyp", 24),
            boxed(b"moov", 5000),
            boxed(b"mdat", 100),
        ]
        .concat();
        assert_eq!(walk(file), vec![(32, 32 + 5008 + 16)]);
    }

    #[test]
    fn an_index_after_the_media_is_fetched_with_the_rest_of_the_file() {
        let file = [
            boxed(b"ftyp", 24),
            boxed(b"mdat", 100_000),
            boxed(b"moov", 700),
        ]
        .concat();
        let tail = 32 + 100_008;
        // (The index ends the file: nothing after it to fetch.)
        assert_eq!(walk(file), vec![(tail, tail + 708), (tail, tail + 708)]);
    }

    #[test]
    fn other_formats_are_left_alone() {
        let mut webm = vec![0x1a, 0x45, 0xdf, 0xa3];
        webm.resize(4096, 0);
        assert_eq!(walk(webm), vec![]);
        assert_eq!(walk(vec![0, 0, 0]), vec![]);
    }

    #[test]
    fn a_64_bit_size_is_followed() {
        let mut mdat = 1u32.to_be_bytes().to_vec();
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(&1016u64.to_be_bytes());
        mdat.resize(1016, 0);
        let file = [boxed(b"ftyp", 24), mdat, boxed(b"moov", 10)].concat();
        assert_eq!(walk(file), vec![(1048, 1066), (1048, 1066)]);
    }

    #[test]
    fn a_bad_size_ends_the_walk() {
        let mut file = boxed(b"ftyp", 24);
        file.extend_from_slice(&4u32.to_be_bytes());
        file.extend_from_slice(b"moov");
        file.resize(200, 0);
        assert_eq!(walk(file), vec![]);
    }
}
