//! `loadkit run`: turns flags into a client, a workload and a schedule, runs them, and writes
//! the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use loadkit_core::prompt::{Preset, PromptSource};
use loadkit_core::protocol::{Protocol, RunPlan, Settings, SimScript, Simulator, Value};
use loadkit_core::schedule::Schedule;
use loadkit_core::{CancellationToken, RunResult, Saturation, StopReason};
use loadkit_report::{render_summary, Format, Report, RunMeta};
use serde_json::{json, Map};

use crate::args::{OnSaturation, PromptPreset, ReportArgs, RunArgs, TargetArgs};
use crate::live::{LiveLine, Planned};
use crate::pattern;
use crate::{exit, process, registry, Fatal};

/// Duration of a run given neither --duration nor --requests.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub(crate) async fn run(args: RunArgs) -> Result<u8, Fatal> {
    if args.repeat > 1 {
        return crate::repeat::repeat(args).await;
    }
    if let Some(service) = args.service {
        return crate::service::run(args, service).await;
    }
    if args.asr_url.is_some() || args.tts_url.is_some() {
        return Err(Fatal::usage("--asr-url and --tts-url need --service"));
    }
    let Some(ready) = prepare(args).await? else {
        return Ok(exit::OK);
    };
    let done = ready.execute().await?;
    Ok(done.print())
}

/// A run built and checked, its load not started yet.
pub(crate) struct Ready {
    args: RunArgs,
    launch: Box<dyn loadkit_core::protocol::Launch>,
    simulator: Option<Box<dyn Simulator>>,
    load: Schedule,
    duration: Option<Duration>,
    /// Where the report goes (fixed before the load: checkpoints and raw records go there too).
    out_dir: PathBuf,
    /// The fixed HTTP read buffer `--read-buffer` chose (`None`: adaptive).
    read_buffer: Option<usize>,
}

/// A finished run: its summary, where its report went, its exit code.
pub(crate) struct Done {
    pub(crate) summary: String,
    /// report.json first, then the --format files.
    pub(crate) written: std::io::Result<Vec<PathBuf>>,
    pub(crate) code: u8,
}

impl Done {
    /// Prints the summary and the report's path; the exit code.
    pub(crate) fn print(&self) -> u8 {
        print!("\n{}", self.summary);
        match &self.written {
            Ok(paths) => {
                print_paths(paths);
                self.code
            }
            Err(e) => {
                eprintln!("error: could not write the report: {e}");
                exit::USAGE
            }
        }
    }
}

/// Builds the run `args` ask for and checks its target (`None`: a dry run, already printed).
pub(crate) async fn prepare(args: RunArgs) -> Result<Option<Ready>, Fatal> {
    let (protocol, name) = registry::find(&args.target.protocol)?;
    check_out(&args.target)?;
    crate::server_metrics::check(&args)?;
    let load = pattern::build(&args.load, args.target.seed).map_err(Fatal::usage)?;
    // A pattern that ends by itself (stages) sets the default duration.
    let natural = pattern::natural_length(&args.load);
    if args.iterations.is_some() && matches!(load, Schedule::Open(_)) {
        return Err(Fatal::usage(
            "--iterations needs a closed-loop pattern: give --users N",
        ));
    }
    let duration = match (args.duration, args.requests, args.iterations) {
        (None, None, None) => Some(natural.unwrap_or(DEFAULT_DURATION)),
        (d, _, _) => d,
    };
    if args.dry_run {
        let mut load = load;
        let horizon = duration.unwrap_or(DEFAULT_DURATION) + args.warmup;
        crate::plan::print_plan(&mut load, horizon, None)?;
        return Ok(None);
    }
    let options = registry::options_for(protocol, name, &args.target.protocol_options)?;

    // The built-in simulator stands in for a target when none is given.
    let simulator = match &args.target.url {
        Some(_) => None,
        None => Some(start_simulator(
            protocol,
            name,
            "127.0.0.1:0",
            &SimScript::default(),
        )?),
    };
    let url = match (&args.target.url, &simulator) {
        (Some(url), _) => url.clone(),
        (None, Some(sim)) => sim.url(),
        (None, None) => unreachable!("a simulator is started when no url is given"),
    };
    let concurrency = match &load {
        Schedule::Open(_) => u64::from(args.max_in_flight),
        Schedule::Closed(users) => u64::from(users.max_users()),
    };
    let mut settings = settings(&args.target, name, url, simulator.is_some())?;
    settings.read_buffer = args.target.read_buffer.size(concurrency);
    let read_buffer = settings.read_buffer;
    let launch = protocol
        .build(&settings, &options)
        .map_err(|e| Fatal::new(exit::USAGE, e))?;
    if simulator.is_some() && !args.target.quiet {
        eprintln!(
            "no --url given: load-testing the built-in simulator at {}",
            crate::secret::redact(&settings.url)
        );
    }
    process::raise_open_files(concurrency).map_err(Fatal::usage)?;
    launch
        .preflight()
        .await
        .map_err(|e| Fatal::new(exit::UNREACHABLE, e))?;
    let out_dir = args.target.out.clone().unwrap_or_else(default_out_dir);
    Ok(Some(Ready {
        args,
        launch,
        simulator,
        load,
        duration,
        out_dir,
        read_buffer,
    }))
}

