//! A small calendar timestamp type with Unix-time conversion (no time zone
//! database, no clock).

/// A civil date and time as written in a syslog message.
///
/// `offset_minutes` is the UTC offset if the message carried one (RFC 5424
/// always does; RFC 3164 timestamps are in the sender's unknown local time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Year (inferred for RFC 3164 timestamps that lack one).
    pub year: i32,
    /// Month 1..=12.
    pub month: u8,
    /// Day of month 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=60 (60 only for leap seconds).
    pub second: u8,
    /// Fractional second in nanoseconds.
    pub nanosecond: u32,
    /// UTC offset in minutes, if known.
    pub offset_minutes: Option<i16>,
}

impl Timestamp {
    /// Seconds since the Unix epoch, if the UTC offset is known.
    pub fn unix_seconds(&self) -> Option<i64> {
        self.offset_minutes.map(|o| self.unix_seconds_assuming(o))
    }

    /// Seconds since the Unix epoch using the message's offset, or
    /// `default_offset_minutes` if it has none.
    pub fn unix_seconds_assuming(&self, default_offset_minutes: i16) -> i64 {
        let off = self.offset_minutes.unwrap_or(default_offset_minutes);
        let days = days_from_civil(self.year, self.month, self.day);
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(off) * 60
    }

    /// Nanoseconds since the Unix epoch, if the UTC offset is known.
    pub fn unix_nanos(&self) -> Option<i128> {
        self.unix_seconds()
            .map(|s| i128::from(s) * 1_000_000_000 + i128::from(self.nanosecond))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let m = i64::from(m.clamp(1, 12));
    let d = i64::from(d.clamp(1, 31));
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for z in [-800_000i64, -1, 0, 1, 365, 10_957, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y as i32, m, d), z);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
