//! RFC 5424 parser: header, NILVALUE handling, RFC 3339 timestamps with
//! fractional seconds and offsets, structured data with escapes, UTF-8 BOM.
//!
//! Used through [`crate::parse`], which detects the format; the timestamp
//! parser is also used for ISO timestamps in RFC 3164-style messages.

use crate::message::{text, Format, Message, SdElement, SdParam};
use crate::timestamp::days_in_month;
use crate::Timestamp;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// After PRI: `VERSION SP` where VERSION is 1-3 digits not starting with 0.
pub(crate) fn looks_like_5424(b: &[u8]) -> bool {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    (1..=3).contains(&n) && b[0] != b'0' && (b.get(n) == Some(&b' ') || b.len() == n)
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    /// Next space-delimited token (consumes one following space).
    fn token(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.b.len() {
            return None;
        }
        let start = self.pos;
        let end = self.b[start..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(self.b.len(), |p| start + p);
        self.pos = (end + 1).min(self.b.len());
        Some(&self.b[start..end])
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos.min(self.b.len())..]
    }
}

fn nil_or_text(t: &[u8]) -> Option<String> {
    if t == b"-" || t.is_empty() {
        None
    } else {
        Some(text(t))
    }
}

pub(crate) fn parse_after_pri(raw: &[u8], b: &[u8]) -> Message {
    let mut m = Message::empty(raw, Format::Rfc5424);
    let mut c = Cur { b, pos: 0 };
    let Some(ver) = c.token() else {
        m.anomalies.header_invalid = true;
        return m;
    };
    m.version = std::str::from_utf8(ver).ok().and_then(|s| s.parse().ok());
    // TIMESTAMP
    match c.token() {
        None => {
            m.anomalies.header_invalid = true;
            m.anomalies.timestamp_missing = true;
            m.anomalies.hostname_missing = true;
            return m;
        }
        Some(b"-") => m.anomalies.timestamp_missing = true,
        Some(t) => match parse_rfc3339(t) {
            Some((ts, n)) if n == t.len() && ts.offset_minutes.is_some() => m.timestamp = Some(ts),
            Some((ts, n)) if n == t.len() => {
                // Missing offset: keep the value but flag it.
                m.timestamp = Some(ts);
                m.anomalies.timestamp_invalid = true;
            }
            _ => m.anomalies.timestamp_invalid = true,
        },
    }
    let fields = [
        c.token(), // HOSTNAME
        c.token(), // APP-NAME
        c.token(), // PROCID
        c.token(), // MSGID
    ];
    if fields.iter().any(Option::is_none) {
        m.anomalies.header_invalid = true;
    }
    m.hostname = fields[0].and_then(nil_or_text);
    if m.hostname.is_none() {
        m.anomalies.hostname_missing = true;
    }
    m.app_name = fields[1].and_then(nil_or_text);
    m.proc_id = fields[2].and_then(nil_or_text);
    m.msg_id = fields[3].and_then(nil_or_text);
    if fields[3].is_none() {
        return m;
    }
    // STRUCTURED-DATA
    let rest = c.rest();
    let msg_part: &[u8] = if rest.is_empty() {
        m.anomalies.header_invalid = true;
        rest
    } else if rest[0] == b'-' {
        match rest.get(1) {
            None => &[],
            Some(b' ') => &rest[2..],
            Some(_) => {
                m.anomalies.structured_data_invalid = true;
                rest
            }
        }
    } else if rest[0] == b'[' {
        match parse_sd(rest) {
            Some((elems, n)) => {
                m.structured_data = elems;
                match rest.get(n) {
                    None => &[],
                    Some(b' ') => &rest[n + 1..],
                    Some(_) => {
                        m.anomalies.structured_data_invalid = true;
                        &rest[n..]
                    }
                }
            }
            None => {
                m.anomalies.structured_data_invalid = true;
                rest
            }
        }
    } else {
        m.anomalies.structured_data_invalid = true;
        rest
    };
    let msg_part = msg_part.strip_prefix(BOM).unwrap_or(msg_part);
    m.msg = text(msg_part);
    m
}

