//! `cargo xtask bench-stream`: the streaming benchmark behind DESIGN.md §8's budgets.
//!
//! The simulator (`loadkit serve-sim`) and the client (`loadkit run`) run as two processes, each
//! pinned to its own core with `taskset` when available, so the client's CPU time is its own.
//! Phase 1 streams with zero pacing to measure the client's cost per event, three ways: the
//! simulator hands each token's event to hyper as its own chunk as soon as it is made
//! (`serve-sim --flush per-chunk`; hyper sends the chunks queued while the socket is busy in one
//! writev, as a tokio/hyper server streaming tokens does: the budget's figure), then, labelled,
//! a strict server making one write syscall per event (`per-token`; on loopback its core
//! saturates first, as the sender pays the receiver's TCP work) and packed writes of ~16 KiB
//! (`packed`, which flatters the client). Each prints the server's CPU beside the client's (a
//! client at 100 % and a server well below is the client being the bottleneck) and the
//! server's events per write syscall (from `/proc/PID/io`), so what the client was given to read
//! is on the page; `--flush MODE` runs only that one. Each budget line says met or NOT met. Phase 2 streams with
//! paced tokens (TTFT 50 ms, ITL 10 ms) to measure timing error against the injected truth;
//! phase 3 is the open-loop schedule lag (2,000 streams/s, then 20,000 plain GETs/s against a
//! trivial server, each beside the engine alone with a no-op client), phase 4 many slow streams, then a connection storm (`--storm-streams` streams opened within
//! one second beside 1,000 streaming ones, budget: ITL error max 50 ms), phase 5 a generic SSE
//! endpoint parsed and counted. Phase 6 (the `parse_cpu` example of loadkit-openai) frames and
//! parses OpenAI chunks in memory, one event per push, with no socket: CPU-only figures that stay
//! stable on a busy machine, for ASCII, `\n`-heavy and `\uXXXX`-escaped content and for one
//! 1 MiB event trickled in 64-byte pushes. Phase 7 is plain keep-alive requests beside wrk;
//! phase 8 is 200 TTS-over-WebSocket listeners (cached audio, so the client's playback, refill
//! timers and audio parsing are all that is measured) and 64 concurrent ASR uploads (instant
//! answers), each with its schedule lag (budget: p99 under 1 ms).

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
    /// Streams opened in one second by the connection-storm phase (0: skipped).
    storm: u32,
    /// `serve-sim --flush` for phase 1: `per-chunk`, `per-token` or `packed` (`None`: all
    /// three, per-chunk first).
    flush: Option<&'static str>,
}

/// DESIGN.md §8: content events parsed per client CPU-second, 64 streams, zero pacing, against a
/// server that flushes per token.
const EVENTS_PER_CPU_S: f64 = 1_500_000.0;

/// `serve-sim --flush` of every phase after the first: paced streams write each event when it
/// is due whatever the mode, and the unpaced short streams of the schedule-lag phase are written
/// as a tokio/hyper server would.
const PHASE_WRITES: &str = "per-chunk";

/// Streams already open when the connection storm begins.
const STORM_BASE: u32 = 1_000;

