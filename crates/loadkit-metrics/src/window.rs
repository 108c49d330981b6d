//! `RotatingWindow`: a ring of histograms giving cheap "last N seconds" percentiles.

use crate::Histogram;

/// A ring of `slots` histograms. The caller records into the current slot and calls
/// [`RotatingWindow::rotate`] once per slot period (e.g. every second); [`RotatingWindow::merged`]
/// then covers the last `slots` periods. Modelled on tower's rotating histogram, with more slots so
/// the window slides smoothly.
#[derive(Debug, Clone)]
pub struct RotatingWindow {
    slots: Vec<Histogram>,
    current: usize,
    merged: Histogram,
}

impl RotatingWindow {
    /// A window of `slots` periods (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            slots: vec![Histogram::new(); slots.max(1)],
            current: 0,
            merged: Histogram::new(),
        }
    }

    /// Records into the current period.
    #[inline]
    pub fn record(&mut self, value: std::time::Duration) {
        self.slots[self.current].record(value);
    }

    /// The histogram of the current (still open) period.
    pub fn current(&self) -> &Histogram {
        &self.slots[self.current]
    }

    /// Closes the current period and opens a new one, forgetting the oldest.
    pub fn rotate(&mut self) {
        self.current = (self.current + 1) % self.slots.len();
        self.slots[self.current].clear();
    }

    /// Every value recorded in the last `slots` periods, the open one included.
    pub fn merged(&mut self) -> &Histogram {
        self.merged.clear();
        for slot in &self.slots {
            if !slot.is_empty() {
                self.merged.merge(slot);
            }
        }
        &self.merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn old_periods_fall_out_of_the_window() {
        let mut w = RotatingWindow::new(3);
        w.record(Duration::from_millis(100));
        w.rotate();
        w.record(Duration::from_millis(10));
        assert_eq!(w.merged().count(), 2);
        w.rotate();
        w.rotate();
        // The 100 ms period is now three rotations old and gone.
        assert_eq!(w.merged().count(), 1);
        assert!(w.merged().max() < Duration::from_millis(11));
        w.rotate();
        assert!(w.merged().is_empty());
    }
}
