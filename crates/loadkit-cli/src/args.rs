//! Command-line flags (clap), with value parsers that turn bad input into one clear line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// loadkit: load-test AI serving endpoints (LLM streaming over OpenAI-compatible SSE).
///
/// With no --url, `loadkit run` starts a built-in simulated OpenAI-compatible server and
/// load-tests it, so you can see the whole experience first.
///
/// Exit codes: 0 ok, 1 a threshold failed (e.g. --max-failures reached), 2 bad flags or
/// configuration, 3 target unreachable before start, 130 interrupted (reports still written).
#[derive(Debug, Parser)]
#[command(
    name = "loadkit",
    version,
    propagate_version = true,
    args_override_self = true
)]
pub(crate) struct Cli {
    /// More output on stderr: -v prints one line per finished request (and info logs), -vv
    /// debug logs; LOADKIT_LOG=... sets the log filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Worker threads of the async runtime (1 to 1024; default: the cores available to this
    /// process). Users and their connections are spread over the threads by tokio's
    /// work-stealing scheduler; every request's timings are stamped by its own task and merged
    /// by one collector, so the figures mean the same whatever the count.
    #[arg(long, global = true, value_name = "N", value_parser = threads)]
    pub(crate) threads: Option<usize>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load-test an endpoint (or the built-in simulator when --url is not given).
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Print the planned load per second of a pattern as a chart (and CSV), sending nothing.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(Box<PlanArgs>),
    /// List scenarios: the built-in presets, or those of a file.
    #[command(after_help = SCENARIOS_EXAMPLES)]
    Scenarios(ScenariosArgs),
    /// Run a built-in simulated server (OpenAI, Ollama, SSE app, JSON) until Ctrl+C.
    #[command(after_help = SERVE_EXAMPLES)]
    ServeSim(ServeArgs),
    /// Step after step: grow the load (rate) and see latency and throughput against it, or grow
    /// the prompt (context), the output (output) or both (combined) one request after another,
    /// and see where latency climbs and what breaks first.
    #[command(subcommand, after_help = SWEEP_GROUP_EXAMPLES)]
    Sweep(SweepCommand),
    /// Find a limit by binary search: `probe max-context` brackets the largest prompt (in
    /// words) the server accepts.
    #[command(after_help = PROBE_EXAMPLES)]
    Probe(Box<ProbeArgs>),
    /// Find the capacity: steps at rising load (rate, or users with --closed-loop / --users)
    /// until an SLO, a stop rule or over-saturation breaks, then bisect to --tolerance; reports
    /// the largest load meeting every target, the knee, and the cause at the first bad level.
    #[command(after_help = DISCOVER_EXAMPLES)]
    Discover(Box<DiscoverArgs>),
    /// Compare runs: key metrics of a baseline and new reports side by side, with deltas and a
    /// verdict per row (better, worse, no significant change) from the recorded distributions.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Print a shell completion script: `loadkit completions bash > ~/.local/share/bash-completion/completions/loadkit`.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (loadkit.1 and one per subcommand) into a directory (`cargo xtask man`).
    #[command(hide = true)]
    Man {
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Render an existing report.json as HTML, Markdown or CSV (prints each file it wrote).
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
}

const COMPLETIONS_EXAMPLES: &str = "Examples:
  loadkit completions bash > ~/.local/share/bash-completion/completions/loadkit
  loadkit completions zsh > ~/.zfunc/_loadkit     # with fpath+=~/.zfunc in ~/.zshrc
  loadkit completions fish > ~/.config/fish/completions/loadkit.fish";

const RUN_EXAMPLES: &str = "Examples:
  loadkit run --rps 10 --duration 30s --format html,md --out results/a   # the built-in simulator
  loadkit run --url http://localhost:8000/v1 --model my-model --rps 10 --duration 60s --warmup 10s
  loadkit run --url http://localhost:8000/v1 --users 32 --requests 1000 --metrics-addr 127.0.0.1:9464";

const PLAN_EXAMPLES: &str = "Examples:
  loadkit plan --pattern ramp --from 0 --to 30 --over 5m
  loadkit plan --pattern spike --rps 5 --spike-rps 50 --spike-duration 10s --spike-every 1m --csv plan.csv";

const SCENARIOS_EXAMPLES: &str = "Examples:
  loadkit scenarios list
  loadkit scenarios list -f docs/scenarios.toml";

const SERVE_EXAMPLES: &str = "Examples:
  loadkit serve-sim --ttft 200ms --itl 20ms --tokens 256
  loadkit serve-sim --protocol tts-ws --addr 127.0.0.1:8765
  loadkit serve-sim --faults cycle --fault-every 3";

const SWEEP_EXAMPLES: &str = "Examples:
  loadkit sweep context --url http://localhost:8000/v1 --model m
  loadkit sweep output --output-min 512 --output-max 8192 --ignore-eos";

const SWEEP_GROUP_EXAMPLES: &str = "Examples:
  loadkit sweep rate --rates 1,2,4,8 --step-duration 10s
  loadkit sweep context --url http://localhost:8000/v1 --model m
  loadkit sweep output --output-min 512 --output-max 8192 --ignore-eos";

const SWEEP_RATE_EXAMPLES: &str = "Examples:
  loadkit sweep rate --rates 1,2,4,8 --step-duration 10s                  # the built-in simulator
  loadkit sweep rate --url http://localhost:8000/v1 --model m --users-steps 1,8,32,128
  loadkit sweep rate --url http://localhost:8000/v1 --model m --steps 5 --goodput 'ttft<1s'

With neither --rates nor --users-steps, the profile is automatic (as GuideLLM's sweep): a
synchronous step (one user, one request at a time) and a throughput step (--throughput-users
at once) bound the range, then --steps constant rates evenly between their achieved rates.";

const DISCOVER_EXAMPLES: &str = "Examples:
  loadkit discover --slo 'ttft.p95<500ms' --max-load 200                       # the built-in simulator
  loadkit discover --url http://localhost:8000/v1 --model m --slo 'ttft.p95<1s,success>99%' --budget 10m
  loadkit discover --url http://localhost:8000/v1 --closed-loop --start 1 --slo 'e2e.p95<20s'

A level is bad when an --slo target fails, a stop rule (--max-failures, --max-error-rate)
ends its step, or it is over-saturated (fewer than 90 % of the offered arrivals started, in
flight growing over the step, or TTFT rising steadily): see docs/stop-rules.md.";

#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// The target, the workload, the SLOs and the stop rules (`--duration` and `--requests` do
    /// not apply: each step lasts --step-duration).
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// The first level: requests per second, or users with --closed-loop.
    #[arg(long, value_name = "LOAD", help_heading = "Discovery")]
    pub(crate) start: Option<f64>,

    /// Each ramp level is the last times this, until one breaks.
    #[arg(
        long,
        value_name = "X",
        default_value = "2",
        help_heading = "Discovery"
    )]
    pub(crate) factor: f64,

    /// Bisect until the bracket is at most this share of its lower end (users: one apart).
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = percent, help_heading = "Discovery")]
    pub(crate) tolerance: f64,

    /// Never try a level above this.
    #[arg(
        long,
        value_name = "LOAD",
        default_value = "10000",
        help_heading = "Discovery"
    )]
    pub(crate) max_load: f64,

    /// Measured length of each step. Long enough for its estimate: a p95 from 20 s at 10 req/s
    /// has 200 values, about ten beyond it.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "20s", help_heading = "Discovery")]
    pub(crate) step_duration: Duration,

    /// Unmeasured start of each step (the server's queue from the last step drains).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s", help_heading = "Discovery")]
    pub(crate) step_warmup: Duration,

    /// The whole search's time budget: no step starts that would end after it.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10m", help_heading = "Discovery")]
    pub(crate) budget: Duration,
}

