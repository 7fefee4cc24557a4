//! Lenient RFC 3164 (BSD syslog) parser with the variants seen in the field:
//!
//! * `<PRI>Mmm dd hh:mm:ss host tag[pid]: msg` (the RFC form);
//! * missing PRI (handled by the caller: user.notice, RFC 3164 §4.3.3);
//! * missing hostname (`<PRI>Mmm dd hh:mm:ss tag: msg`);
//! * ISO 8601 / RFC 3339 timestamps instead of `Mmm dd hh:mm:ss`;
//! * Cisco IOS: sequence numbers (`<189>123: `), an origin hostname before
//!   the timestamp (`<189>123: router1: *Mar  1 ...`), leading `*`/`.` on the
//!   timestamp, milliseconds, an optional year and time-zone name, and a
//!   trailing `:` after the timestamp;
//! * a year between day and time (`Mar  1 2024 10:00:00`).
//!
//! The year of `Mmm dd` timestamps is inferred from the receive time,
//! handling the December/January wrap.

use crate::message::{text, Format, Message, ParseOptions};
use crate::rfc5424::{parse_frac, parse_rfc3339, valid};
use crate::timestamp::civil_from_days;
use crate::Timestamp;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Longest token accepted as a TAG / APP-NAME (RFC 3164 says 32; be lenient).
const MAX_TAG: usize = 64;

pub(crate) fn parse_after_pri(raw: &[u8], b: &[u8], opts: &ParseOptions) -> Message {
    let mut m = Message::empty(raw, Format::Rfc3164);
    let mut i = 0;

    // Cisco sequence number: "123: ".
    if let Some((seq, n)) = cisco_seq(b) {
        m.sequence = Some(seq);
        i += n;
    }
    i += count_spaces(&b[i..]);

    // Timestamp, possibly preceded by a Cisco origin hostname ("router1: ").
    let mut ts = parse_timestamp(&b[i..], opts);
    if ts.is_none() {
        let tok = token(&b[i..]);
        if tok.len() > 1 && tok.ends_with(b":") {
            let after = i + tok.len() + count_spaces(&b[i + tok.len()..]);
            if let Some(t) = parse_timestamp(&b[after..], opts) {
                m.hostname = Some(text(&tok[..tok.len() - 1]));
                i = after;
                ts = Some(t);
            }
        }
    }
    let have_ts = match ts {
        Some(TsResult {
            ts,
            len,
            year_inferred,
        }) => {
            m.timestamp = Some(ts);
            m.anomalies.year_inferred = year_inferred;
            i += len;
            true
        }
        None => {
            m.anomalies.timestamp_missing = true;
            if looks_like_bad_timestamp(&b[i..]) {
                m.anomalies.timestamp_invalid = true;
            }
            false
        }
    };
    i += count_spaces(&b[i..]);

    // Hostname, unless the next token is clearly the tag / message.
    if m.hostname.is_none() {
        let tok = token(&b[i..]);
        let tag_like = tok.ends_with(b":") || tok.contains(&b'[') || tok.first() == Some(&b'%');
        if have_ts && !tok.is_empty() && !tag_like {
            m.hostname = Some(text(tok));
            i += tok.len();
            i += count_spaces(&b[i..]);
        } else {
            m.anomalies.hostname_missing = true;
        }
    }

    // TAG[PID]: message
    let rest = &b[i..];
    if let Some((tag, pid, n)) = parse_tag(rest) {
        m.app_name = Some(text(tag));
        m.proc_id = pid.map(text);
        let mut j = n;
        if rest.get(j) == Some(&b' ') {
            j += 1;
        }
        m.msg = text(&rest[j..]);
    } else {
        m.msg = text(rest);
    }
    m
}

fn count_spaces(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b' ').count()
}

fn token(b: &[u8]) -> &[u8] {
    let n = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
    &b[..n]
}

/// `digits ':' (' ' | end)` → (sequence, bytes consumed incl. ':').
fn cisco_seq(b: &[u8]) -> Option<(u64, usize)> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 || b.get(n) != Some(&b':') {
        return None;
    }
    if !matches!(b.get(n + 1), None | Some(b' ')) {
        return None;
    }
    let s = std::str::from_utf8(&b[..n]).ok()?;
    Some((s.parse().ok()?, n + 1))
}

/// `TAG[PID]:`, `TAG:`, or `TAG[PID]` (colon missing). Returns tag, pid and
/// bytes consumed.
/// (tag, pid, bytes consumed).
type TagParts<'a> = (&'a [u8], Option<&'a [u8]>, usize);

