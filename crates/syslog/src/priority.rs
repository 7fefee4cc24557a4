//! Syslog facility and severity (the two halves of PRI), with their names.

use std::fmt;

/// Syslog severity (RFC 5424 §6.2.1, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Severity {
    /// 0: system is unusable.
    Emergency = 0,
    /// 1: action must be taken immediately.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions.
    Warning = 4,
    /// 5: normal but significant condition.
    Notice = 5,
    /// 6: informational messages.
    Informational = 6,
    /// 7: debug-level messages.
    Debug = 7,
}

impl Severity {
    /// From the numeric code (only the low three bits are used).
    pub fn from_code(code: u8) -> Self {
        match code & 7 {
            0 => Self::Emergency,
            1 => Self::Alert,
            2 => Self::Critical,
            3 => Self::Error,
            4 => Self::Warning,
            5 => Self::Notice,
            6 => Self::Informational,
            _ => Self::Debug,
        }
    }

    /// Numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Conventional short name (`emerg`, `alert`, `crit`, `err`, `warning`,
    /// `notice`, `info`, `debug`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Emergency => "emerg",
            Self::Alert => "alert",
            Self::Critical => "crit",
            Self::Error => "err",
            Self::Warning => "warning",
            Self::Notice => "notice",
            Self::Informational => "info",
            Self::Debug => "debug",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Syslog facility (RFC 5424 §6.2.1, table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Facility {
    /// 0: kernel messages.
    Kern = 0,
    /// 1: user-level messages.
    User = 1,
    /// 2: mail system.
    Mail = 2,
    /// 3: system daemons.
    Daemon = 3,
    /// 4: security/authorization messages.
    Auth = 4,
    /// 5: messages generated internally by syslogd.
    Syslog = 5,
    /// 6: line printer subsystem.
    Lpr = 6,
    /// 7: network news subsystem.
    News = 7,
    /// 8: UUCP subsystem.
    Uucp = 8,
    /// 9: clock daemon.
    Cron = 9,
    /// 10: security/authorization messages (private).
    AuthPriv = 10,
    /// 11: FTP daemon.
    Ftp = 11,
    /// 12: NTP subsystem.
    Ntp = 12,
    /// 13: log audit.
    Audit = 13,
    /// 14: log alert.
    LogAlert = 14,
    /// 15: clock daemon (note 2).
    Clock = 15,
    /// 16: local use 0.
    Local0 = 16,
    /// 17: local use 1.
    Local1 = 17,
    /// 18: local use 2.
    Local2 = 18,
    /// 19: local use 3.
    Local3 = 19,
    /// 20: local use 4.
    Local4 = 20,
    /// 21: local use 5.
    Local5 = 21,
    /// 22: local use 6.
    Local6 = 22,
    /// 23: local use 7.
    Local7 = 23,
}

impl Facility {
    /// From the numeric code; `None` above 23.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Kern,
            1 => Self::User,
            2 => Self::Mail,
            3 => Self::Daemon,
            4 => Self::Auth,
            5 => Self::Syslog,
            6 => Self::Lpr,
            7 => Self::News,
            8 => Self::Uucp,
            9 => Self::Cron,
            10 => Self::AuthPriv,
            11 => Self::Ftp,
            12 => Self::Ntp,
            13 => Self::Audit,
            14 => Self::LogAlert,
            15 => Self::Clock,
            16 => Self::Local0,
            17 => Self::Local1,
            18 => Self::Local2,
            19 => Self::Local3,
            20 => Self::Local4,
            21 => Self::Local5,
            22 => Self::Local6,
            23 => Self::Local7,
            _ => return None,
        })
    }

    /// Numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Conventional name (`kern`, `user`, ..., `local7`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kern => "kern",
            Self::User => "user",
            Self::Mail => "mail",
            Self::Daemon => "daemon",
            Self::Auth => "auth",
            Self::Syslog => "syslog",
            Self::Lpr => "lpr",
            Self::News => "news",
            Self::Uucp => "uucp",
            Self::Cron => "cron",
            Self::AuthPriv => "authpriv",
            Self::Ftp => "ftp",
            Self::Ntp => "ntp",
            Self::Audit => "audit",
            Self::LogAlert => "alert",
            Self::Clock => "clock",
            Self::Local0 => "local0",
            Self::Local1 => "local1",
            Self::Local2 => "local2",
            Self::Local3 => "local3",
            Self::Local4 => "local4",
            Self::Local5 => "local5",
            Self::Local6 => "local6",
            Self::Local7 => "local7",
        }
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Split a PRI value (0..=191) into facility and severity.
pub(crate) fn split_pri(pri: u8) -> Option<(Facility, Severity)> {
    Some((Facility::from_code(pri >> 3)?, Severity::from_code(pri & 7)))
}
