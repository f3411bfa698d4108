//! The MP4 top-level box walk that fetches an index in one request, over
//! any bytes.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: Vec<u8>| {
    let mut r = Cursor::new(data);
    let _ = thumbd::media::mp4::prefetch_index(&mut r);
});