const PROBE_EXAMPLES: &str = "Examples:
  loadkit probe max-context --lo 128 --hi 131072 --tolerance 5%
  loadkit probe max-context --url http://localhost:8000/v1 --model m --hi 32768";

const COMPARE_EXAMPLES: &str = "Examples:
  loadkit compare runs/v1/report.json runs/v2/report.json
  loadkit compare --base a1/report.json --base a2/report.json --new b1/report.json --new b2/report.json
  loadkit compare base.json new.json --fail-if 'ttft.p95>+10%' --fail-if 'requests_per_s<-5%' --format md

Exit codes: 0 no rule tripped, 1 a --fail-if rule tripped, 2 bad flags or unreadable reports.";

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Reports: the first is the baseline, each further one a new run compared with it (or use
    /// --base and --new to pool repeated runs).
    #[arg(value_name = "REPORT.json")]
    pub(crate) reports: Vec<PathBuf>,
    /// A baseline run (repeatable: repeated runs of the same setup are pooled, and their spread
    /// shown).
    #[arg(long, value_name = "REPORT.json")]
    pub(crate) base: Vec<PathBuf>,
    /// A new run (repeatable, pooled like --base).
    #[arg(long, value_name = "REPORT.json")]
    pub(crate) new: Vec<PathBuf>,
    /// Exit 1 when a rule trips, e.g. 'ttft.p95>+10%' (relative to the base), 'e2e.p99>+200ms'
    /// (absolute, in the row's unit) or 'requests_per_s<-5%'. Rows: requests_per_s,
    /// output_tokens_per_s, success, and METRIC.p50|p95|p99 for every metric both sides have.
    /// Rules test the observed change, whatever the verdict. Repeatable.
    #[arg(long = "fail-if", value_name = "RULE")]
    pub(crate) fail_if: Vec<String>,
    /// The smallest relative change that counts as better or worse: runs of one server differ
    /// from run to run (tail latencies by up to ~10 % on a busy machine). Pool repeated runs
    /// with --base/--new to trust smaller changes.
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = percent)]
    pub(crate) min_change: f64,
    /// Output: text (terminal), md (Markdown for a pull request) or html (one self-contained
    /// page).
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: CompareFormat,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// How `loadkit compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompareFormat {
    /// A table for the terminal.
    Text,
    /// GitHub Markdown.
    Md,
    /// A self-contained HTML page.
    Html,
}

/// `5%` → 0.05, above 0 and at most 100 %.
fn error_rate(text: &str) -> Result<f64, String> {
    match percent(text)? {
        p if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err(format!("must be above 0% and at most 100%, got '{text}'")),
    }
}

fn slo_targets(text: &str) -> Result<Vec<loadkit_core::slo::Target>, String> {
    loadkit_core::slo::Target::parse_list(text).map_err(|e| e.to_string())
}

fn goodput_rule(text: &str) -> Result<loadkit_core::slo::Goodput, String> {
    loadkit_core::slo::Goodput::parse(text).map_err(|e| e.to_string())
}

/// `5%` or `5` → 0.05.
fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=1000.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("must be a percentage such as 5%, got '{text}'")),
    }
}