fn parse_tag(b: &[u8]) -> Option<TagParts<'_>> {
    let end = b
        .iter()
        .position(|&c| c == b' ' || c == b'[' || c == b':')
        .unwrap_or(b.len());
    if end == 0 || end > MAX_TAG {
        return None;
    }
    let tag = &b[..end];
    match b.get(end) {
        Some(b':') => Some((tag, None, end + 1)),
        Some(b'[') => {
            let close = b[end..].iter().position(|&c| c == b']')? + end;
            let pid = &b[end + 1..close];
            if pid.contains(&b' ') {
                return None;
            }
            let mut n = close + 1;
            if b.get(n) == Some(&b':') {
                n += 1;
            }
            Some((tag, Some(pid), n))
        }
        _ => None,
    }
}

struct TsResult {
    ts: Timestamp,
    len: usize,
    year_inferred: bool,
}

fn looks_like_bad_timestamp(b: &[u8]) -> bool {
    let b = b
        .strip_prefix(b"*")
        .or_else(|| b.strip_prefix(b"."))
        .unwrap_or(b);
    MONTHS.iter().any(|m| b.starts_with(*m))
        || b.first().is_some_and(u8::is_ascii_digit) && b.get(4) == Some(&b'-')
}

fn two_digits(b: &[u8], at: usize) -> Option<u8> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit()).then(|| (x - b'0') * 10 + (y - b'0'))
}

/// Parse a BSD (`Mmm dd hh:mm:ss`) or ISO timestamp, with Cisco decorations.
fn parse_timestamp(b: &[u8], opts: &ParseOptions) -> Option<TsResult> {
    let mut i = 0;
    if matches!(b.first(), Some(b'*' | b'.')) {
        i = 1;
    }
    if let Some((ts, n)) = parse_rfc3339(&b[i..]) {
        let mut len = i + n;
        if b.get(len) == Some(&b':') {
            len += 1;
        }
        return Some(TsResult {
            ts,
            len,
            year_inferred: false,
        });
    }
    let mon = MONTHS.iter().position(|m| b[i..].starts_with(*m))? as u8 + 1;
    i += 3;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // Day: "dd", " d" or "d".
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let day = if let Some(d) = two_digits(b, i) {
        i += 2;
        d
    } else {
        let c = *b.get(i)?;
        if !c.is_ascii_digit() {
            return None;
        }
        i += 1;
        c - b'0'
    };
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // Optional year: "yyyy ".
    let mut year = None;
    if b.get(i + 4) == Some(&b' ') {
        if let Some(y) = b
            .get(i..i + 4)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse::<i32>().ok())
        {
            year = Some(y);
            i += 5;
        }
    }
    let hour = two_digits(b, i)?;
    let minute = two_digits(b, i + 3)?;
    let second = two_digits(b, i + 6)?;
    if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
        return None;
    }
    i += 8;
    let (nanosecond, n) = parse_frac(b, i);
    i += n;
    // Optional time-zone name followed by ':' (Cisco "UTC:"), or a bare ':'.
    let mut offset_minutes = None;
    if b.get(i) == Some(&b' ') {
        let tz = token(&b[i + 1..]);
        if tz.len() >= 2
            && tz.len() <= 6
            && tz.ends_with(b":")
            && tz[..tz.len() - 1].iter().all(u8::is_ascii_alphabetic)
        {
            let name = &tz[..tz.len() - 1];
            if name.eq_ignore_ascii_case(b"UTC")
                || name.eq_ignore_ascii_case(b"GMT")
                || name == b"Z"
            {
                offset_minutes = Some(0);
            }
            i += 1 + tz.len();
        }
    } else if b.get(i) == Some(&b':') {
        i += 1;
    }
    let (year, inferred) = match year {
        Some(y) => (y, false),
        None => (infer_year(mon, opts), true),
    };
    let ts = Timestamp {
        year,
        month: mon,
        day,
        hour,
        minute,
        second,
        nanosecond,
        offset_minutes,
    };
    valid(&ts).then_some(TsResult {
        ts,
        len: i,
        year_inferred: inferred,
    })
}

/// Year for a month-only timestamp received at `opts.received_unix_secs`.
///
/// The receive year, except across the year boundary: a December message
/// received in January belongs to the previous year, a January message
/// received in December to the next; a message more than one month in the
/// future is taken to be from the previous year.
pub fn infer_year(month: u8, opts: &ParseOptions) -> i32 {
    let local = opts
        .received_unix_secs
        .saturating_add(i64::from(opts.local_offset_minutes) * 60);
    let (ry, rm, _) = civil_from_days(local.div_euclid(86_400));
    let ry = i32::try_from(ry).unwrap_or(1970);
    if month == 1 && rm == 12 {
        ry + 1
    } else if month > rm + 1 || (month == 12 && rm == 1) {
        ry - 1
    } else {
        ry
    }
}
