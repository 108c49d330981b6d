//! `SparseHistogram`: one request's values kept as (HDR bucket, count) pairs, so its gaps can
//! wait for the request's outcome without a per-request sample vector.

use crate::histogram::{Histogram, HIGHEST_NS};

/// Values below this share no bucket (the histogram's sub-bucket count at 3 significant digits).
const LINEAR_BELOW: u64 = 2048;

/// The lowest value of the [`Histogram`] bucket that holds `value` (after the same clamping),
/// so recording the key records into exactly the bucket `value` would have.
#[inline]
pub fn bucket_key(value: u64) -> u64 {
    let v = value.clamp(1, HIGHEST_NS);
    let msb = 63 - (v | (LINEAR_BELOW - 1)).leading_zeros();
    let shift = msb - (LINEAR_BELOW.trailing_zeros() - 1);
    (v >> shift) << shift
}

/// Values grouped by their [`Histogram`] bucket: memory grows with the number of distinct
/// buckets a request's values fall into (a stream's gaps cluster in a few dozen), not with the
/// number of values, and adding it to a `Histogram` is exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    /// (bucket key, count), sorted by key.
    buckets: Vec<(u64, u64)>,
    count: u64,
}

impl SparseHistogram {
    /// Records one value (nanoseconds for durations).
    #[inline]
    pub fn record_value(&mut self, value: u64) {
        let key = bucket_key(value);
        self.count += 1;
        match self.buckets.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (key, 1)),
        }
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `true` when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Distinct buckets held (what the memory grows with).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Adds every value into `histogram`, exactly as recording them one by one would.
    pub fn add_to(&self, histogram: &mut Histogram) {
        for &(key, n) in &self.buckets {
            histogram.record_value_n(key, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_sparse_histogram_equals_recording_each_value() {
        let (mut direct, mut via) = (Histogram::new(), Histogram::new());
        let mut sparse = SparseHistogram::default();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over every magnitude, plus the edges of the range.
            let v = match i % 5 {
                0 => x % 2048,
                1 => x % 1_000_000,
                2 => 10_000_000 + x % 1_000_000,
                3 => x % (2 * HIGHEST_NS),
                _ => [0, 1, 2047, 2048, 4095, 4096, HIGHEST_NS, u64::MAX][(x % 8) as usize],
            };
            direct.record_value(v);
            sparse.record_value(v);
        }
        sparse.add_to(&mut via);
        assert_eq!(sparse.count(), 20_000);
        assert_eq!(via.summary(), direct.summary());
        assert_eq!(via.to_base64(), direct.to_base64());
    }

    #[test]
    fn a_stream_of_similar_gaps_needs_few_buckets() {
        let mut sparse = SparseHistogram::default();
        for i in 0..10_000u64 {
            // 10 ms ± 50 µs.
            sparse.record_value(10_000_000 + (i * 7919) % 100_000 - 50_000);
        }
        assert_eq!(sparse.count(), 10_000);
        assert!(sparse.buckets() <= 64, "{} buckets", sparse.buckets());
    }
}
