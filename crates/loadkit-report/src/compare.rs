//! Run comparison: the key figures of a baseline and one or more new sets of reports side by
//! side, with absolute and relative deltas and a verdict per row from the recorded
//! distributions (percentile confidence intervals from the HDR histograms, per-second
//! variation for rates, a binomial interval for the success rate), and `--fail-if` rules.

use std::fmt::Write as _;

use loadkit_core::metrics::Histogram;

use crate::html::escape;
use crate::markdown::escape_markdown;
use crate::{Metric, Report};

/// The normal quantile of a two-sided 95 % interval.
const Z95: f64 = 1.96;

/// Metrics shown first, in this order; every other metric both sides share follows by name.
const KEY_METRICS: [&str; 4] = ["ttft", "itl", "tpot", "e2e"];

/// Percentiles compared for each metric.
const STATS: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

/// Fewer whole measured seconds than this give a rate no interval: its verdict then rests on
/// the minimum change alone.
const MIN_RATE_SECONDS: usize = 3;

/// One side of a comparison: one report, or several runs of the same setup pooled.
#[derive(Debug, Clone)]
pub struct Side {
    /// How the side is named in the output (its file, or `a.json + 2 more`).
    pub label: String,
    /// The reports, in the order given.
    pub reports: Vec<Report>,
}

/// How verdicts are reached.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// The smallest relative change (0.10 = 10 %) that counts as better or worse, even when the
    /// intervals say it is real: runs of the same server differ from run to run (tails of
    /// timer-paced streams by up to ~10 % on a busy machine), which no single run's interval
    /// shows.
    pub min_change: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self { min_change: 0.10 }
    }
}

/// Which way is better for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latencies, lag, error rates.
    Lower,
    /// Throughput, success.
    Higher,
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A real change for the better.
    Better,
    /// A real change for the worse.
    Worse,
    /// Within the intervals, the runs' spread, or below the minimum change.
    NoChange,
    /// One side has no values.
    Missing,
}

impl Verdict {
    /// The words the tables print.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoChange => "no significant change",
            Verdict::Missing => "n/a",
        }
    }
}

/// A figure of one side: the pooled value, its 95 % interval, and the per-run spread when the
/// side pools several runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The pooled value.
    pub value: f64,
    /// The interval's low end.
    pub lo: f64,
    /// The interval's high end.
    pub hi: f64,
    /// Lowest and highest single-run value, when there are at least two runs.
    pub spread: Option<(f64, f64)>,
}

/// One compared figure against one new side.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The new side's estimate.
    pub new: Option<Estimate>,
    /// new − base.
    pub delta: Option<f64>,
    /// (new − base) / base.
    pub relative: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// One row: a figure of the baseline and of each new side.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row's name in rules and tables: `ttft.p95`, `requests_per_s`, `success`, ...
    pub name: String,
    /// `ms`, `ratio`, `req/s`, `tok/s` or `%`.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// The baseline's estimate.
    pub base: Option<Estimate>,
    /// One cell per new side.
    pub cells: Vec<Cell>,
}

/// A whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The baseline's label and run count.
    pub base: (String, usize),
    /// Each new side's label and run count.
    pub new: Vec<(String, usize)>,
    /// The rows, key figures first.
    pub rows: Vec<Row>,
    /// Things the reader should know (different protocols, targets or loads).
    pub notes: Vec<String>,
}

/// Compares `new` sides against `base`.
pub fn compare(base: &Side, new: &[Side], options: CompareOptions) -> Comparison {
    let mut rows = Vec::new();
    if let Some(row) = capacity_row(base, new) {
        rows.push(row);
    }
    let rate =
        |name: &str, unit, pick: fn(&crate::TimelineRow) -> u64, total: fn(&Report) -> f64| {
            let est = |side: &Side| rate_estimate(side, pick, total);
            row(
                name,
                unit,
                Better::Higher,
                est(base),
                new.iter().map(est),
                options,
            )
        };
    rows.push(rate(
        "requests_per_s",
        "req/s",
        |t| t.completed,
        |r| r.throughput.requests_per_s,
    ));
    if sides(base, new).any(|s| s.reports.iter().any(|r| r.tokens.output_total > 0)) {
        rows.push(rate(
            "output_tokens_per_s",
            "tok/s",
            |t| t.output_tokens,
            |r| r.throughput.output_tokens_per_s,
        ));
    }
    rows.push(row(
        "success",
        "%",
        Better::Higher,
        success_estimate(base),
        new.iter().map(success_estimate),
        // Any real drop in success matters, however small: no minimum change.
        CompareOptions { min_change: 0.0 },
    ));
    for name in metric_names(base, new) {
        let better = Better::Lower;
        for (stat, q) in STATS {
            let est = |side: &Side| quantile_estimate(side, &name, q);
            rows.push(row(
                &format!("{name}.{stat}"),
                unit_of(base, &name),
                better,
                est(base),
                new.iter().map(est),
                options,
            ));
        }
    }
    Comparison {
        base: (base.label.clone(), base.reports.len()),
        new: new
            .iter()
            .map(|s| (s.label.clone(), s.reports.len()))
            .collect(),
        rows,
        notes: notes(base, new),
    }
}

