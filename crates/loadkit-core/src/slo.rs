//! Service-level targets: parsed once from text such as `ttft.p95<500ms,success>99%`, checked
//! at the end against the report, live against the run so far ([`LiveSlo`]), and per request for
//! goodput ([`Goodput`]).
//!
//! A target is `METRIC[.STAT] OP VALUE[UNIT]`:
//!
//! - a distribution (`ttft`, `itl`, `tpot`, `e2e`, `ttft_corrected`, `e2e_corrected`, a
//!   protocol's named metric such as `block_synthesis` or `rtf`) with a statistic: `p50`, `p95`,
//!   `p99.9` (any percentile), `mean`, `min` or `max`; times in `ns`, `us`, `ms` (the default),
//!   `s` or `m`;
//! - a ratio: `success` or `error_rate` (`99%` or `0.99`), `goodput_ratio`;
//! - a rate: `rps` (completed requests per second), `goodput_per_s`, or any number of the report
//!   by its path (`throughput.output_tokens_per_s`, `totals.failed`, `tokens.output`);
//!
//! with `<`, `<=`, `>` or `>=`. Goodput targets name per-request values: `ttft`, `tpot`, `e2e`,
//! `itl` (the request's largest gap), `ttfa`, `ttft_corrected`, `e2e_corrected`.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use loadkit_metrics::Histogram;

use crate::event::{Control, Event, Observer, RequestRecord};
use crate::StopReason;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Whether `observed OP threshold` holds.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => observed < threshold,
            Op::Le => observed <= threshold,
            Op::Gt => observed > threshold,
            Op::Ge => observed >= threshold,
        }
    }

    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// Which value of a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A quantile, 0 to 1 (`p95` is 0.95).
    Quantile(f64),
    /// The mean.
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

/// What the threshold's number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (times are normalized to them).
    Ms,
    /// A fraction (`99%` is 0.99).
    Ratio,
    /// A plain number, compared as it is.
    Plain,
}

/// One target: `ttft.p95<500ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The text as given (spaces removed).
    pub text: String,
    /// The metric or report path (`ttft`, `success`, `throughput.output_tokens_per_s`).
    pub metric: String,
    /// The statistic of a distribution; `None` for a single value.
    pub stat: Option<Stat>,
    /// The comparison.
    pub op: Op,
    /// The threshold, in `unit`.
    pub threshold: f64,
    /// What the threshold's number means.
    pub unit: Unit,
}

/// A target that cannot be read, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {reason}")]
pub struct TargetError {
    /// The text that failed.
    pub text: String,
    /// Why.
    pub reason: String,
}

/// Single values a target may name without a statistic.
const RATIOS: [&str; 3] = ["success", "error_rate", "goodput_ratio"];
const RATES: [&str; 2] = ["rps", "goodput_per_s"];
/// Report sections whose numbers a path may name.
const SECTIONS: [&str; 5] = ["totals", "throughput", "tokens", "generator", "run"];
/// Distributions the engine records for every protocol (others are protocol-defined).
pub const DISTRIBUTIONS: [&str; 8] = [
    "ttft",
    "ttft_corrected",
    "itl",
    "itl_failed",
    "tpot",
    "e2e",
    "e2e_corrected",
    "schedule_lag",
];
/// Per-request values a goodput target may name.
pub const PER_REQUEST: [&str; 7] = [
    "ttft",
    "ttft_corrected",
    "tpot",
    "itl",
    "e2e",
    "e2e_corrected",
    "ttfa",
];

