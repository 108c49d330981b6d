//! The protocol registry's vocabulary: what a protocol crate tells a front end (the CLI) so that
//! adding a protocol is one crate plus one line in the front end's list.
//!
//! A protocol crate exposes one `static` value implementing [`Protocol`]: its `--protocol`
//! names, the options it accepts ([`OptionSpec`], each with its help and default), how it is
//! built from the shared [`Settings`] and its [`Options`] into a [`Launch`] (a client and a
//! workload ready to run, with its own pre-flight check and report sections), and, when its
//! `simulator` feature is on, its built-in simulated server. The front end turns the specs into
//! flags, refuses an option the chosen protocol does not accept, and never matches on protocol
//! names. Report sections are typed [`Value`] trees; only loadkit-report knows their JSON form.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use loadkit_schedule::Schedule;
use tokio_util::sync::CancellationToken;

use crate::prompt::PromptSource;
use crate::slo::Goodput;
use crate::{
    CheckpointSink, Client, ErrorRate, Observer, RunConfigError, RunResult, Runner, Saturation,
    Source,
};

/// One `--protocol` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolName {
    /// The name, e.g. `openai-chat`.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
}

/// An option a protocol accepts, as the front end shows and parses it (`--LONG VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The long name without dashes, e.g. `content-pointer`.
    pub long: &'static str,
    /// The value's placeholder (`POINTER`), or `None` for a switch that takes no value.
    pub value: Option<&'static str>,
    /// The default when not given (shown in `--help`; [`Options`] falls back to it).
    pub default: Option<&'static str>,
    /// Whether it may be given more than once (every value is kept).
    pub repeat: bool,
    /// The help text.
    pub help: &'static str,
    /// Which of the protocol's names accept it; empty: all of them.
    pub only: &'static [&'static str],
}

impl OptionSpec {
    /// A `--long VALUE` option with no default, accepted by every name of the protocol.
    pub const fn value(long: &'static str, value: &'static str, help: &'static str) -> Self {
        Self {
            long,
            value: Some(value),
            default: None,
            repeat: false,
            help,
            only: &[],
        }
    }

    /// A `--long` switch, accepted by every name of the protocol.
    pub const fn switch(long: &'static str, help: &'static str) -> Self {
        Self {
            long,
            value: None,
            default: None,
            repeat: false,
            help,
            only: &[],
        }
    }

    /// With a default value.
    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    /// Repeatable.
    pub const fn repeat(mut self) -> Self {
        self.repeat = true;
        self
    }

    /// Accepted only by these names of the protocol.
    pub const fn only(mut self, names: &'static [&'static str]) -> Self {
        self.only = names;
        self
    }

    /// Whether `protocol` (one of the declaring protocol's names) accepts it.
    pub fn accepted_by(&self, protocol: &str) -> bool {
        self.only.is_empty() || self.only.contains(&protocol)
    }
}

/// The values given for a protocol's options, by long name.
#[derive(Debug, Clone, Default)]
pub struct Options {
    specs: &'static [OptionSpec],
    given: Vec<(&'static str, Vec<String>)>,
}

impl Options {
    /// Options of a protocol whose specs are `specs`, none given yet.
    pub fn new(specs: &'static [OptionSpec]) -> Self {
        Self {
            specs,
            given: Vec::new(),
        }
    }

