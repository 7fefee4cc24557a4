#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Parser tests: RFC 5424 §6.5 examples, RFC 3164 and real-world variants.

use yagura_syslog::{parse, parse_with, Facility, Format, ParseOptions, Severity};

const JAN_2_2024: i64 = 1_704_153_600;
const DEC_31_2023: i64 = 1_703_980_800;
const MAR_15_2024: i64 = 1_710_460_800;
const OCT_11_2003: i64 = 1_065_910_455;

#[test]
fn rfc5424_example_1_bom() {
    let raw = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
    let m = parse(raw, OCT_11_2003);
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.pri, 34);
    assert_eq!(m.facility, Facility::Auth);
    assert_eq!(m.severity, Severity::Critical);
    assert_eq!(m.version, Some(1));
    let ts = m.timestamp.unwrap();
    assert_eq!(
        (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second),
        (2003, 10, 11, 22, 14, 15)
    );
    assert_eq!(ts.nanosecond, 3_000_000);
    assert_eq!(ts.offset_minutes, Some(0));
    assert_eq!(ts.unix_seconds(), Some(OCT_11_2003));
    assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(m.app_name.as_deref(), Some("su"));
    assert_eq!(m.proc_id, None);
    assert_eq!(m.msg_id.as_deref(), Some("ID47"));
    assert!(m.structured_data.is_empty());
    assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
    assert!(m.anomalies.is_clean(), "{:?}", m.anomalies);
    assert_eq!(m.raw, raw.to_vec());
}

#[test]
fn rfc5424_example_2_offset_micro() {
    let raw = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.";
    let m = parse(raw, OCT_11_2003);
    assert_eq!(m.facility, Facility::Local4);
    assert_eq!(m.severity, Severity::Notice);
    let ts = m.timestamp.unwrap();
    assert_eq!(ts.nanosecond, 3_000);
    assert_eq!(ts.offset_minutes, Some(-420));
    // 2003-08-24T12:14:15Z
    assert_eq!(ts.unix_seconds(), Some(1_061_727_255));
    assert_eq!(m.hostname.as_deref(), Some("192.0.2.1"));
    assert_eq!(m.app_name.as_deref(), Some("myproc"));
    assert_eq!(m.proc_id.as_deref(), Some("8710"));
    assert_eq!(m.msg_id, None);
    assert_eq!(m.msg, "%% It's time to make the do-nuts.");
    assert!(m.anomalies.is_clean());
}

#[test]
fn rfc5424_example_3_structured_data() {
    let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...";
    let m = parse(raw, OCT_11_2003);
    assert_eq!(m.structured_data.len(), 1);
    let sd = &m.structured_data[0];
    assert_eq!(sd.id, "exampleSDID@32473");
    assert_eq!(sd.param("iut"), Some("3"));
    assert_eq!(sd.param("eventSource"), Some("Application"));
    assert_eq!(sd.param("eventID"), Some("1011"));
    assert_eq!(m.msg, "An application event log entry...");
    assert!(m.anomalies.is_clean());
}

#[test]
fn rfc5424_example_4_two_elements_no_msg() {
    let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]";
    let m = parse(raw, OCT_11_2003);
    assert_eq!(m.structured_data.len(), 2);
    assert_eq!(m.structured_data[1].id, "examplePriority@32473");
    assert_eq!(m.structured_data[1].param("class"), Some("high"));
    assert_eq!(m.msg, "");
    assert!(m.anomalies.is_clean());
}

