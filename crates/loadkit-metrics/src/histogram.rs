//! `Histogram`: an HdrHistogram of nanoseconds (3 significant digits) behind a `Duration` API.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// Largest value tracked exactly: one hour in nanoseconds. Larger values saturate to it.
pub(crate) const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits kept for every value.
const SIGFIG: u8 = 3;

/// An HDR histogram of non-negative values, normally nanoseconds.
///
/// Values are kept to 3 significant digits between 1 and one hour's worth of nanoseconds; larger
/// values are clamped to the maximum rather than dropped, so a count is never lost. Merging two
/// histograms is exact.
#[derive(Clone)]
pub struct Histogram {
    inner: hdrhistogram::Histogram<u64>,
}

/// The usual statistics of a histogram, in its raw unit (nanoseconds for durations).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Number of recorded values.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest recorded value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest recorded value.
    pub max: u64,
}

/// Why a serialized histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The text is not valid base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(String),
    /// The bytes are not a V2 (deflate) HdrHistogram serialization.
    #[error("histogram is not a valid HdrHistogram V2 serialization: {0}")]
    Format(String),
}

impl Histogram {
    /// An empty histogram tracking 1 ns to one hour at 3 significant digits.
    pub fn new() -> Self {
        Self {
            inner: hdrhistogram::Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Records one duration.
    #[inline]
    pub fn record(&mut self, value: Duration) {
        self.record_value(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one raw value (nanoseconds for durations). Values above the range are clamped.
    #[inline]
    pub fn record_value(&mut self, value: u64) {
        self.inner.saturating_record(value.clamp(1, HIGHEST_NS));
    }

    /// Records `n` occurrences of one raw value. Values above the range are clamped.
    #[inline]
    pub fn record_value_n(&mut self, value: u64, n: u64) {
        self.inner
            .saturating_record_n(value.clamp(1, HIGHEST_NS), n);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    /// `true` when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The value at quantile `q` (0.0 ..= 1.0), as a duration.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.quantile_value(q))
    }

    /// The raw value at quantile `q` (0.0 ..= 1.0); 0 when empty.
    pub fn quantile_value(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.inner.value_at_quantile(q.clamp(0.0, 1.0))
    }

    /// A distribution-free confidence interval for the value at quantile `q`, in the raw
    /// unit: the order-statistic interval, whose rank bounds are `n q ± z sqrt(n q (1 - q))`
    /// (the normal approximation to the binomial count of values below the true quantile;
    /// `z` = 1.96 for 95 %). A bound whose rank falls outside the values is unknown: 0 below,
    /// `u64::MAX` above (8 values cannot bound a p99 from above). `(0, u64::MAX)` when empty.
    pub fn quantile_interval(&self, q: f64, z: f64) -> (u64, u64) {
        if self.is_empty() {
            return (0, u64::MAX);
        }
        let q = q.clamp(0.0, 1.0);
        let n = self.count() as f64;
        let half = z.abs() * (n * q * (1.0 - q)).sqrt();
        let (low, high) = (n * q - half, n * q + half + 1.0);
        (
            if low < 0.0 {
                0
            } else {
                self.inner.value_at_quantile(low / n)
            },
            if high > n {
                u64::MAX
            } else {
                self.inner.value_at_quantile(high / n)
            },
        )
    }

    /// Mean of the recorded values, as a duration.
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.inner.mean().round() as u64)
    }

    /// Largest recorded value, as a duration (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(if self.is_empty() { 0 } else { self.inner.max() })
    }

    /// count, mean, min, p50, p90, p95, p99 and max in the raw unit.
    pub fn summary(&self) -> Summary {
        if self.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.inner.len(),
            mean: self.inner.mean(),
            min: self.inner.min(),
            p50: self.inner.value_at_quantile(0.50),
            p90: self.inner.value_at_quantile(0.90),
            p95: self.inner.value_at_quantile(0.95),
            p99: self.inner.value_at_quantile(0.99),
            max: self.inner.max(),
        }
    }

    /// Adds every value of `other` to `self`. Exact: the result equals recording both streams.
    pub fn merge(&mut self, other: &Histogram) {
        // Both histograms share the same static bounds, so `add` cannot fail.
        self.inner
            .add(&other.inner)
            .expect("histograms with identical bounds always merge");
    }

