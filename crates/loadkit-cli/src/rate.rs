//! `loadkit sweep rate`: full runs at one load after another (listed rates, listed user
//! counts, or GuideLLM's automatic profile: a synchronous and a throughput step bound the
//! range, then constant rates between), a row per step, and `report.json` with a `sweep`
//! section of `kind: "rate"` holding every step's figures and histograms.

use std::time::Instant;

use serde_json::{json, Value};

use crate::args::RateSweepArgs;
use crate::pattern::PatternKind;
use crate::steps::{self, cell, quantile, run_step, trim, StepRun};
use crate::{exit, run, Fatal};

/// How a step loads the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    /// One user, one request at a time.
    Synchronous,
    /// This many users at once, as fast as the server answers.
    Throughput(u32),
    /// Open-loop arrivals per second.
    Rate(f64),
    /// Closed-loop users.
    Users(u32),
}

impl Level {
    fn mode(self) -> &'static str {
        match self {
            Level::Synchronous => "synchronous",
            Level::Throughput(_) => "throughput",
            Level::Rate(_) => "rate",
            Level::Users(_) => "users",
        }
    }

    /// The step's load in its own unit (rps for rates, users otherwise).
    fn load(self) -> f64 {
        match self {
            Level::Synchronous => 1.0,
            Level::Throughput(n) | Level::Users(n) => f64::from(n),
            Level::Rate(r) => r,
        }
    }

    fn label(self) -> String {
        match self {
            Level::Synchronous => "sync".to_owned(),
            Level::Throughput(n) => format!("{n} users (throughput)"),
            Level::Rate(r) => format!("{} rps", trim(r)),
            Level::Users(n) => format!("{n} users"),
        }
    }

    fn dir_name(self, n: usize) -> String {
        match self {
            Level::Synchronous => format!("{n:02}-sync"),
            Level::Throughput(u) => format!("{n:02}-throughput-{u}users"),
            Level::Rate(r) => format!("{n:02}-{}rps", trim(r)),
            Level::Users(u) => format!("{n:02}-{u}users"),
        }
    }
}

/// The rates of the automatic profile: `n` evenly spaced strictly between the synchronous and
/// the throughput step's achieved rates (when the server does not scale, all at the
/// synchronous rate's level and above, never below 0.1 req/s).
fn between(sync_rps: f64, throughput_rps: f64, n: u32) -> Vec<f64> {
    let lo = sync_rps.max(0.1);
    let hi = throughput_rps.max(lo);
    (1..=n)
        .map(|i| {
            let r = lo + (hi - lo) * f64::from(i) / f64::from(n + 1);
            (r * 1000.0).round() / 1000.0
        })
        .map(|r| r.max(0.1))
        .collect()
}

