//! Read-only queries behind the HTTP API: top talkers, conversations, ports, exporters and interfaces from the
//! per-minute rollups; raw flow search; syslog search (over the log store, [`crate::logstore`]); interface rates.

use super::StoreError;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

/// A time window, as query parameters. `from`/`to` accept `now`, a duration ago (`15m`, `2h`, `-1d`),
/// Unix seconds or milliseconds, or RFC 3339 (`2026-11-27T08:00:00Z`). Defaults: the last hour.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Window {
    /// Start (inclusive).
    pub from: Option<String>,
    /// End (exclusive).
    pub to: Option<String>,
}

/// Parses one time parameter into Unix milliseconds.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, StoreError> {
    let s = s.trim();
    if s.is_empty() || s == "now" {
        return Ok(now_ms);
    }
    if let Ok(n) = s.parse::<i64>() {
        // Seconds until the year 5138; anything larger is milliseconds.
        return Ok(if n.unsigned_abs() < 100_000_000_000 {
            n * 1000
        } else {
            n
        });
    }
    let ago = s.strip_prefix('-').unwrap_or(s);
    if let Ok(d) = humantime::parse_duration(ago) {
        return Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
            return Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        }
    }
    Err(StoreError::BadQuery(format!(
        "`{s}` is not a time: use now, a duration ago (15m), Unix seconds, or RFC 3339"
    )))
}

impl Window {
    /// `(from_ms, to_ms)`.
    pub fn resolve(&self, now_ms: i64) -> Result<(i64, i64), StoreError> {
        let to = match &self.to {
            Some(t) => parse_time(t, now_ms)?,
            None => now_ms,
        };
        let from = match &self.from {
            Some(f) => parse_time(f, now_ms)?,
            None => to.saturating_sub(3_600_000),
        };
        if from > to {
            return Err(StoreError::BadQuery("`from` is after `to`".into()));
        }
        Ok((from, to))
    }
}

/// `GET /api/v1/flows/top` parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TopQuery {
    /// Window start (see [`Window`]).
    pub from: Option<String>,
    /// Window end (see [`Window`]).
    pub to: Option<String>,
    /// `src` (top talkers), `dst`, `conversation` (src → dst), `port` (protocol + destination port),
    /// `exporter`, `interface` (exporter + input ifIndex). Default `src`.
    pub by: Option<String>,
    /// Only this exporter.
    pub exporter: Option<String>,
    /// `bytes` (default), `packets` or `flows`.
    pub order: Option<String>,
    /// Rows (default 10).
    pub limit: Option<usize>,
}

/// One row of a top-N answer; only the key fields of the chosen `by` are present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopRow {
    /// Source address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub src: Option<String>,
    /// Destination address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dst: Option<String>,
    /// IP protocol number.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub proto: Option<i64>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<i64>,
    /// Exporter.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exporter: Option<String>,
    /// Input ifIndex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub if_index: Option<i64>,
    /// Its ifName, where SNMP polling of the exporter's address learnt it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub if_name: Option<String>,
    /// Bytes (scaled by sampling rate).
    pub bytes: i64,
    /// Packets (scaled by sampling rate).
    pub packets: i64,
    /// Flow records.
    pub flows: i64,
}

/// An answer: the resolved window and the rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer<T> {
    /// Window start, Unix ms.
    pub from: i64,
    /// Window end, Unix ms.
    pub to: i64,
    /// Rows.
    pub rows: Vec<T>,
}

pub(crate) fn limit(l: Option<usize>, default: usize, max: usize) -> i64 {
    l.unwrap_or(default).clamp(1, max) as i64
}

