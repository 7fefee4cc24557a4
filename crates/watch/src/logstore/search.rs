//! Syslog search over the log store: blocks are pruned by their summaries (time range, hosts, apps, senders,
//! severities, facilities), the rest are checked, decompressed and filtered; newest first.
//!
//! Text matching (`text=`): the text is split at whitespace into words; every word must occur in the message.
//! A word matches whole tokens, case-insensitively, where a token is a run of letters and digits (so `down`
//! matches "link down." but not "downstream"; `link-down` or `"link down"` in one word match the two tokens
//! next to each other). These are the semantics of the former FTS5 index (unicode61 tokenizer), without its
//! folding of diacritics.

use super::codec::{self, FrameHeader, FRAME_HEADER};
use super::list_segments;
use super::writer::walk;
use crate::store::query::{self, Answer, LogOut, LogQuery, Window};
use crate::store::{LogRow, StoreError};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A parsed `text=` parameter: phrases of lowercase tokens, all of which must occur.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextQuery {
    phrases: Vec<Vec<String>>,
}

/// Lowercase tokens (runs of letters and digits) of `s`.
pub fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl TextQuery {
    /// Parses free text (None or blank: matches everything).
    pub fn new(text: Option<&str>) -> Self {
        let phrases = text
            .unwrap_or("")
            .split_whitespace()
            .map(tokens)
            .filter(|p| !p.is_empty())
            .collect();
        Self { phrases }
    }

    /// True when it matches everything.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Does `msg` contain every phrase?
    pub fn matches(&self, msg: &str) -> bool {
        if self.phrases.is_empty() {
            return true;
        }
        if msg.is_ascii() {
            // Quick reject: every token must at least be a substring.
            let lower = msg.to_ascii_lowercase();
            if !self
                .phrases
                .iter()
                .flatten()
                .all(|t| lower.contains(t.as_str()))
            {
                return false;
            }
        }
        let toks = tokens(msg);
        self.phrases
            .iter()
            .all(|p| toks.windows(p.len()).any(|w| w == p.as_slice()))
    }
}

/// A compiled filter.
struct Filter {
    from: i64,
    to: i64,
    host: Option<(String, u32)>,
    peer: Option<(String, u32)>,
    app: Option<(String, u32)>,
    severity: Option<u8>,
    facility: Option<u8>,
    text: TextQuery,
}

impl Filter {
    fn may_match(&self, s: &codec::Summary) -> bool {
        s.recv_max >= self.from
            && s.recv_min < self.to
            && self.host.as_ref().is_none_or(|(_, h)| s.may_have_host(*h))
            && self.app.as_ref().is_none_or(|(_, h)| s.may_have_app(*h))
            && self.peer.as_ref().is_none_or(|(_, h)| s.may_have_peer(*h))
            && self.severity.is_none_or(|v| s.may_have_severity_at_most(v))
            && self.facility.is_none_or(|v| s.may_have_facility(v))
    }

    fn matches(&self, r: &LogRow) -> bool {
        r.received_ms >= self.from
            && r.received_ms < self.to
            && self
                .host
                .as_ref()
                .is_none_or(|(h, _)| r.host.as_deref() == Some(h))
            && self
                .app
                .as_ref()
                .is_none_or(|(a, _)| r.app.as_deref() == Some(a))
            && self.severity.is_none_or(|v| r.severity <= v)
            && self.facility.is_none_or(|v| r.facility == v)
            && self
                .peer
                .as_ref()
                .is_none_or(|(p, _)| r.peer.to_string() == *p)
            && self.text.matches(&r.msg)
    }
}

fn with_hash(s: &Option<String>) -> Option<(String, u32)> {
    s.as_ref().map(|v| (v.clone(), codec::hash(v.as_bytes())))
}

