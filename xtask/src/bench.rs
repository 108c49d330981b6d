//! `cargo xtask bench-stream`: the streaming benchmark behind DESIGN.md §8's budgets.
//!
//! The simulator (`loadkit serve-sim`) and the client (`loadkit run`) run as two processes, each
//! pinned to its own core with `taskset` when available, so the client's CPU time is its own.
//! Phase 1 streams with zero pacing to measure the client's cost per event; phase 2 streams with
//! paced tokens (TTFT 50 ms, ITL 10 ms) to measure timing error against the injected truth;
//! phase 3 is the open-loop schedule lag, phase 4 many slow streams, phase 5 a generic SSE
//! endpoint parsed and counted. Phase 6 (the `parse_cpu` example of loadkit-openai) frames and
//! parses OpenAI chunks in memory, one event per push, with no socket: CPU-only figures that stay
//! stable on a busy machine, for ASCII, `\n`-heavy and `\uXXXX`-escaped content and for one
//! 1 MiB event trickled in 64-byte pushes.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::{cargo, root};

#[derive(Clone, Copy)]
struct Options {
    streams: u32,
    seconds: u32,
    tokens: u32,
    slow: u32,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        streams: 64,
        seconds: 10,
        tokens: 256,
        slow: 10_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let n: u32 = value
            .parse()
            .with_context(|| format!("{flag} takes a whole number, got '{value}'"))?;
        match flag.as_str() {
            "--streams" => o.streams = n,
            "--seconds" => o.seconds = n,
            "--tokens" => o.tokens = n,
            "--slow-streams" => o.slow = n,
            other => bail!("unknown option '{other}'"),
        }
    }
    if o.streams == 0 || o.seconds == 0 || o.tokens < 2 {
        bail!("--streams and --seconds must be >= 1 and --tokens >= 2");
    }
    Ok(o)
}

