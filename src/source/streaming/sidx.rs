//! The ISO BMFF `sidx` (segment index) box of a DASH `SegmentBase`
//! representation: its subsegments as byte ranges of the media file, on a
//! [`Timeline`] that starts at the first subsegment.
//!
//! The bytes read from the representation's `indexRange` may start with
//! other boxes (`styp`, ...): they are skipped up to the first `sidx`.
//! Versions 0 (32-bit times and offset) and 1 (64-bit) are read.
//!
//! Refused: bytes without a `sidx` box, a truncated box, a timescale of 0
//! or an index that lists no subsegment ([`StreamError::Invalid`]);
//! references to other `sidx` boxes, i.e. hierarchical indexes
//! ([`StreamError::Unsupported`]); more references than
//! [`StreamLimits::max_segments`] ([`StreamError::TooLarge`]).

use url::Url;

use super::{Part, Segment, StreamError, StreamLimits, Timeline};

/// The subsegments the `sidx` box in `bytes` lists (bytes = the file's bytes `index.0..index.1`, end exclusive), as a Timeline of byte ranges of `media`, each with `init` (a Part of `media` for the init range, if any) as its init segment; `offset_us` is subtracted from every start (DASH presentationTimeOffset), starts clamp at 0 and the first segment's start is made 0 (the timeline starts at the first subsegment).
pub fn timeline(
    bytes: &[u8],
    index: (u64, u64),
    media: &Url,
    init: Option<(u64, u64)>,
    offset_us: u64,
    limits: &StreamLimits,
) -> Result<Timeline, StreamError> {
    let found = find_sidx(bytes)?;
    let mut r = Reader {
        data: &bytes[found.offset + found.header..found.offset + found.size],
        pos: 0,
    };
    let version = r.u8()?;
    r.skip(3)?; // flags
    r.skip(4)?; // reference_ID
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(invalid("the sidx box's timescale is 0"));
    }
    let (earliest, first_offset) = match version {
        0 => (u64::from(r.u32()?), u64::from(r.u32()?)),
        1 => (r.u64()?, r.u64()?),
        v => return Err(invalid(format!("the sidx box has unknown version {v}"))),
    };
    r.skip(2)?; // reserved
    let count = usize::from(r.u16()?);
    if count > limits.max_segments {
        return Err(StreamError::TooLarge(format!(
            "the index lists more than {} segments",
            limits.max_segments
        )));
    }
    if count == 0 {
        return Err(invalid("the sidx box lists no subsegment"));
    }
    if r.data.len() - r.pos < count * 12 {
        return Err(truncated());
    }

    let out_of_range = || invalid("the sidx box's offsets are out of range");
    // The box's end in the file, then the first subsegment's start.
    let mut offset = index
        .0
        .checked_add(found.offset as u64)
        .and_then(|o| o.checked_add(found.size as u64))
        .and_then(|o| o.checked_add(first_offset))
        .ok_or_else(out_of_range)?;
    let init = init.map(|range| Part {
        uri: media.clone(),
        range: Some(range),
    });
    let boundary = |units: u128| -> u64 {
        let us = units * 1_000_000 / u128::from(timescale);
        u64::try_from(us)
            .unwrap_or(u64::MAX)
            .saturating_sub(offset_us)
    };
    let mut units = u128::from(earliest);
    let first = boundary(units);
    let mut start = 0u64;
    let mut segments = Vec::with_capacity(count);
    for _ in 0..count {
        let reference = r.u32()?;
        let duration = r.u32()?;
        r.skip(4)?; // starts_with_SAP, SAP_type, SAP_delta_time
        if reference & 0x8000_0000 != 0 {
            return Err(StreamError::Unsupported(
                "hierarchical sidx indexes are not supported".into(),
            ));
        }
        let size = u64::from(reference & 0x7fff_ffff);
        let end_offset = offset.checked_add(size).ok_or_else(out_of_range)?;
        units += u128::from(duration);
        let end = boundary(units).saturating_sub(first);
        segments.push(Segment {
            start_us: start,
            duration_us: end - start,
            media: Part {
                uri: media.clone(),
                range: Some((offset, end_offset)),
            },
            init: init.clone(),
        });
        offset = end_offset;
        start = end;
    }
    Ok(Timeline {
        segments,
        duration_us: start,
        growing: false,
    })
}

