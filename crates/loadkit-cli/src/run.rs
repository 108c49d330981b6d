//! `loadkit run`: turns flags into a client, a workload and a schedule, runs them, and writes
//! the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use loadkit_core::{CancellationToken, Client, RunResult, Runner, Saturation, Source, StopReason};
use loadkit_report::{render_summary, Report, RunMeta};
use serde_json::{json, Map, Value};

use crate::args::{OnSaturation, PromptPreset, Protocol, RunArgs};
use crate::live::LiveLine;
use crate::pattern::{self, Load};
use crate::proto;
use crate::sim::{Pacing, Sim, SimKind};
use crate::{exit, process, Fatal};

/// Duration of a run given neither --duration nor --requests.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub(crate) async fn run(args: RunArgs) -> Result<u8, Fatal> {
    let mut load = pattern::build(&args.load, args.seed).map_err(Fatal::usage)?;
    // A pattern that ends by itself (stages) sets the default duration.
    let natural = Load::natural_length(&args.load);
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(natural.unwrap_or(DEFAULT_DURATION)),
        (d, _) => d,
    };
    if args.dry_run {
        let horizon = duration.unwrap_or(DEFAULT_DURATION) + args.warmup;
        crate::plan::print_plan(&mut load, horizon, None)?;
        return Ok(exit::OK);
    }

    check_protocol_flags(&args)?;
    // The built-in simulator stands in for a target when none is given.
    let simulator = match &args.url {
        Some(_) => None,
        None => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| Fatal::usage(format!("cannot start the built-in simulator: {e}")))?;
            Some(Sim::start(
                SimKind::for_protocol(args.protocol),
                listener,
                Pacing::default(),
            ))
        }
    };
    let base_url = match (&args.url, &simulator) {
        (Some(url), _) => url.clone(),
        (None, Some(sim)) => sim.url(),
        (None, None) => unreachable!("a simulator is started when no url is given"),
    };
    if simulator.is_some() && !args.quiet {
        eprintln!("no --url given: load-testing the built-in simulator at {base_url}");
    }

    let mut sections = Map::new();
    let (result, target) = match args.protocol {
        Protocol::OpenaiChat | Protocol::OpenaiCompletions => {
            let (client, source, target) = proto::openai(&args, &base_url)?;
            preflight(&target, &args).await?;
            let tool_stats = client.tool_stats();
            let result = drive(&args, load, duration, client, source).await?;
            if let Some(stats) = tool_stats {
                let t = stats.snapshot();
                let by: Map<String, Value> = t
                    .by_tool_rounds
                    .iter()
                    .map(|(rounds, n)| (rounds.to_string(), json!(n)))
                    .collect();
                sections.insert(
                    "tools".to_owned(),
                    json!({
                        "conversations": t.conversations,
                        "tool_rounds": t.tool_rounds,
                        "mean_tool_rounds": if t.conversations == 0 { 0.0 } else {
                            t.tool_rounds as f64 / t.conversations as f64
                        },
                        "limit_reached": t.limit_reached,
                        "max_tool_rounds": args.max_tool_rounds,
                        "conversations_by_tool_rounds": by,
                        "round_metrics": "tool_round_K: latency of request K of a conversation; e2e: the whole conversation",
                    }),
                );
            }
            (result, target)
        }
        Protocol::OllamaChat | Protocol::OllamaGenerate => {
            let (client, source, target) = proto::ollama(&args, &base_url)?;
            preflight(&target, &args).await?;
            client.check_model().await.map_err(|e| Fatal {
                code: exit::UNREACHABLE,
                message: format!("{target}: {e}"),
            })?;
            let result = drive(&args, load, duration, client, source).await?;
            let cold = result
                .stats
                .server
                .get(loadkit_ollama::metric::COLD_LOAD)
                .map_or(0, |h| h.count());
            sections.insert(
                "ollama".to_owned(),
                json!({
                    "cold_loads": cold,
                    "cold_load_threshold_ms": args.cold_load_threshold.as_secs_f64() * 1e3,
                    "server_metrics": ["server_load", "server_prompt_eval", "server_eval", "server_total"],
                    "overhead_metric": "client_overhead",
                }),
            );
            (result, target)
        }
        Protocol::Sse => {
            let (client, source, target) = proto::sse(&args, &base_url)?;
            preflight(&target, &args).await?;
            (drive(&args, load, duration, client, source).await?, target)
        }
        Protocol::Http => {
            let (client, source, target) = proto::http(&args, &base_url)?;
            preflight(&target, &args).await?;
            (drive(&args, load, duration, client, source).await?, target)
        }
    };

    let mut report = Report::from_run(&result, meta(&args, target, simulator.is_some()));
    report.sections.extend(sections);
    let out_dir = args.out.clone().unwrap_or_else(default_out_dir);
    let written = write_report(&out_dir, &report);
    print!("\n{}", render_summary(&report));
    match &written {
        Ok(path) => println!("Report      {}", path.display()),
        Err(e) => eprintln!("error: could not write the report: {e}"),
    }
    if let Some(sim) = simulator {
        sim.shutdown().await;
    }
    if written.is_err() {
        return Ok(exit::USAGE);
    }
    Ok(exit_code(&result))
}