/// Top-N from the per-minute rollups.
pub fn top(
    conn: &Connection,
    q: &TopQuery,
    now_ms: i64,
    max_rows: usize,
) -> Result<Answer<TopRow>, StoreError> {
    let (from, to) = Window {
        from: q.from.clone(),
        to: q.to.clone(),
    }
    .resolve(now_ms)?;
    let by = q.by.as_deref().unwrap_or("src");
    let cols: &[&str] = match by {
        "src" | "talkers" => &["src"],
        "dst" => &["dst"],
        "conversation" | "conversations" => &["src", "dst"],
        "port" | "ports" => &["proto", "dport"],
        "exporter" | "exporters" => &["exporter"],
        "interface" | "interfaces" => &["exporter", "in_if"],
        other => {
            return Err(StoreError::BadQuery(format!(
                "unknown `by={other}`: use src, dst, conversation, port, exporter or interface"
            )))
        }
    };
    let order = match q.order.as_deref().unwrap_or("bytes") {
        o @ ("bytes" | "packets" | "flows") => o,
        other => {
            return Err(StoreError::BadQuery(format!(
                "unknown `order={other}`: use bytes, packets or flows"
            )))
        }
    };
    let group = cols.join(", ");
    // Rollups are filed by minute start: a window covers the minutes that start inside it.
    let mut sql = format!(
        "SELECT {group}, SUM(bytes) AS bytes, SUM(packets) AS packets, SUM(flows) AS flows FROM rollups \
         WHERE minute >= ?1 AND minute < ?2"
    );
    let mut args: Vec<Value> = vec![
        Value::Integer(from - from.rem_euclid(60_000)),
        Value::Integer(to),
    ];
    if let Some(e) = &q.exporter {
        args.push(Value::Text(e.clone()));
        sql.push_str(&format!(" AND exporter = ?{}", args.len()));
    }
    sql.push_str(&format!(
        " GROUP BY {group} ORDER BY {order} DESC LIMIT {}",
        limit(q.limit, 10, max_rows)
    ));
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(params_from_iter(args), |r| {
            let mut row = TopRow {
                src: None,
                dst: None,
                proto: None,
                port: None,
                exporter: None,
                if_index: None,
                if_name: None,
                bytes: r.get("bytes")?,
                packets: r.get("packets")?,
                flows: r.get("flows")?,
            };
            for (i, c) in cols.iter().enumerate() {
                match *c {
                    "src" => row.src = Some(r.get(i)?),
                    "dst" => row.dst = Some(r.get(i)?),
                    "proto" => row.proto = Some(r.get(i)?),
                    "dport" => row.port = Some(r.get(i)?),
                    "exporter" => row.exporter = Some(r.get(i)?),
                    _ => row.if_index = Some(r.get(i)?),
                }
            }
            Ok(row)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Answer { from, to, rows })
}

/// `GET /api/v1/flows` parameters (raw flow search; all filters optional and combined with AND).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FlowQuery {
    /// Window start (see [`Window`]).
    pub from: Option<String>,
    /// Window end (see [`Window`]).
    pub to: Option<String>,
    /// Source address.
    pub src: Option<String>,
    /// Destination address.
    pub dst: Option<String>,
    /// Either address.
    pub host: Option<String>,
    /// Either port.
    pub port: Option<u16>,
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Exporter address.
    pub exporter: Option<String>,
    /// Input or output ifIndex.
    pub if_index: Option<u32>,
    /// Wire protocol: `sflow`, `netflow_v5`, `netflow_v9` or `ipfix`.
    pub kind: Option<String>,
    /// Rows (default 100), newest first.
    pub limit: Option<usize>,
}

/// One raw flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowRow {
    /// Unix ms.
    pub ts: i64,
    /// Exporter.
    pub exporter: String,
    /// `sflow`, `netflow_v5`, `netflow_v9`, `ipfix`.
    pub kind: String,
    /// Source address.
    pub src: Option<String>,
    /// Destination address.
    pub dst: Option<String>,
    /// Source port.
    pub sport: Option<i64>,
    /// Destination port.
    pub dport: Option<i64>,
    /// IP protocol.
    pub proto: Option<i64>,
    /// TCP flags.
    pub tcp_flags: Option<i64>,
    /// Bytes (scaled).
    pub bytes: i64,
    /// Packets (scaled).
    pub packets: i64,
    /// Input ifIndex.
    pub in_if: Option<i64>,
    /// Output ifIndex.
    pub out_if: Option<i64>,
    /// ifName of the input interface, where SNMP polling of the exporter's address learnt it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub in_if_name: Option<String>,
    /// ifName of the output interface.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub out_if_name: Option<String>,
    /// Sampling rate (1 in N).
    pub rate: i64,
}