impl Ready {
    /// The protocol's target URL.
    pub(crate) fn target(&self) -> &str {
        self.launch.target()
    }

    /// Runs the load, writes the report, renders the summary.
    pub(crate) async fn execute(self) -> Result<Done, Fatal> {
        let Ready {
            args,
            launch,
            simulator,
            load,
            duration,
            out_dir,
            read_buffer,
        } = self;
        let target = launch.target().to_owned();
        let protocol_settings = launch.settings();
        let mut plan = plan(&args, load, duration);
        let mut run_meta = meta(
            &args,
            target.clone(),
            simulator.is_some(),
            &protocol_settings,
        );
        if let Some(bytes) = read_buffer {
            run_meta
                .settings
                .insert("read_buffer_bytes".to_owned(), json!(bytes));
        }
        let targets: Vec<loadkit_core::slo::Target> = args.slo.iter().flatten().cloned().collect();
        let breach = if args.abort_on_slo {
            let (live, breach) = loadkit_core::slo::LiveSlo::new(&targets);
            plan.observers.push(Box::new(live));
            Some(breach)
        } else {
            None
        };
        let mut writers = Vec::new();
        if !args.checkpoint_every.is_zero() {
            let (sink, writer) =
                crate::durable::Checkpoints::start(out_dir.clone(), run_meta.clone()).map_err(
                    |e| Fatal::usage(format!("cannot write into {}: {e}", out_dir.display())),
                )?;
            plan.checkpoint = Some((args.checkpoint_every, Box::new(sink)));
            writers.push(writer);
        }
        let raw_path = args.raw.as_ref().map(|raw| out_dir.join(raw));
        if let Some(path) = &raw_path {
            let (records, writer) = crate::durable::RawRecords::start(path)
                .map_err(|e| Fatal::usage(format!("--raw {}: {e}", path.display())))?;
            plan.observers.push(Box::new(records));
            writers.push(writer);
        }
        // Up until the report is written, then dropped (and stopped).
        let exporter = match &args.metrics_addr {
            Some(addr) => Some(metrics_exporter(&args, addr, &target, &mut plan).await?),
            None => None,
        };
        // Started last, so its first scrape (which primes the counters' rates) comes just
        // before the load; dropped on an error path, which stops its thread.
        let scraper = crate::server_metrics::start(&args, &target).await?;
        let outcome = launch
            .run(plan)
            .await
            .map_err(|e| Fatal::new(exit::USAGE, e))?;
        let result = outcome.result;
        let scraped = scraper.map(loadkit_scrape::Scraper::finish);
        // Every checkpoint and raw line is on disk before the final report replaces them.
        for writer in writers {
            if let Some(e) = writer.finish() {
                eprintln!("warning: {}", crate::secret::redact(&e));
            }
        }

        run_meta.cpu_s = process::cpu_seconds();
        run_meta.peak_rss_bytes = process::peak_rss_bytes();
        let mut report = Report::from_run(&result, run_meta);
        report.add_sections(&outcome.sections);
        if let Some(log) = scraped {
            crate::server_metrics::attach(&mut report, log, result.started_at, result.elapsed);
        }
        if !targets.is_empty() || args.goodput.is_some() {
            let mut slo = loadkit_report::evaluate_slo(
                &report,
                &targets,
                args.goodput.as_ref(),
                result.stats.counters.goodput,
            );
            slo.aborted_by = breach.as_ref().and_then(|b| b.get()).map(|b| {
                format!(
                    "{} was {} after {} requests",
                    b.target, b.description, b.requests
                )
            });
            report.slo = Some(slo);
        }
        let written = write_report(&out_dir, &report, &args.target.format.0).map(|mut paths| {
            paths.extend(raw_path);
            paths
        });
        if exporter.is_some() && !args.metrics_linger.is_zero() {
            eprintln!(
                "metrics final: /metrics stays up for {}",
                humantime::format_duration(args.metrics_linger)
            );
            tokio::time::sleep(args.metrics_linger).await;
        }
        drop(exporter);
        if let Some(sim) = simulator {
            sim.shutdown().await;
        }
        let mut code = exit_code(&result);
        if let Some(slo) = report.slo.as_ref().filter(|s| !s.passed) {
            for t in slo.targets.iter().filter(|t| !t.passed && !args.as_step) {
                eprintln!("SLO failed: {}: {}", t.expr, t.detail);
            }
            if code == exit::OK {
                code = exit::THRESHOLD;
            }
        }
        if let Some(reason) = stop_message(&args, &result).filter(|_| !args.as_step) {
            eprintln!("{reason}");
        }
        Ok(Done {
            summary: crate::secret::redact(&render_summary(&report)),
            written,
            code,
        })
    }
}