    /// Records the values given for `long` (a switch: no values, or `["true"]`).
    ///
    /// # Errors
    ///
    /// When no spec has that name.
    pub fn give(&mut self, long: &str, values: Vec<String>) -> Result<(), SetupError> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.long == long)
            .ok_or_else(|| SetupError::new(format!("unknown option --{long}")))?;
        self.given.push((spec.long, values));
        Ok(())
    }

    /// Whether `long` was given.
    pub fn is_given(&self, long: &str) -> bool {
        self.given.iter().any(|(l, _)| *l == long)
    }

    /// Every value given for `long` (empty when not given).
    pub fn all(&self, long: &str) -> &[String] {
        self.given
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The last value given for `long`, or its default.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.all(long).last().map(String::as_str).or_else(|| {
            self.specs
                .iter()
                .find(|s| s.long == long)
                .and_then(|s| s.default)
        })
    }

    /// Whether the switch `long` is on.
    pub fn flag(&self, long: &str) -> bool {
        self.is_given(long) && self.all(long).last().is_none_or(|v| v != "false")
    }

    /// The value of `long` parsed as `T`, or `None` when neither given nor defaulted.
    ///
    /// # Errors
    ///
    /// The value does not parse: the error names the option and the value.
    pub fn parse<T>(&self, long: &str) -> Result<Option<T>, SetupError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(long)
            .map(|text| {
                text.trim().parse::<T>().map_err(|e| {
                    SetupError::new(format!("invalid value '{text}' for --{long}: {e}"))
                })
            })
            .transpose()
    }

    /// The value of `long` as a duration (`500ms`, `20s`, `2m`, `1h`).
    ///
    /// # Errors
    ///
    /// The value is not a duration.
    pub fn duration(&self, long: &str) -> Result<Option<Duration>, SetupError> {
        self.get(long)
            .map(|text| {
                parse_duration(text).ok_or_else(|| {
                    SetupError::new(format!(
                        "invalid duration '{text}' for --{long} (use e.g. 500ms, 30s, 2m)"
                    ))
                })
            })
            .transpose()
    }
}

/// `500ms`, `1.5s`, `2m`, `1h`, `0`: a non-negative number and a unit (`ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1e3,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds <= 365.0 * 24.0 * 3600.0)
        .then(|| Duration::from_secs_f64(seconds))
}

/// The settings every protocol shares, validated by the front end.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The chosen `--protocol` name (one of this protocol's names).
    pub protocol: &'static str,
    /// The target URL as the user gave it (or the built-in simulator's).
    pub url: String,
    /// Whether the target is the built-in simulator (protocols pick friendlier defaults).
    pub simulated: bool,
    /// The model name, when given.
    pub model: Option<String>,
    /// `max_tokens` (or the protocol's equivalent) sent with each request.
    pub max_tokens: u32,
    /// A lower bound on output tokens (`min_tokens`), for limit tests.
    pub min_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: f64,
    /// The run's seed (synthetic prompts, and sent as `seed` where the protocol has one).
    pub seed: u64,
    /// The user prompts.
    pub prompts: PromptSource,
    /// Whether the user chose the prompts (`--prompt`, `--prompt-words`, `--prompt-preset`);
    /// `false` when they are the default preset, so a protocol with a better default for its
    /// own text (TTS blocks) may use it.
    pub prompt_chosen: bool,
    /// A system prompt sent before the user prompt.
    pub system_prompt: Option<Arc<str>>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The API key, when the front end found one.
    pub api_key: Option<String>,
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline for the first byte (headers, first message) after sending.
    pub first_byte_timeout: Duration,
    /// Deadline between two pieces of a streamed response.
    pub idle_timeout: Duration,
    /// Accept any TLS certificate (`--insecure`): no verification. Default `false`: every
    /// protocol that dials TLS verifies the server's certificate.
    pub insecure: bool,
    /// PEM texts of private CAs trusted beside the Mozilla roots (`--ca-cert FILE`).
    pub ca_certs: Vec<Vec<u8>>,
    /// Each HTTP connection reads into a buffer of exactly this many bytes; `None`: the
    /// client's adaptive buffer (hyper's: 8 KiB, growing for fast bodies). A small fixed
    /// buffer saves memory per connection when thousands of slow streams are open.
    pub read_buffer: Option<usize>,
}

