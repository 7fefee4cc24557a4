//! The parsed [`Message`] type and the format-detecting entry points
//! [`parse`] and [`parse_with`].

use crate::priority::split_pri;
use crate::{rfc3164, rfc5424, Facility, Severity, Timestamp};

/// Which syslog format a message was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    Rfc5424,
    /// RFC 3164 / BSD and its many real-world variants.
    Rfc3164,
}

/// What was malformed or missing; all `false` for a clean message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Anomalies {
    /// No `<PRI>` at the start; facility/severity defaulted to user.notice (13).
    pub pri_missing: bool,
    /// A `<...>` was present but not a valid PRI (0..=191); defaulted to 13.
    pub pri_invalid: bool,
    /// No recognisable timestamp.
    pub timestamp_missing: bool,
    /// Something looked like a timestamp but had invalid values.
    pub timestamp_invalid: bool,
    /// The year was not in the message and was inferred from the receive time.
    pub year_inferred: bool,
    /// No hostname in the message.
    pub hostname_missing: bool,
    /// The RFC 5424 header ended early or had an invalid field.
    pub header_invalid: bool,
    /// RFC 5424 structured data could not be parsed; the raw remainder was
    /// kept as the message text.
    pub structured_data_invalid: bool,
    /// The input was not valid UTF-8 (text fields were converted lossily).
    pub invalid_utf8: bool,
}

impl Anomalies {
    /// True if nothing was flagged (other than an inferred year, which is
    /// normal for RFC 3164).
    pub fn is_clean(&self) -> bool {
        let mut c = *self;
        c.year_inferred = false;
        c == Self::default()
    }
}

/// One RFC 5424 structured-data parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SdParam {
    /// PARAM-NAME.
    pub name: String,
    /// PARAM-VALUE with `\"`, `\\` and `\]` escapes resolved.
    pub value: String,
}

/// One RFC 5424 structured-data element (`[id name="value" ...]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SdElement {
    /// SD-ID.
    pub id: String,
    /// Parameters in order (names may repeat).
    pub params: Vec<SdParam>,
}

impl SdElement {
    /// First value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }
}

/// A parsed syslog message. Always carries the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The input exactly as received.
    pub raw: Vec<u8>,
    /// Detected format.
    pub format: Format,
    /// PRI value (13 if missing or invalid).
    pub pri: u8,
    /// Facility from PRI.
    pub facility: Facility,
    /// Severity from PRI.
    pub severity: Severity,
    /// RFC 5424 VERSION.
    pub version: Option<u16>,
    /// Timestamp as written (year inferred for RFC 3164).
    pub timestamp: Option<Timestamp>,
    /// HOSTNAME.
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164).
    pub app_name: Option<String>,
    /// PROCID (RFC 5424) or the `[pid]` of an RFC 3164 tag.
    pub proc_id: Option<String>,
    /// MSGID (RFC 5424 only).
    pub msg_id: Option<String>,
    /// Structured data elements (RFC 5424 only).
    pub structured_data: Vec<SdElement>,
    /// Cisco-style sequence number (`<189>123: ...`).
    pub sequence: Option<u64>,
    /// The free-form message text (UTF-8 BOM removed, trailing CR/LF/NUL trimmed).
    pub msg: String,
    /// What was malformed.
    pub anomalies: Anomalies,
}

impl Message {
    pub(crate) fn empty(raw: &[u8], format: Format) -> Self {
        Self {
            raw: raw.to_vec(),
            format,
            pri: DEFAULT_PRI,
            facility: Facility::User,
            severity: Severity::Notice,
            version: None,
            timestamp: None,
            hostname: None,
            app_name: None,
            proc_id: None,
            msg_id: None,
            structured_data: Vec::new(),
            sequence: None,
            msg: String::new(),
            anomalies: Anomalies::default(),
        }
    }
}

/// PRI used when a message has none (RFC 3164 §4.3.3: user.notice).
pub const DEFAULT_PRI: u8 = 13;

/// Options for [`parse_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// When the message was received, Unix seconds. Used to infer the year
    /// of RFC 3164 timestamps.
    pub received_unix_secs: i64,
    /// UTC offset (minutes) assumed for the receive time when inferring the
    /// year, i.e. the senders' local zone. 0 = UTC.
    pub local_offset_minutes: i16,
}

/// Parse one syslog message received at `received_unix_secs` (Unix seconds).
/// Never fails; see [`Message::anomalies`].
pub fn parse(raw: &[u8], received_unix_secs: i64) -> Message {
    parse_with(
        raw,
        &ParseOptions {
            received_unix_secs,
            local_offset_minutes: 0,
        },
    )
}

/// Parse one syslog message with explicit options. Never fails.
pub fn parse_with(raw: &[u8], opts: &ParseOptions) -> Message {
    let invalid_utf8 = std::str::from_utf8(raw).is_err();
    let mut line = raw;
    while let [rest @ .., b'\n' | b'\r' | 0] = line {
        line = rest;
    }
    let (pri, rest, pri_missing, pri_invalid) = match parse_pri(line) {
        PriResult::Valid(p, n) => (p, &line[n..], false, false),
        PriResult::Missing => (DEFAULT_PRI, line, true, false),
        PriResult::Invalid => (DEFAULT_PRI, line, false, true),
    };
    let mut m = if rfc5424::looks_like_5424(rest) {
        rfc5424::parse_after_pri(raw, rest)
    } else {
        rfc3164::parse_after_pri(raw, rest, opts)
    };
    m.pri = pri;
    if let Some((f, s)) = split_pri(pri) {
        m.facility = f;
        m.severity = s;
    }
    m.anomalies.pri_missing = pri_missing;
    m.anomalies.pri_invalid = pri_invalid;
    m.anomalies.invalid_utf8 = invalid_utf8;
    m
}

enum PriResult {
    Valid(u8, usize),
    Missing,
    Invalid,
}

fn parse_pri(b: &[u8]) -> PriResult {
    if b.first() != Some(&b'<') {
        return PriResult::Missing;
    }
    let mut v: u32 = 0;
    let mut i = 1;
    while i < b.len() && i <= 4 && b[i].is_ascii_digit() {
        v = v * 10 + u32::from(b[i] - b'0');
        i += 1;
    }
    // 1..=3 digits, no leading zeros except "<0>", closing '>'.
    let digits = i - 1;
    if digits == 0 || digits > 3 || b.get(i) != Some(&b'>') || (digits > 1 && b[1] == b'0') {
        return PriResult::Invalid;
    }
    match u8::try_from(v) {
        Ok(p) if p <= 191 => PriResult::Valid(p, i + 1),
        _ => PriResult::Invalid,
    }
}

/// Lossy UTF-8 conversion to an owned string.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