const REPORT_EXAMPLES: &str = "\
Examples:
  loadkit report results/a/report.json                     # results/a/report.html
  loadkit report results/a/report.json --format md,csv     # report.md, summary.csv, timeline.csv, errors.csv
  loadkit report old/report.json --format html --out /tmp/view";

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The report.json of a run (or a sweep, or a probe).
    #[arg(value_name = "RUN.json")]
    pub(crate) input: PathBuf,
    /// What to write, a comma list of html, md and csv: report.html (one self-contained page
    /// with charts), report.md (GitHub Markdown), summary.csv, timeline.csv and errors.csv.
    #[arg(long, value_name = "FORMATS", default_value = "html", value_parser = formats)]
    pub(crate) format: Formats,
    /// Directory for the files [default: the input file's directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

/// Report formats from `--format` (sorted, without duplicates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Formats(pub(crate) Vec<loadkit_report::Format>);

fn formats(text: &str) -> Result<Formats, String> {
    loadkit_report::Format::parse_list(text)
        .map(Formats)
        .map_err(|e| e.to_string())
}

/// `loadkit sweep KIND`.
#[derive(Debug, Subcommand)]
pub(crate) enum SweepCommand {
    /// Full runs at one load after another (rates, users, or an automatic profile), each with
    /// its own warm-up and duration: offered vs achieved rate, latency and throughput per step.
    #[command(after_help = SWEEP_RATE_EXAMPLES)]
    Rate(Box<RateSweepArgs>),
    /// Prompt words: --context-min, doubling, up to --context-max (or --steps).
    #[command(after_help = SWEEP_EXAMPLES)]
    Context(Box<SweepArgs>),
    /// max_tokens: --output-min, doubling, up to --output-max; flags early stops.
    #[command(after_help = SWEEP_EXAMPLES)]
    Output(Box<SweepArgs>),
    /// Prompt words and max_tokens together, to find the true total window.
    #[command(after_help = SWEEP_EXAMPLES)]
    Combined(Box<SweepArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct RateSweepArgs {
    /// The target, the workload, the SLOs and the stop rules (`--duration` and `--requests` do
    /// not apply: each step lasts --step-duration).
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Open-loop steps at these arrival rates (requests per second), in this order.
    #[arg(long, value_name = "RPS,...", value_delimiter = ',', value_parser = positive_f64, conflicts_with = "users_steps", help_heading = "Sweep")]
    pub(crate) rates: Vec<f64>,

    /// Closed-loop steps with these numbers of users, in this order.
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = positive_u32, help_heading = "Sweep")]
    pub(crate) users_steps: Vec<u32>,

    /// Automatic profile: the number of constant-rate steps between the synchronous and the
    /// throughput step.
    #[arg(long, value_name = "N", default_value = "5", value_parser = positive_u32, help_heading = "Sweep")]
    pub(crate) steps: u32,

    /// Automatic profile: the users of the throughput step (all sending at once).
    #[arg(long, value_name = "N", default_value = "64", value_parser = positive_u32, help_heading = "Sweep")]
    pub(crate) throughput_users: u32,

    /// Measured length of each step.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "20s", help_heading = "Sweep")]
    pub(crate) step_duration: Duration,

    /// Unmeasured start of each step (the server's queue from the last step drains).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s", help_heading = "Sweep")]
    pub(crate) step_warmup: Duration,

    /// Run every step, even after one failed its SLOs or a stop rule [default: stop there].
    #[arg(long, help_heading = "Sweep")]
    pub(crate) keep_going: bool,
}

/// What a size sweep grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepKind {
    /// Prompt words: --context-min, doubling, up to --context-max (or --steps).
    Context,
    /// max_tokens: --output-min, doubling, up to --output-max; flags early stops.
    Output,
    /// Prompt words and max_tokens together, to find the true total window.
    Combined,
}

impl SweepKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SweepKind::Context => "context",
            SweepKind::Output => "output",
            SweepKind::Combined => "combined",
        }
    }
}

/// What a probe searches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProbeKind {
    /// The largest prompt, in words, that still succeeds.
    MaxContext,
}

#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// The target, the workload and the report.
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// context, combined: words of the first prompt.
    #[arg(long, value_name = "WORDS", default_value = "128", value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) context_min: u64,

    /// context, combined: words of the largest prompt.
    #[arg(long, value_name = "WORDS", default_value = "16384", value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) context_max: u64,

    /// context: these prompt sizes in words instead of doubling (e.g. 1000,2000,4000).
    #[arg(long, value_name = "WORDS,...", value_delimiter = ',', value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) steps: Vec<u64>,

    /// output, combined: max_tokens of the first step.
    #[arg(long, value_name = "N", default_value = "512", value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) output_min: u64,

    /// output, combined: max_tokens of the last step.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) output_max: u64,

    /// Requests per step (sent one after another).
    #[arg(long, value_name = "N", default_value = "1", value_parser = positive_u64, help_heading = "Sweep")]
    pub(crate) per_step: u64,

    /// Run every step, even after one failed [default: stop at the first failing step].
    #[arg(long, help_heading = "Sweep")]
    pub(crate) keep_going: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// What to search for.
    #[arg(value_enum)]
    pub(crate) kind: ProbeKind,

    /// The target, the workload and the report.
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// Prompt words known (or hoped) to succeed.
    #[arg(long, value_name = "WORDS", default_value = "128", value_parser = positive_u64, help_heading = "Probe")]
    pub(crate) lo: u64,

    /// Prompt words expected to fail.
    #[arg(long, value_name = "WORDS", default_value = "131072", value_parser = positive_u64, help_heading = "Probe")]
    pub(crate) hi: u64,

    /// Stop when the largest success and the smallest failure are this close (5% or 0.05).
    #[arg(long, value_name = "FRACTION", default_value = "5%", value_parser = fraction, help_heading = "Probe")]
    pub(crate) tolerance: f64,

    /// Requests per attempt (an attempt succeeds when all of them do).
    #[arg(long, value_name = "N", default_value = "1", value_parser = positive_u64, help_heading = "Probe")]
    pub(crate) per_step: u64,
}

