//! The arithmetic of limit tests: the sizes a sweep steps through, the bisection of a probe, the
//! early-stop rule and the TTFT slope fit. Pure (no I/O, no clock): a front end runs each step
//! through a protocol and feeds the outcome back.

use crate::protocol::{Section, Value};

/// One step of a sweep or one attempt of a probe, as the report shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// Words of the prompt (synthetic prompts), when the step sets them.
    pub words: Option<u64>,
    /// `max_tokens` sent.
    pub max_tokens: u64,
    /// Input tokens per request as the server reported them.
    pub tokens_in: Option<u64>,
    /// Output tokens per successful request (server-reported, else counted).
    pub tokens_out: Option<u64>,
    /// `tokens_out` < 90 % of `max_tokens` (output and combined sweeps).
    pub early_stop: bool,
    /// Every request of the step succeeded.
    pub ok: bool,
    /// The class of the step's most frequent error.
    pub error_class: Option<String>,
    /// Its message (HTTP status and body, close code, server text, ...).
    pub error: Option<String>,
    /// TTFT p50 of the step, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// E2E p50 of the step, in milliseconds.
    pub e2e_ms: Option<f64>,
    /// Output tokens per second of generation (after the first token), p50 over the step.
    pub tokens_per_s: Option<f64>,
}

impl Step {
    fn value(&self) -> Value {
        Value::Map(vec![
            ("words".into(), self.words.into()),
            ("max_tokens".into(), self.max_tokens.into()),
            ("tokens_in".into(), self.tokens_in.into()),
            ("tokens_out".into(), self.tokens_out.into()),
            ("early_stop".into(), self.early_stop.into()),
            ("ok".into(), self.ok.into()),
            ("error_class".into(), self.error_class.clone().into()),
            ("error".into(), self.error.clone().into()),
            ("ttft_ms".into(), self.ttft_ms.into()),
            ("e2e_ms".into(), self.e2e_ms.into()),
            ("tokens_per_s".into(), self.tokens_per_s.into()),
        ])
    }
}

/// The report's `sweep` section: `kind` (`context`, `output`, `combined`, `max-context`), the
/// steps in the order run, the fitted TTFT slope in ms per 1k input tokens (context sweeps) and
/// the bracket a probe found.
pub fn section(
    kind: &str,
    steps: &[Step],
    slope_ms_per_1k: Option<f64>,
    bracket: Option<Bracket>,
) -> Section {
    let mut fields = vec![
        ("kind", Value::from(kind)),
        (
            "steps",
            Value::List(steps.iter().map(Step::value).collect()),
        ),
        ("ttft_ms_per_1k_input_tokens", slope_ms_per_1k.into()),
    ];
    if let Some(b) = bracket {
        let (ok, fail) = match b {
            Bracket::Between { ok, fail } => (Some(ok), Some(fail)),
            Bracket::AboveRange => (
                steps.iter().filter(|s| s.ok).filter_map(|s| s.words).max(),
                None,
            ),
            Bracket::BelowRange => (
                None,
                steps.iter().filter(|s| !s.ok).filter_map(|s| s.words).min(),
            ),
        };
        fields.push((
            "bracket",
            Value::Map(vec![
                ("ok_words".into(), ok.into()),
                ("fail_words".into(), fail.into()),
            ]),
        ));
    }
    Section::new("sweep", fields)
}

/// The TTFT slope of `steps` in ms per 1,000 input tokens (server-reported tokens, else words),
/// over the successful steps.
pub fn ttft_slope_per_1k(steps: &[Step]) -> Option<f64> {
    let points: Vec<(f64, f64)> = steps
        .iter()
        .filter(|s| s.ok)
        .filter_map(|s| {
            let x = s.tokens_in.or(s.words)? as f64;
            Some((x / 1000.0, s.ttft_ms?))
        })
        .collect();
    slope(&points)
}

/// A sweep's sizes: `min`, then doubling, up to `max` (which is always the last step, even when
/// it is not a doubling of `min`). Empty when `min` is 0 or `min > max`.
///
/// ```
/// assert_eq!(loadkit_core::sweep::doubling(128, 1000), [128, 256, 512, 1000]);
/// assert_eq!(loadkit_core::sweep::doubling(512, 512), [512]);
/// ```
pub fn doubling(min: u64, max: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if min == 0 || min > max {
        return out;
    }
    let mut n = min;
    while n < max {
        out.push(n);
        n = n.saturating_mul(2);
    }
    out.push(max);
    out
}

/// Whether a response stopped early: fewer than 90 % of the `max_tokens` asked for.
pub fn early_stop(tokens_out: u64, max_tokens: u64) -> bool {
    tokens_out * 10 < max_tokens * 9
}

