//! `loadkit discover`: runs step after step at rising load (rate, or users with
//! `--closed-loop`), judging each by the SLOs, the stop rules and over-saturation, bisects
//! between the last good and the first bad level, and reports the largest load that met every
//! target, the knee, and what broke. The search itself is `loadkit_core::capacity`.

use std::time::Instant;

use loadkit_core::capacity::{saturation, LoadUnit, Search, SearchConfig, Step};
use loadkit_report::Report;
use serde_json::json;

use crate::args::DiscoverArgs;
use crate::steps::{cell, concurrency, measured, quantile, run_step, trim, StepRun};
use crate::{exit, run, Fatal};

pub(crate) async fn discover(args: DiscoverArgs) -> Result<u8, Fatal> {
    let closed = args.run.load.users.is_some() || args.run.load.closed_loop;
    let unit = if closed {
        LoadUnit::Users
    } else {
        LoadUnit::Rps
    };
    if args.run.repeat > 1 {
        return Err(Fatal::usage(
            "--repeat applies to `loadkit run`; discover runs steps of its own",
        ));
    }
    if args.run.requests.is_some() || args.run.duration.is_some() {
        return Err(Fatal::usage(
            "discover runs steps of --step-duration: --duration and --requests do not apply",
        ));
    }
    if args.factor.is_nan() || args.factor <= 1.0 {
        return Err(Fatal::usage("--factor must be above 1"));
    }
    let start = args.start.unwrap_or(1.0);
    if start <= 0.0 || start > args.max_load {
        return Err(Fatal::usage(
            "--start must be above 0 and at most --max-load",
        ));
    }
    run::check_out(&args.run.target)?;
    let out_dir = args
        .run
        .target
        .out
        .clone()
        .unwrap_or_else(run::default_out_dir);
    let mut search = Search::new(SearchConfig {
        unit,
        start,
        factor: args.factor,
        tolerance: args.tolerance,
        max_load: args.max_load,
    });
    let began = Instant::now();
    let step_len = args.step_duration + args.step_warmup;
    let mut best: Option<(f64, Report)> = None;
    let mut stopped: Option<&str> = None;
    println!(
        "{:>4}  {:>9}  {:>9}  {:>9}  {:>7}  {:>9}  {:>9}  verdict",
        "step",
        unit.as_str(),
        "done/s",
        "in flight",
        "ok %",
        "ttft p95",
        "e2e p95"
    );
    while let Some(level) = search.next() {
        if began.elapsed() + step_len > args.budget {
            stopped = Some("budget");
            break;
        }
        let n = search.steps().len() + 1;
        let dir = out_dir
            .join("steps")
            .join(format!("{n:02}-{}{}", trim(level), unit.as_str()));
        let mut step_args = args.run.clone();
        if closed {
            step_args.load.users = Some(level as u32);
            step_args.load.rps = None;
        } else {
            step_args.load.rps = Some(level);
            step_args.load.users = None;
        }
        step_args.duration = Some(args.step_duration);
        step_args.warmup = args.step_warmup;
        let Some(StepRun { report, code }) = run_step(step_args, dir).await? else {
            return Ok(exit::OK);
        };
        let step = judge(&report, level, closed, code);
        println!(
            "{n:>4}  {:>9}  {:>9.2}  {:>9}  {:>7.1}  {:>9}  {:>9}  {}",
            trim(level),
            step.achieved_rps,
            step.concurrency
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}")),
            report.success_ratio() * 100.0,
            ms(&report, "ttft"),
            ms(&report, "e2e"),
            match &step.cause {
                None => "ok".to_owned(),
                Some(c) => crate::secret::redact(&format!("BAD: {c}")),
            }
        );
        if report.run.interrupted {
            stopped = Some("signal");
        }
        if step.ok && best.as_ref().is_none_or(|(l, _)| level > *l) {
            best = Some((level, report.clone()));
        }
        search.record(step);
        if stopped.is_some() {
            break;
        }
    }
    let d = search.result();
    let steps: Vec<serde_json::Value> = d
        .steps
        .iter()
        .map(|s| {
            json!({"load": s.load, "achieved_rps": s.achieved_rps, "latency_ms": s.latency_ms,
                   "concurrency": s.concurrency, "ok": s.ok, "cause": s.cause})
        })
        .collect();
    let concurrency_at = |load: Option<f64>| {
        load.and_then(|l| d.steps.iter().find(|s| s.load == l))
            .and_then(|s| s.concurrency)
    };
    let section = json!({
        "unit": d.unit.as_str(),
        "max_load_meeting_targets": d.max_load_meeting_targets,
        "knee": d.knee,
        "concurrency_at_max": concurrency_at(d.max_load_meeting_targets),
        "concurrency_at_knee": concurrency_at(d.knee),
        "first_bad_load": d.first_bad_load,
        "cause": d.cause,
        "steps": steps,
        "stopped_early": stopped,
        "elapsed_s": (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    let u = d.unit.as_str();
    println!();
    match d.max_load_meeting_targets {
        Some(l) => println!(
            "Capacity    {} {u}: the largest load that met every target{}",
            trim(l),
            concurrency_at(Some(l))
                .map_or_else(String::new, |c| format!(" ({c:.1} in flight on average)"))
        ),
        None => println!(
            "Capacity    none: even the first level ({} {u}) broke",
            trim(start)
        ),
    }
    if let Some(k) = d.knee {
        println!(
            "Knee        {} {u}: above it, latency grows faster than throughput",
            trim(k)
        );
    }
    match (d.first_bad_load, &d.cause) {
        (Some(b), Some(c)) => println!("First bad   {} {u}: {}", trim(b), crate::secret::redact(c)),
        (Some(b), None) => println!("First bad   {} {u}", trim(b)),
        (None, _) => println!("First bad   none up to {} {u}", trim(args.max_load)),
    }
    if let Some(why) = stopped {
        println!("Stopped     early ({why}): the bracket may be wider than --tolerance");
    }
    println!(
        "Steps       {} in {:.0} s",
        d.steps.len(),
        began.elapsed().as_secs_f64()
    );
    // The report of the largest good step, with the search beside it.
    let base = match best {
        Some((_, report)) => Some(report),
        None => first_report(&out_dir),
    };
    if let Some(mut report) = base {
        report.sections.insert("discovery".to_owned(), section);
        match run::write_report(&out_dir, &report, &args.run.target.format.0) {
            Ok(paths) => run::print_paths(&paths),
            Err(e) => {
                eprintln!("error: could not write the report: {e}");
                return Ok(exit::USAGE);
            }
        }
    }
    Ok(match stopped {
        Some("signal") => exit::INTERRUPTED,
        _ => exit::OK,
    })
}

/// The first step's report, for a search whose every step broke.
fn first_report(out_dir: &std::path::Path) -> Option<Report> {
    let mut dirs: Vec<_> = std::fs::read_dir(out_dir.join("steps"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let text = std::fs::read_to_string(dirs.first()?.join("report.json")).ok()?;
    Report::from_json(&text).ok()
}

/// One step's verdict: the run's own (SLOs, stop rules: its exit code), then over-saturation
/// read from its measured seconds.
fn judge(report: &Report, level: f64, closed: bool, code: u8) -> Step {
    let latency = |name: &str| report.metrics.get(name).and_then(|m| m.p95);
    // The knee is read from the SLO's first distribution when there is one.
    let slo_metric = report.slo.as_ref().and_then(|s| {
        s.targets
            .iter()
            .find_map(|t| t.expr.split_once('.').map(|(m, _)| m.to_owned()))
            .filter(|m| report.metrics.contains_key(m))
    });
    let latency_ms = slo_metric
        .as_deref()
        .and_then(latency)
        .or_else(|| latency("ttft"))
        .or_else(|| latency("e2e"));
    let failed_targets: Vec<String> = report
        .slo
        .iter()
        .flat_map(|s| s.targets.iter().filter(|t| !t.passed))
        .map(|t| format!("{}: {}", t.expr, t.detail))
        .collect();
    let measured = measured(report);
    let concurrency = concurrency(&measured);
    let cause = if !failed_targets.is_empty() {
        Some(failed_targets.join("; "))
    } else if code != exit::OK && report.run.stop_reason != "signal" {
        Some(format!("stopped by {}", report.run.stop_reason))
    } else {
        saturation(&measured, (!closed).then_some(level))
    };
    Step {
        load: level,
        achieved_rps: report.throughput.requests_per_s,
        latency_ms,
        ok: cause.is_none(),
        cause,
        concurrency,
    }
}

fn ms(report: &Report, name: &str) -> String {
    cell(quantile(report, name, "p95"), 1)
}