/// Kills the simulator when the benchmark ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pinned(core: u32, program: &Path) -> Command {
    if has_taskset() {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(core.to_string()).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_server(bin: &Path, ttft: &str, itl: &str, tokens: u32) -> Result<(Server, String)> {
    start_sim(bin, "openai", ttft, itl, tokens)
}

fn start_sim(
    bin: &Path,
    protocol: &str,
    ttft: &str,
    itl: &str,
    tokens: u32,
) -> Result<(Server, String)> {
    let mut child = pinned(1, bin)
        .args([
            "serve-sim",
            "--protocol",
            protocol,
            "--ttft",
            ttft,
            "--itl",
            itl,
            "--tokens",
            &tokens.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the simulator")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the simulator's address")?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected simulator output: {line:?}"))?
        .to_owned();
    Ok((server, url))
}

fn run_client(bin: &Path, url: &str, o: &Options, out: &Path) -> Result<Value> {
    run_loadkit(bin, url, &["--users", &o.streams.to_string()], o, out)
}

fn run_loadkit(bin: &Path, url: &str, load: &[&str], o: &Options, out: &Path) -> Result<Value> {
    let status = pinned(0, bin)
        .args(["run", "--url", url, "--quiet"])
        .args(load)
        .args(["--duration", &format!("{}s", o.seconds)])
        .args(["--max-tokens", &o.tokens.to_string()])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .context("cannot start the client")?;
    if !status.success() {
        bail!("the client failed ({status})");
    }
    let text = std::fs::read_to_string(out.join("report.json")).context("reading report.json")?;
    Ok(serde_json::from_str(&text)?)
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

pub(crate) fn bench_stream(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    eprintln!("bench-stream: building release (cargo build --release -p loadkit-cli)");
    let status = cargo()
        .args(["build", "--release", "--quiet", "-p", "loadkit-cli"])
        .status()?;
    let status = if status.success() {
        cargo()
            .args(["build", "--release", "--quiet", "-p", "loadkit-core"])
            .args(["--example", "schedule_lag"])
            .status()?
    } else {
        status
    };
    let status = if status.success() {
        cargo()
            .args(["build", "--release", "--quiet", "-p", "loadkit-openai"])
            .args(["--example", "parse_cpu"])
            .status()?
    } else {
        status
    };
    if !status.success() {
        bail!("release build failed");
    }
    let bin: PathBuf = root().join("target/release/loadkit");
    let out = root().join("target/bench-stream");
    if !has_taskset() {
        eprintln!("bench-stream: taskset not found; processes are not pinned (apt-get install util-linux)");
    }

    // Phase 1: zero pacing, the client's cost per event.
    let (server, url) = start_server(&bin, "0ms", "0ms", o.tokens)?;
    let r = run_client(&bin, &url, &o, &out.join("throughput"))?;
    drop(server);
    let events = f(&r, &["generator", "content_events"]);
    let cpu = f(&r, &["generator", "cpu_s"]);
    let secs = f(&r, &["run", "duration_s"]);
    let failed = f(&r, &["totals", "failed"]);
    println!(
        "bench-stream: {} streams x {} s, {} tokens per response, zero pacing",
        o.streams, o.seconds, o.tokens
    );
    println!(
        "  streams/s                       {:>12.0}",
        f(&r, &["throughput", "requests_per_s"])
    );
    println!("  content events/s                {:>12.0}", events / secs);
    println!(
        "  events per client CPU-second    {:>12.0}   (budget >= 1,000,000)",
        events / cpu
    );
    println!(
        "  client CPU                      {:>12.2} s over {secs:.1} s",
        cpu
    );
    println!(
        "  client peak RSS                 {:>12.1} MiB",
        f(&r, &["generator", "peak_rss_mib"])
    );
    println!("  failed requests                 {:>12.0}", failed);

    // Phase 2: paced tokens, timing error against the injected truth.
    let paced = Options { tokens: 64, ..o };
    let (server, url) = start_server(&bin, "50ms", "10ms", paced.tokens)?;
    // One second of warm-up keeps connection set-up out of the timing error.
    let users = paced.streams.to_string();
    let r = run_loadkit(
        &bin,
        &url,
        &["--users", &users, "--warmup", "1s"],
        &paced,
        &out.join("timing"),
    )?;
    drop(server);
    let err = |metric: &str, q: &str, truth: f64| f(&r, &["metrics", metric, q]) - truth;
    println!(
        "bench-stream: {} streams x {} s, TTFT 50 ms and ITL 10 ms injected",
        paced.streams, paced.seconds
    );
    println!(
        "  TTFT error p50 / p99 / max      {:>8.3} / {:.3} / {:.3} ms",
        err("ttft", "p50", 50.0),
        err("ttft", "p99", 50.0),
        err("ttft", "max", 50.0)
    );
    println!(
        "  ITL error  p50 / p99 / max      {:>8.3} / {:.3} / {:.3} ms   (budget p99 < 1 ms)",
        err("itl", "p50", 10.0),
        err("itl", "p99", 10.0),
        err("itl", "max", 10.0)
    );
    println!(
        "  requests                        {:>12.0} ok, {:.0} failed",
        f(&r, &["totals", "succeeded"]),
        f(&r, &["totals", "failed"])
    );

    // Phase 3: open loop at 2,000 requests/s, the generator's schedule lag.
    let short = Options { tokens: 4, ..o };
    let (server, url) = start_server(&bin, "0ms", "0ms", short.tokens)?;
    let r = run_loadkit(
        &bin,
        &url,
        &["--rps", "2000", "--max-in-flight", "1024"],
        &short,
        &out.join("lag"),
    )?;
    drop(server);
    println!(
        "bench-stream: open loop, 2000 requests/s x {} s, 4 tokens per response",
        short.seconds
    );
    println!(
        "  schedule lag p50 / p99 / max    {:>8.3} / {:.3} / {:.3} ms   (budget p99 < 1 ms)",
        f(&r, &["metrics", "schedule_lag", "p50"]),
        f(&r, &["metrics", "schedule_lag", "p99"]),
        f(&r, &["metrics", "schedule_lag", "max"])
    );
    println!(
        "  requests                        {:>12.0} sent, {:.0} ok, {:.0} queued at the cap",
        f(&r, &["totals", "requests"]),
        f(&r, &["totals", "succeeded"]),
        f(&r, &["totals", "queued_late"])
    );
    // The engine alone (a no-op client) at the same rate, on the same single core.
    let engine = pinned(0, &root().join("target/release/examples/schedule_lag"))
        .args(["2000", &short.seconds.to_string()])
        .output()
        .context("running the schedule_lag example")?;
    print!(
        "  engine only, no-op client:      {}",
        String::from_utf8_lossy(&engine.stdout)
    );

    // Phase 4: many slow streams (one token per second), client memory per stream and ITL error.
    if o.slow > 0 {
        let slow = Options {
            seconds: 12,
            tokens: 10,
            ..o
        };
        let (server, url) = start_server(&bin, "1s", "1s", slow.tokens)?;
        let users = o.slow.to_string();
        let load = [
            "--users",
            &users,
            "--stagger",
            "100us",
            "--idle-timeout",
            "10s",
        ];
        let r = run_loadkit(&bin, &url, &load, &slow, &out.join("slow"))?;
        drop(server);
        let rss = f(&r, &["generator", "peak_rss_mib"]);
        println!(
            "bench-stream: {} concurrent streams, one token per second",
            o.slow
        );
        println!(
            "  client peak RSS                 {:>12.1} MiB = {:.1} KiB per stream   (budget < 32 KiB)",
            rss,
            rss * 1024.0 / f64::from(o.slow)
        );
        println!(
            "  ITL error  p50 / p99 / max      {:>8.3} / {:.3} / {:.3} ms   (budget p99 < 2 ms)",
            f(&r, &["metrics", "itl", "p50"]) - 1000.0,
            f(&r, &["metrics", "itl", "p99"]) - 1000.0,
            f(&r, &["metrics", "itl", "max"]) - 1000.0
        );
        println!(
            "  requests                        {:>12.0} ok, {:.0} failed, client CPU {:.2} s",
            f(&r, &["totals", "succeeded"]),
            f(&r, &["totals", "failed"]),
            f(&r, &["generator", "cpu_s"])
        );
    }
    // Phase 5: a generic SSE endpoint, parsing each event's JSON vs counting events only.
    let (server, url) = start_sim(&bin, "sse", "0ms", "0ms", o.tokens)?;
    let streams = o.streams.to_string();
    let mut rates = Vec::new();
    for (mode, flags) in [
        (
            "parse (--content-pointer /token)",
            ["--content-pointer", "/token"],
        ),
        (
            "count-only (--count-only)",
            ["--count-only", "--count-only"],
        ),
    ] {
        let load = [
            "--protocol",
            "sse",
            "--end-marker",
            "[DONE]",
            flags[0],
            flags[1],
            "--users",
            &streams,
        ];
        let name = if flags[0] == "--count-only" {
            "sse-count"
        } else {
            "sse-parse"
        };
        let r = run_loadkit(&bin, &url, &load, &o, &out.join(name))?;
        let per_cpu = f(&r, &["generator", "content_events"]) / f(&r, &["generator", "cpu_s"]);
        rates.push(per_cpu);
        if rates.len() == 1 {
            println!(
                "bench-stream: generic SSE, {} streams x {} s, {} events per response, zero pacing",
                o.streams, o.seconds, o.tokens
            );
        }
        println!(
            "  {mode:<32}{per_cpu:>12.0} events per client CPU-second ({:.0} failed)",
            f(&r, &["totals", "failed"])
        );
    }
    drop(server);
    if let [parse, count] = rates[..] {
        println!(
            "  count-only vs parse              {:>11.2}x events per CPU-second",
            count / parse
        );
    }
    // Phase 6: framing and parsing alone, in memory (the example prints its own lines).
    let parse = pinned(0, &root().join("target/release/examples/parse_cpu"))
        .output()
        .context("running the parse_cpu example")?;
    if !parse.status.success() {
        bail!("the parse_cpu example failed ({})", parse.status);
    }
    print!("{}", String::from_utf8_lossy(&parse.stdout));
    println!("  reports in {}", out.display());
    Ok(())
}
