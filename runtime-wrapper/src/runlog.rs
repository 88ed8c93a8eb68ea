//! The wrapper's errors, in the runtime's log format, for the `--log` file
//! that containerd reads back and Docker shows the user.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC time with nanoseconds, as runc's logger writes it.
pub fn timestamp(since_epoch: std::time::Duration) -> String {
    let seconds = since_epoch.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// One error line: JSON for `--log-format json`, else runc's text format.
pub fn line(format: Option<&str>, message: &str, since_epoch: std::time::Duration) -> String {
    let time = timestamp(since_epoch);
    if format == Some("json") {
        serde_json::json!({"level": "error", "msg": message, "time": time}).to_string()
    } else {
        format!("time={time:?} level=error msg={message:?}")
    }
}

/// Appends the error to the log file; a log that cannot be written must
/// not hide the error, which also goes to stderr.
pub fn append(path: &std::path::Path, format: Option<&str>, message: &str) {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{}", line(format, message, since_epoch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_time_as_rfc_3339() {
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(timestamp(Duration::new(951_782_400, 5)), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(timestamp(Duration::new(1_795_473_296, 0)), "2026-11-23T22:34:56.000000000Z");
        assert_eq!(timestamp(Duration::new(4_102_444_799, 0)), "2099-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn writes_runc_log_lines() {
        let json = line(Some("json"), "netrt: net.egress=\"x\": bad", Duration::ZERO);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["level"], "error");
        assert_eq!(parsed["msg"], "netrt: net.egress=\"x\": bad");
        assert_eq!(parsed["time"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            line(None, "a \"b\"", Duration::ZERO),
            r#"time="1970-01-01T00:00:00.000000000Z" level=error msg="a \"b\"""#
        );
    }
}