/// `capacity`, when the baseline and a new side are `loadkit discover` reports of the same
/// unit: the largest load that met every target, its interval the search's bracket (from it up
/// to the first bad level, unbounded when none broke). Better or worse only when the brackets
/// are apart: the new capacity's good level above the baseline's first bad one, or its bad
/// level at or below the baseline's good one.
fn capacity_row(base: &Side, new: &[Side]) -> Option<Row> {
    let discovery = |side: &Side| -> Option<(Estimate, String)> {
        let d = side.reports.first()?.sections.get("discovery")?;
        let good = d.get("max_load_meeting_targets")?.as_f64()?;
        let bad = d
            .get("first_bad_load")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::INFINITY);
        let unit = d.get("unit")?.as_str()?.to_owned();
        Some((
            Estimate {
                value: good,
                lo: good,
                // Just below the first bad level: a bracket touching another's good level is
                // apart from it.
                hi: bad - bad.abs() * 1e-9,
                spread: None,
            },
            unit,
        ))
    };
    let (b, unit) = discovery(base)?;
    let cells = new
        .iter()
        .map(|side| {
            let n = discovery(side).filter(|(_, u)| *u == unit).map(|(e, _)| e);
            let delta = n.map(|n| n.value - b.value);
            let relative = delta.and_then(|d| (b.value != 0.0).then(|| d / b.value));
            let verdict = match n {
                None => Verdict::Missing,
                Some(n) if n.lo > b.hi => Verdict::Better,
                Some(n) if n.hi < b.lo => Verdict::Worse,
                Some(_) => Verdict::NoChange,
            };
            Cell {
                new: n,
                delta,
                relative,
                verdict,
            }
        })
        .collect::<Vec<_>>();
    if cells.iter().all(|c| c.new.is_none()) {
        return None;
    }
    Some(Row {
        name: "capacity".to_owned(),
        unit: if unit == "users" { "users" } else { "req/s" },
        better: Better::Higher,
        base: Some(b),
        cells,
    })
}

fn sides<'a>(base: &'a Side, new: &'a [Side]) -> impl Iterator<Item = &'a Side> {
    std::iter::once(base).chain(new)
}

fn row(
    name: &str,
    unit: &'static str,
    better: Better,
    base: Option<Estimate>,
    new: impl Iterator<Item = Option<Estimate>>,
    options: CompareOptions,
) -> Row {
    let cells = new
        .map(|n| {
            let delta = base.zip(n).map(|(b, n)| n.value - b.value);
            let relative = base
                .zip(delta)
                .and_then(|(b, d)| (b.value != 0.0).then(|| d / b.value));
            Cell {
                new: n,
                delta,
                relative,
                verdict: verdict(base, n, better, options),
            }
        })
        .collect();
    Row {
        name: name.to_owned(),
        unit,
        better,
        base,
        cells,
    }
}

/// Better or worse only when the intervals do not overlap, the runs' spreads do not overlap
/// (sides of several runs), and the change reaches the minimum.
fn verdict(
    base: Option<Estimate>,
    new: Option<Estimate>,
    better: Better,
    options: CompareOptions,
) -> Verdict {
    let (Some(b), Some(n)) = (base, new) else {
        return Verdict::Missing;
    };
    let apart = n.lo > b.hi || n.hi < b.lo;
    let spreads_apart = match (b.spread, n.spread) {
        (Some((blo, bhi)), Some((nlo, nhi))) => nlo > bhi || nhi < blo,
        _ => true,
    };
    let change = if b.value == 0.0 {
        if n.value == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        ((n.value - b.value) / b.value).abs()
    };
    if !(apart && spreads_apart && change >= options.min_change && n.value != b.value) {
        return Verdict::NoChange;
    }
    match (n.value > b.value, better) {
        (true, Better::Higher) | (false, Better::Lower) => Verdict::Better,
        _ => Verdict::Worse,
    }
}

