//! `loadkit run --repeat N`: the same run N times, one after another, each with its own report
//! in `--out/runs/NN/`, then the spread of every key figure (median, coefficient of variation,
//! min, max) and `report.json` = the median run's report plus a `repeat` key that
//! `loadkit compare` expands into all N runs.

use std::collections::BTreeMap;

use loadkit_report::Report;
use serde_json::json;

use crate::args::RunArgs;
use crate::steps::{cell, quantile, run_step, StepRun};
use crate::{exit, run, Fatal};

/// The figures whose spread is reported: throughput, success, then p50/p95/p99 of every
/// metric all runs recorded.
fn figures(report: &Report) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    out.insert(
        "requests_per_s".to_owned(),
        report.throughput.requests_per_s,
    );
    out.insert(
        "output_tokens_per_s".to_owned(),
        report.throughput.output_tokens_per_s,
    );
    out.insert("success".to_owned(), report.success_ratio());
    for (name, m) in &report.metrics {
        for (p, v) in [("p50", m.p50), ("p95", m.p95), ("p99", m.p99)] {
            if let Some(v) = v {
                out.insert(format!("{name}.{p}"), v);
            }
        }
    }
    out
}

/// Median (the mean of the middle two for an even count), mean, and the coefficient of
/// variation (sample standard deviation over the mean; 0 when the mean is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    cv: f64,
    min: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Spread {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    Spread {
        median,
        cv: if mean == 0.0 { 0.0 } else { var.sqrt() / mean },
        min: sorted[0],
        max: sorted[n - 1],
    }
}

/// The run whose headline latency (TTFT p50, else E2E p50, else the request rate) is the
/// median of the runs (the lower one of an even count).
fn median_run(reports: &[Report]) -> usize {
    let key = |r: &Report| {
        quantile(r, "ttft", "p50")
            .or_else(|| quantile(r, "e2e", "p50"))
            .unwrap_or(r.throughput.requests_per_s)
    };
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by(|&a, &b| key(&reports[a]).total_cmp(&key(&reports[b])));
    order[(order.len() - 1) / 2]
}

pub(crate) async fn repeat(args: RunArgs) -> Result<u8, Fatal> {
    if args.service.is_some() {
        return Err(Fatal::usage("--repeat does not apply to --service runs"));
    }
    run::check_out(&args.target)?;
    let out_dir = args.target.out.clone().unwrap_or_else(run::default_out_dir);
    let n = args.repeat;
    let quiet = args.target.quiet;
    if !quiet {
        eprintln!("running the same test {n} times, one after another");
    }
    println!(
        "{:>4}  {:>9}  {:>7}  {:>9}  {:>9}  {:>8}  {:>9}  {:>9}  {:>10}",
        "run",
        "done/s",
        "ok %",
        "ttft p50",
        "ttft p95",
        "itl p50",
        "e2e p50",
        "e2e p95",
        "out tok/s"
    );
    let mut reports = Vec::new();
    let mut code = exit::OK;
    for i in 1..=n {
        let mut one = args.clone();
        one.repeat = 1;
        let dir = out_dir.join("runs").join(format!("{i:02}"));
        let Some(StepRun { report, code: c }) = run_step(one, dir).await? else {
            return Ok(exit::OK);
        };
        let q = |m: &str, p: &str| cell(quantile(&report, m, p), 1);
        println!(
            "{i:>4}  {:>9.2}  {:>7.1}  {:>9}  {:>9}  {:>8}  {:>9}  {:>9}  {:>10.1}",
            report.throughput.requests_per_s,
            report.success_ratio() * 100.0,
            q("ttft", "p50"),
            q("ttft", "p95"),
            q("itl", "p50"),
            q("e2e", "p50"),
            q("e2e", "p95"),
            report.throughput.output_tokens_per_s,
        );
        for t in report
            .slo
            .iter()
            .flat_map(|s| s.targets.iter().filter(|t| !t.passed))
        {
            eprintln!(
                "{}",
                crate::secret::redact(&format!("run {i}: SLO failed: {}: {}", t.expr, t.detail))
            );
        }
        let interrupted = report.run.interrupted;
        reports.push(report);
        // The first run that failed a rule sets the exit code; an interrupted one ends it all.
        if code == exit::OK {
            code = c;
        }
        if interrupted {
            code = exit::INTERRUPTED;
            break;
        }
    }
    let per_run: Vec<BTreeMap<String, f64>> = reports.iter().map(figures).collect();
    let mut rows: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    println!(
        "\n{:<22}  {:>12}  {:>7}  {:>12}  {:>12}",
        "figure", "median", "cv", "min", "max"
    );
    let names: Vec<String> = per_run
        .first()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    for name in names {
        let values: Vec<f64> = per_run
            .iter()
            .filter_map(|f| f.get(&name).copied())
            .collect();
        if values.len() != per_run.len() {
            continue;
        }
        let s = spread(&values);
        if ["requests_per_s", "success", "output_tokens_per_s"].contains(&name.as_str())
            || name.starts_with("ttft.")
            || name.starts_with("itl.")
            || name.starts_with("e2e.")
        {
            println!(
                "{name:<22}  {:>12.3}  {:>6.1}%  {:>12.3}  {:>12.3}",
                s.median,
                s.cv * 100.0,
                s.min,
                s.max
            );
        }
        rows.insert(
            name,
            json!({"median": s.median, "cv": s.cv, "min": s.min, "max": s.max, "values": values}),
        );
    }
    let median = median_run(&reports);
    let section = json!({
        "n": reports.len(),
        "asked": n,
        "median_run": median + 1,
        "runs": (1..=reports.len()).map(|i| format!("runs/{i:02}/report.json")).collect::<Vec<_>>(),
        "spread": rows,
    });
    println!(
        "\nRuns        {} of {n}; the report is run {}'s (the median TTFT p50)",
        reports.len(),
        median + 1
    );
    let mut report = reports.swap_remove(median);
    report.sections.insert("repeat".to_owned(), section);
    match run::write_report(&out_dir, &report, &args.target.format.0) {
        Ok(paths) => run::print_paths(&paths),
        Err(e) => {
            eprintln!("error: could not write the report: {e}");
            return Ok(exit::USAGE);
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_median_and_sample_cv() {
        let s = spread(&[10.0, 12.0, 14.0]);
        assert_eq!((s.median, s.min, s.max), (12.0, 10.0, 14.0));
        // Sample standard deviation 2 over the mean 12.
        assert!((s.cv - 2.0 / 12.0).abs() < 1e-12);
        assert_eq!(spread(&[1.0, 3.0]).median, 2.0);
        assert_eq!(spread(&[5.0]).cv, 0.0);
        assert_eq!(spread(&[0.0, 0.0]).cv, 0.0);
    }
}
