//! `Consistency`: the report checks its own arithmetic when it is built, so a wrong total is
//! caught where it is written, not by a user's spreadsheet.

use serde::{Deserialize, Serialize};

use crate::Report;

/// The `consistency` section: every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// `true` when every check passed.
    pub passed: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

impl Default for Consistency {
    fn default() -> Self {
        Self {
            passed: true,
            checks: Vec::new(),
        }
    }
}

/// One check of the report's arithmetic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What is checked (`arrivals`, `outcomes`, ...).
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The numbers compared, in one line.
    pub detail: String,
}

struct Checks(Vec<Check>);

impl Checks {
    fn equal(&mut self, name: &str, what: &str, left: u64, right: u64) {
        let passed = left == right;
        let op = if passed { "=" } else { "≠" };
        self.0.push(Check {
            name: name.to_owned(),
            passed,
            detail: format!("{what}: {left} {op} {right}"),
        });
    }

    fn at_most(&mut self, name: &str, what: &str, left: u64, right: u64) {
        let passed = left <= right;
        let op = if passed { "≤" } else { ">" };
        self.0.push(Check {
            name: name.to_owned(),
            passed,
            detail: format!("{what}: {left} {op} {right}"),
        });
    }

    fn close(&mut self, name: &str, what: &str, left: f64, right: f64, tolerance: f64) {
        let passed = (left - right).abs() <= tolerance;
        let op = if passed { "≈" } else { "≠" };
        self.0.push(Check {
            name: name.to_owned(),
            passed,
            detail: format!("{what}: {left:.3} {op} {right:.3} (±{tolerance:.3})"),
        });
    }
}

impl Consistency {
    /// Checks `report` against itself:
    ///
    /// - `arrivals`: the timeline's intended arrivals = started + missed (measured and warm-up);
    /// - `missed_reasons`: missed = the sum of its reasons;
    /// - `outcomes`: requests = succeeded + failed + cancelled (+ in flight, in a checkpoint);
    /// - `ttft_count`, `e2e_count`, `e2e_corrected_count`, `schedule_lag_count`: each histogram
    ///   counts its population (successes with content; successes; successes; started);
    /// - `tpot_count`: at most one TPOT value per success;
    /// - `request_rate`, `token_rate`: rate × measured window = total, within the report's own
    ///   rounding (rates and the window are written to 3 decimals);
    /// - `timeline_started`, `timeline_completed`, `timeline_failed`, `timeline_tokens`: the
    ///   timeline's columns sum to the totals (warm-up included, as the timeline is);
    /// - `timeline_in_flight`: nothing is in flight after the last second (not checked in a
    ///   checkpoint).
    pub fn check(report: &Report) -> Self {
        let t = &report.totals;
        let w = &t.warmup_outcomes;
        let mut c = Checks(Vec::new());
        let sum = |f: fn(&crate::TimelineRow) -> u64| report.timeline.iter().map(f).sum::<u64>();
        c.equal(
            "arrivals",
            "timeline intended = requests + warm-up + missed + warm-up missed",
            sum(|r| r.intended),
            t.requests + t.warmup + t.missed + w.missed,
        );
        let m = &t.missed_by_reason;
        c.equal(
            "missed_reasons",
            "missed = dropped at cap + queued at stop + skipped slots",
            t.missed,
            m.dropped_at_cap + m.queued_at_stop + m.skipped_slot,
        );
        c.equal(
            "outcomes",
            "requests = succeeded + failed + cancelled + in flight (checkpoints)",
            t.requests,
            t.succeeded + t.failed + t.cancelled + t.in_flight,
        );
        let count = |name: &str| report.metrics.get(name).map_or(0, |m| m.count);
        c.equal(
            "ttft_count",
            "ttft count = successes with content",
            count("ttft"),
            t.succeeded_with_content,
        );
        c.equal(
            "e2e_count",
            "e2e count = successes",
            count("e2e"),
            t.succeeded,
        );
        c.equal(
            "e2e_corrected_count",
            "e2e_corrected count = successes",
            count("e2e_corrected"),
            t.succeeded,
        );
        c.equal(
            "schedule_lag_count",
            "schedule_lag count = requests finished",
            count("schedule_lag"),
            t.requests - t.in_flight.min(t.requests),
        );
        c.at_most(
            "tpot_count",
            "tpot count ≤ successes",
            count("tpot"),
            t.succeeded,
        );
        let window = report.run.duration_s;
        let tp = &report.throughput;
        for (name, what, rate, total) in [
            (
                "request_rate",
                "requests/s × window = successes",
                tp.requests_per_s,
                t.succeeded,
            ),
            (
                "token_rate",
                "output tokens/s × window = output tokens",
                tp.output_tokens_per_s,
                report.tokens.output_total,
            ),
        ] {
            // Both factors are rounded to 3 decimals: the product is off by at most
            // 0.0005 × (rate + window) plus the square of it.
            let tolerance = 0.0005 * (rate + window) + 0.001;
            c.close(name, what, rate * window, total as f64, tolerance);
        }
        c.equal(
            "timeline_started",
            "timeline started = requests + warm-up",
            sum(|r| r.started),
            t.requests + t.warmup,
        );
        c.equal(
            "timeline_completed",
            "timeline completed = successes (warm-up included)",
            sum(|r| r.completed),
            t.succeeded + w.succeeded,
        );
        c.equal(
            "timeline_failed",
            "timeline failed = failures (warm-up included)",
            sum(|r| r.failed),
            t.failed + w.failed,
        );
        c.equal(
            "timeline_tokens",
            "timeline output tokens = output tokens (warm-up included)",
            sum(|r| r.output_tokens),
            report.tokens.output_total + w.output_tokens,
        );
        // A checkpoint is taken while requests are in flight.
        if !report.run.checkpoint {
            c.equal(
                "timeline_in_flight",
                "in flight at the end of the last second = 0",
                report.timeline.last().map_or(0, |r| r.in_flight),
                0,
            );
        }
        Self {
            passed: c.0.iter().all(|check| check.passed),
            checks: c.0,
        }
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
}