impl Settings {
    /// Settings for `protocol` at `url` with the defaults the CLI uses.
    pub fn new(protocol: &'static str, url: impl Into<String>) -> Self {
        Self {
            protocol,
            url: url.into(),
            simulated: false,
            model: None,
            max_tokens: 128,
            min_tokens: None,
            temperature: 0.0,
            seed: 42,
            prompts: PromptSource::Fixed(Arc::from(crate::prompt::Preset::Short.text())),
            prompt_chosen: false,
            system_prompt: None,
            headers: Vec::new(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            insecure: false,
            ca_certs: Vec::new(),
            read_buffer: None,
        }
    }
}

/// A value in a report section or in the run's settings: typed data, rendered by loadkit-report.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A switch.
    Bool(bool),
    /// A count.
    U64(u64),
    /// A measurement.
    F64(f64),
    /// Text.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// Named fields, in order.
    Map(Vec<(String, Value)>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U64(u64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A protocol's own section of the report (key `name`), beside the standard ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The report key, e.g. `tools`.
    pub name: &'static str,
    /// Its fields, in order.
    pub fields: Vec<(&'static str, Value)>,
    /// Lines for the terminal summary in place of the fields on one line (`190/200 blocks
    /// · wall 41.2 s`); empty: the fields are shown. Not part of the JSON report.
    pub summary: Vec<String>,
}

impl Section {
    /// A section of `fields`, shown in the summary as they are.
    pub fn new(name: &'static str, fields: Vec<(&'static str, Value)>) -> Self {
        Self {
            name,
            fields,
            summary: Vec::new(),
        }
    }

    /// The section with these summary lines.
    pub fn with_summary(mut self, lines: Vec<String>) -> Self {
        self.summary = lines;
        self
    }
}

/// How a run is scheduled and stopped: everything the [`RunnerBuilder`](crate::RunnerBuilder)
/// takes except the client and the workload, so a front end can hand it to any protocol.
pub struct RunPlan {
    /// Open or closed loop.
    pub load: Schedule,
    /// How long to send after the warm-up.
    pub duration: Option<Duration>,
    /// How many measured requests to send.
    pub requests: Option<u64>,
    /// Closed loop: iterations per user (each user leaves after them).
    pub iterations: Option<u64>,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Per-request deadline.
    pub timeout: Option<Duration>,
    /// Time in-flight requests get after the stop.
    pub grace: Duration,
    /// Stop after this many failures (0: never).
    pub max_failures: u64,
    /// Open loop: the in-flight cap.
    pub max_in_flight: u32,
    /// Open loop: what an arrival does at the cap.
    pub saturation: Saturation,
    /// Stops the run from outside (in-flight requests get the grace period).
    pub cancel: Option<CancellationToken>,
    /// Cancels in-flight requests at once, from outside.
    pub abort: Option<CancellationToken>,
    /// Stop at this share of failures over a sliding window.
    pub max_error_rate: Option<ErrorRate>,
    /// Closed loop: users wait out a `Retry-After`.
    pub respect_retry_after: bool,
    /// Count the requests meeting these per-request targets.
    pub goodput: Option<Goodput>,
    /// Snapshots of the run at this interval.
    pub checkpoint: Option<(Duration, Box<dyn CheckpointSink>)>,
    /// Called by the collector, in order.
    pub observers: Vec<Box<dyn Observer>>,
}

impl fmt::Debug for RunPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunPlan")
            .field("load", &self.load)
            .field("duration", &self.duration)
            .field("requests", &self.requests)
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

impl RunPlan {
    /// A plan for `load` with the engine's defaults.
    pub fn new(load: Schedule) -> Self {
        Self {
            load,
            duration: None,
            requests: None,
            iterations: None,
            warmup: Duration::ZERO,
            timeout: Some(Duration::from_secs(60)),
            grace: Duration::from_secs(30),
            max_failures: 0,
            max_in_flight: 256,
            saturation: Saturation::Queue,
            cancel: None,
            abort: None,
            max_error_rate: None,
            respect_retry_after: false,
            goodput: None,
            checkpoint: None,
            observers: Vec::new(),
        }
    }

    /// The runner for `client` and `source` under this plan.
    ///
    /// # Errors
    ///
    /// The plan is invalid (the builder's checks).
    pub fn runner<C, S>(self, client: C, source: S) -> Result<Runner<C, S>, RunConfigError>
    where
        C: Client,
        S: Source<Item = C::Request>,
    {
        let mut builder = Runner::builder(client, source)
            .warmup(self.warmup)
            .timeout(self.timeout)
            .grace(self.grace)
            .max_failures(self.max_failures)
            .max_in_flight(self.max_in_flight)
            .on_saturation(self.saturation);
        builder = match self.load {
            Schedule::Open(schedule) => builder.open_loop(schedule),
            Schedule::Closed(schedule) => builder.closed_loop(schedule),
        };
        if let Some(d) = self.duration {
            builder = builder.duration(d);
        }
        if let Some(n) = self.requests {
            builder = builder.requests(n);
        }
        if let Some(n) = self.iterations {
            builder = builder.iterations(n);
        }
        if let Some(token) = self.cancel {
            builder = builder.cancel_token(token);
        }
        if let Some(token) = self.abort {
            builder = builder.abort_token(token);
        }
        if let Some(limit) = self.max_error_rate {
            builder = builder.max_error_rate(limit);
        }
        builder = builder.respect_retry_after(self.respect_retry_after);
        if let Some(rule) = self.goodput {
            builder = builder.goodput(rule);
        }
        if let Some((every, sink)) = self.checkpoint {
            builder = builder.checkpoint_boxed(every, sink);
        }
        for observer in self.observers {
            builder = builder.observer_boxed(observer);
        }
        builder.build()
    }
}

/// What a finished [`Launch`] hands back.
#[derive(Debug)]
pub struct Outcome {
    /// The engine's result.
    pub result: RunResult,
    /// The protocol's own report sections.
    pub sections: Vec<Section>,
}

/// A protocol built for one run: a client and its workload, ready to check and run.
pub trait Launch: Send {
    /// The endpoint URL requests go to (for the report and error messages).
    fn target(&self) -> &str;

    /// Checks, before any load is sent, that the target answers the way this protocol needs
    /// (TCP, a WebSocket upgrade, `/api/tags` and the model, ...).
    fn preflight(&self) -> BoxFuture<'_, Result<(), PreflightError>>;

    /// The protocol's settings for the report's `run` section.
    fn settings(&self) -> Vec<(&'static str, Value)>;

    /// Runs the plan; the sections come from what the run recorded.
    fn run(self: Box<Self>, plan: RunPlan) -> BoxFuture<'static, Result<Outcome, RunConfigError>>;
}

impl fmt::Debug for dyn Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Launch({})", self.target())
    }
}

type PreflightFn = Box<dyn Fn() -> BoxFuture<'static, Result<(), PreflightError>> + Send + Sync>;
type SectionsFn = Box<dyn FnOnce(&RunResult) -> Vec<Section> + Send>;

/// The usual [`Launch`]: a client, its workload, the target, and optionally a pre-flight check
/// and the sections made from the result.
pub struct Prepared<C, S> {
    client: C,
    source: S,
    target: String,
    settings: Vec<(&'static str, Value)>,
    preflight: Option<PreflightFn>,
    sections: Option<SectionsFn>,
}

impl<C, S> fmt::Debug for Prepared<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<C, S> Prepared<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// `client` sending what `source` makes to `target`, with no pre-flight check.
    pub fn new(client: C, source: S, target: impl Into<String>) -> Self {
        Self {
            client,
            source,
            target: target.into(),
            settings: Vec::new(),
            preflight: None,
            sections: None,
        }
    }