/// Parse one or more SD-ELEMENTs; returns them and the bytes consumed.
fn parse_sd(b: &[u8]) -> Option<(Vec<SdElement>, usize)> {
    let mut i = 0;
    let mut out = Vec::new();
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_start = i;
        while i < b.len() && is_sd_name(b[i]) {
            i += 1;
        }
        if i == id_start {
            return None;
        }
        let mut el = SdElement {
            id: text(&b[id_start..i]),
            params: Vec::new(),
        };
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => {
                    i += 1;
                    let n_start = i;
                    while i < b.len() && is_sd_name(b[i]) {
                        i += 1;
                    }
                    if i == n_start || b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    let name = text(&b[n_start..i]);
                    i += 2;
                    let mut val = Vec::new();
                    loop {
                        match *b.get(i)? {
                            b'\\' => {
                                let nx = *b.get(i + 1)?;
                                if matches!(nx, b'"' | b'\\' | b']') {
                                    val.push(nx);
                                } else {
                                    // RFC 5424 §6.3.3: other backslashes are kept.
                                    val.push(b'\\');
                                    val.push(nx);
                                }
                                i += 2;
                            }
                            b'"' => {
                                i += 1;
                                break;
                            }
                            c => {
                                val.push(c);
                                i += 1;
                            }
                        }
                    }
                    el.params.push(SdParam {
                        name,
                        value: text(&val),
                    });
                }
                _ => return None,
            }
        }
        out.push(el);
    }
    Some((out, i))
}

fn is_sd_name(c: u8) -> bool {
    (33..=126).contains(&c) && !matches!(c, b'=' | b' ' | b']' | b'"')
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Parse an RFC 3339 / ISO 8601 timestamp at the start of `b`:
/// `YYYY-MM-DD(T|t| )hh:mm:ss[.frac][Z|±hh:mm|±hhmm]`.
/// Returns the timestamp (offset `None` if absent) and the bytes consumed.
pub(crate) fn parse_rfc3339(b: &[u8]) -> Option<(Timestamp, usize)> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let mut i = 19;
    let (nanosecond, n) = parse_frac(b, i);
    i += n;
    let (offset_minutes, n) = parse_offset(b, i)?;
    i += n;
    let ts = Timestamp {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        nanosecond,
        offset_minutes,
    };
    valid(&ts).then_some((ts, i))
}

/// `.digits` at `at`: (nanoseconds, bytes consumed). Extra digits beyond 9 are ignored.
pub(crate) fn parse_frac(b: &[u8], at: usize) -> (u32, usize) {
    if b.get(at) != Some(&b'.') && b.get(at) != Some(&b',') {
        return (0, 0);
    }
    let ds: Vec<u8> = b[at + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    if ds.is_empty() {
        return (0, 0);
    }
    let mut ns: u32 = 0;
    for k in 0..9 {
        ns = ns * 10 + ds.get(k).map_or(0, |&c| u32::from(c - b'0'));
    }
    (ns, 1 + ds.len())
}

/// `Z`, `±hh:mm`, `±hhmm` or nothing at `at`. Outer `None` = malformed offset.
fn parse_offset(b: &[u8], at: usize) -> Option<(Option<i16>, usize)> {
    match b.get(at) {
        Some(b'Z' | b'z') => Some((Some(0), 1)),
        Some(&s @ (b'+' | b'-')) => {
            let h = digits(b, at + 1, 2)?;
            let (m, n) = if b.get(at + 3) == Some(&b':') {
                (digits(b, at + 4, 2)?, 6)
            } else if let Some(m) = digits(b, at + 3, 2) {
                (m, 5)
            } else {
                (0, 3)
            };
            if h > 23 || m > 59 {
                return None;
            }
            let v = (h * 60 + m) as i16;
            Some((Some(if s == b'-' { -v } else { v }), n))
        }
        _ => Some((None, 0)),
    }
}

pub(crate) fn valid(t: &Timestamp) -> bool {
    (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= days_in_month(t.year, t.month).max(29)
        && t.hour <= 23
        && t.minute <= 59
        && t.second <= 60
}