/// The least-squares slope of `y` against `x` over `points`, or `None` with fewer than two
/// distinct `x`.
///
/// ```
/// let slope = loadkit_core::sweep::slope(&[(1000.0, 50.0), (2000.0, 70.0), (4000.0, 110.0)]);
/// assert!((slope.unwrap() - 0.02).abs() < 1e-9); // 20 ms per 1k
/// ```
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// A binary search for the largest size that succeeds, between `lo` and `hi`.
///
/// First `lo` is tried (it must succeed), then `hi` (if it succeeds, the limit lies above the
/// range), then midpoints until the largest success and the smallest failure are within
/// `tolerance` of each other (relative to the success, at least one unit). Attempts grow with
/// the logarithm of the range over the tolerance.
#[derive(Debug, Clone)]
pub struct Bisect {
    lo: u64,
    hi: u64,
    tolerance: f64,
    ok: Option<u64>,
    fail: Option<u64>,
    tried_hi: bool,
    done: bool,
}

/// Where a [`Bisect`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bracket {
    /// The largest size that succeeded and the smallest that failed.
    Between {
        /// The largest success.
        ok: u64,
        /// The smallest failure.
        fail: u64,
    },
    /// Even the lower bound failed.
    BelowRange,
    /// The upper bound succeeded: the limit is above the range.
    AboveRange,
}

impl Bisect {
    /// A search over `[lo, hi]` to within `tolerance` (e.g. 0.05 for 5 %).
    pub fn new(lo: u64, hi: u64, tolerance: f64) -> Self {
        Self {
            lo: lo.max(1),
            hi: hi.max(lo.max(1)),
            tolerance: if tolerance.is_finite() {
                tolerance.max(0.0)
            } else {
                0.05
            },
            ok: None,
            fail: None,
            tried_hi: false,
            done: false,
        }
    }

    /// The next size to try, or `None` when the search is over.
    pub fn next(&self) -> Option<u64> {
        if self.done {
            return None;
        }
        match (self.ok, self.fail) {
            (None, None) => Some(self.lo),
            (Some(_), None) if !self.tried_hi => Some(self.hi),
            (Some(ok), Some(fail)) => {
                let gap = fail.saturating_sub(ok);
                let allowed = ((ok as f64) * self.tolerance).max(1.0);
                (gap as f64 > allowed && gap > 1).then(|| ok + gap / 2)
            }
            _ => None,
        }
    }

    /// Records the outcome of trying `size`.
    pub fn record(&mut self, size: u64, ok: bool) {
        if size == self.hi {
            self.tried_hi = true;
        }
        if ok {
            self.ok = Some(self.ok.map_or(size, |o| o.max(size)));
            if size == self.hi {
                self.done = true;
            }
        } else {
            self.fail = Some(self.fail.map_or(size, |f| f.min(size)));
            if self.ok.is_none() {
                self.done = true;
            }
        }
    }

    /// The result so far.
    pub fn bracket(&self) -> Bracket {
        match (self.ok, self.fail) {
            (Some(ok), Some(fail)) => Bracket::Between { ok, fail },
            (Some(_), None) => Bracket::AboveRange,
            (None, _) => Bracket::BelowRange,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_steps() {
        assert_eq!(doubling(128, 128 * 8), [128, 256, 512, 1024]);
        assert!(doubling(0, 10).is_empty() && doubling(5, 4).is_empty());
        assert_eq!(doubling(u64::MAX / 2 + 1, u64::MAX).len(), 2);
    }

    #[test]
    fn early_stop_is_below_ninety_percent() {
        assert!(early_stop(89, 100));
        assert!(!early_stop(90, 100));
        assert!(!early_stop(512, 512));
    }

    /// Bisects against a server whose limit is `limit`, returning the bracket and the attempts.
    fn search(lo: u64, hi: u64, tolerance: f64, limit: u64) -> (Bracket, Vec<u64>) {
        let mut b = Bisect::new(lo, hi, tolerance);
        let mut tried = Vec::new();
        while let Some(n) = b.next() {
            tried.push(n);
            b.record(n, n <= limit);
            assert!(tried.len() < 100, "no end: {tried:?}");
        }
        (b.bracket(), tried)
    }

    #[test]
    fn bisection_brackets_the_limit_within_tolerance_in_log_attempts() {
        for limit in [100, 1_000, 3_333, 7_999, 12_345, 31_999] {
            let (bracket, tried) = search(64, 32_000, 0.05, limit);
            let Bracket::Between { ok, fail } = bracket else {
                panic!("{limit}: {bracket:?}");
            };
            assert!(ok <= limit && limit < fail, "{limit}: {ok}..{fail}");
            assert!(
                (fail - ok) as f64 <= (ok as f64 * 0.05).max(1.0),
                "{ok}..{fail}"
            );
            // lo, hi, then log2(range / (tolerance * limit)) halvings, plus one.
            let bound = 2.0 + (32_000.0 / (0.05 * limit as f64)).log2().ceil() + 1.0;
            assert!(
                tried.len() as f64 <= bound,
                "{limit}: {} > {bound}: {tried:?}",
                tried.len()
            );
        }
        assert_eq!(search(64, 1000, 0.05, 10).0, Bracket::BelowRange);
        assert_eq!(
            search(64, 1000, 0.05, 5000),
            (Bracket::AboveRange, vec![64, 1000])
        );
        // Exact to one unit with no tolerance.
        let (b, _) = search(1, 1 << 20, 0.0, 777_777);
        assert_eq!(
            b,
            Bracket::Between {
                ok: 777_777,
                fail: 777_778
            }
        );
    }
}