    /// The protocol's settings for the report.
    pub fn with_settings(mut self, settings: Vec<(&'static str, Value)>) -> Self {
        self.settings = settings;
        self
    }

    /// The pre-flight check.
    pub fn with_preflight<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), PreflightError>> + Send + 'static,
    {
        self.preflight = Some(Box::new(move || Box::pin(check())));
        self
    }

    /// The report sections, made from the result.
    pub fn with_sections(
        mut self,
        sections: impl FnOnce(&RunResult) -> Vec<Section> + Send + 'static,
    ) -> Self {
        self.sections = Some(Box::new(sections));
        self
    }
}

impl<C, S> Launch for Prepared<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    fn target(&self) -> &str {
        &self.target
    }

    fn preflight(&self) -> BoxFuture<'_, Result<(), PreflightError>> {
        match &self.preflight {
            Some(check) => check(),
            None => Box::pin(async { Ok(()) }),
        }
    }

    fn settings(&self) -> Vec<(&'static str, Value)> {
        self.settings.clone()
    }

    fn run(self: Box<Self>, plan: RunPlan) -> BoxFuture<'static, Result<Outcome, RunConfigError>> {
        let Prepared {
            client,
            source,
            sections,
            ..
        } = *self;
        Box::pin(async move {
            let result = plan.runner(client, source)?.run().await;
            let sections = sections.map(|make| make(&result)).unwrap_or_default();
            Ok(Outcome { result, sections })
        })
    }
}

