//! `loadkit sweep context|output|combined` and `loadkit probe max-context`: limit tests that run
//! one request size after another through any registered protocol, print a row per step, and
//! write `report.json` with a `sweep` section.

use std::time::Duration;

use loadkit_core::prompt::PromptSource;
use loadkit_core::protocol::{Options, Protocol, RunPlan, Settings, SimScript, Simulator};
use loadkit_core::schedule::{FixedUsers, Schedule};
use loadkit_core::sweep::{self, Bisect, Bracket, Step};
use loadkit_core::{CancellationToken, RunResult};
use loadkit_report::{render_summary, Report, RunMeta};
use serde_json::{json, Map};

use crate::args::{ProbeArgs, SweepArgs, SweepKind, TargetArgs};
use crate::{exit, process, registry, run, Fatal};

/// A limit test in progress: the protocol, its settings, and the target.
struct Limits<'a> {
    args: &'a TargetArgs,
    protocol: &'static dyn Protocol,
    options: Options,
    base: Settings,
    simulator: Option<Box<dyn Simulator>>,
    cancel: CancellationToken,
    per_step: u64,
    checked: bool,
    target: String,
    last: Option<RunResult>,
}

impl<'a> Limits<'a> {
    async fn start(args: &'a TargetArgs, per_step: u64) -> Result<Limits<'a>, Fatal> {
        let (protocol, name) = registry::find(&args.protocol)?;
        run::check_out(args)?;
        let options = registry::options_for(protocol, name, &args.protocol_options)?;
        let simulator = match &args.url {
            Some(_) => None,
            None => Some(run::start_simulator(
                protocol,
                name,
                "127.0.0.1:0",
                &SimScript::default(),
            )?),
        };
        let url = args
            .url
            .clone()
            .or_else(|| simulator.as_ref().map(|s| s.url()))
            .unwrap_or_default();
        let base = run::settings(args, name, url, simulator.is_some())?;
        // Built once up front so a bad option fails before anything is sent.
        let launch = protocol
            .build(&base, &options)
            .map_err(|e| Fatal::new(exit::USAGE, e))?;
        let target = launch.target().to_owned();
        if simulator.is_some() && !args.quiet {
            eprintln!("no --url given: sweeping the built-in simulator at {target}");
        }
        let cancel = CancellationToken::new();
        // A sweep step is short: the first signal cancels it at once.
        run::watch_signals(cancel.clone(), cancel.clone(), std::time::Duration::ZERO);
        Ok(Limits {
            args,
            protocol,
            options,
            base,
            simulator,
            cancel,
            per_step,
            checked: false,
            target,
            last: None,
        })
    }

    /// Runs one step: `per_step` requests, one after another, with prompts of `words` words
    /// (or the configured prompt) and `max_tokens`.
    async fn step(&mut self, words: Option<u64>, max_tokens: u64) -> Result<Step, Fatal> {
        let mut settings = self.base.clone();
        if let Some(words) = words {
            settings.prompts = PromptSource::Words {
                words: usize::try_from(words).unwrap_or(usize::MAX),
                seed: self.base.seed,
            };
        }
        settings.max_tokens = u32::try_from(max_tokens).unwrap_or(u32::MAX);
        let launch = self
            .protocol
            .build(&settings, &self.options)
            .map_err(|e| Fatal::new(exit::USAGE, e))?;
        if !self.checked {
            launch
                .preflight()
                .await
                .map_err(|e| Fatal::new(exit::UNREACHABLE, e))?;
            self.checked = true;
        }
        let users = FixedUsers::new(1).map_err(|e| Fatal::usage(e.to_string()))?;
        let mut plan = RunPlan::new(Schedule::Closed(Box::new(users)));
        plan.requests = Some(self.per_step);
        plan.timeout = Some(self.args.timeout);
        plan.grace = Duration::ZERO;
        plan.cancel = Some(self.cancel.clone());
        plan.abort = Some(self.cancel.clone());
        let outcome = launch
            .run(plan)
            .await
            .map_err(|e| Fatal::new(exit::USAGE, e))?;
        let step = step_of(&outcome.result, words, max_tokens, self.per_step);
        self.last = Some(outcome.result);
        Ok(step)
    }

    fn interrupted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Prints the summary, writes the report (the last step's metrics and the `sweep`
    /// section) and stops the simulator.
    async fn finish(
        self,
        kind: &str,
        steps: &[Step],
        bracket: Option<Bracket>,
        extra: Map<String, serde_json::Value>,
    ) -> Result<u8, Fatal> {
        let slope = sweep::ttft_slope_per_1k(steps);
        print!(
            "\n{}",
            loadkit_report::sweep_summary(kind, steps, slope, bracket)
        );
        let code = if self.interrupted() {
            exit::INTERRUPTED
        } else {
            exit::OK
        };
        if let Some(last) = &self.last {
            let mut settings = extra;
            settings.insert("sweep".to_owned(), json!(kind));
            settings.insert("per_step".to_owned(), json!(self.per_step));
            let meta = RunMeta {
                protocol: self.args.protocol.clone(),
                target: self.target.clone(),
                model: self.base.model.clone(),
                seed: Some(self.base.seed),
                settings,
                cpu_s: process::cpu_seconds(),
                peak_rss_bytes: process::peak_rss_bytes(),
                client_cores: None,
            };
            let mut report = Report::from_run(last, meta);
            report.add_sections(&[sweep::section(kind, steps, slope, bracket)]);
            let dir = self.args.out.clone().unwrap_or_else(run::default_out_dir);
            if !self.args.quiet {
                print!(
                    "\nLast step\n{}",
                    crate::secret::redact(&render_summary(&report))
                );
            }
            match run::write_report(&dir, &report, &self.args.format.0) {
                Ok(paths) => run::print_paths(&paths),
                Err(e) => {
                    eprintln!("error: could not write the report: {e}");
                    return Ok(exit::USAGE);
                }
            }
        }
        if let Some(sim) = self.simulator {
            sim.shutdown().await;
        }
        Ok(code)
    }
}

/// What one step's run shows.
fn step_of(result: &RunResult, words: Option<u64>, max_tokens: u64, per_step: u64) -> Step {
    let s = &result.stats;
    let c = &s.counters;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let per = |total: u64| (c.succeeded > 0 && total > 0).then(|| total / c.succeeded);
    let tokens_out = per(c.output_tokens);
    let top = s.errors.top(1).into_iter().next();
    Step {
        words,
        max_tokens,
        tokens_in: per(c.input_tokens),
        tokens_out,
        early_stop: tokens_out.is_some_and(|n| sweep::early_stop(n, max_tokens)),
        ok: c.succeeded == per_step && c.failed == 0 && c.cancelled == 0,
        error_class: top
            .as_ref()
            .map(|g| g.class.clone())
            .or_else(|| (c.cancelled > 0).then(|| "cancelled".to_owned())),
        error: top.map(|g| g.message),
        ttft_ms: (s.ttft.count() > 0).then(|| ms(s.ttft.quantile(0.5))),
        e2e_ms: (s.e2e.count() > 0).then(|| ms(s.e2e.quantile(0.5))),
        tokens_per_s: (s.tpot.count() > 0)
            .then(|| s.tpot.quantile(0.5).as_secs_f64())
            .filter(|t| *t > 0.0)
            .map(|t| 1.0 / t),
    }
}

pub(crate) async fn sweep(kind: SweepKind, args: SweepArgs) -> Result<u8, Fatal> {
    let sizes: Vec<(Option<u64>, u64)> = match kind {
        SweepKind::Context => {
            let words = if args.steps.is_empty() {
                sweep::doubling(args.context_min, args.context_max)
            } else {
                args.steps.clone()
            };
            let max = u64::from(args.target.max_tokens);
            words.into_iter().map(|w| (Some(w), max)).collect()
        }
        SweepKind::Output => sweep::doubling(args.output_min, args.output_max)
            .into_iter()
            .map(|m| (None, m))
            .collect(),
        SweepKind::Combined => {
            let words = sweep::doubling(args.context_min, args.context_max);
            let outputs = sweep::doubling(args.output_min, args.output_max);
            (0..words.len().max(outputs.len()))
                .map(|i| {
                    let w = words[i.min(words.len() - 1)];
                    let m = outputs[i.min(outputs.len() - 1)];
                    (Some(w), m)
                })
                .collect()
        }
    };
    if sizes.is_empty() {
        return Err(Fatal::usage(
            "no steps: the minimum is larger than the maximum (see --context-min/--context-max, --output-min/--output-max)",
        ));
    }
    if !args.steps.is_empty() && kind != SweepKind::Context {
        return Err(Fatal::usage("--steps applies to `sweep context`"));
    }
    let mut limits = Limits::start(&args.target, args.per_step).await?;
    println!("{}", loadkit_report::sweep_header());
    let mut steps = Vec::new();
    for (words, max_tokens) in sizes {
        let mut step = limits.step(words, max_tokens).await?;
        // A context sweep keeps max_tokens fixed: stopping short of it says nothing there.
        step.early_stop &= kind != SweepKind::Context;
        println!(
            "{}",
            crate::secret::redact(&loadkit_report::sweep_row(&step))
        );
        let failed = !step.ok;
        steps.push(step);
        if limits.interrupted() || (failed && !args.keep_going) {
            break;
        }
    }
    let mut extra = Map::new();
    extra.insert("keep_going".to_owned(), json!(args.keep_going));
    limits.finish(kind.name(), &steps, None, extra).await
}

pub(crate) async fn probe(args: ProbeArgs) -> Result<u8, Fatal> {
    if args.lo >= args.hi {
        return Err(Fatal::usage(format!(
            "--lo ({}) must be below --hi ({})",
            args.lo, args.hi
        )));
    }
    let mut limits = Limits::start(&args.target, args.per_step).await?;
    let max_tokens = u64::from(args.target.max_tokens);
    let mut search = Bisect::new(args.lo, args.hi, args.tolerance);
    println!("{}", loadkit_report::sweep_header());
    let mut steps = Vec::new();
    while let Some(words) = search.next() {
        let mut step = limits.step(Some(words), max_tokens).await?;
        step.early_stop = false;
        println!(
            "{}",
            crate::secret::redact(&loadkit_report::sweep_row(&step))
        );
        search.record(words, step.ok);
        steps.push(step);
        if limits.interrupted() {
            break;
        }
    }
    let bracket = search.bracket();
    let mut extra = Map::new();
    extra.insert("lo".to_owned(), json!(args.lo));
    extra.insert("hi".to_owned(), json!(args.hi));
    extra.insert("tolerance".to_owned(), json!(args.tolerance));
    // The failure at the upper edge is the one that names the limit.
    if let Bracket::Between { fail, .. } = bracket {
        if let Some(edge) = steps.iter().find(|s| s.words == Some(fail)) {
            println!(
                "cause at the upper edge ({fail} words): {} ({})",
                edge.error.as_deref().unwrap_or("unknown"),
                edge.error_class.as_deref().unwrap_or("error")
            );
        }
    }
    limits
        .finish("max-context", &steps, Some(bracket), extra)
        .await
}