/// Searches the log store in `dir`: messages matching every filter of `q`, newest first (by receive time, then
/// by arrival), at most `q.limit` (default 100, capped at `max_rows`).
pub fn search(
    dir: &Path,
    q: &LogQuery,
    now_ms: i64,
    max_rows: usize,
) -> Result<Answer<LogOut>, StoreError> {
    let (from, to) = Window {
        from: q.from.clone(),
        to: q.to.clone(),
    }
    .resolve(now_ms)?;
    let f = Filter {
        from,
        to,
        host: with_hash(&q.host),
        peer: with_hash(&q.peer),
        app: with_hash(&q.app),
        severity: q
            .severity
            .as_deref()
            .map(query::severity_code)
            .transpose()?,
        facility: q
            .facility
            .as_deref()
            .map(query::facility_code)
            .transpose()?,
        text: TextQuery::new(q.text.as_deref()),
    };
    let limit = query::limit(q.limit, 100, max_rows) as usize;
    // Matches keyed by (receive time, arrival position), newest first once sorted.
    let mut hits: Vec<Hit> = Vec::new();
    let mut floor: Option<i64> = None;
    let mut body = Vec::new();
    for (seq, path) in list_segments(dir)?.into_iter().rev() {
        let frames = match walk(&path) {
            Ok((frames, _)) => frames,
            // Deleted by retention since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let mut file: Option<File> = None;
        for (offset, h, s) in frames.into_iter().rev() {
            if !f.may_match(&s) || floor.is_some_and(|fl| s.recv_max < fl) {
                continue;
            }
            let fh = match &mut file {
                Some(fh) => fh,
                None => match File::open(&path) {
                    Ok(fh) => file.insert(fh),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e.into()),
                },
            };
            let rows = match read_block(fh, offset, &h, &mut body) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), offset, error = %e, "unreadable log block skipped");
                    continue;
                }
            };
            for (i, r) in rows.into_iter().enumerate() {
                if f.matches(&r) {
                    hits.push(((r.received_ms, seq, offset, i), r));
                }
            }
            if hits.len() >= 2 * limit.max(64) {
                trim(&mut hits, limit);
                floor = hits.last().map(|h| h.0 .0).filter(|_| hits.len() == limit);
            }
        }
    }
    trim(&mut hits, limit);
    Ok(Answer {
        from,
        to,
        rows: hits.into_iter().map(|(_, r)| out(r)).collect(),
    })
}

/// A match: (receive time, segment, block offset, index in block) and the message.
type Hit = ((i64, u64, u64, usize), LogRow);

fn trim(hits: &mut Vec<Hit>, limit: usize) {
    hits.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
    hits.truncate(limit);
}

#[derive(Debug, thiserror::Error)]
enum BlockError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Codec(#[from] codec::CodecError),
}

fn read_block(
    f: &mut File,
    offset: u64,
    h: &FrameHeader,
    body: &mut Vec<u8>,
) -> Result<Vec<LogRow>, BlockError> {
    body.resize(h.summary_len + h.payload_len, 0);
    f.seek(SeekFrom::Start(offset + FRAME_HEADER as u64))?;
    f.read_exact(body)?;
    let s = codec::check_frame(h, body)?;
    Ok(codec::decode_payload(&s, &body[h.summary_len..])?)
}

fn out(r: LogRow) -> LogOut {
    LogOut {
        received: r.received_ms,
        ts: r.ts_ms,
        peer: r.peer.to_string(),
        transport: r.transport.to_string(),
        host: r.host,
        app: r.app,
        procid: r.proc_id,
        msgid: r.msg_id,
        facility: yagura_syslog::Facility::from_code(r.facility)
            .map_or_else(|| r.facility.to_string(), |f| f.name().to_string()),
        severity: yagura_syslog::Severity::from_code(r.severity)
            .name()
            .to_string(),
        format: r.format.to_string(),
        malformed: r.malformed,
        msg: r.msg,
        raw: String::from_utf8_lossy(&r.raw).into_owned(),
    }
}
