#![no_main]
//! Fuzz the query-parameter parsers of the HTTP API: times and syslog text search terms.

use libfuzzer_sys::fuzz_target;
use yagura_watch::logstore::search::TextQuery;
use yagura_watch::store::query::parse_time;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse_time(&s, 1_800_000_000_000);
    // The text matches itself (every word's tokens occur in it, in order).
    let q = TextQuery::new(Some(&s));
    assert!(q.matches(&s));
});