/// What an open-loop arrival does when --max-in-flight requests are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnSaturation {
    /// Wait for a free slot and start late (the lag is recorded).
    Queue,
    /// Skip the arrival and count it as missed.
    Drop,
}

/// The services of a voice stack `--service` load-tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Service {
    /// Speech to text (`--protocol asr` at --asr-url).
    Asr,
    /// Text to speech (`--tts-protocol` at --tts-url).
    Tts,
    /// Both side by side, with the same load pattern.
    Both,
}

/// Built-in prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PromptPreset {
    /// About 10 words.
    Short,
    /// About 80 words.
    Medium,
    /// About 400 words.
    Long,
    /// Asks for 2000 numbered lines (pushes a model to write until max_tokens).
    Lines,
    /// Asks to count to 100000 (the longest outputs, for output sweeps).
    Numbers,
}

/// `--read-buffer`: each HTTP connection's read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBuffer {
    /// Fixed [`ReadBuffer::MANY_STREAMS_SIZE`] bytes from [`ReadBuffer::MANY_STREAMS`] streams on.
    Auto,
    /// hyper's adaptive buffer.
    Adaptive,
    /// Exactly this many bytes.
    Exact(usize),
}

impl ReadBuffer {
    /// Concurrency from which `auto` picks a small fixed buffer.
    pub(crate) const MANY_STREAMS: u64 = 1_000;
    /// The buffer `auto` picks then.
    pub(crate) const MANY_STREAMS_SIZE: usize = 2048;

    /// The size to use for a run that can hold `concurrency` requests at once (`None`:
    /// adaptive).
    pub(crate) fn size(self, concurrency: u64) -> Option<usize> {
        match self {
            ReadBuffer::Auto => {
                (concurrency >= Self::MANY_STREAMS).then_some(Self::MANY_STREAMS_SIZE)
            }
            ReadBuffer::Adaptive => None,
            ReadBuffer::Exact(n) => Some(n),
        }
    }
}

#[cfg(test)]
mod read_buffer_tests {
    use super::*;

    #[test]
    fn auto_picks_a_small_buffer_only_for_many_streams() {
        assert_eq!(ReadBuffer::Auto.size(999), None);
        assert_eq!(ReadBuffer::Auto.size(1_000), Some(2048));
        assert_eq!(ReadBuffer::Adaptive.size(10_000), None);
        assert_eq!(read_buffer("4KiB"), Ok(ReadBuffer::Exact(4096)));
        assert_eq!(read_buffer("600"), Ok(ReadBuffer::Exact(600)));
        assert!(read_buffer("2MiB").is_err());
    }
}

fn read_buffer(s: &str) -> Result<ReadBuffer, String> {
    let s = s.trim();
    match s {
        "auto" => return Ok(ReadBuffer::Auto),
        "adaptive" => return Ok(ReadBuffer::Adaptive),
        _ => {}
    }
    let (digits, scale) = match s.strip_suffix("KiB").or_else(|| s.strip_suffix("k")) {
        Some(d) => (d, 1024),
        None => (s, 1),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: give auto, adaptive, or a size in bytes (4096, 4KiB)"))?;
    let n = n.saturating_mul(scale);
    if !(loadkit_http::MIN_READ_BUFFER..=1 << 20).contains(&n) {
        return Err(format!(
            "{s:?}: a read buffer is {} bytes to 1 MiB",
            loadkit_http::MIN_READ_BUFFER
        ));
    }
    Ok(ReadBuffer::Exact(n))
}

/// `--server-metrics`: where the server's own metrics come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerMetricsMode {
    /// /metrics on the target's host, when it is one loadkit knows.
    Auto,
    /// Not scraped.
    Off,
    /// This URL.
    Url(String),
}

