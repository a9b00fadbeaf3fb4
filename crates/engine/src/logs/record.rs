//! One line of the json-file log, `{"log":"hi\n","stream":"stdout","time":"2026-...Z"}`,
//! parsed without copying its text when it has no escapes; times as nanoseconds since the
//! epoch.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_api::stdcopy::Stream;
use serde::Deserialize;

/// Nanoseconds since the Unix epoch (negative before it).
pub type Nanos = i128;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Cow<'a, str>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
}

/// One record of the log.
#[derive(Debug)]
pub struct Entry<'a> {
    pub stream: Stream,
    pub text: Cow<'a, str>,
    /// As written (RFC 3339, UTC).
    pub time: Cow<'a, str>,
}

/// The record on `line` (its newline removed or not), `None` for what is not one: a blank or
/// torn line, or another program's text.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let raw: Raw<'_> = serde_json::from_slice(line).ok()?;
    let stream = match raw.stream.as_ref() {
        "stderr" => Stream::Stderr,
        _ => Stream::Stdout,
    };
    Some(Entry {
        stream,
        text: raw.log,
        time: raw.time,
    })
}

/// An RFC 3339 time (`2026-11-22T21:00:00.123456789Z`) as nanoseconds since the epoch.
pub fn parse_time(time: &str) -> Option<Nanos> {
    let t = humantime::parse_rfc3339_weak(time).ok()?;
    Some(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as Nanos,
        Err(e) => -(e.duration().as_nanos() as Nanos),
    })
}

/// Nanoseconds since the epoch as Docker prints log times (`RFC3339NanoFixed`: nine digits of
/// fraction, UTC).
pub fn format_time(n: Nanos) -> String {
    let magnitude = Duration::new(
        (n.unsigned_abs() / 1_000_000_000).min(u128::from(u64::MAX)) as u64,
        (n.unsigned_abs() % 1_000_000_000) as u32,
    );
    let t = if n >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    humantime::format_rfc3339_nanos(t.unwrap_or(SystemTime::UNIX_EPOCH)).to_string()
}

/// Whether `time` is already in Docker's fixed format (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`), as
/// the monitor writes it, so that it can be printed as it is.
pub fn is_fixed_format(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() == 30
        && b[29] == b'Z'
        && b[19] == b'.'
        && b[10] == b'T'
        && b[20..29].iter().all(u8::is_ascii_digit)
}

/// A query's `since`/`until`: Unix seconds with an optional fraction (`1700000000`,
/// `1700000000.5`, `1700000000.123456789`), as Docker's `timetypes.ParseTimestamps` reads them.
pub fn parse_unix(value: &str) -> Option<Nanos> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let negative = secs.starts_with('-');
    let digits = secs.strip_prefix('-').unwrap_or(secs);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = digits.parse().ok()?;
    let mut nanos: i128 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i128::from(b - b'0') * 10i128.pow(8 - i as u32);
    }
    let n = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn records_parse_borrowed_and_escaped() {
        let e =
            parse(br#"{"log":"hi\n","stream":"stderr","time":"2026-11-22T21:00:00.123456789Z"}"#)
                .unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.text, "hi\n");
        assert!(matches!(e.time, Cow::Borrowed(_)));
        let e = parse(br#"{"log":"plain","stream":"stdout","time":"t"}"#).unwrap();
        assert!(matches!(e.text, Cow::Borrowed("plain")));
        assert_eq!(e.stream, Stream::Stdout);
        // Trailing whitespace, CR included, is still JSON.
        assert!(parse(b"{\"log\":\"x\",\"stream\":\"stdout\",\"time\":\"t\"}\r").is_some());
        for bad in [&b""[..], b"\n", b"{\"log\":\"torn", b"not json", b"{}"] {
            assert!(parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn times_round_trip() {
        let s = "2026-11-22T21:00:00.123456789Z";
        let n = parse_time(s).unwrap();
        assert_eq!(n % 1_000_000_000, 123_456_789);
        assert_eq!(format_time(n), s);
        assert!(is_fixed_format(s));
        assert!(!is_fixed_format("2026-11-22T21:00:00.1Z"));
        assert_eq!(
            parse_time("2026-11-22T21:00:00.1Z").unwrap(),
            n - 23_456_789
        );
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn unix_times_of_queries() {
        assert_eq!(parse_unix("12"), Some(12_000_000_000));
        assert_eq!(parse_unix("12.5"), Some(12_500_000_000));
        assert_eq!(parse_unix("12.000000001"), Some(12_000_000_001));
        assert_eq!(parse_unix("12.0000000019"), Some(12_000_000_001));
        assert_eq!(parse_unix("-1"), Some(-1_000_000_000));
        for bad in ["", "x", "1.x", "1e5", "."] {
            assert_eq!(parse_unix(bad), None, "{bad}");
        }
    }
}