/// Every metric with values on the baseline and at least one new side, key metrics first.
fn metric_names(base: &Side, new: &[Side]) -> Vec<String> {
    let has = |side: &Side, name: &str| {
        side.reports
            .iter()
            .any(|r| r.metrics.get(name).is_some_and(|m| m.count > 0))
    };
    let mut names: Vec<String> = Vec::new();
    for report in &base.reports {
        for name in report.metrics.keys() {
            // The generator's own lag says nothing about the server.
            if name == "schedule_lag" {
                continue;
            }
            if !names.contains(name) && has(base, name) && new.iter().any(|s| has(s, name)) {
                names.push(name.clone());
            }
        }
    }
    names.sort_by_key(|n| {
        (
            KEY_METRICS
                .iter()
                .position(|k| k == n)
                .unwrap_or(KEY_METRICS.len()),
            n.clone(),
        )
    });
    names
}

fn unit_of(base: &Side, name: &str) -> &'static str {
    let unit = base
        .reports
        .iter()
        .find_map(|r| r.metrics.get(name).map(|m| m.unit.as_str()));
    if unit == Some("ratio") {
        "ratio"
    } else {
        "ms"
    }
}

/// The metric's histogram of one report, in display units per raw unit.
fn histogram(metric: &Metric) -> Option<Histogram> {
    (metric.count > 0)
        .then(|| Histogram::from_base64(&metric.hdr).ok())
        .flatten()
}

/// Raw histogram units (nanoseconds, millionths) per displayed unit (ms, ratio).
const RAW_PER_UNIT: f64 = 1e6;

fn quantile_estimate(side: &Side, name: &str, q: f64) -> Option<Estimate> {
    let runs: Vec<Histogram> = side
        .reports
        .iter()
        .filter_map(|r| r.metrics.get(name).and_then(histogram))
        .collect();
    let mut pooled = Histogram::new();
    runs.iter().for_each(|h| pooled.merge(h));
    if pooled.is_empty() {
        return None;
    }
    let (lo, hi) = pooled.quantile_interval(q, Z95);
    let scale = |v: u64| v as f64 / RAW_PER_UNIT;
    Some(Estimate {
        value: scale(pooled.quantile_value(q)),
        lo: scale(lo),
        hi: scale(hi),
        spread: spread(runs.iter().map(|h| scale(h.quantile_value(q)))),
    })
}

fn spread(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let values: Vec<f64> = values.collect();
    (values.len() >= 2).then(|| {
        values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    })
}

/// The whole seconds of a report's measured window (warm-up and the partial last second out).
fn measured_seconds(report: &Report) -> impl Iterator<Item = &crate::TimelineRow> {
    let from = report.run.warmup_s.ceil() as u64;
    let to = (report.run.warmup_s + report.run.duration_s).floor() as u64;
    report
        .timeline
        .iter()
        .filter(move |t| t.t_s >= from && t.t_s < to)
}

/// A rate: the reports' own figure (pooled as the mean over runs), with an interval from the
/// per-second counts of the measured window (mean ± 1.96 standard errors).
fn rate_estimate(
    side: &Side,
    pick: fn(&crate::TimelineRow) -> u64,
    total: fn(&Report) -> f64,
) -> Option<Estimate> {
    if side.reports.is_empty() {
        return None;
    }
    let value = side.reports.iter().map(total).sum::<f64>() / side.reports.len() as f64;
    let per_second: Vec<f64> = side
        .reports
        .iter()
        .flat_map(measured_seconds)
        .map(|t| pick(t) as f64)
        .collect();
    let (lo, hi) = if per_second.len() >= MIN_RATE_SECONDS {
        let n = per_second.len() as f64;
        let mean = per_second.iter().sum::<f64>() / n;
        let var = per_second.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = Z95 * (var / n).sqrt();
        (value - half, value + half)
    } else {
        (value, value)
    };
    Some(Estimate {
        value,
        lo,
        hi,
        spread: spread(side.reports.iter().map(total)),
    })
}