pub(crate) async fn sweep_rate(args: RateSweepArgs) -> Result<u8, Fatal> {
    if args.run.repeat > 1 {
        return Err(Fatal::usage(
            "--repeat applies to `loadkit run`; sweep rate runs steps of its own",
        ));
    }
    if args.run.requests.is_some() || args.run.duration.is_some() {
        return Err(Fatal::usage(
            "sweep rate runs steps of --step-duration: --duration and --requests do not apply",
        ));
    }
    if !matches!(
        args.run.load.pattern,
        PatternKind::Constant | PatternKind::Poisson
    ) {
        return Err(Fatal::usage(
            "sweep rate sets the rate or the users of each step: --pattern must be constant or poisson",
        ));
    }
    if args.run.load.users.is_some() || args.run.load.rps.is_some() {
        return Err(Fatal::usage(
            "sweep rate sets the load of each step: use --rates or --users-steps, not --rps or --users",
        ));
    }
    run::check_out(&args.run.target)?;
    let out_dir = args
        .run
        .target
        .out
        .clone()
        .unwrap_or_else(run::default_out_dir);
    let auto = args.rates.is_empty() && args.users_steps.is_empty();
    let mut queue: Vec<Level> = if !args.rates.is_empty() {
        args.rates.iter().map(|&r| Level::Rate(r)).collect()
    } else if !args.users_steps.is_empty() {
        args.users_steps.iter().map(|&u| Level::Users(u)).collect()
    } else {
        vec![Level::Synchronous, Level::Throughput(args.throughput_users)]
    };
    let goodput = args.run.goodput.is_some();
    let began = Instant::now();
    println!("{}", header(goodput));
    let mut rows: Vec<Value> = Vec::new();
    let mut last: Option<loadkit_report::Report> = None;
    let mut stopped: Option<&str> = None;
    let mut i = 0;
    while i < queue.len() {
        let level = queue[i];
        i += 1;
        let mut step_args = args.run.clone();
        step_args.duration = Some(args.step_duration);
        step_args.warmup = args.step_warmup;
        match level {
            Level::Rate(r) => {
                step_args.load.rps = Some(r);
                step_args.load.closed_loop = false;
            }
            Level::Synchronous => step_args.load.users = Some(1),
            Level::Throughput(n) | Level::Users(n) => step_args.load.users = Some(n),
        }
        let dir = out_dir.join("steps").join(level.dir_name(i));
        let Some(StepRun { report, code }) = run_step(step_args, dir).await? else {
            return Ok(exit::OK);
        };
        let measured = steps::measured(&report);
        let offered = match level {
            Level::Rate(r) => Some(r),
            _ => None,
        };
        let mut row = steps::figures(&report);
        let fields = row.as_object_mut().expect("figures are an object");
        fields.insert("mode".to_owned(), json!(level.mode()));
        fields.insert("load".to_owned(), json!(level.load()));
        fields.insert("offered_rps".to_owned(), json!(offered));
        fields.insert(
            "started_rps".to_owned(),
            json!(steps::started_rps(&measured)),
        );
        fields.insert(
            "concurrency".to_owned(),
            json!(steps::concurrency(&measured)),
        );
        fields.insert("exit_code".to_owned(), json!(code));
        println!(
            "{}",
            crate::secret::redact(&row_line(i, level, &report, &row, goodput))
        );
        let achieved = report.throughput.requests_per_s;
        rows.push(row);
        if report.run.interrupted {
            stopped = Some("signal");
        } else if code != exit::OK && !args.keep_going {
            stopped = Some("a step failed its targets or a stop rule (see --keep-going)");
        }
        // The automatic profile: after the synchronous and the throughput step, the rates.
        if auto && level != Level::Synchronous && matches!(level, Level::Throughput(_)) {
            let sync = rows
                .first()
                .and_then(|r| r["achieved_rps"].as_f64())
                .unwrap_or(0.0);
            queue.extend(
                between(sync, achieved, args.steps)
                    .into_iter()
                    .map(Level::Rate),
            );
        }
        last = Some(report);
        if stopped.is_some() {
            break;
        }
    }
    let unit = if !args.users_steps.is_empty() {
        "users"
    } else {
        "rps"
    };
    let section = json!({
        "kind": "rate",
        "unit": unit,
        "profile": if auto { "auto" } else if unit == "users" { "users" } else { "rates" },
        "step_duration_s": args.step_duration.as_secs_f64(),
        "step_warmup_s": args.step_warmup.as_secs_f64(),
        "steps": rows,
        "stopped_early": stopped,
        "elapsed_s": (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    });
    println!();
    println!(
        "Steps       {} in {:.0} s{}",
        rows.len(),
        began.elapsed().as_secs_f64(),
        stopped.map_or_else(String::new, |why| format!(", stopped early: {why}"))
    );
    // The top level is the last (heaviest) step's report; every step's own is in `sweep`.
    if let Some(mut report) = last {
        report.sections.insert("sweep".to_owned(), section);
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

fn header(goodput: bool) -> String {
    let mut line = format!(
        "{:>4}  {:<22}  {:>9}  {:>9}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}  {:>9}  {:>9}  {:>10}",
        "step",
        "load",
        "offered/s",
        "done/s",
        "ok %",
        "ttft p50",
        "ttft p95",
        "itl p50",
        "itl p95",
        "e2e p50",
        "e2e p95",
        "out tok/s"
    );
    if goodput {
        line.push_str(&format!("  {:>10}", "goodput/s"));
    }
    line.push_str(&format!("  {:>13}", "srv run/wait"));
    line
}

fn row_line(
    n: usize,
    level: Level,
    report: &loadkit_report::Report,
    row: &Value,
    goodput: bool,
) -> String {
    let q = |m: &str, p: &str| cell(quantile(report, m, p), 1);
    let mut line = format!(
        "{n:>4}  {:<22}  {:>9}  {:>9.2}  {:>6.1}  {:>9}  {:>9}  {:>8}  {:>8}  {:>9}  {:>9}  {:>10.1}",
        level.label(),
        cell(row["offered_rps"].as_f64(), 2),
        report.throughput.requests_per_s,
        report.success_ratio() * 100.0,
        q("ttft", "p50"),
        q("ttft", "p95"),
        q("itl", "p50"),
        q("itl", "p95"),
        q("e2e", "p50"),
        q("e2e", "p95"),
        report.throughput.output_tokens_per_s,
    );
    if goodput {
        line.push_str(&format!("  {:>10}", cell(row["goodput_per_s"].as_f64(), 2)));
    }
    // The server's own running and waiting requests (mean over the step), when it said.
    let server = |role: &str| row["server"][role]["mean"].as_f64();
    let srv = match (server("running"), server("waiting")) {
        (None, None) => "-".to_owned(),
        (r, w) => format!("{}/{}", cell(r, 1), cell(w, 1)),
    };
    line.push_str(&format!("  {srv:>13}"));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_profile_spaces_rates_evenly_between_its_bounds() {
        assert_eq!(between(2.0, 12.0, 4), [4.0, 6.0, 8.0, 10.0]);
        // A server that does not scale: the rates sit at the synchronous rate.
        assert_eq!(between(5.0, 4.0, 2), [5.0, 5.0]);
        // A synchronous step that completed nothing starts from 0.1 req/s.
        assert_eq!(between(0.0, 1.0, 1), [0.55]);
    }
}
