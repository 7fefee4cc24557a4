#![no_main]
//! Fuzz the query-parameter parsers of the HTTP API: times and full-text search terms.

use libfuzzer_sys::fuzz_target;
use yagura_watch::store::query::{fts_query, parse_time};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse_time(&s, 1_800_000_000_000);
    if let Some(q) = fts_query(&s) {
        // Every word is quoted, so the FTS5 query has balanced quotes.
        assert_eq!(q.matches('"').count() % 2, 0);
    }
});