impl Target {
    /// Parses one target.
    ///
    /// # Errors
    ///
    /// The text is not `METRIC[.STAT] OP VALUE[UNIT]`, or names no known value.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let fail = |reason: &str| TargetError {
            text: text.clone(),
            reason: reason.to_owned(),
        };
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| fail("no comparison: write e.g. ttft.p95<500ms"))?;
        let (left, rest) = text.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        if left.is_empty() {
            return Err(fail("no metric before the comparison"));
        }
        let (metric, stat) = match left
            .split_once('.')
            .and_then(|(m, st)| parse_stat(st).map(|r| (m, r)))
        {
            Some((metric, Ok(stat))) => (metric, Some(stat)),
            Some((_, Err(e))) => return Err(fail(&e)),
            None => (left, None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
        };
        if !valid(metric) {
            return Err(fail("the metric name is not a name"));
        }
        let (number, suffix) =
            split_number(value).ok_or_else(|| fail("no number to compare with"))?;
        let (threshold, unit) = match stat {
            Some(_) if metric.contains('.') => {
                return Err(fail(
                    "a statistic applies to a metric name, not a report path",
                ))
            }
            Some(_) => match suffix {
                "" | "ms" => (number, Unit::Ms),
                "ns" => (number / 1e6, Unit::Ms),
                "us" | "µs" => (number / 1e3, Unit::Ms),
                "s" => (number * 1e3, Unit::Ms),
                "m" | "min" => (number * 60e3, Unit::Ms),
                "h" => (number * 3600e3, Unit::Ms),
                "x" => (number, Unit::Plain),
                other => {
                    return Err(fail(&format!(
                        "unknown unit {other:?}: use ns, us, ms, s, m or h"
                    )))
                }
            },
            None if RATIOS.contains(&metric) => match suffix {
                "%" => (number / 100.0, Unit::Ratio),
                "" if number <= 1.0 => (number, Unit::Ratio),
                "" => return Err(fail("a ratio is at most 1: write 99% or 0.99")),
                other => return Err(fail(&format!("unknown unit {other:?} for a ratio"))),
            },
            None if RATES.contains(&metric)
                || metric
                    .split_once('.')
                    .is_some_and(|(section, _)| SECTIONS.contains(&section)) =>
            {
                match suffix {
                    "" | "/s" => (number, Unit::Plain),
                    "%" => (number / 100.0, Unit::Plain),
                    other => return Err(fail(&format!("unknown unit {other:?}"))),
                }
            }
            None if DISTRIBUTIONS.contains(&metric) => {
                return Err(fail(&format!(
                "which statistic of {metric}? e.g. {metric}.p95<500ms (p50, p99.9, mean, min, max)"
            )))
            }
            None => {
                return Err(fail(&format!(
                    "unknown value {metric:?}: use a metric with a statistic (ttft.p95), \
                     success, error_rate, rps, goodput_per_s, goodput_ratio, or a report path \
                     (throughput.output_tokens_per_s)"
                )))
            }
        };
        Ok(Target {
            metric: metric.to_owned(),
            text,
            stat,
            op,
            threshold,
            unit,
        })
    }

    /// Parses a comma-separated list (empty items skipped).
    ///
    /// # Errors
    ///
    /// The first item that cannot be read.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, TargetError> {
        text.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(Target::parse)
            .collect()
    }

    /// Whether `observed` meets the target.
    pub fn holds(&self, observed: f64) -> bool {
        self.op.holds(observed, self.threshold)
    }

    /// The threshold as text in the target's unit (`500 ms`, `99 %`).
    pub fn threshold_text(&self) -> String {
        value_text(self.threshold, self.unit)
    }

    /// `observed` in the target's unit.
    pub fn value_text(&self, observed: f64) -> String {
        value_text(observed, self.unit)
    }

    /// How far `observed` misses the threshold, as text (`112 ms over (22 %)`).
    pub fn miss_text(&self, observed: f64) -> String {
        let gap = (observed - self.threshold).abs();
        let side = if matches!(self.op, Op::Lt | Op::Le) {
            "over"
        } else {
            "under"
        };
        let relative = if self.threshold == 0.0 {
            String::new()
        } else {
            format!(" ({:.0} %)", 100.0 * gap / self.threshold.abs())
        };
        format!("{} {side}{relative}", value_text(gap, self.unit))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn value_text(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => format!("{} ms", trim(v)),
        Unit::Ratio => format!("{} %", trim(v * 100.0)),
        Unit::Plain => trim(v),
    }
}

/// A number with at most three decimals, without trailing zeros.
fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// `Some(Ok)` for a statistic, `Some(Err)` for a percentile out of range, `None` when `text` is
/// not a statistic at all (then it is part of a path).
fn parse_stat(text: &str) -> Option<Result<Stat, String>> {
    match text {
        "mean" | "avg" => return Some(Ok(Stat::Mean)),
        "min" => return Some(Ok(Stat::Min)),
        "max" => return Some(Ok(Stat::Max)),
        _ => {}
    }
    let digits = text.strip_prefix('p')?;
    let pct: f64 = digits.parse().ok()?;
    Some(if pct > 0.0 && pct < 100.0 {
        Ok(Stat::Quantile(pct / 100.0))
    } else {
        Err(format!("percentile {text} is not between p0 and p100"))
    })
}