#[test]
fn rfc5424_sd_escapes() {
    let raw = br#"<13>1 2024-01-01T00:00:00+01:00 h a p m [x@1 v="a\"b\\c\]d\e"] msg"#;
    let m = parse(raw, JAN_2_2024);
    assert_eq!(m.structured_data[0].param("v"), Some(r#"a"b\c]d\e"#));
    assert_eq!(m.timestamp.unwrap().offset_minutes, Some(60));
    assert_eq!(m.msg, "msg");
}

#[test]
fn rfc5424_all_nil() {
    let m = parse(b"<0>1 - - - - - -", JAN_2_2024);
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.severity, Severity::Emergency);
    assert_eq!(m.facility, Facility::Kern);
    assert!(m.timestamp.is_none());
    assert!(m.anomalies.timestamp_missing);
    assert!(m.anomalies.hostname_missing);
    assert!(!m.anomalies.header_invalid);
    assert_eq!(m.msg, "");
}

#[test]
fn rfc5424_bad_sd_keeps_text() {
    let m = parse(b"<13>1 2024-01-01T00:00:00Z h a p m [broken sd", JAN_2_2024);
    assert!(m.anomalies.structured_data_invalid);
    assert_eq!(m.msg, "[broken sd");
    assert_eq!(m.hostname.as_deref(), Some("h"));
}

#[test]
fn rfc5424_truncated_header() {
    let m = parse(b"<13>1 2024-01-01T00:00:00Z host", JAN_2_2024);
    assert!(m.anomalies.header_invalid);
    assert_eq!(m.hostname.as_deref(), Some("host"));
}

#[test]
fn rfc5424_bad_timestamp_flagged() {
    let m = parse(b"<13>1 2024-13-45T99:00:00Z h a p m - x", JAN_2_2024);
    assert!(m.anomalies.timestamp_invalid);
    assert!(m.timestamp.is_none());
    assert_eq!(m.msg, "x");
}

#[test]
fn rfc3164_example() {
    let m = parse(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        OCT_11_2003,
    );
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(m.pri, 34);
    let ts = m.timestamp.unwrap();
    assert_eq!(
        (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second),
        (2003, 10, 11, 22, 14, 15)
    );
    assert_eq!(ts.offset_minutes, None);
    assert_eq!(ts.unix_seconds_assuming(0), OCT_11_2003);
    assert!(m.anomalies.year_inferred);
    assert!(m.anomalies.is_clean());
    assert_eq!(m.hostname.as_deref(), Some("mymachine"));
    assert_eq!(m.app_name.as_deref(), Some("su"));
    assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
}

#[test]
fn rfc3164_tag_pid_and_space_padded_day() {
    let m = parse(
        b"<13>Feb  5 17:32:18 10.0.0.99 sshd[1234]: Accepted publickey for root\n",
        MAR_15_2024,
    );
    let ts = m.timestamp.unwrap();
    assert_eq!((ts.year, ts.month, ts.day), (2024, 2, 5));
    assert_eq!(m.hostname.as_deref(), Some("10.0.0.99"));
    assert_eq!(m.app_name.as_deref(), Some("sshd"));
    assert_eq!(m.proc_id.as_deref(), Some("1234"));
    assert_eq!(m.msg, "Accepted publickey for root");
}

#[test]
fn rfc3164_missing_pri_defaults_to_user_notice() {
    let m = parse(b"Oct 11 22:14:15 host app: hello", OCT_11_2003);
    assert!(m.anomalies.pri_missing);
    assert_eq!(m.pri, 13);
    assert_eq!(m.facility, Facility::User);
    assert_eq!(m.severity, Severity::Notice);
    assert_eq!(m.hostname.as_deref(), Some("host"));
    assert_eq!(m.msg, "hello");
}

#[test]
fn invalid_pri_flagged() {
    for raw in [
        &b"<192>Oct 11 22:14:15 host app: x"[..],
        b"<abc>hi",
        b"<0013>x",
        b"<>x",
    ] {
        let m = parse(raw, OCT_11_2003);
        assert!(m.anomalies.pri_invalid, "{raw:?}");
        assert_eq!(m.pri, 13);
    }
}

#[test]
fn rfc3164_missing_hostname() {
    let m = parse(
        b"<30>Jan  2 10:00:00 dhclient[99]: bound to 10.1.2.3",
        JAN_2_2024,
    );
    assert!(m.anomalies.hostname_missing);
    assert_eq!(m.hostname, None);
    assert_eq!(m.app_name.as_deref(), Some("dhclient"));
    assert_eq!(m.proc_id.as_deref(), Some("99"));
    assert_eq!(m.msg, "bound to 10.1.2.3");
    let m = parse(b"<30>Jan  2 10:00:00 kernel: eth0 up", JAN_2_2024);
    assert_eq!(m.hostname, None);
    assert_eq!(m.app_name.as_deref(), Some("kernel"));
}

#[test]
fn rfc3164_iso_timestamp() {
    let m = parse(
        b"<14>2024-01-02T03:04:05.678+02:00 fw01 filterlog[5]: 5,,,1000",
        JAN_2_2024,
    );
    let ts = m.timestamp.unwrap();
    assert_eq!((ts.year, ts.month, ts.day, ts.hour), (2024, 1, 2, 3));
    assert_eq!(ts.nanosecond, 678_000_000);
    assert_eq!(ts.offset_minutes, Some(120));
    assert!(!m.anomalies.year_inferred);
    assert_eq!(m.hostname.as_deref(), Some("fw01"));
    assert_eq!(m.app_name.as_deref(), Some("filterlog"));
    assert_eq!(m.msg, "5,,,1000");
}

#[test]
fn cisco_sequence_and_star() {
    let m = parse(b"<189>123: *Mar  1 00:03:06.595: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up", MAR_15_2024);
    assert_eq!(m.sequence, Some(123));
    let ts = m.timestamp.unwrap();
    assert_eq!(
        (ts.month, ts.day, ts.hour, ts.minute, ts.second),
        (3, 1, 0, 3, 6)
    );
    assert_eq!(ts.nanosecond, 595_000_000);
    assert_eq!(m.hostname, None);
    assert_eq!(m.app_name.as_deref(), Some("%LINK-3-UPDOWN"));
    assert_eq!(m.msg, "Interface GigabitEthernet0/1, changed state to up");
    assert_eq!(m.facility, Facility::Local7);
    assert_eq!(m.severity, Severity::Notice);
}

#[test]
fn cisco_origin_hostname_and_dot_and_tz() {
    let m = parse(
        b"<187>4711: sw-core-1: .Jan  2 10:11:12.123 UTC: %SYS-3-CPUHOG: Task ran for 2000 msec",
        JAN_2_2024,
    );
    assert_eq!(m.sequence, Some(4711));
    assert_eq!(m.hostname.as_deref(), Some("sw-core-1"));
    let ts = m.timestamp.unwrap();
    assert_eq!(ts.offset_minutes, Some(0));
    assert_eq!(ts.year, 2024);
    assert_eq!(m.app_name.as_deref(), Some("%SYS-3-CPUHOG"));
    assert_eq!(m.msg, "Task ran for 2000 msec");
}

#[test]
fn cisco_with_year() {
    let m = parse(
        b"<189>12: Mar 14 2023 10:00:00: %SYS-5-CONFIG_I: Configured",
        MAR_15_2024,
    );
    let ts = m.timestamp.unwrap();
    assert_eq!(ts.year, 2023);
    assert!(!m.anomalies.year_inferred);
}

#[test]
fn year_wrap_december_message_in_january() {
    let m = parse(b"<13>Dec 31 23:59:59 host app: late", JAN_2_2024);
    assert_eq!(m.timestamp.unwrap().year, 2023);
    let m = parse(b"<13>Jan  1 00:00:01 host app: early", DEC_31_2023);
    assert_eq!(m.timestamp.unwrap().year, 2024);
    let m = parse(b"<13>Dec 30 00:00:01 host app: same", DEC_31_2023);
    assert_eq!(m.timestamp.unwrap().year, 2023);
    // Local offset moves the receive date across the boundary.
    let opts = ParseOptions {
        received_unix_secs: DEC_31_2023 + 86_400 - 1800,
        local_offset_minutes: 60,
    };
    let m = parse_with(b"<13>Dec 31 23:59:59 host app: x", &opts);
    assert_eq!(m.timestamp.unwrap().year, 2023);
}

#[test]
fn no_timestamp_freeform() {
    let m = parse(b"<13>just some text here", JAN_2_2024);
    assert!(m.anomalies.timestamp_missing);
    assert!(m.anomalies.hostname_missing);
    assert_eq!(m.msg, "just some text here");
    let m = parse(b"<13>app[1]: text", JAN_2_2024);
    assert_eq!(m.app_name.as_deref(), Some("app"));
    assert_eq!(m.msg, "text");
}

#[test]
fn bad_bsd_timestamp_flagged() {
    let m = parse(b"<13>Feb 30 25:61:00 host app: x", JAN_2_2024);
    assert!(m.anomalies.timestamp_missing);
    assert!(m.anomalies.timestamp_invalid);
}

#[test]
fn non_utf8_kept_lossily() {
    let raw = b"<13>Jan  2 10:00:00 host app: caf\xE9 \xFF\xFE";
    let m = parse(raw, JAN_2_2024);
    assert!(m.anomalies.invalid_utf8);
    assert_eq!(m.raw, raw.to_vec());
    assert!(m.msg.starts_with("caf\u{FFFD}"));
}

#[test]
fn empty_and_garbage() {
    let m = parse(b"", 0);
    assert!(m.anomalies.pri_missing);
    assert_eq!(m.msg, "");
    let m = parse(b"<", 0);
    assert!(m.anomalies.pri_invalid);
    let m = parse(b"\0\0\0", 0);
    assert_eq!(m.msg, "");
}

#[test]
fn names() {
    assert_eq!(Severity::from_code(3).name(), "err");
    assert_eq!(Facility::from_code(23).map(Facility::name), Some("local7"));
    assert_eq!(Facility::from_code(24), None);
    assert_eq!(Facility::AuthPriv.to_string(), "authpriv");
    assert_eq!(Severity::Warning.code(), 4);
}