/// The success rate over every run of the side, in percent, with its Wilson score interval.
fn success_estimate(side: &Side) -> Option<Estimate> {
    let (ok, failed) = side.reports.iter().fold((0u64, 0u64), |(o, f), r| {
        (o + r.totals.succeeded, f + r.totals.failed)
    });
    let n = (ok + failed) as f64;
    if n == 0.0 {
        return None;
    }
    let p = ok as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(Estimate {
        value: 100.0 * p,
        lo: 100.0 * (centre - half),
        hi: 100.0 * (centre + half),
        spread: spread(side.reports.iter().map(|r| 100.0 * r.success_ratio())),
    })
}

fn notes(base: &Side, new: &[Side]) -> Vec<String> {
    let mut notes = Vec::new();
    let first = |s: &Side| s.reports.first().map(|r| r.run.clone());
    let Some(b) = first(base) else {
        return notes;
    };
    for side in new {
        let Some(n) = first(side) else { continue };
        if n.protocol != b.protocol {
            notes.push(format!(
                "{}: protocol {} differs from the baseline's {}",
                side.label, n.protocol, b.protocol
            ));
        }
        if n.pattern != b.pattern {
            notes.push(format!(
                "{}: the load pattern differs from the baseline's",
                side.label
            ));
        }
    }
    notes
}

/// A `--fail-if` rule: `NAME>CHANGE` or `NAME<CHANGE`, where CHANGE is a signed relative change
/// (`+10%`, `-5%`) or an absolute one in the row's unit (`+50ms`, `-20`, `+0.5`).
#[derive(Debug, Clone, PartialEq)]
pub struct FailRule {
    /// The rule as written.
    pub text: String,
    /// The row it tests.
    pub name: String,
    /// `true` for `>`: trips when the change exceeds `limit`; `false` for `<`: trips when the
    /// change is below it.
    pub above: bool,
    /// The limit.
    pub limit: f64,
    /// `true` when `limit` is relative (a fraction of the base value).
    pub relative: bool,
}

/// A malformed `--fail-if` rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rule '{rule}': {why} (use e.g. 'ttft.p95>+10%', 'requests_per_s<-5%' or 'e2e.p99>+200ms')")]
pub struct RuleError {
    rule: String,
    why: &'static str,
}

impl std::str::FromStr for FailRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| RuleError {
            rule: text.to_owned(),
            why,
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, above) = match (compact.find('>'), compact.find('<')) {
            (Some(i), None) => (i, true),
            (None, Some(i)) => (i, false),
            _ => return Err(err("it needs exactly one of > or <")),
        };
        let name = &compact[..at];
        let mut limit = &compact[at + 1..];
        if name.is_empty() {
            return Err(err("no row name before the comparison"));
        }
        let relative = limit.ends_with('%');
        if relative {
            limit = &limit[..limit.len() - 1];
        } else if let Some(ms) = limit.strip_suffix("ms") {
            limit = ms;
        }
        let value: f64 = limit
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err("the limit is not a number"))?;
        Ok(FailRule {
            text: text.to_owned(),
            name: name.to_owned(),
            above,
            limit: if relative { value / 100.0 } else { value },
            relative,
        })
    }
}

/// A rule that tripped.
#[derive(Debug, Clone, PartialEq)]
pub struct Tripped {
    /// The rule as written.
    pub rule: String,
    /// The new side it tripped on.
    pub side: String,
    /// What was observed, in words.
    pub observed: String,
}

/// The rules that trip on any new side, or the name of a rule's unknown row. Rules test the
/// observed change (pooled values), not the verdict, so CI gates stay predictable.
pub fn check_rules(comparison: &Comparison, rules: &[FailRule]) -> Result<Vec<Tripped>, String> {
    let mut tripped = Vec::new();
    for rule in rules {
        let Some(row) = comparison.rows.iter().find(|r| r.name == rule.name) else {
            let known: Vec<&str> = comparison.rows.iter().map(|r| r.name.as_str()).collect();
            return Err(format!(
                "--fail-if '{}': no row '{}' in this comparison (rows: {})",
                rule.text,
                rule.name,
                known.join(", ")
            ));
        };
        for (cell, (side, _)) in row.cells.iter().zip(&comparison.new) {
            let change = if rule.relative {
                cell.relative
            } else {
                cell.delta
            };
            let Some(change) = change else { continue };
            let trips = if rule.above {
                change > rule.limit
            } else {
                change < rule.limit
            };
            if trips {
                tripped.push(Tripped {
                    rule: rule.text.clone(),
                    side: side.clone(),
                    observed: format!(
                        "{} went from {} to {} ({})",
                        row.name,
                        value_text(row.base.map(|e| e.value), row.unit),
                        value_text(cell.new.map(|e| e.value), row.unit),
                        change_text(cell)
                    ),
                });
            }
        }
    }
    Ok(tripped)
}