/// The connection storm: [`STORM_BASE`] paced streams (one token per second) opened over the
/// first second and left to run, then `o.storm` more opened within one second (closed-loop
/// stages `1s:BASE,2s:BASE,1s:BASE+STORM,8s:BASE+STORM`). The budget is on the ITL error of every
/// token of the run, the streams already open during the storm included: max <= 50 ms.
fn connection_storm(bin: &Path, o: &Options, out: &Path) -> Result<()> {
    let storm = Options {
        seconds: 12,
        tokens: 10,
        ..*o
    };
    let (server, url) = start_server(bin, "1s", "1s", storm.tokens, PHASE_WRITES)?;
    let top = STORM_BASE + o.storm;
    let stages = format!("1s:{STORM_BASE},2s:{STORM_BASE},1s:{top},8s:{top}");
    let load = [
        "--pattern",
        "stages",
        "--closed-loop",
        "--stages",
        &stages,
        "--idle-timeout",
        "10s",
    ];
    let r = run_loadkit(bin, &url, &load, &storm, out)?;
    drop(server);
    println!(
        "bench-stream: connection storm, {} streams opened in one second beside {STORM_BASE} open, one token per second",
        o.storm
    );
    let itl = |q: &str| f(&r, &["metrics", "itl", q]) - 1000.0;
    println!(
        "  ITL error  p50 / p99 / max      {:>8.3} / {:.3} / {:.3} ms   (budget max <= 50 ms: {})",
        itl("p50"),
        itl("p99"),
        itl("max"),
        verdict(itl("max") <= 50.0)
    );
    println!(
        "  TTFT p99, requests              {:>8.3} ms, {:.0} ok, {:.0} failed, client peak RSS {:.1} MiB",
        f(&r, &["metrics", "ttft", "p99"]),
        f(&r, &["totals", "succeeded"]),
        f(&r, &["totals", "failed"]),
        f(&r, &["generator", "peak_rss_mib"])
    );
    Ok(())
}

/// `met` or `NOT met` for a figure against its budget.
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        streams: 64,
        seconds: 10,
        tokens: 256,
        slow: 10_000,
        storm: 5_000,
        flush: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        if flag == "--flush" {
            o.flush = Some(match value.as_str() {
                "per-chunk" => "per-chunk",
                "per-token" => "per-token",
                "packed" => "packed",
                other => bail!("--flush takes per-chunk, per-token or packed, got '{other}'"),
            });
            continue;
        }
        let n: u32 = value
            .parse()
            .with_context(|| format!("{flag} takes a whole number, got '{value}'"))?;
        match flag.as_str() {
            "--streams" => o.streams = n,
            "--seconds" => o.seconds = n,
            "--tokens" => o.tokens = n,
            "--slow-streams" => o.slow = n,
            "--storm-streams" => o.storm = n,
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

impl Server {
    /// CPU seconds the simulator has used so far (user + system, from `/proc`), if readable.
    fn cpu_s(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).ok()?;
        stat_cpu_s(&stat, Times::Own)
    }

    /// Write-type syscalls (write, writev) the simulator has made so far (`syscw` of
    /// `/proc/PID/io`), if readable.
    fn writes(&self) -> Option<f64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.0.id())).ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("syscw:"))?
            .trim()
            .parse()
            .ok()
    }
}

/// Which CPU times of a `/proc/PID/stat` line.
#[derive(Clone, Copy)]
enum Times {
    /// The process's own user + system time (utime, stime).
    Own,
    /// Its reaped children's (cutime, cstime).
    Children,
}

/// CPU seconds from one `/proc/PID/stat` line (in USER_HZ ticks, 100 on every Linux this runs
/// on). Fields are counted after the parenthesised command name, which may contain spaces.
fn stat_cpu_s(stat: &str, times: Times) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime, stime are fields 14 and 15 of the line; cutime, cstime 16 and 17.
    let first = match times {
        Times::Own => 11,
        Times::Children => 13,
    };
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(first)? + ticks(first + 1)?) / 100.0)
}

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

fn start_server(
    bin: &Path,
    ttft: &str,
    itl: &str,
    tokens: u32,
    flush: &str,
) -> Result<(Server, String)> {
    start_sim(bin, "openai-chat", ttft, itl, tokens, flush)
}