    /// Forgets every recorded value, keeping the allocation.
    pub fn clear(&mut self) {
        self.inner.reset();
    }

    /// Base64 of the HdrHistogram V2 deflate serialization (the report's `hdr` field).
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.inner, &mut bytes)
            .expect("serializing into a Vec cannot fail");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads back [`Histogram::to_base64`] output (or any V2 / V2-deflate serialization).
    pub fn from_base64(text: &str) -> Result<Self, DecodeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| DecodeError::Base64(e.to_string()))?;
        let decoded: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| DecodeError::Format(format!("{e:?}")))?;
        let mut out = Self::new();
        for v in decoded.iter_recorded() {
            out.inner.saturating_record_n(
                v.value_iterated_to().clamp(1, HIGHEST_NS),
                v.count_at_value(),
            );
        }
        Ok(out)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.summary();
        f.debug_struct("Histogram")
            .field("count", &s.count)
            .field("p50", &s.p50)
            .field("p99", &s.p99)
            .field("max", &s.max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interval_brackets_the_quantile_and_narrows_with_more_values() {
        let mut small = Histogram::new();
        let mut large = Histogram::new();
        for v in 1..=100u64 {
            small.record_value(v * 1_000);
        }
        for v in 1..=10_000u64 {
            large.record_value(v * 10);
        }
        let (lo, hi) = small.quantile_interval(0.5, 1.96);
        // 100 values: the median's 95 % interval spans about ranks 40 to 61.
        assert!((39_000..=42_000).contains(&lo), "{lo}");
        assert!((59_000..=62_000).contains(&hi), "{hi}");
        let (lo, hi) = large.quantile_interval(0.5, 1.96);
        assert!(lo < 50_000 && hi > 50_000);
        // 10,000 values: ±98 ranks of 10 each, ~2 % of the median.
        assert!(hi - lo < 2_500, "{lo}..{hi}");
        assert_eq!(Histogram::new().quantile_interval(0.5, 1.96), (0, u64::MAX));
        // 8 values: nothing bounds the p99 from above.
        let mut few = Histogram::new();
        (1..=8u64).for_each(|v| few.record_value(v));
        assert_eq!(few.quantile_interval(0.99, 1.96).1, u64::MAX);
    }

    #[test]
    fn percentiles_are_within_three_significant_digits() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        let p99 = s.p99 as f64 / 1e3;
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 1e-3, "p99 {p99}");
        assert_eq!(h.quantile(0.0), Duration::from_micros(1));
    }

    #[test]
    fn merge_is_exact() {
        let (mut a, mut b, mut both) = (Histogram::new(), Histogram::new(), Histogram::new());
        for i in 0..1000u64 {
            let v = i * 7919 % 100_003 + 1;
            if i % 3 == 0 {
                a.record_value(v)
            } else {
                b.record_value(v)
            }
            both.record_value(v);
        }
        a.merge(&b);
        assert_eq!(a.summary(), both.summary());
    }

    #[test]
    fn base64_round_trip_is_exact() {
        let mut h = Histogram::new();
        for ms in [1u64, 5, 5, 50, 500, 5000] {
            h.record(Duration::from_millis(ms));
        }
        let back = Histogram::from_base64(&h.to_base64()).unwrap();
        assert_eq!(back.summary(), h.summary());
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_vanishing() {
        let mut h = Histogram::new();
        h.record(Duration::from_secs(10 * 3600));
        h.record(Duration::ZERO);
        assert_eq!(h.count(), 2);
        assert!(h.max() >= Duration::from_secs(3599));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(matches!(
            Histogram::from_base64("***"),
            Err(DecodeError::Base64(_))
        ));
        assert!(matches!(
            Histogram::from_base64("aGVsbG8="),
            Err(DecodeError::Format(_))
        ));
    }

    #[test]
    fn empty_histogram_reads_as_zeros() {
        let h = Histogram::new();
        assert_eq!(h.summary(), Summary::default());
        assert_eq!(h.quantile(0.99), Duration::ZERO);
    }
}
