//! `loadkit`: the command-line load tester for AI serving endpoints. Glue only: flags, signals,
//! terminal, files and exit codes; everything else lives in the library crates.

mod args;
mod compare;
mod discover;
mod docgen;
mod durable;
mod live;
mod pattern;
mod plan;
mod process;
mod prometheus;
mod rate;
mod registry;
mod repeat;
mod run;
mod secret;
mod serve;
mod server_metrics;
mod service;
mod stderr;
mod steps;
mod sweep;
mod verbose;

use std::process::ExitCode;

use crate::args::{Command, SweepCommand, SweepKind};

/// Exit codes, as docs and `--help` state them.
pub(crate) mod exit {
    /// Everything ran and no threshold failed.
    pub(crate) const OK: u8 = 0;
    /// A threshold failed (e.g. `--max-failures` reached).
    pub(crate) const THRESHOLD: u8 = 1;
    /// Bad flags or configuration.
    pub(crate) const USAGE: u8 = 2;
    /// The target could not be reached before the run started.
    pub(crate) const UNREACHABLE: u8 = 3;
    /// Interrupted by Ctrl+C or SIGTERM (reports are still written).
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// An error that ends the program with a specific exit code; printed on one line with its
/// whole source chain (`context: cause: cause`).
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

impl Fatal {
    /// Bad flags or configuration (exit code 2).
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: exit::USAGE,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// `error`, ending the program with `code`.
    pub(crate) fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }
}

fn main() -> ExitCode {
    let argv = match plan::expand_scenario(std::env::args().collect()) {
        Ok(argv) => argv,
        Err(fatal) => {
            eprintln!("error: {:#}", fatal.error);
            return ExitCode::from(fatal.code);
        }
    };
    let cli = match args::parse(argv) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    init_tracing(cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Plan(args) => plan::plan(&args),
            Command::Scenarios(args) => plan::scenarios(&args),
            Command::ServeSim(args) => serve::serve(args).await,
            Command::Sweep(SweepCommand::Rate(args)) => rate::sweep_rate(*args).await,
            Command::Sweep(SweepCommand::Context(args)) => {
                sweep::sweep(SweepKind::Context, *args).await
            }
            Command::Sweep(SweepCommand::Output(args)) => {
                sweep::sweep(SweepKind::Output, *args).await
            }
            Command::Sweep(SweepCommand::Combined(args)) => {
                sweep::sweep(SweepKind::Combined, *args).await
            }
            Command::Probe(args) => sweep::probe(*args).await,
            Command::Discover(args) => discover::discover(*args).await,
            Command::Compare(args) => compare::compare(&args),
            Command::Completions { shell } => docgen::completions(shell),
            Command::Man { out } => docgen::man(&out),
            Command::Report(args) => run::render(&args),
        }
    });
    // In-flight tasks were cancelled; do not wait for stragglers.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(fatal) => {
            eprintln!("error: {}", secret::redact(&format!("{:#}", fatal.error)));
            ExitCode::from(fatal.code)
        }
    }
}

/// Prints a clap error as one line (help and version go to stdout as usual).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                exit::USAGE
            } else {
                exit::OK
            },
        );
    }
    let rendered = e.render().to_string();
    let line: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = line.join(" ");
    // A rejected --header or --token* value may be a credential: it is not shown.
    use clap::error::{ContextKind, ContextValue};
    if let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) {
        if (arg.starts_with("--header") || arg.starts_with("--token")) && !value.is_empty() {
            line = line.replace(value.as_str(), "***");
        }
    }
    // URLs lose their credentials here too.
    eprintln!("{} (see --help)", secret::redact(&line));
    ExitCode::from(exit::USAGE)
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOADKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| secret::RedactingStderr)
        .try_init();
}
