//! Rates, sizes and durations as tc(8) spells them, plus the Kubernetes
//! quantities that `kubernetes.io/egress-bandwidth` carries. Pure functions;
//! each error is the reason part of a refusal.

/// Lowest and highest rate netrt shapes to, in bits per second.
pub const MIN_RATE_BPS: u64 = 8_000;
pub const MAX_RATE_BPS: u64 = 100_000_000_000;

const K: u128 = 1000;
const KI: u128 = 1024;

/// A non-negative decimal such as `12.5`, kept exact: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    mantissa: u128,
    scale: u32,
}

impl Decimal {
    /// `self × multiplier`, rounded to the nearest whole unit.
    fn times(self, multiplier: u128) -> Option<u128> {
        let denominator = 10u128.pow(self.scale);
        let product = self.mantissa.checked_mul(multiplier)?;
        Some((product + denominator / 2) / denominator)
    }

    /// `self × multiplier`, rounded down, as tc does for sizes.
    fn times_floor(self, multiplier: u128) -> Option<u128> {
        Some(self.mantissa.checked_mul(multiplier)? / 10u128.pow(self.scale))
    }

    fn render_times(self, factor: u128) -> String {
        let mantissa = self.mantissa * factor;
        let denominator = 10u128.pow(self.scale);
        let (whole, fraction) = (mantissa / denominator, mantissa % denominator);
        if fraction == 0 {
            return whole.to_string();
        }
        let digits = format!("{:0width$}", fraction, width = self.scale as usize);
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Splits `12.5mbit` into the number and the unit; refuses signs, exponents
/// and anything that is not plain digits with at most one point.
fn split_number(value: &str) -> Result<(Decimal, &str), String> {
    let end = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(end);
    if value.is_empty() {
        return Err("empty value".into());
    }
    if value.starts_with('-') {
        return Err("must not be negative".into());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err("expected a number followed by a unit".into());
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > 30 || fraction.len() > 18 {
        return Err("number is too long".into());
    }
    let mantissa = if significant.is_empty() { 0 } else { significant.parse::<u128>().map_err(|e| e.to_string())? };
    Ok((Decimal { mantissa, scale: fraction.len() as u32 }, unit))
}

/// Parses a rate into bits per second.
pub fn parse_rate(value: &str) -> Result<u64, String> {
    let (number, unit) = split_number(value)?;
    let multiplier = rate_multiplier(unit).map_err(|hint| refuse_rate_unit(number, unit, hint))?;
    let bps = number.times(multiplier).filter(|&b| b <= u64::MAX as u128).ok_or("rate is too large")?;
    if !(MIN_RATE_BPS as u128..=MAX_RATE_BPS as u128).contains(&bps) {
        return Err(format!("rate must be between 8kbit and 100gbit, this is {}", format_rate(bps as u64)));
    }
    Ok(bps as u64)
}

/// The multiplier of a rate unit, or why the unit is refused.
fn rate_multiplier(unit: &str) -> Result<u128, RateUnitProblem> {
    // Kubernetes quantity suffixes are case-sensitive there (`m` is milli), so
    // they are matched exactly; tc's units are case-insensitive.
    let kubernetes = match unit {
        "k" => Some(K),
        "M" => Some(K.pow(2)),
        "G" => Some(K.pow(3)),
        "T" => Some(K.pow(4)),
        "P" => Some(K.pow(5)),
        "E" => Some(K.pow(6)),
        "Ki" => Some(KI),
        "Mi" => Some(KI.pow(2)),
        "Gi" => Some(KI.pow(3)),
        "Ti" => Some(KI.pow(4)),
        "Pi" => Some(KI.pow(5)),
        "Ei" => Some(KI.pow(6)),
        _ => None,
    };
    if let Some(m) = kubernetes {
        return Ok(m);
    }
    let lower = unit.to_ascii_lowercase();
    let tc = match lower.as_str() {
        "" | "bit" => 1,
        "kbit" => K,
        "mbit" => K.pow(2),
        "gbit" => K.pow(3),
        "tbit" => K.pow(4),
        "kibit" => KI,
        "mibit" => KI.pow(2),
        "gibit" => KI.pow(3),
        "tibit" => KI.pow(4),
        "bps" | "kbps" | "mbps" | "gbps" | "tbps" | "kibps" | "mibps" | "gibps" | "tibps" => {
            return Err(RateUnitProblem::Bytes(lower.trim_end_matches("ps").to_string() + "it"))
        }
        "m" => return Err(RateUnitProblem::Milli),
        _ => return Err(RateUnitProblem::Unknown),
    };
    Ok(tc)
}

enum RateUnitProblem {
    /// A byte-rate unit; holds the bit unit with the same prefix.
    Bytes(String),
    /// A lower-case `m`: milli to Kubernetes, mega to most readers.
    Milli,
    Unknown,
}

fn refuse_rate_unit(number: Decimal, unit: &str, problem: RateUnitProblem) -> String {
    let plain = number.render_times(1);
    match problem {
        RateUnitProblem::Bytes(bit_unit) => format!(
            "{unit} is bytes per second in tc(8), eight times more than {plain}{bit_unit}; \
             write {plain}{bit_unit} for bits per second or {}{bit_unit} for {plain} {unit}",
            number.render_times(8)
        ),
        RateUnitProblem::Milli => {
            format!("\"m\" is milli in Kubernetes quantities; write {plain}mbit or {plain}M for megabits per second")
        }
        RateUnitProblem::Unknown => format!(
            "unknown rate unit {unit:?}; use bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit, tibit \
             or a Kubernetes quantity (k, M, G, T, Ki, Mi, Gi, Ti)"
        ),
    }
}

/// Parses a size into bytes (tc(8): bytes by default, ×1024 steps, `*bit` in bits).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let (number, unit) = split_number(value)?;
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => KI,
        "m" | "mb" => KI.pow(2),
        "g" | "gb" => KI.pow(3),
        "kbit" => KI / 8,
        "mbit" => KI.pow(2) / 8,
        "gbit" => KI.pow(3) / 8,
        _ => return Err(format!("unknown size unit {unit:?}; use b, k, kb, m, mb, g, gb, kbit, mbit or gbit")),
    };
    let bytes = number.times_floor(multiplier).ok_or("size is too large")?;
    if bytes == 0 {
        return Err("size must be at least 1 byte".into());
    }
    if bytes > u32::MAX as u128 {
        return Err("size must be below 4g".into());
    }
    Ok(bytes as u64)
}

/// Parses a duration into microseconds; the unit is required.
pub fn parse_duration_us(value: &str) -> Result<u64, String> {
    let (number, unit) = split_number(value)?;
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "" => return Err("a duration needs a unit: us, ms or s".into()),
        _ => return Err(format!("unknown duration unit {unit:?}; use us, ms or s")),
    };
    number
        .times(multiplier)
        .filter(|&us| us <= u64::MAX as u128)
        .map(|us| us as u64)
        .ok_or_else(|| "duration is too long".into())
}

