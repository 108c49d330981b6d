//! Exact conversions between `Duration`, integer nanoseconds and `f64` seconds, done with
//! integer and IEEE-754 basic operations only so they never change between Rust versions.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `d` in nanoseconds.
pub(crate) fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

/// `n` nanoseconds as a `Duration`, saturating at `Duration::MAX`.
pub(crate) fn from_nanos(n: u128) -> Duration {
    let secs = n / NANOS_PER_SEC;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (n % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `d` in seconds, as the nearest `f64`.
pub(crate) fn secs(d: Duration) -> f64 {
    nanos(d) as f64 / 1e9
}

/// `s` seconds rounded to the nearest nanosecond; negative or NaN gives zero, huge saturates.
pub(crate) fn from_secs(s: f64) -> Duration {
    // `as` saturates (and maps NaN to 0); `round` and the product are exact IEEE operations.
    from_nanos((s * 1e9).round() as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_to_the_nearest_nanosecond_and_saturate() {
        let cases = [
            (0.0, Duration::ZERO),
            (-1.0, Duration::ZERO),
            (f64::NAN, Duration::ZERO),
            (0.25, Duration::from_millis(250)),
            (1.0 / 3.0, Duration::from_nanos(333_333_333)),
            (2.0 / 3.0, Duration::from_nanos(666_666_667)),
            (1e4, Duration::from_secs(10_000)),
            (f64::INFINITY, Duration::MAX),
        ];
        for (s, expect) in cases {
            assert_eq!(from_secs(s), expect, "{s}");
        }
        assert_eq!(from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(from_nanos(1_500_000_000), Duration::from_millis(1500));
        assert_eq!(secs(Duration::from_millis(1500)), 1.5);
    }
}