/// The simulated server's script, shared by every protocol's simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimScript {
    /// Time to the first token.
    pub ttft: Duration,
    /// Time between tokens.
    pub itl: Duration,
    /// Output tokens per response (capped by the request's `max_tokens`).
    pub tokens: u32,
    /// Whether the server reports usage.
    pub usage: bool,
    /// How unpaced streams (zero TTFT and ITL) are written.
    pub writes: SimWrites,
    /// Faults injected on purpose (none by default).
    pub faults: FaultPlan,
    /// Requests served at once; later ones queue for a free slot (`None`: no limit). Only
    /// simulators of a model server with slots (OpenAI-compatible) honour it.
    pub slots: Option<u32>,
}

impl Default for SimScript {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            tokens: 32,
            usage: true,
            writes: SimWrites::default(),
            faults: FaultPlan::default(),
            slots: None,
        }
    }
}

/// How a simulator writes the events of an unpaced stream (zero TTFT and ITL): the cost of
/// each read a client pays depends on how many events each read brings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimWrites {
    /// Each token's event is its own write and flush (one write syscall per event): a strict
    /// server. On loopback the sender pays the receiver's TCP work too, so an equal core
    /// serving this saturates before a client does.
    #[default]
    PerToken,
    /// Each token's event is its own chunk, handed to the HTTP stack as soon as it is made and
    /// flushed without waiting for more; while the socket is busy the stack sends the queued
    /// chunks together (hyper: up to 16 per `writev`). How a tokio/hyper or asyncio server
    /// streaming a generator behaves.
    PerChunk,
    /// Many events packed into each write (about 16 KiB): a ceiling that flatters a client.
    Packed,
}

/// The faults a simulator injects on purpose, by name (`loadkit serve-sim --faults`): every
/// [`every`](Self::every)th request gets the next fault of [`names`](Self::names) in turn, the
/// others are answered normally. Protocol-neutral: each simulator maps the names it supports
/// ([`Protocol::sim_faults`]) onto its own faults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// The faults taking turns, each a name the simulator supports; empty: no faults.
    pub names: Vec<&'static str>,
    /// Every how many requests a fault applies (1: every request).
    pub every: u64,
    /// How long `slow-headers` holds the response head, a `stall` lasts and a `linger` keeps
    /// the body open after its end.
    pub delay: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            every: 2,
            delay: Duration::from_secs(2),
        }
    }
}