fn server_metrics_mode(s: &str) -> Result<ServerMetricsMode, String> {
    match s.trim() {
        "auto" => Ok(ServerMetricsMode::Auto),
        "off" | "none" => Ok(ServerMetricsMode::Off),
        url if url.starts_with("http://") => Ok(ServerMetricsMode::Url(url.to_owned())),
        url if url.starts_with("https://") => Err(
            "the server's metrics are scraped over http:// only (https is not supported yet)"
                .into(),
        ),
        other => Err(format!("{other:?}: give auto, off, or an http:// URL")),
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// The target, the workload and the report.
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// The load pattern and its parameters.
    #[command(flatten)]
    pub(crate) load: crate::pattern::PatternArgs,

    /// Run a named scenario: from --file, or a built-in preset (queue-stress, burst, ramp,
    /// spike, chaos, quick). Flags given on the command line override the scenario's.
    #[arg(long, value_name = "NAME")]
    pub(crate) scenario: Option<String>,

    /// Scenario file (TOML, [scenarios.NAME] tables of run flags).
    #[arg(long, short = 'f', value_name = "FILE", requires = "scenario")]
    pub(crate) file: Option<PathBuf>,

    /// Print the planned load per second (chart) and exit without sending anything.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Run the same test N times, one after another (each its own report in --out/runs/NN),
    /// and report the spread: median and coefficient of variation of every key figure. The
    /// top-level report is the median run's; `compare` pools all N.
    #[arg(long, value_name = "N", default_value = "1", value_parser = positive_u32)]
    pub(crate) repeat: u32,

    /// Set by multi-run commands (discover, sweep rate, --repeat): the run is one of their
    /// steps, which print their own verdict line, so the run prints no SLO or stop lines.
    #[arg(skip)]
    pub(crate) as_step: bool,

    /// Open loop: at most this many requests in flight at once.
    #[arg(long, value_name = "N", default_value = "256", value_parser = positive_u32, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) max_in_flight: u32,

    /// Open loop: what an arrival does at the --max-in-flight cap.
    #[arg(
        long,
        value_enum,
        default_value = "queue",
        help_heading = "Load pattern"
    )]
    pub(crate) on_saturation: OnSaturation,

    /// How long to send requests after the warm-up (e.g. 30s, 2m) [default: 10s unless
    /// --requests is given].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) duration: Option<Duration>,

    /// Stop after sending this many measured requests.
    #[arg(long, value_name = "N", value_parser = positive_u64, allow_negative_numbers = true)]
    pub(crate) requests: Option<u64>,

    /// Closed loop (--users): each user sends exactly N requests (warm-up ones included) and
    /// leaves; the run completes when every user has, unless --duration or --requests stops
    /// it first. --iterations 1: every user is one session (one listener, one document).
    #[arg(long, value_name = "N", value_parser = positive_u64, allow_negative_numbers = true)]
    pub(crate) iterations: Option<u64>,

    /// Run this long first without measuring (requests then are excluded from statistics).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "0s")]
    pub(crate) warmup: Duration,

    /// After the run stops, in-flight requests get this long to finish before being cancelled.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
    pub(crate) grace: Duration,

    /// Serve the run's counters and TTFT / ITL / E2E histograms at http://ADDR/metrics in the
    /// Prometheus text format while it runs (e.g. 127.0.0.1:9464; port 0 picks a free one),
    /// labelled with protocol, target and scenario. Stops once the report is written.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<String>,

    /// Keep /metrics up this long after the report is written, so a last scrape sees the final
    /// counts (Prometheus scrapes every 15 s or so).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "0s", requires = "metrics_addr")]
    pub(crate) metrics_linger: Duration,

    /// Scrape the server's own Prometheus metrics every --server-metrics-every while the run
    /// goes on, and add them to the timeline and the report (`server_metrics`): `auto` looks
    /// for /metrics on the target's host and keeps it when it has vLLM, llama-server, TGI or
    /// SGLang names; a URL scrapes that; `off` does not scrape. A failed scrape is recorded,
    /// never fatal.
    #[arg(long, value_name = "auto|off|URL", default_value = "auto", value_parser = server_metrics_mode, help_heading = "Server metrics")]
    pub(crate) server_metrics: ServerMetricsMode,

    /// Time between scrapes of the server's metrics.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1s", help_heading = "Server metrics")]
    pub(crate) server_metrics_every: Duration,

    /// Also keep this series of the server's metrics (repeatable): a metric name with an
    /// optional label filter, `NAME` or `NAME{label="value"}`. Counters are read as a rate per
    /// second, histograms as their mean over each interval, gauges as they are.
    #[arg(long, value_name = "NAME", help_heading = "Server metrics")]
    pub(crate) server_metric: Vec<String>,

    /// Stop the run after this many failed requests (0: never; also LOADKIT_MAX_FAILURES).
    /// The report holds everything up to the stop; exit code 1.
    #[arg(
        long,
        value_name = "N",
        default_value = "0",
        env = "LOADKIT_MAX_FAILURES",
        help_heading = "Stop rules and SLOs"
    )]
    pub(crate) max_failures: u64,

    /// Stop once this share of the requests that ended within --error-window failed (judged
    /// each second, after warm-up, from 20 requests in the window); exit code 1.
    #[arg(long, value_name = "PERCENT", value_parser = error_rate, help_heading = "Stop rules and SLOs")]
    pub(crate) max_error_rate: Option<f64>,

    /// The sliding window of --max-error-rate (whole seconds).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s", requires = "max_error_rate", help_heading = "Stop rules and SLOs")]
    pub(crate) error_window: Duration,

    /// Service-level targets judged on the final report, comma-separated or repeated:
    /// METRIC.STAT<VALUE for distributions (ttft.p95<500ms, itl.p99.9<100ms, e2e.mean<2s;
    /// p50..p99.9, mean, min, max), success>99%, error_rate<1%, rps>10, goodput_per_s>5,
    /// goodput_ratio>90%, or any number of the report by path
    /// (throughput.output_tokens_per_s>=100). A target missed: which and by how much, exit 1.
    #[arg(long, value_name = "TARGETS", value_parser = slo_targets, action = clap::ArgAction::Append, help_heading = "Stop rules and SLOs")]
    pub(crate) slo: Vec<Vec<loadkit_core::slo::Target>>,

    /// Also check the --slo targets over request values (ttft, itl, tpot, e2e, success,
    /// error_rate) once a second during the run, and stop at the first one missed, once it
    /// has its sample: 100 requests, and for a percentile p enough for ten values beyond it
    /// (200 for p95, 1,000 for p99).
    #[arg(long, requires = "slo", help_heading = "Stop rules and SLOs")]
    pub(crate) abort_on_slo: bool,

    /// Count requests whose own values each meet every target (per request, not
    /// percentiles): ttft<500ms,tpot<50ms,e2e<10s (also itl: the request's largest gap,
    /// ttfa, ttft_corrected, e2e_corrected). Reported as slo.goodput_per_s and
    /// slo.goodput_ratio.
    #[arg(long, value_name = "TARGETS", value_parser = goodput_rule, help_heading = "Stop rules and SLOs")]
    pub(crate) goodput: Option<loadkit_core::slo::Goodput>,

    /// Closed loop: a user whose request got a 429 or 503 with Retry-After waits that long
    /// (at most 5 minutes) before its next request; the waits are counted in the report.
    #[arg(long, help_heading = "Stop rules and SLOs")]
    pub(crate) respect_retry_after: bool,

    /// Write report.json every this often during the run (atomically, marked
    /// `checkpoint: true`), so a killed run leaves a valid report losing at most one interval;
    /// 0s: only at the end.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10s", help_heading = "Report")]
    pub(crate) checkpoint_every: Duration,

    /// Stream one JSON line per finished request (intended start, sent, first byte, first
    /// token, end, status, error class, tokens; ms from the run's start) to FILE, flushed
    /// every second. A relative FILE goes inside the --out directory.
    #[arg(long, value_name = "FILE", help_heading = "Report")]
    pub(crate) raw: Option<PathBuf>,

    /// Load-test a voice stack: its ASR, its TTS, or both side by side (one run each, with
    /// this load pattern; one summary each; reports in --out/asr and --out/tts). Chooses the
    /// protocols itself: use --asr-url and --tts-url, not --protocol and --url.
    #[arg(long, value_enum, value_name = "SERVICE", help_heading = "Voice stack")]
    pub(crate) service: Option<Service>,

    /// The ASR service's URL [default: the built-in ASR simulator].
    #[arg(
        long,
        value_name = "URL",
        requires = "service",
        help_heading = "Voice stack"
    )]
    pub(crate) asr_url: Option<String>,

    /// The TTS service's URL [default: the built-in simulator of --tts-protocol].
    #[arg(
        long,
        value_name = "URL",
        requires = "service",
        help_heading = "Voice stack"
    )]
    pub(crate) tts_url: Option<String>,

    /// How the TTS service is spoken to.
    #[arg(long, value_name = "PROTOCOL", default_value = "tts-ws", value_parser = ["tts-ws", "tts-http"], help_heading = "Voice stack")]
    pub(crate) tts_protocol: String,

    /// The ASR service's model (instead of --model).
    #[arg(
        long,
        value_name = "MODEL",
        requires = "service",
        help_heading = "Voice stack"
    )]
    pub(crate) asr_model: Option<String>,

    /// The TTS service's model (instead of --model).
    #[arg(
        long,
        value_name = "MODEL",
        requires = "service",
        help_heading = "Voice stack"
    )]
    pub(crate) tts_model: Option<String>,
}
/// What every command that sends requests shares: the target and protocol, the prompt and
/// generation settings, timeouts, and where the report goes.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// Target: the base URL as OpenAI SDKs take it (http://host:8000/v1) or the full endpoint
    /// URL. Without it, the built-in simulator is started and load-tested.
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,

    /// Protocol spoken to the target; each protocol's own options are listed below under
    /// "Protocol options".
    #[arg(long, default_value = "openai-chat", value_parser = clap::builder::PossibleValuesParser::new(crate::registry::names()))]
    pub(crate) protocol: String,

    /// Model name sent with each request (the simulator accepts any).
    #[arg(long)]
    pub(crate) model: Option<String>,

    /// Per-request deadline, from send to the last byte.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "60s")]
    pub(crate) timeout: Duration,

    /// Deadline for the TCP (and TLS) connection.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10s")]
    pub(crate) connect_timeout: Duration,

    /// Deadline between two pieces of a streamed response.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
    pub(crate) idle_timeout: Duration,

    /// Each HTTP connection's read buffer: `auto` (a fixed 2 KiB once the run can hold 1,000
    /// or more streams at once, which saves about 5 KiB of client memory per open stream;
    /// otherwise adaptive), `adaptive` (8 KiB, growing for fast bodies), or a fixed size in
    /// bytes (e.g. 4096 or 4KiB, at least 512).
    #[arg(long, value_name = "auto|adaptive|BYTES", default_value = "auto", value_parser = read_buffer)]
    pub(crate) read_buffer: ReadBuffer,

    /// The user prompt, the same for every request.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["prompt_preset", "prompt_words"])]
    pub(crate) prompt: Option<String>,

    /// A built-in prompt [default: short].
    #[arg(long, value_enum, value_name = "NAME", conflicts_with = "prompt_words")]
    pub(crate) prompt_preset: Option<PromptPreset>,

    /// A synthetic prompt of exactly N whitespace-separated words, different for every request
    /// and reproducible for a given --seed.
    #[arg(long, value_name = "N", value_parser = positive_usize, allow_negative_numbers = true)]
    pub(crate) prompt_words: Option<usize>,

    /// A system prompt sent before the user prompt.
    #[arg(long, value_name = "TEXT")]
    pub(crate) system_prompt: Option<String>,

    /// max_tokens sent with each request.
    #[arg(long, value_name = "N", default_value = "128", value_parser = positive_u32, allow_negative_numbers = true)]
    pub(crate) max_tokens: u32,

    /// A lower bound on output tokens, sent as `min_tokens` (vLLM, the ws-chat default
    /// message): forces long outputs in limit tests. Ignored by protocols without one.
    #[arg(long, value_name = "N", value_parser = positive_u32, allow_negative_numbers = true)]
    pub(crate) min_tokens: Option<u32>,

    /// Sampling temperature sent with each request.
    #[arg(long, default_value = "0", allow_negative_numbers = true, value_parser = non_negative_f64)]
    pub(crate) temperature: f64,

    /// Seed for synthetic prompts, poisson and chaos schedules; sent to the server as `seed`.
    #[arg(long, default_value = "42")]
    pub(crate) seed: u64,

    /// Extra request header (repeatable), e.g. --header 'X-Team: search'.
    #[arg(long = "header", value_name = "K:V", value_parser = header)]
    pub(crate) headers: Vec<(String, String)>,

    /// Environment variable holding the API key (sent as `Authorization: Bearer ...`).
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    pub(crate) api_key_env: String,

    /// A session token (prefer --token-env, --env-file or --token-command: a flag's value is
    /// visible to other users of the machine). Never printed or written to a report.
    #[arg(
        long,
        value_name = "TOKEN",
        help_heading = "Authentication",
        group = "token_source"
    )]
    pub(crate) token: Option<String>,

    /// Read the token from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        help_heading = "Authentication",
        group = "token_source"
    )]
    pub(crate) token_env: Option<String>,

    /// Read the token from a file of KEY=VALUE lines (a .env file), key --token-key.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Authentication",
        group = "token_source"
    )]
    pub(crate) env_file: Option<PathBuf>,

    /// The key of the token in --env-file.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "TOKEN",
        help_heading = "Authentication"
    )]
    pub(crate) token_key: String,

    /// Run this shell command once before the load; its first output line is the token (how a
    /// session token is fetched from an auth provider with credentials kept elsewhere).
    #[arg(
        long,
        value_name = "CMD",
        help_heading = "Authentication",
        group = "token_source"
    )]
    pub(crate) token_command: Option<String>,

    /// How long --token-command may run before it is stopped (and the run refused).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = duration,
        default_value = "30s",
        help_heading = "Authentication"
    )]
    pub(crate) token_command_timeout: Duration,

    /// Where the token is sent, for every protocol.
    #[arg(
        long,
        value_enum,
        default_value = "query",
        help_heading = "Authentication"
    )]
    pub(crate) token_in: crate::secret::TokenIn,

    /// --token-in query: the query parameter's name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "token",
        help_heading = "Authentication"
    )]
    pub(crate) token_param: String,

    /// --token-in header: the header's name (Authorization gets `Bearer TOKEN`, any other
    /// header the bare token).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "Authorization",
        help_heading = "Authentication"
    )]
    pub(crate) token_header: String,

    /// Accept any TLS certificate for https:// and wss:// targets (self-signed, expired, another
    /// host's): nothing is verified, so anyone on the path can read and change the traffic.
    /// Prints a warning; the report records `insecure: true`. Prefer --ca-cert.
    #[arg(long, help_heading = "TLS")]
    pub(crate) insecure: bool,

    /// Trust the CA certificates in this PEM file beside the Mozilla roots (a server whose
    /// certificate a private CA signed; a self-signed certificate is its own CA). Repeatable.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub(crate) ca_cert: Vec<PathBuf>,

    /// Directory for report.json and the --format files [default: loadkit-results/<UTC
    /// timestamp>]. A directory that already holds a report is refused before any load, unless
    /// --force.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Replace the report already in --out.
    #[arg(long)]
    pub(crate) force: bool,

    /// Report files beside report.json (always written), a comma list of json, html, md and
    /// csv: report.html (one self-contained page with charts, works offline), report.md
    /// (GitHub Markdown), summary.csv, timeline.csv and errors.csv. See docs/reports.md.
    #[arg(long, value_name = "FORMATS", default_value = "json", value_parser = formats)]
    pub(crate) format: Formats,

    /// No live progress: only the final summary.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    /// When stderr is not a terminal (CI logs), one progress line this often (and the final
    /// state at the end); a terminal gets a progress bar redrawn every second instead.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "5s")]
    pub(crate) progress_every: Duration,

    /// The protocol options given (filled from the matches by `args::parse`).
    #[arg(skip)]
    pub(crate) protocol_options: Vec<(String, Vec<String>)>,

    /// -v given (copied from the global flag by `args::parse`): a line per request.
    #[arg(skip)]
    pub(crate) verbose: bool,

    /// --protocol or --url given on the command line (filled by `args::parse`), which
    /// --service refuses.
    #[arg(skip)]
    pub(crate) target_given: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The load pattern and its parameters.
    #[command(flatten)]
    pub(crate) load: crate::pattern::PatternArgs,
    /// How far to plan [default: the pattern's own length for stages, else 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) duration: Option<Duration>,
    /// Seed for poisson and chaos.
    #[arg(long, default_value = "42")]
    pub(crate) seed: u64,
    /// Plan a named scenario (from --file, or a built-in preset).
    #[arg(long, value_name = "NAME")]
    pub(crate) scenario: Option<String>,
    /// Scenario file.
    #[arg(long, short = 'f', value_name = "FILE", requires = "scenario")]
    pub(crate) file: Option<PathBuf>,
    /// Write the plan as CSV (t_s,planned) to this file; `-` prints only the CSV to stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) csv: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ScenariosArgs {
    #[command(subcommand)]
    pub(crate) command: ScenariosCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScenariosCommand {
    /// List the scenarios and the flags each one sets.
    List {
        /// Scenario file [default: the built-in presets].
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The protocol whose simulator to run (openai-chat and openai-completions share one,
    /// as do ollama-chat and ollama-generate).
    #[arg(long, default_value = "openai-chat", value_parser = clap::builder::PossibleValuesParser::new(crate::registry::names()))]
    pub(crate) protocol: String,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) addr: std::net::SocketAddr,
    /// Time to first token.
    #[arg(long, value_parser = duration, default_value = "50ms")]
    pub(crate) ttft: Duration,
    /// Time between tokens.
    #[arg(long, value_parser = duration, default_value = "10ms")]
    pub(crate) itl: Duration,
    /// Output tokens per response (capped by the request's max_tokens).
    #[arg(long, default_value = "32", value_parser = positive_u32)]
    pub(crate) tokens: u32,
    /// Never send a usage chunk (like llama-cpp-python), so clients must count tokens.
    #[arg(long)]
    pub(crate) no_usage: bool,
    /// How an unpaced stream (--ttft 0ms --itl 0ms) is written: per-token writes each token's
    /// event in its own write syscall (strict: on loopback this costs the server more than the
    /// client); per-chunk hands each event to hyper as its own chunk as soon as it is made and
    /// never waits, so while the socket is busy up to 16 go out in one writev (how a
    /// tokio/hyper or asyncio server streaming tokens behaves); packed puts about 16 KiB of
    /// events in each write, a ceiling that flatters the client.
    #[arg(long, value_enum, default_value = "per-token")]
    pub(crate) flush: FlushMode,
    /// Misbehave on purpose (docs/faults.md): `cycle` (every fault the protocol's simulator
    /// supports, in turn) or names separated by commas, each request picked by --fault-every
    /// getting the next one: refused, reset, truncated, malformed-json, invalid-utf8,
    /// oversized, rate-limited, overloaded, slow-headers, stall, stream-error, garbage-status,
    /// bad-chunking, linger (openai-chat, openai-completions); reset, malformed-json,
    /// oversized, stall, stream-error, close-1011, no-pong (ws-chat).
    #[arg(long, value_name = "cycle|NAME[,NAME]")]
    pub(crate) faults: Option<String>,
    /// With --faults: every Nth request gets a fault, the others are answered normally.
    #[arg(long, value_name = "N", default_value = "2", value_parser = positive_u64, requires = "faults")]
    pub(crate) fault_every: u64,
    /// With --faults: how long slow-headers holds the response head, a stall lasts, and a
    /// linger keeps the body open after its end marker.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "2s", requires = "faults")]
    pub(crate) fault_delay: Duration,
    /// Serve at most N requests at once, as a model server's slots (vLLM's --max-num-seqs,
    /// llama-server's -np): later ones wait in arrival order, and their time to first token
    /// includes the wait. GET /metrics reports running and waiting requests in vLLM's names.
    /// OpenAI-compatible simulator only.
    #[arg(long, value_name = "N", value_parser = positive_u32)]
    pub(crate) slots: Option<u32>,
}

/// How an unpaced simulated stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FlushMode {
    /// Each token's event in its own write syscall.
    PerToken,
    /// Each token's event its own chunk, flushed as made; queued chunks share a writev.
    PerChunk,
    /// Many events per write.
    Packed,
}