/// Starts the `/metrics` server on `addr` and adds its feed to `plan`'s observers.
async fn metrics_exporter(
    args: &RunArgs,
    addr: &str,
    target: &str,
    plan: &mut RunPlan,
) -> Result<crate::prometheus::Exporter, Fatal> {
    let metrics = Arc::new(crate::prometheus::Metrics::new(
        &args.target.protocol,
        &crate::secret::redact(target),
        args.scenario.as_deref().unwrap_or(""),
    ));
    let (exporter, local) = crate::prometheus::Exporter::start(addr, Arc::clone(&metrics)).await?;
    eprintln!("metrics at http://{local}/metrics");
    plan.observers
        .push(Box::new(crate::prometheus::Feed::new(metrics, args.warmup)));
    Ok(exporter)
}

/// Starts `protocol`'s built-in simulator for `name` on `addr`. Inside a tokio runtime.
pub(crate) fn start_simulator(
    protocol: &dyn Protocol,
    name: &str,
    addr: &str,
    script: &SimScript,
) -> Result<Box<dyn Simulator>, Fatal> {
    let listener =
        listen(addr).map_err(|e| Fatal::usage(format!("cannot listen on {addr}: {e}")))?;
    protocol.simulate(name, listener, script).ok_or_else(|| {
        Fatal::usage(format!(
            "--protocol {name} has no built-in simulator: give --url"
        ))
    })
}

