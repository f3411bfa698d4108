//! Byte ranges: the `Range` header thumbd sends, the `Content-Range` a
//! source answers with, and what one range read returns (`Fetched`),
//! whether from an HTTP source or a bucket. Pure, tested directly.

use bytes::Bytes;

/// One range read's answer (from [`super::http`] or [`super::object`]).
pub(super) struct Fetched {
    pub data: Bytes,
    /// The object's size.
    pub total: u64,
    pub validator: String,
}

/// A parsed `Content-Range: bytes first-last/total` (total may be unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

/// `Range` header value for `len` bytes from `start` (`len` > 0).
pub fn range_header(start: u64, len: u64) -> String {
    format!("bytes={}-{}", start, start + len - 1)
}

/// Parses a `Content-Range` value of a 206 answer.
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let (first, last) = span.trim().split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// Parses the total of an unsatisfied range (`bytes */total`, with 416).
pub fn parse_unsatisfied_total(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(ContentRange {
                first: 0,
                last: 99,
                total: Some(1000)
            })
        );
        assert_eq!(parse_content_range("bytes 5-5/*").unwrap().total, None);
        for bad in [
            "bytes 10-5/100",
            "bytes 0-100/100",
            "items 0-1/2",
            "bytes 0-/10",
            "bytes x-1/2",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
        assert_eq!(parse_unsatisfied_total("bytes */0"), Some(0));
        assert_eq!(range_header(10, 5), "bytes=10-14");
    }

    proptest::proptest! {
        #[test]
        fn round_trip(first in 0u64..1 << 40, len in 1u64..1 << 30, extra in 0u64..1000) {
            let header = range_header(first, len);
            let last = first + len - 1;
            proptest::prop_assert_eq!(header, format!("bytes={first}-{last}"));
            let cr = parse_content_range(&format!("bytes {first}-{last}/{}", last + 1 + extra)).unwrap();
            proptest::prop_assert_eq!((cr.first, cr.last), (first, last));
        }
    }
}