/// `500ms` as (500, "ms").
fn split_number(text: &str) -> Option<(f64, &str)> {
    let end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(text.len(), |(i, _)| i);
    let number: f64 = text[..end].parse().ok()?;
    number.is_finite().then_some((number, &text[end..]))
}

/// Per-request goodput: a request counts when it succeeded and each of its own values meets
/// every target (`ttft<500ms,tpot<50ms,e2e<10s`). A request without a value a target names does
/// not count, except for `tpot` and `itl`: an answer in one chunk has no pace to miss.
#[derive(Debug, Clone, PartialEq)]
pub struct Goodput {
    targets: Vec<Target>,
}

impl Goodput {
    /// Parses the rule.
    ///
    /// # Errors
    ///
    /// An item that is not `VALUE OP TIME` over a per-request value ([`PER_REQUEST`]).
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let mut targets = Vec::new();
        for item in text.split(',').filter(|t| !t.trim().is_empty()) {
            let compact: String = item.chars().filter(|c| !c.is_whitespace()).collect();
            let fail = |reason: String| TargetError {
                text: compact.clone(),
                reason,
            };
            let at = compact
                .find(['<', '>'])
                .ok_or_else(|| fail("no comparison: write e.g. ttft<500ms".into()))?;
            let name = &compact[..at];
            if !PER_REQUEST.contains(&name) {
                return Err(fail(format!(
                    "goodput takes per-request values: {}",
                    PER_REQUEST.join(", ")
                )));
            }
            // Parsed as the p50 target of the same name, then made per-request.
            let mut target = Target::parse(&format!("{name}.p50{}", &compact[at..]))?;
            target.text = compact.clone();
            target.stat = None;
            targets.push(target);
        }
        if targets.is_empty() {
            return Err(TargetError {
                text: text.to_owned(),
                reason: "no targets".into(),
            });
        }
        Ok(Goodput { targets })
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The rule as text (`ttft<500ms,tpot<50ms`).
    pub fn text(&self) -> String {
        self.targets
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `record` succeeded and meets every target.
    pub fn is_good(&self, record: &RequestRecord) -> bool {
        if record.error.is_some() {
            return false;
        }
        self.targets.iter().all(|t| {
            let value = match t.metric.as_str() {
                "ttft" => record.ttft(),
                "ttft_corrected" => record.ttft_corrected(),
                "e2e" => Some(record.e2e()),
                "e2e_corrected" => Some(record.e2e_corrected()),
                "ttfa" => record.ttfa(),
                "tpot" => match record.tpot() {
                    None => return true,
                    v => v,
                },
                "itl" => match record.gaps.entries().map(|(v, _)| v).max() {
                    None => return true,
                    Some(ns) => Some(Duration::from_nanos(ns)),
                },
                _ => None,
            };
            value.is_some_and(|v| t.holds(v.as_secs_f64() * 1e3))
        })
    }
}

/// Why a live check stopped the run: the target and what was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The target's text.
    pub target: String,
    /// The observed value, in the target's unit.
    pub observed: f64,
    /// The observed value as text, with how far it missed (`612 ms, 112 ms over (22 %)`).
    pub description: String,
    /// Measured requests finished when it was seen.
    pub requests: u64,
}

/// Fewest measured requests before any live check.
pub const LIVE_MIN_REQUESTS: u64 = 100;

/// The values a live check needs before judging a quantile `q`: enough for about ten of them
/// to lie beyond it (200 for p95, 1,000 for p99), and at least [`LIVE_MIN_REQUESTS`].
pub fn live_min_sample(q: f64) -> u64 {
    ((10.0 / (1.0 - q)).ceil() as u64).max(LIVE_MIN_REQUESTS)
}

/// Checks targets once per second against the measured requests so far and stops the run
/// ([`StopReason::Slo`]) at the first breach, once each target has its minimum sample
/// ([`live_min_sample`]). Only targets over request values can be checked live (`ttft`,
/// `ttft_corrected`, `itl`, `tpot`, `e2e`, `e2e_corrected`, `success`, `error_rate`); rates and
/// report paths are judged at the end only.
#[derive(Debug)]
pub struct LiveSlo {
    targets: Vec<Target>,
    histograms: Vec<Histogram>,
    succeeded: u64,
    failed: u64,
    breach: Arc<OnceLock<Breach>>,
}

