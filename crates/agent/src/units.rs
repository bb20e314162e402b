//! Human-readable sizes (`4MiB`) and durations (`10s`) for the YAML config.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A size in bytes, written as a plain integer or with a unit: `B`, `KB`/`MB`/`GB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

/// A duration with a unit: `ms`, `s`, `m` or `h` (`500ms`, `10s`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

const SIZE_HINT: &str = "write a whole number of bytes or a number with a unit, e.g. 4096, 256KiB or 4MiB (units: B, KB, MB, GB, KiB, MiB, GiB)";
const DURATION_HINT: &str =
    "write a whole number with a unit, e.g. 500ms, 10s, 1m or 1h (units: ms, s, m, h)";

/// Splits `"4 MiB"` into `(4, "MiB")`; the number must be a whole, non-negative decimal.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number = text[..digits_end].parse().ok()?;
    Some((number, text[digits_end..].trim()))
}

/// Parses a size as the config file writes it: a whole number of bytes, or a whole number with
/// a unit, `B`, `KB`/`MB`/`GB` (powers of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024), as in
/// `4096`, `256KiB` or `4MiB`. For a service's own flags that take sizes, so that they read
/// as its heapscape config does.
///
/// ```
/// assert_eq!(heapscape::parse_size("256KiB"), Ok(256 << 10));
/// assert_eq!(heapscape::parse_size("4 MB"), Ok(4_000_000));
/// assert!(heapscape::parse_size("4mb").unwrap_err().contains("KiB"));
/// ```
///
/// # Errors
///
/// A message that names the text and the accepted spellings when it is not a size (case
/// matters: `Mb` would be megabits), or that says it is too large for 64 bits.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("`{text}` is not a size: {SIZE_HINT}");
    let (number, unit) = split_number(text).ok_or_else(invalid)?;
    // Case matters: `Mb` reads as megabits, `mb` as millibytes; only the standard spellings pass.
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large: write a size below 16 EiB"))
}

/// Parses a human duration such as `500ms`, `10s`, `1m` or `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration: {DURATION_HINT}");
    let (number, unit) = split_number(text).ok_or_else(invalid)?;
    let duration = match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => number.checked_mul(60).map(Duration::from_secs),
        "h" => number.checked_mul(3600).map(Duration::from_secs),
        "" => {
            return Err(format!(
                "`{text}` has no unit: a bare number is ambiguous for a duration; {DURATION_HINT}"
            ));
        }
        _ => return Err(invalid()),
    };
    duration.ok_or_else(|| format!("`{text}` is too long: write a shorter duration"))
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 4096, 256KiB or 4MiB")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
        u64::try_from(value)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("`{value}` is negative: {SIZE_HINT}")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!(
            "`{value}` is not a whole number of bytes: {SIZE_HINT}"
        )))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
        parse_size(value).map(ByteSize).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 500ms, 10s or 1m")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<HumanDuration, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<HumanDuration, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<HumanDuration, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<HumanDuration, E> {
        parse_duration(value).map(HumanDuration).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("4MiB", 4 << 20),
            ("256KiB", 256 << 10),
            ("1 GiB", 1 << 30),
            ("10KB", 10_000),
            ("3MB", 3_000_000),
            ("2GB", 2_000_000_000),
            ("12B", 12),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_what_to_write() {
        for text in [
            "",
            "MiB",
            "256kib",
            "4Mb",
            "4 MiBs",
            "1.5MiB",
            "-3",
            "4 Mi",
            "99999999999GiB",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(&format!("`{text}`")), "{err}");
            assert!(err.contains("write"), "{err}");
        }
    }

    #[test]
    fn durations() {
        for (text, duration) in [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("1m", Duration::from_secs(60)),
            ("2h", Duration::from_secs(7200)),
            ("0s", Duration::ZERO),
            (" 3 s ", Duration::from_secs(3)),
        ] {
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        for text in ["10", "10S", "1.5s", "ten seconds", "", "10d"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("e.g. 500ms, 10s"), "{err}");
        }
    }
}