fn kind_name(k: i64) -> &'static str {
    match k {
        1 => "sflow",
        5 => "netflow_v5",
        9 => "netflow_v9",
        10 => "ipfix",
        _ => "unknown",
    }
}

/// Raw flow search, most recently received first.
pub fn flows(
    conn: &Connection,
    q: &FlowQuery,
    now_ms: i64,
    max_rows: usize,
) -> Result<Answer<FlowRow>, StoreError> {
    let (from, to) = Window {
        from: q.from.clone(),
        to: q.to.clone(),
    }
    .resolve(now_ms)?;
    // Rows received from `from` (a flow's time never follows its receipt) up to an hour after `to` (NetFlow
    // exports flows up to an hour after they end), through the sparse index of receive minutes.
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT MIN(first_id) FROM flow_blocks WHERE minute >= ?1), \
                (SELECT MAX(last_id) FROM flow_blocks WHERE minute <= ?2)",
        rusqlite::params![from - from.rem_euclid(60_000), to.saturating_add(3_600_000)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Answer {
            from,
            to,
            rows: Vec::new(),
        });
    };
    let mut sql = String::from(
        "SELECT ts, exporter, kind, src, dst, sport, dport, proto, tcp_flags, bytes, packets, in_if, out_if, rate \
         FROM flows WHERE rowid >= ?3 AND rowid <= ?4 AND ts >= ?1 AND ts < ?2",
    );
    let mut args: Vec<Value> = vec![
        Value::Integer(from),
        Value::Integer(to),
        Value::Integer(lo),
        Value::Integer(hi),
    ];
    let mut add = |clause: &str, v: Value, args: &mut Vec<Value>| {
        args.push(v);
        sql.push_str(&clause.replace('#', &format!("?{}", args.len())));
    };
    if let Some(s) = &q.src {
        add(" AND src = #", Value::Text(s.clone()), &mut args);
    }
    if let Some(s) = &q.dst {
        add(" AND dst = #", Value::Text(s.clone()), &mut args);
    }
    if let Some(s) = &q.host {
        add(
            " AND (src = # OR dst = #)",
            Value::Text(s.clone()),
            &mut args,
        );
    }
    if let Some(p) = q.port {
        add(
            " AND (sport = # OR dport = #)",
            Value::Integer(p.into()),
            &mut args,
        );
    }
    if let Some(p) = q.proto {
        add(" AND proto = #", Value::Integer(p.into()), &mut args);
    }
    if let Some(e) = &q.exporter {
        add(" AND exporter = #", Value::Text(e.clone()), &mut args);
    }
    if let Some(i) = q.if_index {
        add(
            " AND (in_if = # OR out_if = #)",
            Value::Integer(i.into()),
            &mut args,
        );
    }
    if let Some(k) = &q.kind {
        let code = match k.as_str() {
            "sflow" => 1,
            "netflow_v5" => 5,
            "netflow_v9" => 9,
            "ipfix" => 10,
            other => {
                return Err(StoreError::BadQuery(format!(
                    "unknown `kind={other}`: use sflow, netflow_v5, netflow_v9 or ipfix"
                )))
            }
        };
        add(" AND kind = #", Value::Integer(code), &mut args);
    }
    sql.push_str(&format!(
        " ORDER BY rowid DESC LIMIT {}",
        limit(q.limit, 100, max_rows)
    ));
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(params_from_iter(args), |r| {
            Ok(FlowRow {
                ts: r.get(0)?,
                exporter: r.get(1)?,
                kind: kind_name(r.get(2)?).to_string(),
                src: r.get(3)?,
                dst: r.get(4)?,
                sport: r.get(5)?,
                dport: r.get(6)?,
                proto: r.get(7)?,
                tcp_flags: r.get(8)?,
                bytes: r.get(9)?,
                packets: r.get(10)?,
                in_if: r.get(11)?,
                out_if: r.get(12)?,
                in_if_name: None,
                out_if_name: None,
                rate: r.get(13)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Answer { from, to, rows })
}

/// `GET /api/v1/syslog` parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LogQuery {
    /// Window start, by receive time (see [`Window`]).
    pub from: Option<String>,
    /// Window end (see [`Window`]).
    pub to: Option<String>,
    /// HOSTNAME as sent.
    pub host: Option<String>,
    /// Sender address.
    pub peer: Option<String>,
    /// APP-NAME / tag.
    pub app: Option<String>,
    /// This severity or worse: a name (`err`, `warning`) or code (0–7).
    pub severity: Option<String>,
    /// Facility name (`auth`, `local0`) or code.
    pub facility: Option<String>,
    /// Words that must all appear in the message (whole words, case-insensitive; see
    /// [`crate::logstore::search`]).
    pub text: Option<String>,
    /// Rows (default 100), newest first.
    pub limit: Option<usize>,
}

/// One syslog message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogOut {
    /// Receive time, Unix ms.
    pub received: i64,
    /// The message's own time, Unix ms.
    pub ts: Option<i64>,
    /// Sender address.
    pub peer: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// HOSTNAME.
    pub host: Option<String>,
    /// APP-NAME.
    pub app: Option<String>,
    /// PROCID.
    pub procid: Option<String>,
    /// MSGID.
    pub msgid: Option<String>,
    /// Facility name.
    pub facility: String,
    /// Severity name.
    pub severity: String,
    /// `rfc5424`, `rfc3164`, `unknown`.
    pub format: String,
    /// The parser flagged something malformed.
    pub malformed: bool,
    /// MSG.
    pub msg: String,
    /// The raw line (lossy UTF-8).
    pub raw: String,
}

