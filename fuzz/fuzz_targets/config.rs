//! The config loader and its resolution (what `check-config` and `serve`
//! run): any text is a config or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = thumbd::Config::from_toml(text, std::path::Path::new("/nonexistent/base")) {
        let _ = thumbd::setup::resolve(&config);
    }
});
