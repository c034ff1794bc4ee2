//! Byte sizes as people write and read them, for every size option
//! (`--batch-max-bytes`, `--max-line-bytes`, `--max-file-bytes`,
//! `--direct-min-batch-bytes`, bench's `--big-file-mib`): `1048576`, `64K`, `512MiB`,
//! `2G`, `1.5GB`; units are binary (K = 1024) whatever their spelling.
//!
//! Pure functions: no I/O, no limits of their own.

/// Parses a size: a number (decimals allowed with a unit) and an optional
/// unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB or T/TB/TiB (case-insensitive).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use bytes or a unit K, M, G or T (1024-based), e.g. 512MiB"
            ))
        }
    };
    let bad = || format!("{text:?} is not a size, e.g. 1048576, 64K, 512MiB or 2G");
    if number.is_empty() {
        return Err(bad());
    }
    let value = if let Ok(n) = number.parse::<u64>() {
        n.checked_mul(1u64 << shift)
    } else {
        let f: f64 = number.parse().map_err(|_| bad())?;
        let v = f * (1u64 << shift) as f64;
        (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
    };
    value.ok_or_else(|| format!("{text:?} is too large"))
}

/// Like [`parse_size`], for limits held as `usize`.
pub fn parse_size_usize(text: &str) -> Result<usize, String> {
    usize::try_from(parse_size(text)?).map_err(|_| format!("{text:?} is too large"))
}

/// `3.1 GiB`, `2 GiB`, `512 KiB`, `100 bytes`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64;
    let mut unit = "";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} {unit}")
    } else {
        format!("{rounded:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(3 << 29));
        assert!(parse_size("").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn sizes_print() {
        assert_eq!(human(100), "100 bytes");
        assert_eq!(human(2 << 30), "2 GiB");
        assert_eq!(human(3_328_599_654), "3.1 GiB");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