pub(crate) fn severity_code(s: &str) -> Result<u8, StoreError> {
    if let Ok(n) = s.parse::<u8>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    const ALIASES: [(&str, u8); 8] = [
        ("emergency", 0),
        ("panic", 0),
        ("critical", 2),
        ("error", 3),
        ("warn", 4),
        ("informational", 6),
        ("information", 6),
        ("dbg", 7),
    ];
    (0..=7u8)
        .find(|c| {
            yagura_syslog::Severity::from_code(*c)
                .name()
                .eq_ignore_ascii_case(s)
        })
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(s))
                .map(|(_, c)| *c)
        })
        .ok_or_else(|| StoreError::BadQuery(format!("unknown severity `{s}`")))
}

pub(crate) fn facility_code(s: &str) -> Result<u8, StoreError> {
    if let Ok(n) = s.parse::<u8>() {
        if n <= 23 {
            return Ok(n);
        }
    }
    (0..=23u8)
        .find(|c| {
            yagura_syslog::Facility::from_code(*c).is_some_and(|f| f.name().eq_ignore_ascii_case(s))
        })
        .ok_or_else(|| StoreError::BadQuery(format!("unknown facility `{s}`")))
}

/// Syslog search, newest first, over the log store directory `logs_dir` (see [`crate::logstore::search`]).
pub fn logs(
    logs_dir: &std::path::Path,
    q: &LogQuery,
    now_ms: i64,
    max_rows: usize,
) -> Result<Answer<LogOut>, StoreError> {
    crate::logstore::search::search(logs_dir, q, now_ms, max_rows)
}

/// `GET /api/v1/interfaces` parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct IfQuery {
    /// Window start (see [`Window`]).
    pub from: Option<String>,
    /// Window end (see [`Window`]).
    pub to: Option<String>,
    /// Only this exporter.
    pub exporter: Option<String>,
}

