//! The config loader: any text is a config or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = thumbd::Config::from_toml(text, std::path::Path::new("/nonexistent/base"));
});
