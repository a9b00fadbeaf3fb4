//! Go's `time.ParseDuration`, for HEALTHCHECK's `--interval` and friends.

use std::time::Duration;

/// A Go duration string such as `30s`, `1m30s`, `1.5h`, `300ms`, `0`, as
/// (negative, magnitude). Errors carry Go's text.
pub(super) fn parse_go_duration(s: &str) -> Result<(bool, Duration), String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok((false, Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let number: f64 = format!(
            "{}.{}",
            if int_part.is_empty() { "0" } else { int_part },
            if frac_part.is_empty() { "0" } else { frac_part }
        )
        .parse()
        .map_err(|_| invalid())?;
        total += number * nanos_per;
        if !total.is_finite() || total > i64::MAX as f64 {
            return Err(invalid());
        }
        rest = after;
    }
    Ok((negative && total > 0.0, Duration::from_nanos(total as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        let ok = |s: &str| parse_go_duration(s).map(|(neg, d)| (!neg).then_some(d));
        assert_eq!(ok("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(ok("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(ok("1.5h"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(ok("300ms"), Ok(Some(Duration::from_millis(300))));
        assert_eq!(ok("10us"), Ok(Some(Duration::from_micros(10))));
        assert_eq!(ok("0"), Ok(Some(Duration::ZERO)));
        assert_eq!(ok("+5s"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(ok(".5s"), Ok(Some(Duration::from_millis(500))));
    }

    #[test]
    fn invalid() {
        assert_eq!(
            parse_go_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_go_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(parse_go_duration("-1s"), Ok((true, Duration::from_secs(1))));
        assert!(parse_go_duration("1e400h").is_err());
        assert!(parse_go_duration("9999999999999h").is_err());
    }
}
