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
/// buckets a request's values fall into (a paced stream's gaps cluster in a few dozen), not with
/// the number of values, and adding it to a `Histogram` is exact.
///
/// An open-addressing hash table (bucket key → count), so recording a value is O(1) with no
/// memory moved, whatever the order of the values; it allocates only when the table grows.
#[derive(Debug, Clone, Default)]
pub struct SparseHistogram {
    /// (bucket key, count); key 0 marks an empty slot (keys are at least 1). Empty or a power
    /// of two long.
    slots: Vec<(u64, u64)>,
    /// Occupied slots.
    len: usize,
    count: u64,
}

/// Slots of a table's first allocation.
const FIRST_CAPACITY: usize = 16;

#[inline]
fn slot_of(key: u64, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

impl SparseHistogram {
    /// Records one value (nanoseconds for durations).
    #[inline]
    pub fn record_value(&mut self, value: u64) {
        let key = bucket_key(value);
        self.count += 1;
        // Keep the table at most three quarters full.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = slot_of(key, mask);
        loop {
            let slot = &mut self.slots[i];
            if slot.0 == key {
                slot.1 += 1;
                return;
            }
            if slot.0 == 0 {
                *slot = (key, 1);
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(FIRST_CAPACITY);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); capacity]);
        let mask = capacity - 1;
        for (key, n) in old.into_iter().filter(|&(k, _)| k != 0) {
            let mut i = slot_of(key, mask);
            while self.slots[i].0 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (key, n);
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
        self.len
    }

    /// Every (bucket value, count) held, in no particular order; a bucket's value is the
    /// value a `Histogram` records for it.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.slots.iter().copied().filter(|&(k, _)| k != 0)
    }

    /// Adds every value into `histogram`, exactly as recording them one by one would.
    pub fn add_to(&self, histogram: &mut Histogram) {
        for (key, n) in self.entries() {
            histogram.record_value_n(key, n);
        }
    }
}

impl PartialEq for SparseHistogram {
    /// The same values by bucket, whatever the table's layout.
    fn eq(&self, other: &Self) -> bool {
        let sorted = |h: &Self| {
            let mut e: Vec<_> = h.entries().collect();
            e.sort_unstable();
            e
        };
        self.count == other.count && sorted(self) == sorted(other)
    }
}

impl Eq for SparseHistogram {}

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

    #[test]
    fn equality_ignores_the_order_values_came_in() {
        let (mut a, mut b) = (SparseHistogram::default(), SparseHistogram::default());
        let values: Vec<u64> = (0..500u64).map(|i| i * 7919 % 100_003).collect();
        values.iter().for_each(|&v| a.record_value(v));
        values.iter().rev().for_each(|&v| b.record_value(v));
        assert_eq!(a, b);
        b.record_value(1);
        assert_ne!(a, b);
    }
}