/// Distributions [`LiveSlo`] can follow.
const LIVE: [&str; 6] = [
    "ttft",
    "ttft_corrected",
    "itl",
    "tpot",
    "e2e",
    "e2e_corrected",
];

impl LiveSlo {
    /// A live check of the `targets` it can follow (the others are left to the end); the
    /// handle shows the breach that stopped the run, if one did.
    pub fn new(targets: &[Target]) -> (Self, Arc<OnceLock<Breach>>) {
        let targets: Vec<Target> = targets
            .iter()
            .filter(|t| Self::can_follow(t))
            .cloned()
            .collect();
        let breach = Arc::new(OnceLock::new());
        let live = LiveSlo {
            histograms: targets.iter().map(|_| Histogram::new()).collect(),
            targets,
            succeeded: 0,
            failed: 0,
            breach: Arc::clone(&breach),
        };
        (live, breach)
    }

    /// Whether a target can be checked during the run.
    pub fn can_follow(target: &Target) -> bool {
        match target.stat {
            Some(_) => LIVE.contains(&target.metric.as_str()),
            None => matches!(target.metric.as_str(), "success" | "error_rate"),
        }
    }

    fn record(&mut self, r: &RequestRecord) {
        if r.warmup || r.is_cancelled() {
            return;
        }
        if r.error.is_some() {
            self.failed += 1;
            return;
        }
        self.succeeded += 1;
        for (target, h) in self.targets.iter().zip(&mut self.histograms) {
            match target.metric.as_str() {
                "ttft" => r.ttft().into_iter().for_each(|v| h.record(v)),
                "ttft_corrected" => r.ttft_corrected().into_iter().for_each(|v| h.record(v)),
                "tpot" => r.tpot().into_iter().for_each(|v| h.record(v)),
                "e2e" => h.record(r.e2e()),
                "e2e_corrected" => h.record(r.e2e_corrected()),
                "itl" => r.gaps.add_to(h),
                _ => {}
            }
        }
    }

    fn check(&self) -> Option<Breach> {
        let finished = self.succeeded + self.failed;
        for (target, h) in self.targets.iter().zip(&self.histograms) {
            let observed = match target.stat {
                None => {
                    if finished < LIVE_MIN_REQUESTS {
                        continue;
                    }
                    let success = self.succeeded as f64 / finished as f64;
                    if target.metric == "success" {
                        success
                    } else {
                        1.0 - success
                    }
                }
                Some(stat) => {
                    let need = match stat {
                        Stat::Quantile(q) => live_min_sample(q),
                        _ => LIVE_MIN_REQUESTS,
                    };
                    if h.count() < need || self.succeeded < LIVE_MIN_REQUESTS {
                        continue;
                    }
                    let ns = match stat {
                        Stat::Quantile(q) => h.quantile(q),
                        Stat::Mean => h.mean(),
                        Stat::Min => Duration::from_nanos(h.summary().min),
                        Stat::Max => h.max(),
                    };
                    ns.as_secs_f64() * 1e3
                }
            };
            if !target.holds(observed) {
                return Some(Breach {
                    target: target.text.clone(),
                    observed,
                    description: format!(
                        "{}, {}",
                        target.value_text(observed),
                        target.miss_text(observed)
                    ),
                    requests: finished,
                });
            }
        }
        None
    }
}

impl Observer for LiveSlo {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        match event {
            Event::RequestFinished(r) => self.record(r),
            Event::Tick(_) if self.breach.get().is_none() => {
                if let Some(breach) = self.check() {
                    let _ = self.breach.set(breach);
                    return Control::Stop(StopReason::Slo);
                }
            }
            _ => {}
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_their_units() {
        let t = Target::parse("ttft.p95 < 500ms").unwrap();
        assert_eq!(
            (t.metric.as_str(), t.stat, t.op, t.threshold, t.unit),
            ("ttft", Some(Stat::Quantile(0.95)), Op::Lt, 500.0, Unit::Ms)
        );
        assert_eq!(Target::parse("e2e.p99<10s").unwrap().threshold, 10_000.0);
        let t = Target::parse("itl.p99.9<=100").unwrap();
        assert!(matches!(t.stat, Some(Stat::Quantile(q)) if (q - 0.999).abs() < 1e-12));
        assert_eq!((t.op, t.threshold), (Op::Le, 100.0));
        let t = Target::parse("success>99%").unwrap();
        assert_eq!((t.unit, t.threshold), (Unit::Ratio, 0.99));
        let t = Target::parse("throughput.output_tokens_per_s>=100").unwrap();
        assert_eq!(
            (t.metric.as_str(), t.stat, t.unit),
            ("throughput.output_tokens_per_s", None, Unit::Plain)
        );
        assert_eq!(Target::parse("e2e.mean<2s").unwrap().stat, Some(Stat::Mean));
        let list =
            Target::parse_list("ttft.p95<500ms,e2e.p99<10s,itl.p99<100ms,success>99%").unwrap();
        assert_eq!(list.len(), 4);
    }

