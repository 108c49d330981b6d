//! One step of a multi-run command (`discover`, `sweep rate`, `run --repeat`): a full `run`
//! into a directory of its own, read back as a report, and the figures every such command
//! prints and keeps per step.

use std::path::PathBuf;
use std::time::Duration;

use loadkit_core::TimelineEntry;
use loadkit_report::Report;
use serde_json::{json, Value};

use crate::args::RunArgs;
use crate::{run, Fatal};

/// A step that ran: its report and the run's exit code.
pub(crate) struct StepRun {
    pub(crate) report: Report,
    pub(crate) code: u8,
}

/// Runs `args` quietly into `dir` (its report there, no checkpoints) and reads the report
/// back. `None`: nothing ran (`--dry-run`).
pub(crate) async fn run_step(mut args: RunArgs, dir: PathBuf) -> Result<Option<StepRun>, Fatal> {
    args.checkpoint_every = Duration::ZERO;
    args.target.out = Some(dir.clone());
    args.target.force = true;
    args.target.quiet = true;
    args.as_step = true;
    let Some(ready) = run::prepare(args).await? else {
        return Ok(None);
    };
    let done = ready.execute().await?;
    if let Err(e) = &done.written {
        return Err(Fatal::usage(format!(
            "could not write the step's report: {e}"
        )));
    }
    let text = std::fs::read_to_string(dir.join("report.json"))
        .map_err(|e| Fatal::usage(format!("cannot read the step's report: {e}")))?;
    let report = Report::from_json(&text).map_err(Fatal::usage)?;
    Ok(Some(StepRun {
        report,
        code: done.code,
    }))
}

/// The seconds of a report's measured window, as the engine's timeline entries (what
/// [`loadkit_core::capacity::saturation`] reads).
pub(crate) fn measured(report: &Report) -> Vec<TimelineEntry> {
    let warmup = report.run.warmup_s;
    report
        .timeline
        .iter()
        .filter(|r| r.t_s as f64 >= warmup.ceil())
        .take(report.run.duration_s.floor() as usize)
        .map(|r| TimelineEntry {
            t_s: r.t_s,
            started: r.started,
            completed: r.completed,
            failed: r.failed,
            in_flight: r.in_flight,
            ttft_p50: r.ttft_p50.map(|ms| Duration::from_secs_f64(ms / 1e3)),
            ..TimelineEntry::default()
        })
        .collect()
}

/// The mean in-flight count over the measured seconds (`None` without any).
pub(crate) fn concurrency(measured: &[TimelineEntry]) -> Option<f64> {
    (!measured.is_empty())
        .then(|| measured.iter().map(|r| r.in_flight as f64).sum::<f64>() / measured.len() as f64)
}

/// Arrivals started per second of the measured window.
pub(crate) fn started_rps(measured: &[TimelineEntry]) -> Option<f64> {
    (!measured.is_empty())
        .then(|| measured.iter().map(|r| r.started as f64).sum::<f64>() / measured.len() as f64)
}

/// A metric's p-quantile in ms (`p50`, `p95`), or `None`.
pub(crate) fn quantile(report: &Report, metric: &str, p: &str) -> Option<f64> {
    let m = report.metrics.get(metric)?;
    match p {
        "p50" => m.p50,
        "p90" => m.p90,
        "p95" => m.p95,
        "p99" => m.p99,
        "mean" => m.mean,
        _ => None,
    }
}

/// `12.3`, or `-` for nothing.
pub(crate) fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A level without trailing zeros.
pub(crate) fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A step's headline figures, as kept in `sweep.steps[]`: p50 and p95 of TTFT, ITL and E2E,
/// success, throughput, goodput, the server's own series by role (mean and max, when
/// `--server-metrics` scraped any), and the full `metrics` (with histograms).
pub(crate) fn figures(report: &Report) -> Value {
    let pair = |name: &str| json!({"p50": quantile(report, name, "p50"), "p95": quantile(report, name, "p95")});
    let server: serde_json::Map<String, Value> = report
        .server_metrics
        .iter()
        .flat_map(|s| s.series.values())
        .filter(|s| s.role != "user")
        .map(|s| {
            (
                s.role.clone(),
                json!({"mean": s.mean, "max": s.max, "unit": s.unit}),
            )
        })
        .collect();
    json!({
        "server": server,
        "achieved_rps": report.throughput.requests_per_s,
        "success_ratio": report.success_ratio(),
        "ttft_ms": pair("ttft"),
        "itl_ms": pair("itl"),
        "e2e_ms": pair("e2e"),
        "output_tokens_per_s": report.throughput.output_tokens_per_s,
        "goodput_per_s": report.slo.as_ref().and_then(|s| s.goodput_per_s),
        "slo_passed": report.slo.as_ref().map(|s| s.passed),
        "requests": report.totals.requests,
        "failed": report.totals.failed,
        "metrics": report.metrics,
    })
}