fn start_sim(
    bin: &Path,
    protocol: &str,
    ttft: &str,
    itl: &str,
    tokens: u32,
    flush: &str,
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
            "--flush",
            flush,
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
        // --force: each bench run replaces its phase's report of the last one.
        .args(["run", "--url", url, "--quiet", "--force"])
        // The client alone is measured: no scraping thread beside it.
        .args(["--server-metrics", "off"])
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

    // Phase 1: zero pacing, the client's cost per event. Per-chunk writes first (each event its
    // own chunk, flushed as made, as a tokio/hyper server streaming tokens: the figure the budget
    // is about), then, labelled, the strict one-write-per-event server (the server's core is
    // the limit) and packed writes (a ceiling that flatters the client).
    println!(
        "bench-stream: {} streams x {} s, {} tokens per response, zero pacing",
        o.streams, o.seconds, o.tokens
    );
    let modes: &[&str] = match o.flush {
        Some("per-chunk") => &["per-chunk"],
        Some("per-token") => &["per-token"],
        Some(_) => &["packed"],
        None => &["per-chunk", "per-token", "packed"],
    };
    for &flush in modes {
        let (server, url) = start_server(&bin, "0ms", "0ms", o.tokens, flush)?;
        let server_cpu_before = server.cpu_s();
        let writes_before = server.writes();
        let r = run_client(&bin, &url, &o, &out.join(format!("throughput-{flush}")))?;
        let server_cpu = server.cpu_s().zip(server_cpu_before).map(|(a, b)| a - b);
        let writes = server.writes().zip(writes_before).map(|(a, b)| a - b);
        drop(server);
        let events = f(&r, &["generator", "content_events"]);
        let cpu = f(&r, &["generator", "cpu_s"]);
        let secs = f(&r, &["run", "duration_s"]);
        let per_cpu = events / cpu;
        match flush {
            "per-chunk" => {
                println!("  per-chunk: each event its own chunk, flushed as made; hyper sends the chunks queued while the socket is busy in one writev");
                println!(
                    "  events per client CPU-second    {per_cpu:>12.0}   (budget >= 1,500,000: {})",
                    verdict(per_cpu >= EVENTS_PER_CPU_S)
                );
            }
            "per-token" => {
                println!("  per-token: each event in its own write syscall (strict; on loopback the server pays the client's receive too)");
                println!(
                    "  events per client CPU-second    {per_cpu:>12.0}   (strict server, no budget)"
                );
            }
            _ => {
                println!(
                    "  packed: the server writes ~16 KiB of events per write (flatters the client)"
                );
                println!(
                    "  events per client CPU-second    {per_cpu:>12.0}   (batched writes, no budget)"
                );
            }
        }
        println!(
            "  streams/s, events/s             {:>12.0}, {:.0}",
            f(&r, &["throughput", "requests_per_s"]),
            events / secs
        );
        if let Some(writes) = writes.filter(|&w| w > 0.0) {
            println!(
                "  server events per write         {:>12.1}   ({writes:.0} write syscalls)",
                events / writes
            );
        }
        if server_cpu.is_some_and(|server| server / secs >= 0.9) {
            println!("  the server used 90 % or more of its core: the figure is the server's limit, a floor for the client");
        }
        match server_cpu {
            Some(server) => println!(
                "  CPU: client / server            {:>10.0} % / {:.0} % of a core",
                100.0 * cpu / secs,
                100.0 * server / secs
            ),
            None => println!(
                "  CPU: client                     {:>10.0} % of a core",
                100.0 * cpu / secs
            ),
        }
        println!(
            "  client peak RSS, failed         {:>10.1} MiB, {:.0} failed",
            f(&r, &["generator", "peak_rss_mib"]),
            f(&r, &["totals", "failed"])
        );
    }

    // Phase 2: paced tokens, timing error against the injected truth.
    let paced = Options { tokens: 64, ..o };
    let (server, url) = start_server(&bin, "50ms", "10ms", paced.tokens, PHASE_WRITES)?;
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
    let (server, url) = start_server(&bin, "0ms", "0ms", short.tokens, PHASE_WRITES)?;
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
    print_lag(&r, "");
    engine_only(2000, short.seconds)?;
    open_loop_20k(&bin, &short, &out.join("lag-20k"))?;

    // Phase 4: many slow streams (one token per second), client memory per stream and ITL error.
    if o.slow > 0 {
        let slow = Options {
            seconds: 12,
            tokens: 10,
            ..o
        };
        let (server, url) = start_server(&bin, "1s", "1s", slow.tokens, PHASE_WRITES)?;
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
        let per_stream = rss * 1024.0 / f64::from(o.slow);
        println!(
            "  client peak RSS                 {:>12.1} MiB = {:.1} KiB per stream   (budget <= 16 KiB: {})",
            rss,
            per_stream,
            verdict(per_stream <= 16.0)
        );
        let itl_p99 = f(&r, &["metrics", "itl", "p99"]) - 1000.0;
        println!(
            "  ITL error  p50 / p99 / max      {:>8.3} / {:.3} / {:.3} ms   (budget p99 < 2 ms: {})",
            f(&r, &["metrics", "itl", "p50"]) - 1000.0,
            itl_p99,
            f(&r, &["metrics", "itl", "max"]) - 1000.0,
            verdict(itl_p99 < 2.0)
        );
        println!(
            "  requests                        {:>12.0} ok, {:.0} failed, client CPU {:.2} s",
            f(&r, &["totals", "succeeded"]),
            f(&r, &["totals", "failed"]),
            f(&r, &["generator", "cpu_s"])
        );
    }
    // Phase 4b: a connection storm: streams opened in one second beside streams already open.
    if o.storm > 0 {
        connection_storm(&bin, &o, &out.join("storm"))?;
    }
    // Phase 5: a generic SSE endpoint, parsing each event's JSON vs counting events only.
    // Packed writes: this phase compares two client modes, so the client must be the bottleneck
    // (with per-token writes the simulator's core saturates first).
    let (server, url) = start_sim(&bin, "sse", "0ms", "0ms", o.tokens, "packed")?;
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
                "bench-stream: generic SSE, {} streams x {} s, {} events per response, zero pacing, packed writes",
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
    // Phase 7: plain keep-alive requests (no streaming), beside wrk when it is installed.
    plain_requests(&bin, &o, &out)?;
    // Phase 8: speech: many TTS listeners on one client core.
    speech(&bin, &out)?;

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

/// `wrk` is on the PATH (it prints its usage and exits 1 without arguments).
fn has_wrk() -> bool {
    Command::new("wrk")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `wrk -t1 -c{connections}` for `seconds` on core 0: (requests, CPU seconds), the CPU
/// read from the pinned shell's reaped-children times.
fn run_wrk(url: &str, connections: u32, seconds: u32) -> Result<(f64, f64)> {
    let script = format!("wrk -t1 -c{connections} -d{seconds}s {url}; cat /proc/$$/stat");
    let output = pinned(0, Path::new("sh"))
        .args(["-c", &script])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        .with_context(|| format!("unexpected wrk output: {text}"))?;
    let stat = text.lines().last().unwrap_or_default();
    let cpu = stat_cpu_s(stat, Times::Children).context("reading wrk's CPU time")?;
    Ok((requests, cpu))
}

/// Plain keep-alive GETs against the JSON simulator: loadkit (`--protocol http`) and, when
/// installed, wrk with the same connections on the same core; requests per client CPU-second.
fn plain_requests(bin: &Path, o: &Options, out: &Path) -> Result<()> {
    let (server, url) = start_sim(bin, "http", "0ms", "0ms", 1, PHASE_WRITES)?;
    let users = o.streams.to_string();
    let load = ["--protocol", "http", "--method", "GET", "--users", &users];
    let before = server.cpu_s();
    let r = run_loadkit(bin, &url, &load, o, &out.join("plain"))?;
    let server_cpu = server.cpu_s().zip(before).map(|(a, b)| a - b);
    let secs = f(&r, &["run", "duration_s"]);
    let loadkit = f(&r, &["totals", "succeeded"]) / f(&r, &["generator", "cpu_s"]);
    println!(
        "bench-stream: plain keep-alive GET, {} connections x {} s (JSON simulator)",
        o.streams, o.seconds
    );
    println!(
        "  loadkit requests per client CPU-second {loadkit:>9.0}   (server at {:.0} % of a core, {:.0} failed)",
        server_cpu.map_or(f64::NAN, |c| 100.0 * c / secs),
        f(&r, &["totals", "failed"])
    );
    if !has_wrk() {
        println!(
            "  wrk not installed (apt-get install wrk): no side-by-side ratio (budget >= 1.0x wrk)"
        );
        return Ok(());
    }
    let before = server.cpu_s();
    let (requests, cpu) = run_wrk(&url, o.streams, o.seconds)?;
    let server_cpu = server.cpu_s().zip(before).map(|(a, b)| a - b);
    let wrk = requests / cpu;
    println!(
        "  wrk requests per client CPU-second    {wrk:>9.0}   (server at {:.0} % of a core)",
        server_cpu.map_or(f64::NAN, |c| 100.0 * c / f64::from(o.seconds))
    );
    println!(
        "  loadkit vs wrk                        {:>9.2}x  (budget >= 1.0x: {})",
        loadkit / wrk,
        verdict(loadkit >= wrk)
    );
    Ok(())
}

/// Phase 3, second part: open loop at 20,000 plain GETs per second on one client core against
/// the JSON simulator answering at once (a trivial server on the other core), then the engine
/// alone at the same rate.
fn open_loop_20k(bin: &Path, o: &Options, out: &Path) -> Result<()> {
    let (server, url) = start_sim(bin, "http", "0ms", "0ms", 1, PHASE_WRITES)?;
    let load = [
        "--protocol",
        "http",
        "--method",
        "GET",
        "--rps",
        "20000",
        "--max-in-flight",
        "1024",
    ];
    let r = run_loadkit(bin, &url, &load, o, out)?;
    drop(server);
    let secs = f(&r, &["run", "duration_s"]);
    println!(
        "bench-stream: open loop, 20000 plain GETs/s x {} s, trivial server",
        o.seconds
    );
    let cpu = 100.0 * f(&r, &["generator", "cpu_s"]) / secs;
    print_lag(&r, &format!(", client CPU {cpu:.0} % of a core"));
    engine_only(20000, o.seconds)
}

/// An open-loop run's schedule lag against its budget, and its request counts followed by
/// `extra`.
fn print_lag(r: &Value, extra: &str) {
    let p99 = f(r, &["metrics", "schedule_lag", "p99"]);
    println!(
        "  schedule lag p50 / p99 / max    {:>8.3} / {p99:.3} / {:.3} ms   (budget p99 < 1 ms: {})",
        f(r, &["metrics", "schedule_lag", "p50"]),
        f(r, &["metrics", "schedule_lag", "max"]),
        verdict(p99 < 1.0)
    );
    println!(
        "  requests                        {:>12.0} sent, {:.0} ok, {:.0} queued at the cap{extra}",
        f(r, &["totals", "requests"]),
        f(r, &["totals", "succeeded"]),
        f(r, &["totals", "queued_late"])
    );
}

/// The engine alone (a no-op client) at `rate` for `seconds`, on the client's core.
fn engine_only(rate: u32, seconds: u32) -> Result<()> {
    let engine = pinned(0, &root().join("target/release/examples/schedule_lag"))
        .args([rate.to_string(), seconds.to_string()])
        .output()
        .context("running the schedule_lag example")?;
    print!(
        "  engine only, no-op client:      {}",
        String::from_utf8_lossy(&engine.stdout)
    );
    Ok(())
}

/// The issue-10 budget: listeners' schedule lag p99 on one client core, in ms.
const SPEECH_LAG_P99_MS: f64 = 1.0;

/// Phase 8: 200 TTS-WS listeners reading 10 blocks each from the cached-audio simulator
/// (answers at once: the client's cost alone), staggered 5 ms apart, one session each.
fn speech(bin: &Path, out: &Path) -> Result<()> {
    let (server, url) = start_sim(bin, "tts-ws", "0ms", "0ms", 1, "per-token")?;
    let dir = out.join("tts-ws");
    let before = server.cpu_s();
    let status = pinned(0, bin)
        .args([
            "run",
            "--protocol",
            "tts-ws",
            "--url",
            &url,
            "--quiet",
            "--force",
        ])
        .args(["--users", "200", "--iterations", "1", "--stagger", "5ms"])
        .args(["--blocks", "10", "--prefetch", "2", "--refill-below", "1s"])
        .args(["--block-words", "2", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot start the client")?;
    if !status.success() {
        bail!("the tts-ws client failed ({status})");
    }
    let server_cpu = server.cpu_s().zip(before).map(|(a, b)| a - b);
    drop(server);
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json")).context("reading report.json")?,
    )?;
    let lag = f(&r, &["metrics", "schedule_lag", "p99"]);
    let lag_max = f(&r, &["metrics", "schedule_lag", "max"]);
    let cpu = f(&r, &["generator", "cpu_s"]);
    let wall = f(&r, &["run", "elapsed_s"]);
    println!("bench-stream: 200 TTS-WS listeners x 10 blocks, cached audio, one client core");
    println!(
        "  sessions {}/{} · blocks {}/{} · underruns {} · wall {wall:.1} s",
        f(&r, &["tts", "sessions_completed"]),
        f(&r, &["tts", "sessions"]),
        f(&r, &["tts", "blocks_completed"]),
        f(&r, &["tts", "blocks_total"]),
        f(&r, &["tts", "underruns"]),
    );
    println!(
        "  client CPU {cpu:.2} s ({:.1} % of a core; server {:.1} %) · schedule lag p99 {lag:.3} ms (budget < {SPEECH_LAG_P99_MS} ms: {}), max {lag_max:.3} ms",
        100.0 * cpu / wall,
        server_cpu.map_or(f64::NAN, |c| 100.0 * c / wall),
        verdict(lag < SPEECH_LAG_P99_MS)
    );

    // 64 concurrent ASR uploads of a 2 s 16 kHz WAV (64 KB) for 5 s, against a simulator with
    // room for all that answers each after 200 ms (rtf 0.1): the client's cost per upload.
    let (server, url) = start_sim(bin, "asr", "200ms", "0ms", 1, "per-token")?;
    let dir = out.join("asr");
    std::fs::create_dir_all(&dir)?;
    let clip = dir.join("clip.wav");
    std::fs::write(&clip, silent_wav(16_000, 2))?;
    let before = server.cpu_s();
    let status = pinned(0, bin)
        .args([
            "run",
            "--protocol",
            "asr",
            "--url",
            &url,
            "--quiet",
            "--force",
        ])
        // Staggered over one service time, as callers arrive, not all in the same millisecond.
        .args(["--users", "64", "--stagger", "3ms"])
        .args(["--duration", "5s", "--audio"])
        .arg(&clip)
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot start the client")?;
    if !status.success() {
        bail!("the asr client failed ({status})");
    }
    let server_cpu = server.cpu_s().zip(before).map(|(a, b)| a - b);
    drop(server);
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json")).context("reading report.json")?,
    )?;
    let lag = f(&r, &["metrics", "schedule_lag", "p99"]);
    let lag_max = f(&r, &["metrics", "schedule_lag", "max"]);
    let cpu = f(&r, &["generator", "cpu_s"]);
    let secs = f(&r, &["run", "duration_s"]);
    let ok = f(&r, &["totals", "succeeded"]);
    println!("bench-stream: 64 concurrent ASR uploads (2 s WAV, 64 KB) x 5 s, answered after 200 ms, one client core");
    println!(
        "  {ok:.0} uploads ({:.0} failed) · {:.0} uploads per client CPU-second · server {:.0} % of a core · schedule lag p99 {lag:.3} ms (budget < {SPEECH_LAG_P99_MS} ms: {}), max {lag_max:.3} ms",
        f(&r, &["totals", "failed"]),
        ok / cpu,
        server_cpu.map_or(f64::NAN, |c| 100.0 * c / secs),
        verdict(lag < SPEECH_LAG_P99_MS)
    );
    Ok(())
}

/// `seconds` of silence as a 16-bit mono WAV at `rate`.
fn silent_wav(rate: u32, seconds: u32) -> Vec<u8> {
    let data = rate * 2 * seconds;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.resize(44 + data as usize, 0);
    out
}