/// A non-blocking listener on `addr` with `SO_REUSEADDR`, so a simulator restarted on the port
/// of one that just exited (its connections in `TIME_WAIT`) can listen at once.
fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?.into_std()?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The shared settings every protocol is built from.
pub(crate) fn settings(
    args: &TargetArgs,
    name: &'static str,
    url: String,
    simulated: bool,
) -> Result<Settings, Fatal> {
    let api_key = std::env::var(&args.api_key_env)
        .ok()
        .filter(|k| !k.trim().is_empty());
    if let Some(key) = &api_key {
        crate::secret::register(key);
    }
    crate::secret::register_headers(&args.headers);
    crate::secret::register_url(&url);
    let mut url = url;
    let mut headers = args.headers.clone();
    if let Some(token) = crate::secret::token(args)? {
        crate::secret::apply(args, &token, &mut url, &mut headers);
    }
    let ca_certs = ca_certs(&args.ca_cert)?;
    if args.insecure {
        warn_insecure();
    }
    Ok(Settings {
        protocol: name,
        url,
        simulated,
        model: args.model.clone(),
        max_tokens: args.max_tokens,
        min_tokens: args.min_tokens,
        temperature: args.temperature,
        seed: args.seed,
        prompts: prompt_source(args),
        prompt_chosen: args.prompt.is_some()
            || args.prompt_words.is_some()
            || args.prompt_preset.is_some(),
        system_prompt: args.system_prompt.as_deref().map(Arc::from),
        headers,
        api_key,
        connect_timeout: args.connect_timeout,
        first_byte_timeout: args.timeout,
        idle_timeout: args.idle_timeout,
        insecure: args.insecure,
        ca_certs,
        read_buffer: args.read_buffer.size(0),
    })
}

/// The PEM texts of the `--ca-cert` files, each checked: one line naming the file when one
/// cannot be read or holds no usable certificate.
fn ca_certs(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, Fatal> {
    files
        .iter()
        .map(|file| {
            let pem = std::fs::read(file)
                .map_err(|e| Fatal::usage(format!("--ca-cert {}: {e}", file.display())))?;
            let check = loadkit_http::tls::TlsOptions {
                insecure: false,
                ca_pem: vec![pem],
            };
            loadkit_http::tls::client_config(&check, &[])
                .map_err(|e| Fatal::usage(format!("--ca-cert {}: {e}", file.display())))?;
            Ok(check.ca_pem.into_iter().next().unwrap_or_default())
        })
        .collect()
}

/// `--insecure`'s warning, printed once however many runs a command prepares.
fn warn_insecure() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: --insecure: TLS certificates are not verified; anyone on the path can read \
             and change this traffic"
        );
    });
}

/// The schedule, stop conditions and observers the flags ask for.
fn plan(args: &RunArgs, load: Schedule, duration: Option<Duration>) -> RunPlan {
    let cancel = CancellationToken::new();
    let abort = CancellationToken::new();
    watch_signals(cancel.clone(), abort.clone(), args.grace);
    let mut plan = RunPlan::new(load);
    plan.duration = duration;
    plan.requests = args.requests;
    plan.iterations = args.iterations;
    plan.warmup = args.warmup;
    plan.timeout = Some(args.target.timeout);
    plan.grace = args.grace;
    plan.max_failures = args.max_failures;
    plan.max_error_rate = args.max_error_rate.map(|rate| loadkit_core::ErrorRate {
        rate,
        window: args.error_window.max(Duration::from_secs(1)),
    });
    plan.respect_retry_after = args.respect_retry_after;
    plan.goodput = args.goodput.clone();
    plan.max_in_flight = args.max_in_flight;
    plan.saturation = match args.on_saturation {
        OnSaturation::Queue => Saturation::Queue,
        OnSaturation::Drop => Saturation::Drop,
    };
    plan.cancel = Some(cancel);
    plan.abort = Some(abort);
    if args.target.verbose {
        plan.observers
            .push(Box::new(crate::verbose::RequestLines::new()));
    }
    if !args.target.quiet {
        let planned = match (duration, args.requests) {
            (Some(d), _) => Planned::Time(d + args.warmup),
            (None, Some(n)) => Planned::Requests(n),
            (None, None) => Planned::Open,
        };
        plan.observers
            .push(Box::new(LiveLine::new(planned, args.target.progress_every)));
    }
    plan
}