fn invalid(what: impl Into<String>) -> StreamError {
    StreamError::Invalid(what.into())
}

fn truncated() -> StreamError {
    invalid("the sidx box is truncated")
}

/// Where the `sidx` box lies in the bytes.
struct Found {
    offset: usize,
    header: usize,
    size: usize,
}

fn find_sidx(bytes: &[u8]) -> Result<Found, StreamError> {
    let none = || invalid("the index range holds no sidx box");
    let mut offset = 0usize;
    loop {
        let rest = &bytes[offset..];
        if rest.len() < 8 {
            return Err(none());
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let (header, size) = match size32 {
            0 => (8, rest.len() as u64),
            1 => {
                let large = rest.get(8..16).ok_or_else(none)?;
                (16, u64::from_be_bytes(large.try_into().expect("8 bytes")))
            }
            n => (8, u64::from(n)),
        };
        if size < header as u64 {
            return Err(invalid("the index range holds a malformed box"));
        }
        if &rest[4..8] == b"sidx" {
            if size > rest.len() as u64 {
                return Err(truncated());
            }
            return Ok(Found {
                offset,
                header,
                size: size as usize,
            });
        }
        if size >= rest.len() as u64 {
            return Err(none());
        }
        offset += size as usize;
    }
}

/// Big-endian reads within one box.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StreamError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or_else(truncated)?;
        self.pos += N;
        Ok(bytes.try_into().expect("N bytes"))
    }

    fn skip(&mut self, n: usize) -> Result<(), StreamError> {
        if self.data.len() - self.pos < n {
            return Err(truncated());
        }
        self.pos += n;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, StreamError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, StreamError> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, StreamError> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, StreamError> {
        self.take().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StreamLimits = StreamLimits { max_segments: 10 };

    /// A `sidx` box: `refs` are (reference_type, size, duration).
    fn sidx(
        version: u8,
        timescale: u32,
        earliest: u64,
        first_offset: u64,
        refs: &[(bool, u32, u32)],
    ) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        body.extend(1u32.to_be_bytes());
        body.extend(timescale.to_be_bytes());
        if version == 0 {
            body.extend((earliest as u32).to_be_bytes());
            body.extend((first_offset as u32).to_be_bytes());
        } else {
            body.extend(earliest.to_be_bytes());
            body.extend(first_offset.to_be_bytes());
        }
        body.extend(0u16.to_be_bytes());
        body.extend((refs.len() as u16).to_be_bytes());
        for &(hierarchical, size, duration) in refs {
            body.extend((size | if hierarchical { 0x8000_0000 } else { 0 }).to_be_bytes());
            body.extend(duration.to_be_bytes());
            body.extend(0x9000_0000u32.to_be_bytes());
        }
        boxed(b"sidx", &body)
    }

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(body);
        out
    }

    fn media() -> Url {
        Url::parse("https://cdn.example/v/720.mp4").unwrap()
    }

    #[test]
    fn version_0() {
        // 90 kHz; 2 s, 2 s, 1.5 s subsegments.
        let bytes = sidx(
            0,
            90_000,
            0,
            0,
            &[
                (false, 1000, 180_000),
                (false, 2000, 180_000),
                (false, 500, 135_000),
            ],
        );
        let len = bytes.len() as u64;
        let t = timeline(
            &bytes,
            (800, 800 + len),
            &media(),
            Some((0, 800)),
            0,
            &LIMITS,
        )
        .unwrap();
        let first = 800 + len;
        let ranges: Vec<_> = t.segments.iter().map(|s| s.media.range.unwrap()).collect();
        assert_eq!(
            ranges,
            [
                (first, first + 1000),
                (first + 1000, first + 3000),
                (first + 3000, first + 3500)
            ]
        );
        let starts: Vec<_> = t.segments.iter().map(|s| s.start_us).collect();
        assert_eq!(starts, [0, 2_000_000, 4_000_000]);
        assert_eq!(t.segments[2].duration_us, 1_500_000);
        assert_eq!(t.duration_us, 5_500_000);
        let init = Part {
            uri: media(),
            range: Some((0, 800)),
        };
        assert!(t
            .segments
            .iter()
            .all(|s| s.init.as_ref() == Some(&init) && s.media.uri == media()));
    }

    #[test]
    fn version_1_after_other_boxes_with_offsets() {
        // styp first; earliest time 10 s at 1 kHz; 4 s offset; first_offset 100.
        let mut bytes = boxed(b"styp", b"msdhmsdh");
        let styp = bytes.len() as u64;
        let index = sidx(
            1,
            1000,
            10_000,
            100,
            &[(false, 10, 3000), (false, 20, 3000)],
        );
        bytes.extend(&index);
        bytes.extend(boxed(b"free", &[0; 4]));
        let t = timeline(
            &bytes,
            (50, 50 + bytes.len() as u64),
            &media(),
            None,
            4_000_000,
            &LIMITS,
        )
        .unwrap();
        let first = 50 + styp + index.len() as u64 + 100;
        assert_eq!(t.segments[0].media.range, Some((first, first + 10)));
        assert_eq!(t.segments[1].media.range, Some((first + 10, first + 30)));
        assert_eq!(t.segments[0].start_us, 0);
        assert_eq!(t.segments[1].start_us, 3_000_000);
        assert_eq!(t.duration_us, 6_000_000);
        assert!(t.segments[0].init.is_none());
        // An offset past the earliest time clamps at 0.
        let t = timeline(&bytes, (0, 1), &media(), None, 12_000_000, &LIMITS).unwrap();
        let starts: Vec<_> = t
            .segments
            .iter()
            .map(|s| (s.start_us, s.duration_us))
            .collect();
        assert_eq!(starts, [(0, 1_000_000), (1_000_000, 3_000_000)]);
    }

    #[test]
    fn refusals() {
        let err = |bytes: &[u8]| timeline(bytes, (0, 1), &media(), None, 0, &LIMITS).unwrap_err();
        let hierarchical = sidx(0, 1000, 0, 0, &[(true, 10, 1000)]);
        assert_eq!(
            err(&hierarchical),
            StreamError::Unsupported("hierarchical sidx indexes are not supported".into())
        );
        let many: Vec<_> = (0..11).map(|_| (false, 1, 1)).collect();
        assert!(matches!(
            err(&sidx(0, 1000, 0, 0, &many)),
            StreamError::TooLarge(_)
        ));
        assert!(matches!(
            err(&sidx(0, 0, 0, 0, &[(false, 1, 1)])),
            StreamError::Invalid(_)
        ));
        assert!(matches!(
            err(&sidx(0, 1, 0, 0, &[])),
            StreamError::Invalid(_)
        ));
        assert!(matches!(
            err(&sidx(2, 1, 0, 0, &[(false, 1, 1)])),
            StreamError::Invalid(_)
        ));
        let whole = sidx(0, 1000, 0, 0, &[(false, 10, 1000), (false, 10, 1000)]);
        assert!(matches!(
            err(&whole[..whole.len() - 3]),
            StreamError::Invalid(_)
        ));
        // A box header that claims fewer references than it holds.
        let mut short = whole.clone();
        short[3] -= 12;
        assert!(matches!(
            err(&short[..short.len() - 12]),
            StreamError::Invalid(_)
        ));
        assert!(matches!(
            err(&boxed(b"styp", b"abcd")),
            StreamError::Invalid(_)
        ));
        assert!(matches!(err(b""), StreamError::Invalid(_)));
        assert!(matches!(
            err(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']),
            StreamError::Invalid(_)
        ));
    }
}