impl FaultPlan {
    /// The plan for `spec`: `cycle` (every fault in `supported`, in its order) or names
    /// separated by commas, each one of `supported`; `simulator` names the simulator in the
    /// error. Every `every`th request takes the next fault, faults held `delay`.
    ///
    /// # Errors
    ///
    /// A name is empty or not supported: one line naming it and listing what is.
    pub fn parse(
        spec: &str,
        simulator: &str,
        supported: &'static [&'static str],
        every: u64,
        delay: Duration,
    ) -> Result<Self, SetupError> {
        let names = if spec.trim() == "cycle" {
            supported.to_vec()
        } else {
            spec.split(',')
                .map(|name| {
                    let name = name.trim();
                    supported.iter().copied().find(|s| *s == name).ok_or_else(|| {
                        let supports = if supported.is_empty() {
                            "it injects no faults".to_owned()
                        } else {
                            format!("it supports: {}", supported.join(", "))
                        };
                        SetupError::new(format!(
                            "--faults {name}: not supported by the {simulator} simulator; {supports}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if names.is_empty() {
            return Err(SetupError::new(format!(
                "--faults cycle: the {simulator} simulator injects no faults"
            )));
        }
        Ok(Self {
            names,
            every,
            delay,
        })
    }

    /// Each fault with its turn (from 0) and the number of turns, for a simulator's rules.
    pub fn turns(&self) -> impl Iterator<Item = (u64, u64, &'static str)> + '_ {
        let of = self.names.len() as u64;
        (0..of)
            .zip(self.names.iter().copied())
            .map(move |(slot, name)| (slot, of, name))
    }
}

/// A running simulated server.
pub trait Simulator: Send {
    /// The URL a client of this protocol is pointed at.
    fn url(&self) -> String;
    /// Stops it.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl fmt::Debug for dyn Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Simulator({})", self.url())
    }
}

/// A protocol, as a front end registers it.
pub trait Protocol: Sync {
    /// Its `--protocol` names.
    fn names(&self) -> &'static [ProtocolName];

    /// The options it accepts.
    fn options(&self) -> &'static [OptionSpec];

    /// Builds `settings.protocol` (one of [`names`](Self::names)) for one run.
    ///
    /// # Errors
    ///
    /// A setting or option is invalid: one line, naming the option.
    fn build(&self, settings: &Settings, options: &Options) -> Result<Box<dyn Launch>, SetupError>;

    /// Starts its simulated server on `listener` (bound, non-blocking), inside a tokio runtime;
    /// `None` (the default) when the crate has no simulator or was built without its
    /// `simulator` feature.
    fn simulate(
        &self,
        protocol: &str,
        listener: std::net::TcpListener,
        script: &SimScript,
    ) -> Option<Box<dyn Simulator>> {
        let _ = (protocol, listener, script);
        None
    }

    /// The fault names its simulator for `protocol` injects ([`FaultPlan`]), in the order
    /// `cycle` takes them; none by default. A simulator given a [`SimScript::faults`] name
    /// outside this list ignores it.
    fn sim_faults(&self, protocol: &str) -> &'static [&'static str] {
        let _ = protocol;
        &[]
    }

    /// Whether its simulator honours [`SimScript::slots`]; `false` by default.
    fn sim_slots(&self, protocol: &str) -> bool {
        let _ = protocol;
        false
    }
}

/// A protocol could not be built from the settings and options.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SetupError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SetupError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with this context, caused by `source`.
    pub fn caused(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The target did not answer the way the protocol needs before the run.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PreflightError {
    message: String,
}

impl PreflightError {
    /// An error with this message (one line).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::value("ping-interval", "DURATION", "h").default("20s"),
        OptionSpec::switch("no-ping", "h"),
        OptionSpec::value("header-x", "K:V", "h")
            .repeat()
            .only(&["a"]),
    ];

    #[test]
    fn options_fall_back_to_defaults_and_parse_with_the_option_named() {
        let mut o = Options::new(SPECS);
        assert_eq!(
            o.duration("ping-interval").unwrap(),
            Some(Duration::from_secs(20))
        );
        assert!(!o.flag("no-ping"));
        o.give("no-ping", vec![]).unwrap();
        o.give("ping-interval", vec!["soon".into()]).unwrap();
        assert!(o.flag("no-ping"));
        let e = o.duration("ping-interval").unwrap_err().to_string();
        assert!(e.contains("--ping-interval") && e.contains("soon"), "{e}");
        assert!(o.give("nope", vec![]).is_err());
        assert!(SPECS[2].accepted_by("a") && !SPECS[2].accepted_by("b"));
        assert!(SPECS[0].accepted_by("b"));
    }

    #[test]
    fn fault_plans_name_what_the_simulator_supports() {
        const SUPPORTED: &[&str] = &["reset", "stall", "linger"];
        let d = Duration::from_secs(1);
        let plan = FaultPlan::parse("cycle", "sim", SUPPORTED, 2, d).unwrap();
        assert_eq!(plan.names, SUPPORTED);
        let plan = FaultPlan::parse("stall, reset", "sim", SUPPORTED, 3, d).unwrap();
        assert_eq!(plan.names, ["stall", "reset"]);
        assert_eq!(
            plan.turns().collect::<Vec<_>>(),
            [(0, 2, "stall"), (1, 2, "reset")]
        );
        let e = FaultPlan::parse("reset,close-1011", "openai-chat", SUPPORTED, 2, d)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--faults close-1011: not supported by the openai-chat simulator; it supports: reset, stall, linger"
        );
        let e = FaultPlan::parse("cycle", "json", &[], 2, d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("injects no faults"), "{e}");
        let e = FaultPlan::parse("reset", "json", &[], 2, d)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("it injects no faults"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("1e9h"), None);
    }
}