pub(crate) fn prompt_source(args: &TargetArgs) -> PromptSource {
    if let Some(text) = &args.prompt {
        return PromptSource::Fixed(Arc::from(text.as_str()));
    }
    if let Some(words) = args.prompt_words {
        return PromptSource::Words {
            words,
            seed: args.seed,
        };
    }
    let preset = match args.prompt_preset.unwrap_or(PromptPreset::Short) {
        PromptPreset::Short => Preset::Short,
        PromptPreset::Medium => Preset::Medium,
        PromptPreset::Long => Preset::Long,
        PromptPreset::Lines => Preset::Lines,
        PromptPreset::Numbers => Preset::Numbers,
    };
    PromptSource::Fixed(Arc::from(preset.text()))
}

fn exit_code(result: &RunResult) -> u8 {
    match result.stop_reason {
        StopReason::Signal => exit::INTERRUPTED,
        StopReason::MaxFailures | StopReason::Slo | StopReason::MaxErrorRate => exit::THRESHOLD,
        _ => exit::OK,
    }
}

/// One line on why a stop rule ended the run early.
fn stop_message(args: &RunArgs, result: &RunResult) -> Option<String> {
    let c = &result.stats.counters;
    let at = format!("{:.1} s", result.elapsed.as_secs_f64());
    match result.stop_reason {
        StopReason::MaxFailures => Some(format!(
            "stopped: {} failures reached --max-failures {} at {at}",
            c.failed, args.max_failures
        )),
        StopReason::MaxErrorRate => Some(format!(
            "stopped: failures reached --max-error-rate {:.1} % of the requests that ended in the last {} at {at}",
            args.max_error_rate.unwrap_or_default() * 100.0,
            humantime::format_duration(args.error_window)
        )),
        StopReason::Slo => Some(format!("stopped: an SLO target was missed during the run (--abort-on-slo) at {at}")),
        _ => None,
    }
}

fn prompt_label(args: &TargetArgs) -> String {
    if args.prompt.is_some() {
        "text".to_owned()
    } else if let Some(words) = args.prompt_words {
        format!("words:{words}")
    } else {
        let preset = args.prompt_preset.unwrap_or(PromptPreset::Short);
        format!("preset:{}", format!("{preset:?}").to_lowercase())
    }
}