fn value_text(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) => match unit {
            "%" => format!("{v:.2} %"),
            "ratio" => format!("{v:.3}"),
            "ms" if v.abs() >= 100.0 => format!("{v:.0} ms"),
            "ms" => format!("{v:.2} ms"),
            _ => format!("{v:.1} {unit}"),
        },
    }
}

fn delta_text(d: Option<f64>, unit: &str) -> String {
    match d {
        None => "-".to_owned(),
        Some(d) => {
            let sign = if d >= 0.0 { "+" } else { "" };
            match unit {
                "%" => format!("{sign}{d:.2} pp"),
                "ratio" => format!("{sign}{d:.3}"),
                "ms" if d.abs() >= 100.0 => format!("{sign}{d:.0}"),
                "ms" => format!("{sign}{d:.2}"),
                _ => format!("{sign}{d:.1}"),
            }
        }
    }
}

fn change_text(cell: &Cell) -> String {
    match cell.relative {
        Some(r) if r.is_finite() => format!("{:+.1} %", 100.0 * r),
        _ => "-".to_owned(),
    }
}

fn spread_text(e: Option<Estimate>, unit: &str) -> String {
    match e.and_then(|e| e.spread) {
        Some((lo, hi)) => format!(
            " [{}..{}]",
            value_text(Some(lo), unit),
            value_text(Some(hi), unit)
        ),
        None => String::new(),
    }
}

fn side_title(label: &str, runs: usize) -> String {
    if runs == 1 {
        label.to_owned()
    } else {
        format!("{label} ({runs} runs pooled)")
    }
}

/// Lines of the terminal table: one block per new side.
pub fn render_text(c: &Comparison) -> String {
    let mut out = String::new();
    for (i, (label, runs)) in c.new.iter().enumerate() {
        let _ = writeln!(
            out,
            "compare  base: {}  ·  new: {}",
            side_title(&c.base.0, c.base.1),
            side_title(label, *runs)
        );
        let _ = writeln!(
            out,
            "{:<24} {:>22} {:>22} {:>11} {:>9}  verdict",
            "", "base", "new", "delta", "change"
        );
        for row in &c.rows {
            let cell = &row.cells[i];
            let _ = writeln!(
                out,
                "{:<24} {:>22} {:>22} {:>11} {:>9}  {}",
                row.name,
                format!(
                    "{}{}",
                    value_text(row.base.map(|e| e.value), row.unit),
                    spread_text(row.base, row.unit)
                ),
                format!(
                    "{}{}",
                    value_text(cell.new.map(|e| e.value), row.unit),
                    spread_text(cell.new, row.unit)
                ),
                delta_text(cell.delta, row.unit),
                change_text(cell),
                cell.verdict.words()
            );
        }
        out.push('\n');
    }
    for note in &c.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out.push_str(VERDICT_RULE);
    out.push('\n');
    out
}

/// How verdicts are reached, printed under every table.
const VERDICT_RULE: &str = "verdict: better or worse when the 95 % intervals (percentiles: order statistics of the histograms; rates: per-second variation; success: Wilson) and the runs' spreads do not overlap and the change is at least the minimum (--min-change)";

/// The comparison as GitHub Markdown.
pub fn render_markdown(c: &Comparison) -> String {
    let mut out = String::new();
    for (i, (label, runs)) in c.new.iter().enumerate() {
        let _ = writeln!(
            out,
            "### {} → {}\n",
            escape_markdown(&side_title(&c.base.0, c.base.1)),
            escape_markdown(&side_title(label, *runs))
        );
        out.push_str("| metric | base | new | delta | change | verdict |\n");
        out.push_str("|---|---:|---:|---:|---:|---|\n");
        for row in &c.rows {
            let cell = &row.cells[i];
            let verdict = match cell.verdict {
                Verdict::Better => "**better**",
                Verdict::Worse => "**worse**",
                v => v.words(),
            };
            let _ = writeln!(
                out,
                "| {} | {}{} | {}{} | {} | {} | {} |",
                row.name,
                value_text(row.base.map(|e| e.value), row.unit),
                spread_text(row.base, row.unit),
                value_text(cell.new.map(|e| e.value), row.unit),
                spread_text(cell.new, row.unit),
                delta_text(cell.delta, row.unit),
                change_text(cell),
                verdict
            );
        }
        out.push('\n');
    }
    for note in &c.notes {
        let _ = writeln!(out, "> note: {}", escape_markdown(note));
    }
    let _ = writeln!(out, "\n_{VERDICT_RULE}._");
    out
}