/// The whole command line: `loadkit` with every protocol's options added to `run`.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory as _;
    Cli::command()
        .mut_subcommand("run", crate::registry::augment)
        .mut_subcommand("sweep", |sweep| {
            ["rate", "context", "output", "combined"]
                .into_iter()
                .fold(sweep, |sweep, kind| {
                    sweep.mut_subcommand(kind, crate::registry::augment)
                })
        })
        .mut_subcommand("probe", crate::registry::augment)
        .mut_subcommand("discover", crate::registry::augment)
}

/// Parses `argv`, the protocol options included.
pub(crate) fn parse(argv: Vec<String>) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches as _;
    let matches = command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let verbose = cli.verbose > 0;
    let target = match &mut cli.command {
        Command::Run(args) => Some(&mut args.target),
        Command::Sweep(SweepCommand::Rate(args)) => Some(&mut args.run.target),
        Command::Sweep(
            SweepCommand::Context(args) | SweepCommand::Output(args) | SweepCommand::Combined(args),
        ) => Some(&mut args.target),
        Command::Probe(args) => Some(&mut args.target),
        Command::Discover(args) => Some(&mut args.run.target),
        _ => None,
    };
    // The innermost subcommand's matches (`sweep rate` is two deep).
    let mut sub = matches.subcommand().map(|(_, m)| m);
    while let Some((_, inner)) = sub.and_then(|m| m.subcommand()) {
        sub = Some(inner);
    }
    if let (Some(target), Some(sub)) = (target, sub) {
        target.protocol_options = crate::registry::given(sub);
        target.verbose = verbose;
        target.target_given = ["protocol", "url"].iter().any(|id| {
            sub.try_get_raw(id).ok().flatten().is_some()
                && sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        });
    }
    Ok(cli)
}

