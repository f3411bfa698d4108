//! The thumbnail URL: path tail and query parsed into a request, its cache
//! key, and the job URL made from it parsing back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Option<&str>)| {
    let (tail, query) = input;
    if let Ok(parsed) = thumbd::request::parse(tail, query) {
        let req = parsed.into_request();
        let key = req.render_key().to_string();
        let url = thumbd::jobs::submission::thumbnail_url("http://t", &req);
        let back = url.strip_prefix("http://t/v1/thumbnail/").expect("our prefix");
        let (tail, query) = match back.split_once('?') {
            Some((t, q)) => (t, Some(q)),
            None => (back, None),
        };
        let again = thumbd::request::parse(tail, query)
            .unwrap_or_else(|e| panic!("{url} does not parse back: {e:?}"))
            .into_request();
        assert_eq!(again.render_key().to_string(), key, "{url}");
    }
});