    #[test]
    fn mistakes_name_what_is_wrong() {
        for (text, needle) in [
            ("ttft.p95", "no comparison"),
            ("ttft<500ms", "which statistic"),
            ("ttft.p95<fast", "no number"),
            ("ttft.p95<5parsecs", "unknown unit"),
            ("ttft.p100<5ms", "not between"),
            ("sucess>99%", "unknown value"),
            ("success>99", "at most 1"),
            ("<5ms", "no metric"),
        ] {
            let e = Target::parse(text).unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn holds_and_miss_text() {
        let t = Target::parse("ttft.p95<500ms").unwrap();
        assert!(t.holds(499.0) && !t.holds(500.0));
        assert_eq!(t.miss_text(612.0), "112 ms over (22 %)");
        let t = Target::parse("success>=99%").unwrap();
        assert!(t.holds(0.99) && !t.holds(0.98));
        assert_eq!(t.value_text(0.975), "97.5 %");
    }

    fn record(ttft_ms: u64, e2e_ms: u64, failed: bool) -> RequestRecord {
        let mut r = RequestRecord {
            sent: Duration::ZERO,
            first_content: Some(Duration::from_millis(ttft_ms)),
            end: Duration::from_millis(e2e_ms),
            ..RequestRecord::default()
        };
        if failed {
            r.error = Some(crate::RequestError::server("boom"));
        }
        r
    }

    #[test]
    fn goodput_counts_requests_meeting_every_target() {
        let g = Goodput::parse("ttft<500ms, e2e<2s, tpot<50ms").unwrap();
        assert!(g.is_good(&record(100, 1000, false)));
        assert!(!g.is_good(&record(600, 1000, false)), "ttft over");
        assert!(!g.is_good(&record(100, 3000, false)), "e2e over");
        assert!(!g.is_good(&record(100, 1000, true)), "failed");
        let mut no_content = record(0, 100, false);
        no_content.first_content = None;
        assert!(!g.is_good(&no_content), "no ttft: not counted");
        assert!(Goodput::parse("success>99%").is_err());
        assert!(Goodput::parse("").is_err());
    }

    #[test]
    fn the_live_check_waits_for_its_sample_then_stops_at_the_breach() {
        let targets = Target::parse_list("ttft.p95<200ms,rps>5").unwrap();
        let (mut live, breach) = LiveSlo::new(&targets);
        assert_eq!(live.targets.len(), 1, "rates are judged at the end only");
        let tick = crate::LiveStats::default();
        // 199 slow requests: below the 200 a p95 needs.
        for _ in 0..199 {
            live.on_event(&Event::RequestFinished(&record(300, 400, false)));
        }
        assert_eq!(live.on_event(&Event::Tick(&tick)), Control::Continue);
        live.on_event(&Event::RequestFinished(&record(300, 400, false)));
        assert_eq!(
            live.on_event(&Event::Tick(&tick)),
            Control::Stop(StopReason::Slo)
        );
        let b = breach.get().unwrap();
        assert_eq!((b.target.as_str(), b.requests), ("ttft.p95<200ms", 200));
        assert!(b.description.starts_with("300"), "{}", b.description);
    }

    #[test]
    fn the_live_check_passes_a_run_that_meets_it() {
        let targets = Target::parse_list("ttft.p95<200ms,success>=99%").unwrap();
        let (mut live, breach) = LiveSlo::new(&targets);
        for i in 0..500 {
            live.on_event(&Event::RequestFinished(&record(50, 100, i == 7)));
        }
        assert_eq!(
            live.on_event(&Event::Tick(&crate::LiveStats::default())),
            Control::Continue
        );
        assert!(breach.get().is_none());
    }
}