/// The longest duration any flag takes (the engine refuses longer runs too).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| format!("invalid duration '{text}' (use e.g. 500ms, 30s, 2m, 1h)"))?;
    if d > MAX_DURATION {
        return Err(format!("duration '{text}' is longer than 365 days"));
    }
    Ok(d)
}

fn non_negative_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("must be a number >= 0, got '{text}'")),
    }
}

fn positive_u64(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number >= 1, got '{text}'")),
    }
}

fn positive_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("must be a number above 0, got '{text}'")),
    }
}

fn positive_u32(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number >= 1, got '{text}'")),
    }
}

fn fraction(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(x) if x.is_finite() && (0.0..1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "must be a fraction such as 5% or 0.05, got '{text}'"
        )),
    }
}

fn threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to 1024, got '{text}'"
        )),
    }
}

fn positive_usize(text: &str) -> Result<usize, String> {
    positive_u64(text).map(|n| n as usize)
}

fn header(text: &str) -> Result<(String, String), String> {
    // The text is not echoed: it may hold a credential.
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "a header must be of the form 'Name: value' (no ':' given)".to_owned())?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!(
            "header name '{name}' is not a valid HTTP header name"
        ));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers_explain_bad_input() {
        assert!(duration("abc")
            .unwrap_err()
            .contains("invalid duration 'abc'"));
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(positive_u32("-1").unwrap_err().contains(">= 1"));
        assert!(non_negative_f64("NaN").is_err());
        assert_eq!(header("X-A: b: c").unwrap(), ("X-A".into(), "b: c".into()));
        assert!(header("nocolon").is_err());
        assert!(header("bad name: x").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        // Also catches a protocol option that collides with a shared flag.
        command().debug_assert();
    }
}