/// An interface's latest counters and rates between its last two samples in the window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IfOut {
    /// sFlow agent.
    pub exporter: String,
    /// ifIndex.
    pub if_index: i64,
    /// Its ifName, where SNMP polling of the exporter's address learnt it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub if_name: Option<String>,
    /// Time of the latest sample, Unix ms.
    pub ts: i64,
    /// ifSpeed, bits/s.
    pub speed: i64,
    /// Oper status up.
    pub oper_up: bool,
    /// Input bits/s (None with fewer than two samples or after a counter reset).
    pub in_bps: Option<f64>,
    /// Output bits/s.
    pub out_bps: Option<f64>,
    /// Input packets/s.
    pub in_pps: Option<f64>,
    /// Output packets/s.
    pub out_pps: Option<f64>,
    /// Cumulative ifInErrors.
    pub in_errors: i64,
    /// Cumulative ifOutErrors.
    pub out_errors: i64,
}

/// Latest counters per interface.
pub fn interfaces(
    conn: &Connection,
    q: &IfQuery,
    now_ms: i64,
    max_rows: usize,
) -> Result<Answer<IfOut>, StoreError> {
    let (from, to) = Window {
        from: q.from.clone(),
        to: q.to.clone(),
    }
    .resolve(now_ms)?;
    let mut sql = String::from(
        "SELECT exporter, if_index, ts, speed, oper_up, in_octets, out_octets, in_packets, out_packets, in_errors, \
         out_errors, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY exporter, if_index ORDER BY ts DESC) AS n \
         FROM counters WHERE ts >= ?1 AND ts < ?2",
    );
    let mut args: Vec<Value> = vec![Value::Integer(from), Value::Integer(to)];
    if let Some(e) = &q.exporter {
        args.push(Value::Text(e.clone()));
        sql.push_str(" AND exporter = ?3");
    }
    sql.push_str(") WHERE n <= 2 ORDER BY exporter, if_index, n");
    let mut st = conn.prepare(&sql)?;
    type Raw = (String, i64, i64, i64, bool, [i64; 4], i64, i64, i64);
    let raw: Vec<Raw> = st
        .query_map(params_from_iter(args), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows: Vec<IfOut> = Vec::new();
    let mut i = 0;
    while i < raw.len() && rows.len() < max_rows {
        let a = &raw[i];
        let prev = raw
            .get(i + 1)
            .filter(|b| b.0 == a.0 && b.1 == a.1 && b.8 == 2);
        let rate = |k: usize, mult: f64| {
            prev.and_then(|b| {
                let dt = (a.2 - b.2) as f64 / 1000.0;
                let d = a.5[k] - b.5[k];
                (dt > 0.0 && d >= 0).then(|| d as f64 * mult / dt)
            })
        };
        rows.push(IfOut {
            exporter: a.0.clone(),
            if_index: a.1,
            if_name: None,
            ts: a.2,
            speed: a.3,
            oper_up: a.4,
            in_bps: rate(0, 8.0),
            out_bps: rate(1, 8.0),
            in_pps: rate(2, 1.0),
            out_pps: rate(3, 1.0),
            in_errors: a.6,
            out_errors: a.7,
        });
        i += if prev.is_some() { 2 } else { 1 };
    }
    Ok(Answer { from, to, rows })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_time("-1h", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_time("1700000000", now).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000123", now).unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("yesterday-ish", now).is_err());
        assert!(parse_time("-9223372036854775808", now).is_ok());
        let _ = parse_time("99999999999999999years", now); // no overflow panic
        assert!(parse_time("9999999999999h", now).is_ok());
    }

    #[test]
    fn severity_names() {
        assert_eq!(severity_code("warning").unwrap(), 4);
        assert_eq!(severity_code("error").unwrap(), 3);
        assert_eq!(severity_code("2").unwrap(), 2);
        assert!(severity_code("loud").is_err());
        assert_eq!(facility_code("local0").unwrap(), 16);
    }
}
