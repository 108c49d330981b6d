//! `cargo xtask`: loadkit's build and benchmark orchestration, in Rust, with few dependencies.
//!
//! - `cargo xtask ci`: format check, clippy with `-D warnings`, the test suite, and
//!   `cargo deny check licenses bans sources` when cargo-deny is installed.
//! - `cargo xtask man`: writes the man pages (clap_mangen, from the CLI's own flags) into
//!   `target/man`.
//! - `cargo xtask bench-stream [--streams N] [--seconds T] [--tokens K] [--flush MODE]`: builds
//!   release, runs the simulator (writing each token on its own, as real servers do, unless
//!   `--flush packed`) and the client as separate processes pinned to separate cores, and
//!   prints throughput, client CPU efficiency, memory and timing error against DESIGN.md §8, then
//!   the in-memory framing and parsing cost per event (the `parse_cpu` example, no sockets).
//! - `cargo xtask soak [--minutes 60] [--rps 100]`: a steady run against the simulator with
//!   checkpoints and raw records on, printing the client's RSS every minute (memory must be
//!   flat).

mod bench;
mod soak;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context as _, Result};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench-stream") => bench::bench_stream(&args[1..]),
        Some("man") => man(),
        Some("soak") => soak::soak(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown task '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task>
  ci                      fmt --check, clippy -D warnings, tests, cargo deny (when installed)
  man                     man pages (loadkit.1, loadkit-run.1, ...) into target/man
  bench-stream [options]  release build; simulator and client on separate cores; prints figures
      --streams N         concurrent streams (default 64)
      --seconds T         seconds per phase (default 10)
      --tokens K          tokens per response in the throughput phase (default 256)
      --slow-streams N    concurrent one-token-per-second streams in the memory phase (default 10000, 0 skips)
      --storm-streams N   streams opened in one second beside 1000 open ones (default 5000, 0 skips)
      --flush MODE        the zero-pacing phase with one simulator only: per-chunk (each event its
                          own chunk, queued chunks share a writev: the budget's), per-token (one
                          write syscall per event) or packed (~16 KiB per write, flatters the
                          client); default all three in turn
  soak [--minutes 60] [--rps 100]
                          release build; a steady run against the simulator with checkpoints and
                          raw records on; the client's RSS each minute (flat: ≤ 1.25× minute 1)";

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask ci: {name}");
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// `loadkit man --out target/man`, through cargo so it is built first.
fn man() -> Result<()> {
    let out = root().join("target").join("man");
    let status = cargo()
        .args(["run", "--quiet", "-p", "loadkit-cli", "--", "man", "--out"])
        .arg(&out)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("writing the man pages failed ({status})");
    }
    println!(
        "read one with: man -l {}",
        out.join("loadkit-run.1").display()
    );
    Ok(())
}

fn ci() -> Result<()> {
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let has_deny = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deny {
        step(
            "cargo deny",
            cargo().args(["deny", "--offline", "check", "licenses", "bans", "sources"]),
        )?;
    } else {
        eprintln!("xtask ci: cargo-deny not installed, skipping (cargo install cargo-deny)");
    }
    // The libraries' API docs build without a broken link (what `cargo add` users read).
    step(
        "cargo doc (libraries, -D warnings)",
        cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--workspace",
            "--no-deps",
            "--exclude",
            "loadkit-cli",
            "--exclude",
            "xtask",
        ]),
    )?;
    step(
        "example: load-test an async fn with loadkit-core",
        cargo().args([
            "run",
            "--quiet",
            "-p",
            "loadkit-core",
            "--example",
            "load_test_fn",
        ]),
    )?;
    tests()
}

/// Runs the whole test suite, echoing its output, and ends with one `N passed, N failed` line.
fn tests() -> Result<()> {
    eprintln!("xtask ci: cargo test");
    let mut child = cargo()
        .args(["test", "--workspace"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            // test result: ok. 12 passed; 0 failed; 0 ignored; ...
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u64 = n
                    .trim_start_matches("ok.")
                    .trim_start_matches("FAILED.")
                    .parse()
                    .unwrap_or(0);
                match kind {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    println!("{passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok(())
}