/// Renders bits per second the way tc prints rates.
pub fn format_rate(bps: u64) -> String {
    for (unit, step) in [("tbit", 1_000_000_000_000u64), ("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)]
    {
        if bps >= step {
            let value = bps as f64 / step as f64;
            return format!("{}{unit}", trim_float(value));
        }
    }
    format!("{bps}bit")
}

// u64::is_multiple_of needs Rust 1.87; the workspace's rust-version is 1.82.
#[allow(clippy::manual_is_multiple_of)]
pub fn format_duration_us(us: u64) -> String {
    if us >= 1_000_000 && us % 1_000 == 0 {
        format!("{}s", trim_float(us as f64 / 1e6))
    } else if us >= 1_000 {
        format!("{}ms", trim_float(us as f64 / 1e3))
    } else {
        format!("{us}us")
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc_decimal_rate_units() {
        assert_eq!(parse_rate("8000"), Ok(8_000));
        assert_eq!(parse_rate("9000bit"), Ok(9_000));
        assert_eq!(parse_rate("10kbit"), Ok(10_000));
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("2gbit"), Ok(2_000_000_000));
        assert_eq!(parse_rate("0.1tbit"), Ok(100_000_000_000));
    }

    #[test]
    fn tc_binary_rate_units() {
        assert_eq!(parse_rate("10kibit"), Ok(10_240));
        assert_eq!(parse_rate("1mibit"), Ok(1_048_576));
        assert_eq!(parse_rate("1gibit"), Ok(1_073_741_824));
        assert_eq!(parse_rate("0.05tibit"), Ok(54_975_581_389));
    }

    #[test]
    fn rate_units_are_case_insensitive_and_decimal() {
        assert_eq!(parse_rate("10MBIT"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5Mbit"), Ok(1_500_000));
        assert_eq!(parse_rate("2.25GiBit"), Ok(2_415_919_104));
        assert_eq!(parse_rate(".5mbit"), Ok(500_000));
        assert_eq!(parse_rate("10.mbit"), Ok(10_000_000));
    }

    #[test]
    fn kubernetes_quantities_are_bits_per_second() {
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("10M"), Ok(10_000_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10Mi"), Ok(10_485_760));
        assert_eq!(parse_rate("1Gi"), Ok(1_073_741_824));
        assert_eq!(parse_rate("64Ki"), Ok(65_536));
        assert_eq!(parse_rate("0.1T"), Ok(100_000_000_000));
        assert!(parse_rate("1T").unwrap_err().contains("between 8kbit and 100gbit"));
        assert!(parse_rate("1Ti").unwrap_err().contains("between"));
        assert!(parse_rate("1P").unwrap_err().contains("between"));
    }

    #[test]
    fn byte_rates_are_refused_with_both_spellings() {
        let e = parse_rate("10mbps").unwrap_err();
        assert!(e.contains("write 10mbit for bits per second or 80mbit for 10 mbps"), "{e}");
        let e = parse_rate("1.5KBPS").unwrap_err();
        assert!(e.contains("1.5kbit") && e.contains("12kbit"), "{e}");
        for unit in ["bps", "kbps", "gbps", "tbps", "kibps", "mibps", "gibps", "tibps"] {
            let e = parse_rate(&format!("2{unit}")).unwrap_err();
            assert!(e.contains("bytes per second") && e.contains("16"), "{unit}: {e}");
        }
        assert!(parse_rate("3mibps").unwrap_err().contains("24mibit"));
    }

    #[test]
    fn ambiguous_and_unknown_rate_units_are_refused() {
        assert!(parse_rate("10m").unwrap_err().contains("milli"));
        assert!(parse_rate("10K").unwrap_err().contains("unknown rate unit \"K\""));
        assert!(parse_rate("10 mbit").unwrap_err().contains("unknown rate unit \" mbit\""));
        assert!(parse_rate("10megabit").unwrap_err().contains("unknown rate unit"));
    }

    #[test]
    fn malformed_rates_are_refused() {
        assert_eq!(parse_rate(""), Err("empty value".into()));
        assert_eq!(parse_rate("-10mbit"), Err("must not be negative".into()));
        assert!(parse_rate("mbit").unwrap_err().contains("expected a number"));
        assert!(parse_rate(".").unwrap_err().contains("expected a number"));
        assert!(parse_rate("1.2.3mbit").unwrap_err().contains("expected a number"));
        assert!(parse_rate("1e6").unwrap_err().contains("unknown rate unit"));
        assert!(parse_rate("99999999999999999999999999999999999mbit").unwrap_err().contains("too long"));
        assert!(parse_rate("0.0000000000000000001mbit").unwrap_err().contains("too long"));
    }

    #[test]
    fn rate_range_is_8kbit_to_100gbit() {
        assert_eq!(parse_rate("8kbit"), Ok(MIN_RATE_BPS));
        assert_eq!(parse_rate("100gbit"), Ok(MAX_RATE_BPS));
        assert!(parse_rate("7999bit").unwrap_err().contains("this is 7.999kbit"));
        assert!(parse_rate("100.001gbit").unwrap_err().contains("between"));
        assert!(parse_rate("0").unwrap_err().contains("between"));
    }

    #[test]
    fn sizes_follow_tc() {
        assert_eq!(parse_size("1514"), Ok(1514));
        assert_eq!(parse_size("1514b"), Ok(1514));
        assert_eq!(parse_size("32k"), Ok(32 * 1024));
        assert_eq!(parse_size("32KB"), Ok(32 * 1024));
        assert_eq!(parse_size("1.5m"), Ok(1_572_864));
        assert_eq!(parse_size("2mb"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("3gb"), Ok(3 << 30));
        assert_eq!(parse_size("80kbit"), Ok(10 * 1024));
        assert_eq!(parse_size("8mbit"), Ok(1 << 20));
        assert_eq!(parse_size("8gbit"), Ok(1 << 30));
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(parse_size("0").unwrap_err().contains("at least 1 byte"));
        assert!(parse_size("4g").unwrap_err().contains("below 4g"));
        assert!(parse_size("10kib").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("-5k").unwrap_err().contains("negative"));
        assert_eq!(parse_size(""), Err("empty value".into()));
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_us("25ms"), Ok(25_000));
        assert_eq!(parse_duration_us("500us"), Ok(500));
        assert_eq!(parse_duration_us("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration_us("2MS"), Ok(2_000));
        assert!(parse_duration_us("25").unwrap_err().contains("needs a unit"));
        assert!(parse_duration_us("25min").unwrap_err().contains("unknown duration unit"));
    }

    #[test]
    fn rates_and_durations_render_like_tc() {
        assert_eq!(format_rate(10_000_000), "10mbit");
        assert_eq!(format_rate(1_500_000), "1.5mbit");
        assert_eq!(format_rate(8_000), "8kbit");
        assert_eq!(format_rate(999), "999bit");
        assert_eq!(format_duration_us(25_000), "25ms");
        assert_eq!(format_duration_us(2_000_000), "2s");
        assert_eq!(format_duration_us(250), "250us");
    }
}
