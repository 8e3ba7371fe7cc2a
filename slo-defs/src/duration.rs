/// Parses `30s`, `5m`, `6h`, `30d`, `2w` (one number and one unit) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration `{s}` has no unit (use s, m, h, d or w)"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("duration `{s}` must start with a whole number"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "duration `{s}` has unknown unit `{unit}` (use s, m, h, d or w)"
            ));
        }
    };
    if n <= 0 {
        return Err(format!("duration `{s}` must be positive"));
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("duration `{s}` is too large"))
}

/// The shortest exact form: `5m`, `6h`, `30d`, `90s`.
pub fn format_duration(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 && ms >= size {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip() {
        for s in ["5m", "30m", "1h", "6h", "1d", "3d", "30d", "28d", "10s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert!(
            parse_duration("5").is_err()
                && parse_duration("5y").is_err()
                && parse_duration("-1h").is_err()
                && parse_duration("0m").is_err()
        );
    }
}
