//! The report's `slo` section: each target judged against the finished report (any metric's
//! percentile from its HDR histogram, ratios, rates, any number of the report by path), and the
//! goodput the engine counted.

use std::fmt::Write as _;

use loadkit_core::slo::{Goodput, Stat, Target};
use loadkit_metrics::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Report;

/// The `slo` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Each target and how it went.
    pub targets: Vec<SloTarget>,
    /// Whether every target was met (`true` with no targets).
    pub passed: bool,
    /// The goodput rule (`ttft<500ms,tpot<50ms`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<String>,
    /// Measured requests that succeeded and met every goodput target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_requests: Option<u64>,
    /// `goodput_requests` per second of the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_per_s: Option<f64>,
    /// `goodput_requests` over the requests that finished (succeeded or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_ratio: Option<f64>,
    /// The live check that stopped the run (`--abort-on-slo`), as it saw it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
}

/// One target's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloTarget {
    /// The target as written (`ttft.p95<500ms`).
    pub expr: String,
    /// The observed value in the target's unit (ms for times, a fraction for ratios); null
    /// when the report has no such value (no samples, or no such metric).
    pub observed: Option<f64>,
    /// Whether it was met (never, without an observed value).
    pub passed: bool,
    /// The observed value with how far it missed, or why there is none.
    pub detail: String,
}