/// Refuses flags that the chosen protocol does not use, in one line.
fn check_protocol_flags(args: &RunArgs) -> Result<(), Fatal> {
    let p = args.protocol;
    let generic = matches!(p, Protocol::Sse | Protocol::Http);
    let ollama = matches!(p, Protocol::OllamaChat | Protocol::OllamaGenerate);
    let checks: [(bool, bool, &str); 9] = [
        (args.body.is_some() || args.body_file.is_some(), generic, "--body/--body-file apply to --protocol sse and http"),
        (args.method != "POST", generic, "--method applies to --protocol sse and http"),
        (args.success_status != "2xx", generic, "--success-status applies to --protocol sse and http"),
        (args.content_pointer.is_some() || args.end_marker.is_some() || args.count_only || args.min_chunks != 1,
            p == Protocol::Sse, "--content-pointer, --end-marker, --min-chunks and --count-only apply to --protocol sse"),
        (args.expect_pointer.is_some(), p == Protocol::Http, "--expect-pointer/--expect-value apply to --protocol http"),
        (args.keep_alive.is_some() || args.num_ctx.is_some(), ollama, "--keep-alive and --num-ctx apply to --protocol ollama-chat and ollama-generate"),
        (args.tools.is_some(), p == Protocol::OpenaiChat, "--tools applies to --protocol openai-chat"),
        (args.tools.is_some() && args.no_stream, false, "--tools needs streaming (drop --no-stream)"),
        (args.no_stream && generic, false, "--no-stream applies to openai and ollama protocols"),
    ];
    for (given, allowed, message) in checks {
        if given && !allowed {
            return Err(Fatal::usage(message));
        }
    }
    Ok(())
}

/// Fails with exit code 3 when the target cannot be reached before the run starts.
async fn preflight(target: &str, args: &RunArgs) -> Result<(), Fatal> {
    loadkit_sse::preflight(target, args.connect_timeout)
        .await
        .map_err(|e| Fatal {
            code: exit::UNREACHABLE,
            message: format!("target unreachable: {target}: {e}"),
        })
}

/// Runs any protocol's client with the schedule, stop conditions and observers the flags ask for.
async fn drive<C, S>(
    args: &RunArgs,
    load: Load,
    duration: Option<Duration>,
    client: C,
    source: S,
) -> Result<RunResult, Fatal>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());
    let mut builder = Runner::builder(client, source)
        .warmup(args.warmup)
        .timeout(Some(args.timeout))
        .grace(args.grace)
        .max_failures(args.max_failures)
        .max_in_flight(args.max_in_flight)
        .on_saturation(match args.on_saturation {
            OnSaturation::Queue => Saturation::Queue,
            OnSaturation::Drop => Saturation::Drop,
        })
        .cancel_token(cancel);
    builder = match load {
        Load::Open(schedule) => builder.open_loop(schedule),
        Load::Closed(schedule) => builder.closed_loop(schedule),
    };
    if let Some(d) = duration {
        builder = builder.duration(d);
    }
    if let Some(n) = args.requests {
        builder = builder.requests(n);
    }
    if !args.quiet {
        builder = builder.observer(LiveLine::new(duration.map(|d| d + args.warmup)));
    }
    let runner = builder.build().map_err(|e| Fatal::usage(e.to_string()))?;
    Ok(runner.run().await)
}