fn meta(
    args: &RunArgs,
    target: String,
    simulator: bool,
    protocol_settings: &[(&'static str, Value)],
) -> RunMeta {
    let mut settings = Map::new();
    let mut set = |k: &str, v: serde_json::Value| {
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
    if let Some(n) = args.iterations {
        set("iterations_per_user", json!(n));
    }
    set("timeout_s", json!(args.target.timeout.as_secs_f64()));
    set("max_tokens", json!(args.target.max_tokens));
    if let Some(n) = args.target.min_tokens {
        set("min_tokens", json!(n));
    }
    set("temperature", json!(args.target.temperature));
    for (key, value) in protocol_settings {
        set(key, loadkit_report::json_value(value));
    }
    set("prompt", json!(prompt_label(&args.target)));
    set("system_prompt", json!(args.target.system_prompt.is_some()));
    set("simulator", json!(simulator));
    if args.target.insecure {
        set("insecure", json!(true));
    }
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    set("threads", json!(threads));
    RunMeta {
        protocol: args.target.protocol.clone(),
        target,
        model: args
            .target
            .model
            .clone()
            .or_else(|| simulator.then(|| "loadkit-sim".to_owned())),
        seed: Some(args.target.seed),
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
    pattern::build(&args.load, args.target.seed).is_ok_and(|l| matches!(l, Schedule::Open(_)))
}

/// `loadkit-results/<UTC timestamp>`, with `-2`, `-3`, ... when runs end in the same second.
pub(crate) fn default_out_dir() -> PathBuf {
    // 2026-11-22T05:30:12Z -> 20261122-053012
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let (date, time) = stamp.split_at(8.min(stamp.len()));
    let base = Path::new("loadkit-results").join(format!("{date}-{time}"));
    (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                PathBuf::from(format!("{}-{n}", base.display()))
            }
        })
        .find(|dir| !dir.exists())
        .expect("some suffix is free")
}

/// Refuses, before any load, to replace a report already in `--out` unless `--force`.
pub(crate) fn check_out(target: &TargetArgs) -> Result<(), Fatal> {
    match &target.out {
        Some(dir) if !target.force && dir.join("report.json").exists() => {
            Err(Fatal::usage(format!(
                "{} already holds a report: pass --force to replace it, or choose another --out",
                dir.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Prints the report files' paths, report.json first, under one label.
pub(crate) fn print_paths(paths: &[PathBuf]) {
    for (i, path) in paths.iter().enumerate() {
        let label = if i == 0 { "Report" } else { "" };
        println!("{label:<12}{}", path.display());
    }
}

/// Writes `DIR/report.json`, then the files of the other `formats` (rendered from the redacted
/// JSON, so no secret reaches any of them, escaped or not); every file atomically. The paths
/// written, report.json first.
pub(crate) fn write_report(
    dir: &Path,
    report: &Report,
    formats: &[Format],
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = crate::secret::redact(&report.to_json());
    let mut paths = vec![write_atomic(dir, "report.json", &json)?];
    let others: Vec<Format> = formats
        .iter()
        .copied()
        .filter(|f| *f != Format::Json)
        .collect();
    if !others.is_empty() {
        let redacted = Report::from_json(&json).map_err(std::io::Error::other)?;
        paths.extend(write_formats(dir, &redacted, &others)?);
    }
    Ok(paths)
}

/// Writes the files of `formats` for `report` into `dir`; the paths written.
pub(crate) fn write_formats(
    dir: &Path,
    report: &Report,
    formats: &[Format],
) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for format in formats {
        for (name, text) in format.render(report).map_err(std::io::Error::other)? {
            paths.push(write_atomic(dir, name, &text)?);
        }
    }
    Ok(paths)
}

/// Writes `DIR/NAME` atomically: a temporary file in the same directory, flushed, then renamed
/// over the old one, so a reader (or a kill mid-write) never sees half a file.
pub(crate) fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// `loadkit report RUN.json --format ...`: renders an existing report; prints each path.
pub(crate) fn render(args: &ReportArgs) -> Result<u8, Fatal> {
    let input = &args.input;
    if args.format.0.contains(&Format::Json) {
        return Err(Fatal::usage(
            "--format json: the input is the JSON report; choose html, md or csv",
        ));
    }
    let text = std::fs::read_to_string(input)
        .map_err(|e| Fatal::usage(format!("cannot read {}: {e}", input.display())))?;
    let report =
        Report::from_json(&text).map_err(|e| Fatal::usage(format!("{}: {e}", input.display())))?;
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Fatal::usage(format!("cannot create {}: {e}", dir.display())))?;
    let paths = write_formats(&dir, &report, &args.format.0)
        .map_err(|e| Fatal::usage(format!("cannot write into {}: {e}", dir.display())))?;
    for path in paths {
        println!("{}", path.display());
    }
    Ok(exit::OK)
}

/// The first Ctrl+C or SIGTERM stops the run: no new requests, in-flight ones get `grace` to
/// finish, then every report is written. The second cancels the in-flight requests at once
/// (counted `cancelled`) and still writes every report. A third exits at once, without them.
pub(crate) fn watch_signals(cancel: CancellationToken, abort: CancellationToken, grace: Duration) {
    tokio::spawn(async move {
        let mut signals = Signals::new();
        signals.next().await;
        eprintln!(
            "\ninterrupted: no new requests; in-flight ones get up to {} to finish, then the \
             report is written (Ctrl+C again cancels them)",
            humantime::format_duration(grace)
        );
        cancel.cancel();
        signals.next().await;
        eprintln!("\ncancelling the in-flight requests; writing the report (Ctrl+C once more to exit without it)");
        abort.cancel();
        signals.next().await;
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

/// Ctrl+C and, on Unix, SIGTERM, as one stream.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