/// The comparison as one self-contained HTML page (no script, no external resource).
pub fn render_html(c: &Comparison) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>loadkit compare</title>\n<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child,td:last-child{text-align:left}.better{color:#080;font-weight:bold}.worse{color:#b00;font-weight:bold}</style></head><body>\n<h1>loadkit compare</h1>\n",
    );
    for (i, (label, runs)) in c.new.iter().enumerate() {
        let _ = writeln!(
            out,
            "<h2>{} &rarr; {}</h2>\n<table><tr><th>metric</th><th>base</th><th>new</th><th>delta</th><th>change</th><th>verdict</th></tr>",
            escape(&side_title(&c.base.0, c.base.1)),
            escape(&side_title(label, *runs))
        );
        for row in &c.rows {
            let cell = &row.cells[i];
            let class = match cell.verdict {
                Verdict::Better => "better",
                Verdict::Worse => "worse",
                _ => "same",
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                escape(&row.name),
                value_text(row.base.map(|e| e.value), row.unit),
                spread_text(row.base, row.unit),
                value_text(cell.new.map(|e| e.value), row.unit),
                spread_text(cell.new, row.unit),
                delta_text(cell.delta, row.unit),
                change_text(cell),
                cell.verdict.words()
            );
        }
        out.push_str("</table>\n");
    }
    for note in &c.notes {
        let _ = writeln!(out, "<p>note: {}</p>", escape(note));
    }
    let _ = writeln!(out, "<p><small>{VERDICT_RULE}.</small></p>\n</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small deterministic generator (xorshift) for jittered samples.
    struct Jitter(u64);

    impl Jitter {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 1_000_000) as f64 / 1_000_000.0
        }
    }

    /// A report of `n` requests with TTFT around `ttft_ms` and E2E around 4× it (±20 %
    /// uniform jitter), 20 s at about `rate` completions per second.
    fn report(seed: u64, n: u64, ttft_ms: f64, rate: u64, failed: u64) -> Report {
        let mut jitter = Jitter(seed);
        let mut ttft = Histogram::new();
        let mut e2e = Histogram::new();
        for _ in 0..n {
            let t = ttft_ms * (0.8 + 0.4 * jitter.next());
            ttft.record_value((t * 1e6) as u64);
            e2e.record_value((4.0 * t * 1e6) as u64);
        }
        let metric = |h: &Histogram| serde_json::to_value(Metric::from_histogram_ms(h)).unwrap();
        let timeline: Vec<_> = (0..20)
            .map(|t| {
                let c = rate + (jitter.next() * 4.0) as u64;
                json!({"t_s": t, "intended": c, "started": c, "completed": c, "failed": 0,
                       "in_flight": 3, "output_tokens": 10 * c})
            })
            .collect();
        let text = json!({
            "schema_version": 1, "loadkit_version": "0.1.0",
            "run": {"protocol": "openai-chat", "target": "http://127.0.0.1:1/v1",
                    "pattern": {"kind": "constant", "loop": "open", "rate": rate},
                    "started_at": "2026-12-03T00:00:00Z", "duration_s": 20.0, "warmup_s": 0.0,
                    "stop_reason": "duration", "interrupted": false},
            "totals": {"requests": n + failed, "succeeded": n, "failed": failed, "missed": 0},
            "throughput": {"requests_per_s": rate as f64 + 1.5, "output_tokens_per_s": 10.0 * rate as f64 + 15.0,
                           "input_tokens_per_s": 0.0},
            "tokens": {"input_total": 0, "output_total": 10 * n, "source": "server"},
            "metrics": {"ttft": metric(&ttft), "e2e": metric(&e2e)},
            "errors": [], "timeline": timeline,
            "generator": {"lag_p99_ms": 0.1, "missed": 0, "limited": false, "content_events": 0, "bytes": 0}
        });
        Report::from_json(&text.to_string()).unwrap()
    }

    fn side(label: &str, reports: Vec<Report>) -> Side {
        Side {
            label: label.to_owned(),
            reports,
        }
    }

    fn verdicts(c: &Comparison) -> Vec<(String, Verdict)> {
        c.rows
            .iter()
            .map(|r| (r.name.clone(), r.cells[0].verdict))
            .collect()
    }

    /// A `discover` report: capacity `good`, first bad level `bad`.
    fn discovered(good: f64, bad: Option<f64>) -> Report {
        let mut r = report(7, 500, 50.0, 20, 0);
        r.sections.insert(
            "discovery".to_owned(),
            json!({"unit": "rps", "max_load_meeting_targets": good, "first_bad_load": bad,
                   "knee": good, "cause": null, "steps": []}),
        );
        r
    }

    #[test]
    fn capacities_differ_only_when_their_brackets_are_apart() {
        let base = side("a", vec![discovered(40.0, Some(44.0))]);
        let c = compare(
            &base,
            &[
                side("up", vec![discovered(44.0, Some(48.0))]),
                side("overlap", vec![discovered(42.0, Some(46.0))]),
                side("down", vec![discovered(30.0, Some(40.0))]),
                side("plain", vec![report(3, 500, 50.0, 20, 0)]),
            ],
            CompareOptions::default(),
        );
        let row = &c.rows[0];
        assert_eq!((row.name.as_str(), row.unit), ("capacity", "req/s"));
        let v: Vec<Verdict> = row.cells.iter().map(|c| c.verdict).collect();
        assert_eq!(
            v,
            [
                Verdict::Better,
                Verdict::NoChange,
                Verdict::Worse,
                Verdict::Missing
            ]
        );
        assert_eq!(row.cells[0].relative, Some(0.1));
        // Plain reports have no capacity row.
        let c = compare(
            &side("a", vec![report(1, 500, 50.0, 20, 0)]),
            &[side("b", vec![report(2, 500, 50.0, 20, 0)])],
            CompareOptions::default(),
        );
        assert_ne!(c.rows[0].name, "capacity");
    }

    #[test]
    fn two_runs_of_the_same_server_show_no_significant_change() {
        let c = compare(
            &side("a", vec![report(1, 2000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 2000, 50.0, 100, 0)])],
            CompareOptions::default(),
        );
        for (name, v) in verdicts(&c) {
            assert_eq!(v, Verdict::NoChange, "{name}");
        }
        let names: Vec<_> = c.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "requests_per_s",
                "output_tokens_per_s",
                "success",
                "ttft.p50",
                "ttft.p95",
                "ttft.p99",
                "e2e.p50",
                "e2e.p95",
                "e2e.p99"
            ]
        );
    }

    #[test]
    fn a_server_thirty_percent_slower_is_worse_in_ttft_and_e2e() {
        let c = compare(
            &side("a", vec![report(1, 2000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 2000, 65.0, 100, 0)])],
            CompareOptions::default(),
        );
        for (name, v) in verdicts(&c) {
            let expected = if name.starts_with("ttft.") || name.starts_with("e2e.") {
                Verdict::Worse
            } else {
                Verdict::NoChange
            };
            assert_eq!(v, expected, "{name}");
        }
        let p50 = c.rows.iter().find(|r| r.name == "ttft.p50").unwrap();
        let rel = p50.cells[0].relative.unwrap();
        assert!((0.27..0.33).contains(&rel), "{rel}");
        // And the other way round it is better.
        let c = compare(
            &side("b", vec![report(2, 2000, 65.0, 100, 0)]),
            &[side("a", vec![report(1, 2000, 50.0, 100, 0)])],
            CompareOptions::default(),
        );
        assert_eq!(c.rows[3].cells[0].verdict, Verdict::Better);
    }

    #[test]
    fn a_small_real_change_stays_below_the_minimum_and_few_samples_decide_nothing() {
        // 3 % slower over many samples: real, but under the 5 % minimum.
        let c = compare(
            &side("a", vec![report(1, 20_000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 20_000, 51.5, 100, 0)])],
            CompareOptions::default(),
        );
        assert_eq!(c.rows[3].cells[0].verdict, Verdict::NoChange);
        let c = compare(
            &side("a", vec![report(1, 20_000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 20_000, 51.5, 100, 0)])],
            CompareOptions { min_change: 0.01 },
        );
        assert_eq!(c.rows[3].cells[0].verdict, Verdict::Worse);
        // 10 % slower on 8 requests each: the p99 intervals overlap.
        let c = compare(
            &side("a", vec![report(1, 8, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 8, 55.0, 100, 0)])],
            CompareOptions::default(),
        );
        let p99 = c.rows.iter().find(|r| r.name == "ttft.p99").unwrap();
        assert_eq!(p99.cells[0].verdict, Verdict::NoChange);
    }

    #[test]
    fn success_and_throughput_verdicts_follow_their_intervals() {
        let c = compare(
            &side("a", vec![report(1, 2000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 1900, 50.0, 60, 100)])],
            CompareOptions::default(),
        );
        let get = |n: &str| c.rows.iter().find(|r| r.name == n).unwrap().cells[0].verdict;
        assert_eq!(get("success"), Verdict::Worse);
        assert_eq!(get("requests_per_s"), Verdict::Worse);
        let success = c.rows.iter().find(|r| r.name == "success").unwrap();
        assert_eq!(success.cells[0].new.unwrap().value, 95.0);
    }

    #[test]
    fn pooled_runs_show_their_spread_and_overlapping_spreads_are_no_change() {
        let base = side(
            "a",
            vec![report(1, 500, 50.0, 100, 0), report(3, 500, 60.0, 100, 0)],
        );
        let new = side(
            "b",
            vec![report(2, 500, 56.0, 100, 0), report(4, 500, 66.0, 100, 0)],
        );
        let c = compare(&base, &[new], CompareOptions::default());
        let p50 = c.rows.iter().find(|r| r.name == "ttft.p50").unwrap();
        let (lo, hi) = p50.base.unwrap().spread.unwrap();
        assert!(
            (49.0..51.0).contains(&lo) && (59.0..61.0).contains(&hi),
            "{lo}..{hi}"
        );
        // Pooled medians differ by ~10 %, but the runs' spreads overlap.
        assert_eq!(p50.cells[0].verdict, Verdict::NoChange);
        assert_eq!(c.base.1, 2);
        assert!(render_text(&c).contains("(2 runs pooled)"));
    }

    #[test]
    fn fail_if_rules_parse_and_trip_on_the_observed_change() {
        let rule: FailRule = "ttft.p95 > +10%".parse().unwrap();
        assert_eq!(
            rule,
            FailRule {
                text: "ttft.p95 > +10%".to_owned(),
                name: "ttft.p95".to_owned(),
                above: true,
                limit: 0.1,
                relative: true
            }
        );
        let abs: FailRule = "e2e.p99>+200ms".parse().unwrap();
        assert!(!abs.relative && abs.limit == 200.0);
        assert!("ttft.p95".parse::<FailRule>().is_err());
        assert!("ttft.p95>x%".parse::<FailRule>().is_err());
        assert!(">5%".parse::<FailRule>().is_err());
        assert!("a<5>3".parse::<FailRule>().is_err());

        let c = compare(
            &side("a", vec![report(1, 2000, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 2000, 65.0, 100, 0)])],
            CompareOptions::default(),
        );
        let rules: Vec<FailRule> = ["ttft.p95>+10%", "ttft.p95>+40%", "requests_per_s<-5%"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let tripped = check_rules(&c, &rules).unwrap();
        assert_eq!(tripped.len(), 1);
        assert_eq!(tripped[0].rule, "ttft.p95>+10%");
        assert!(
            tripped[0].observed.contains("ttft.p95 went from"),
            "{:?}",
            tripped[0]
        );
        let unknown = check_rules(&c, &["tfft.p95>+1%".parse().unwrap()]).unwrap_err();
        assert!(unknown.contains("no row 'tfft.p95'") && unknown.contains("ttft.p95"));
    }

    #[test]
    fn renderings_escape_labels() {
        let c = compare(
            &side("<a>|x", vec![report(1, 100, 50.0, 100, 0)]),
            &[side("b", vec![report(2, 100, 65.0, 100, 0)])],
            CompareOptions::default(),
        );
        let html = render_html(&c);
        assert!(html.contains("&lt;a&gt;|x") && !html.contains("<a>"));
        assert!(!html.contains("<script") && !html.contains("http"));
        let md = render_markdown(&c);
        assert!(md.contains("&lt;a&gt;\\|x"), "{md}");
        assert!(md.contains("| ttft.p50 |"));
        assert!(render_text(&c).contains("worse"));
    }
}