fn exit_code(result: &RunResult) -> u8 {
    match result.stop_reason {
        StopReason::Signal => exit::INTERRUPTED,
        StopReason::MaxFailures | StopReason::Slo => exit::THRESHOLD,
        _ => exit::OK,
    }
}

fn prompt_label(args: &RunArgs) -> String {
    if args.prompt.is_some() {
        "text".to_owned()
    } else if let Some(words) = args.prompt_words {
        format!("words:{words}")
    } else {
        let preset = args.prompt_preset.unwrap_or(PromptPreset::Short);
        format!("preset:{}", format!("{preset:?}").to_lowercase())
    }
}

fn meta(args: &RunArgs, target: String, simulator: bool) -> RunMeta {
    let mut settings = Map::new();
    let mut set = |k: &str, v: Value| {
        settings.insert(k.to_owned(), v);
    };
    if let Some(name) = &args.scenario {
        set("scenario", json!(name));
    }
    if pattern_is_open(args) {
        set("max_in_flight", json!(args.max_in_flight));
        set(
            "on_saturation",
            json!(format!("{:?}", args.on_saturation).to_lowercase()),
        );
    }
    if let Some(n) = args.requests {
        set("requests_limit", json!(n));
    }
    set("timeout_s", json!(args.timeout.as_secs_f64()));
    set("max_tokens", json!(args.max_tokens));
    set("temperature", json!(args.temperature));
    set("stream", json!(!args.no_stream));
    match args.protocol {
        Protocol::Sse => {
            set(
                "mode",
                json!(if args.count_only {
                    "count-only"
                } else {
                    "parse"
                }),
            );
            set("content_pointer", json!(args.content_pointer));
            set("end_marker", json!(args.end_marker));
            set("min_chunks", json!(args.min_chunks));
            set("success_status", json!(args.success_status));
        }
        Protocol::Http => {
            set("method", json!(args.method));
            set("success_status", json!(args.success_status));
            set("expect_pointer", json!(args.expect_pointer));
        }
        Protocol::OllamaChat | Protocol::OllamaGenerate => {
            set("keep_alive", json!(args.keep_alive));
            set("num_ctx", json!(args.num_ctx));
        }
        _ => {}
    }
    set("prompt", json!(prompt_label(args)));
    set("system_prompt", json!(args.system_prompt.is_some()));
    set("simulator", json!(simulator));
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    set("threads", json!(threads));
    RunMeta {
        protocol: args.protocol.name().to_owned(),
        target,
        model: args
            .model
            .clone()
            .or_else(|| simulator.then(|| "loadkit-sim".to_owned())),
        seed: Some(args.seed),
        settings,
        cpu_s: process::cpu_seconds(),
        peak_rss_bytes: process::peak_rss_bytes(),
        // The runtime's threads can use at most this many cores (--threads, capped by the
        // cores available to the process).
        client_cores: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get().min(threads)),
    }
}

fn pattern_is_open(args: &RunArgs) -> bool {
    pattern::build(&args.load, args.seed).is_ok_and(|l| matches!(l, Load::Open(_)))
}

fn default_out_dir() -> PathBuf {
    // 2026-11-22T05:30:12Z -> 20261122-053012
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = stamp.split_at(8.min(stamp.len()));
    Path::new("loadkit-results").join(format!("{date}-{time}"))
}

/// Writes `DIR/report.json` atomically: a temporary file in the same directory, flushed, then
/// renamed over the old one, so a reader (or a kill mid-write) never sees half a report.
fn write_report(dir: &Path, report: &Report) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("report.json");
    let tmp = dir.join(format!(".report.json.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(report.to_json().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// Ctrl+C or SIGTERM cancels the run; the report is still written.
fn watch_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    cancel.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\ninterrupted: in-flight requests cancelled, writing the report");
        cancel.cancel();
        // The run is already stopping and its report is being written: a second Ctrl+C must not
        // lose it. Only a third one, for a run that cannot stop, exits at once.
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "\nstill stopping: the report is being written (Ctrl+C once more to exit without it)"
        );
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}
