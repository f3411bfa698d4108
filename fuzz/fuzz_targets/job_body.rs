//! Job submissions: any JSON is a job or a list of field errors; a job's
//! URL parses back to the job's render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match thumbd::jobs::submission::validate(&body, "org", "clips/a.mp4", Some("env")) {
        Ok(job) => {
            let url = thumbd::jobs::submission::thumbnail_url("http://t", &job.thumbnail);
            let back = url.strip_prefix("http://t/v1/thumbnail/").expect("our prefix");
            let (tail, query) = back.split_once('?').map_or((back, None), |(t, q)| (t, Some(q)));
            let req = thumbd::request::parse(tail, query).expect("parses back").into_request();
            assert_eq!(req.render_key(), job.thumbnail.render_key(), "{url}");
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
