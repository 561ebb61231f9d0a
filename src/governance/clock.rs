//! UTC calendar arithmetic for governance: RFC 3339 timestamps (key expiry,
//! creation) and the boundaries of budget periods (day, ISO week from
//! Monday, calendar month, or none). Pure functions of Unix seconds; no
//! time zone other than UTC exists here.

use crate::civil::{civil_from_days, days_from_civil};
pub use crate::config::Period;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const DAY: u64 = 86_400;

impl Period {
    /// The start of the period `now` is in (0 for `Total`).
    pub fn start(self, now: u64) -> u64 {
        let days = now / DAY;
        match self {
            Period::Total => 0,
            Period::Day => days * DAY,
            // 1970-01-01 was a Thursday: Monday-based weeks start 3 days later.
            Period::Week => days.saturating_sub((days + 3) % 7) * DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days(days as i64);
                days_from_civil(y, m, 1) as u64 * DAY
            }
        }
    }

    /// When the period that started at `start` ends (`None` for `Total`).
    pub fn end(self, start: u64) -> Option<u64> {
        match self {
            Period::Total => None,
            Period::Day => Some(start + DAY),
            Period::Week => Some(start + 7 * DAY),
            Period::Month => {
                let (y, m, _) = civil_from_days((start / DAY) as i64);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Some(days_from_civil(y, m, 1) as u64 * DAY)
            }
        }
    }
}

/// `2026-12-03T14:05:00Z`.
pub fn format_rfc3339(secs: u64) -> String {
    let (y, mo, d) = civil_from_days((secs / DAY) as i64);
    let t = secs % DAY;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Reads an RFC 3339 date-time (`Z` or a `±hh:mm` offset, fraction
/// ignored) as Unix seconds; `None` when it is not one or is before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y as i64, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = num_in(rest, 1..3)?;
            let om = num_in(rest, 4..6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y as i64, mo, d);
    let local = days * DAY as i64 + i64::from(h * 3600 + mi * 60 + sec.min(59));
    u64::try_from(local - offset).ok()
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(r)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())?
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_offsets() {
        // 2026-12-03T14:05:09Z, checked against `date -u -d @1796306709`.
        let t = parse_rfc3339("2026-12-03T14:05:09Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-12-03T14:05:09Z");
        assert_eq!(parse_rfc3339("2026-12-03T15:05:09.123+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-03T09:05:09-05:00"), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(format_rfc3339)
                .as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        for bad in [
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-03 14:05:09",
            "2026-12-03T14:05:09",
            "2026-12-03T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-12-03T14:05:09.Z",
            "+026-12-03T14:05:09Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_dates_match_the_calendar_over_centuries() {
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn periods_start_on_utc_boundaries() {
        let t = parse_rfc3339("2026-12-03T14:05:09Z").unwrap(); // a Thursday
        let at = |s| parse_rfc3339(s).unwrap();
        assert_eq!(Period::Day.start(t), at("2026-12-03T00:00:00Z"));
        assert_eq!(Period::Week.start(t), at("2026-11-30T00:00:00Z"));
        assert_eq!(Period::Month.start(t), at("2026-12-01T00:00:00Z"));
        assert_eq!(Period::Total.start(t), 0);
        assert_eq!(
            Period::Month.end(at("2026-12-01T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            Period::Week.end(at("2026-11-30T00:00:00Z")),
            Some(at("2026-12-07T00:00:00Z"))
        );
        assert_eq!(Period::Total.end(0), None);
        // A Monday starts its own week; the Sunday before is in the last one.
        assert_eq!(
            Period::Week.start(at("2026-11-30T00:00:00Z")),
            at("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            Period::Week.start(at("2026-11-29T23:59:59Z")),
            at("2026-11-23T00:00:00Z")
        );
    }
}
