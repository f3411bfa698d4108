//! `Content-Range` answers as a source sends them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thumbd::source::range::{parse_content_range, parse_unsatisfied_total, range_header};

fuzz_target!(|value: &str| {
    if let Some(r) = parse_content_range(value) {
        assert!(r.first <= r.last, "{value}: {r:?}");
        if let Some(total) = r.total {
            assert!(r.last < total, "{value}: {r:?}");
        }
        if let Some(len) = (r.last - r.first).checked_add(1) {
            assert!(range_header(r.first, len).starts_with("bytes="));
        }
    }
    let _ = parse_unsatisfied_total(value);
});