/// Judges `targets` against `report`, and adds the goodput of `rule` (counted by the engine
/// into `goodput_requests`).
pub fn evaluate(
    report: &Report,
    targets: &[Target],
    rule: Option<&Goodput>,
    goodput_requests: u64,
) -> Slo {
    let finished = report.totals.succeeded + report.totals.failed;
    let goodput = rule.map(|_| {
        let per_s = if report.run.duration_s > 0.0 {
            goodput_requests as f64 / report.run.duration_s
        } else {
            0.0
        };
        let ratio = if finished > 0 {
            goodput_requests as f64 / finished as f64
        } else {
            0.0
        };
        (round6(per_s), round6(ratio))
    });
    let json = serde_json::to_value(report).unwrap_or(Value::Null);
    let outcomes: Vec<SloTarget> = targets
        .iter()
        .map(|t| {
            let observed = observe(report, &json, t, goodput);
            let passed = observed.is_some_and(|v| t.holds(v));
            let detail = match observed {
                None => "no value in this report".to_owned(),
                Some(v) if passed => t.value_text(v),
                Some(v) => format!("{}, {}", t.value_text(v), t.miss_text(v)),
            };
            SloTarget {
                expr: t.text.clone(),
                observed: observed.map(round6),
                passed,
                detail,
            }
        })
        .collect();
    Slo {
        passed: outcomes.iter().all(|t| t.passed),
        targets: outcomes,
        goodput: rule.map(Goodput::text),
        goodput_requests: rule.map(|_| goodput_requests),
        goodput_per_s: goodput.map(|g| g.0),
        goodput_ratio: goodput.map(|g| g.1),
        aborted_by: None,
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The value `target` names, in its unit.
fn observe(
    report: &Report,
    json: &Value,
    target: &Target,
    goodput: Option<(f64, f64)>,
) -> Option<f64> {
    if let Some(stat) = target.stat {
        let metric = report.metrics.get(&target.metric)?;
        if metric.count == 0 {
            return None;
        }
        // Times are kept in ns and shown in ms; ratios in millionths: 1e6 raw per unit either way.
        let raw_per_unit = 1e6;
        let from_fields = || match stat {
            Stat::Quantile(0.5) => metric.p50,
            Stat::Quantile(0.9) => metric.p90,
            Stat::Quantile(0.95) => metric.p95,
            Stat::Quantile(0.99) => metric.p99,
            Stat::Quantile(_) => None,
            Stat::Mean => metric.mean,
            Stat::Min => metric.min,
            Stat::Max => metric.max,
        };
        return match Histogram::from_base64(&metric.hdr) {
            Ok(h) if !h.is_empty() => Some(match stat {
                Stat::Quantile(q) => h.quantile_value(q) as f64 / raw_per_unit,
                Stat::Mean => h.summary().mean / raw_per_unit,
                Stat::Min => h.summary().min as f64 / raw_per_unit,
                Stat::Max => h.summary().max as f64 / raw_per_unit,
            }),
            _ => from_fields(),
        };
    }
    let finished = report.totals.succeeded + report.totals.failed;
    let success = || (finished > 0).then(|| report.totals.succeeded as f64 / finished as f64);
    match target.metric.as_str() {
        "success" => success(),
        "error_rate" => success().map(|s| 1.0 - s),
        "rps" => Some(report.throughput.requests_per_s),
        "goodput_per_s" => goodput.map(|g| g.0),
        "goodput_ratio" => goodput.map(|g| g.1),
        path => {
            let mut value = json;
            for part in path.split('.') {
                value = value.get(part)?;
            }
            value.as_f64()
        }
    }
}

/// The terminal lines of the section: one per target, then goodput.
pub fn slo_lines(slo: &Slo) -> Vec<String> {
    let mut lines = Vec::new();
    for t in &slo.targets {
        let mut line = String::new();
        let _ = write!(
            line,
            "{} {}: {}",
            if t.passed { "pass" } else { "FAIL" },
            t.expr,
            t.detail
        );
        lines.push(line);
    }
    if let (Some(rule), Some(n), Some(per_s), Some(ratio)) = (
        &slo.goodput,
        slo.goodput_requests,
        slo.goodput_per_s,
        slo.goodput_ratio,
    ) {
        lines.push(format!(
            "goodput {per_s:.2} req/s ({n} requests, {:.1} % of those that finished) meeting {rule}",
            ratio * 100.0
        ));
    }
    if let Some(why) = &slo.aborted_by {
        lines.push(format!("stopped early by the live check: {why}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        crate::fixture::report()
    }

    #[test]
    fn targets_are_judged_on_the_histograms_ratios_rates_and_paths() {
        let r = report();
        let ttft_p95 = r.metrics["ttft"].p95.unwrap();
        let targets = Target::parse_list(&format!(
            "ttft.p95<{},ttft.p95<{},success>=50%,rps>0,throughput.output_tokens_per_s>=0,itl.p99.9<1h,nosuch.p50<1ms",
            ttft_p95 * 2.0,
            ttft_p95 / 2.0
        ))
        .unwrap();
        let slo = evaluate(&r, &targets, None, 0);
        let passed: Vec<bool> = slo.targets.iter().map(|t| t.passed).collect();
        assert_eq!(
            passed,
            [true, false, true, true, true, true, false],
            "{slo:#?}"
        );
        assert!(!slo.passed);
        let observed = slo.targets[0].observed.unwrap();
        assert!(
            (observed - ttft_p95).abs() / ttft_p95 < 0.01,
            "{observed} vs {ttft_p95}"
        );
        assert!(
            slo.targets[1].detail.contains("over"),
            "{}",
            slo.targets[1].detail
        );
        assert_eq!(slo.targets[6].detail, "no value in this report");
        assert!(slo.goodput.is_none() && slo.goodput_per_s.is_none());
    }

    #[test]
    fn goodput_is_per_second_of_the_measured_window_and_per_finished_request() {
        let r = report();
        let rule = Goodput::parse("ttft<500ms").unwrap();
        let half = (r.totals.succeeded + r.totals.failed) / 2;
        let targets = Target::parse_list("goodput_ratio>=40%").unwrap();
        let slo = evaluate(&r, &targets, Some(&rule), half);
        assert_eq!(slo.goodput_requests, Some(half));
        let per_s = slo.goodput_per_s.unwrap();
        assert!((per_s - half as f64 / r.run.duration_s).abs() < 1e-3);
        assert!(slo.passed, "{slo:#?}");
        let lines = slo_lines(&slo);
        assert!(lines.last().unwrap().starts_with("goodput "), "{lines:?}");
        // It reads back.
        let json = serde_json::to_string(&slo).unwrap();
        assert_eq!(serde_json::from_str::<Slo>(&json).unwrap(), slo);
    }
}
