//! The fault matrix as a standing test (docs/faults.md): `loadkit serve-sim --faults NAME` run
//! as its own process and `loadkit run` against it, one test per fault, each checking the error
//! class and message in report.json's error table, that nothing panicked or hung, and that the
//! run went on to a written report whose consistency checks pass. Plus what no simulator fault
//! covers: a TLS handshake failure, a name that does not resolve, and the server process dying
//! mid-run and coming back on its port.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{loadkit, tmp, BIN};

/// Longer than this, a `loadkit` process is taken to hang: it is killed and the test fails.
const HANG: Duration = Duration::from_secs(30);

/// A run that takes longer than this did not "go on" past its faults.
const BOUND: Duration = Duration::from_secs(10);

/// Quick streams: 8 tokens, 2 ms apart, 5 ms to the first.
const QUICK: &[&str] = &["--ttft", "5ms", "--itl", "2ms", "--tokens", "8"];

/// `loadkit serve-sim` as a child process, killed when dropped.
struct ServeSim {
    child: Child,
    url: String,
    stderr: Option<ChildStderr>,
}

impl ServeSim {
    /// Starts `serve-sim --addr ADDR ARGS` and waits for its "listening on URL" line.
    fn start_on(addr: &str, args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve-sim", "--addr", addr])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let first = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .and_then(Result::ok);
        let stderr = child.stderr.take();
        let Some(url) = first.and_then(|l| l.strip_prefix("listening on ").map(str::to_owned))
        else {
            let mut err = String::new();
            let _ = stderr.unwrap().read_to_string(&mut err);
            let _ = child.kill();
            panic!("serve-sim {args:?} did not start: {err}");
        };
        Self { child, url, stderr }
    }

    fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args)
    }

    /// `127.0.0.1:PORT` of its URL.
    fn addr(&self) -> String {
        let rest = self
            .url
            .trim_start_matches("http://")
            .trim_start_matches("ws://");
        rest.split('/').next().unwrap().to_owned()
    }

    /// Kills it (SIGKILL: as a crashing server dies) and checks that it never panicked.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        assert!(!err.contains("panicked"), "serve-sim: {err}");
    }
}

impl Drop for ServeSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, killing it (and failing) after [`HANG`].
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} hung: still running after {HANG:?}");
        }
    }
}

/// A finished `loadkit run`: what it printed and the report it wrote.
struct Run {
    code: Option<i32>,
    stderr: String,
    report: Value,
}

/// `loadkit run --url URL --quiet --out DIR ARGS`, checked: exit 0, no panic, within
/// [`BOUND`], and a report whose consistency checks pass.
fn run(name: &str, url: &str, args: &[&str]) -> Run {
    let out = tmp(name);
    let started = Instant::now();
    let child = Command::new(BIN)
        .args([
            "run",
            "--url",
            url,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child, name);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
    assert!(took < BOUND, "{name}: the run took {took:?}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["consistency"]["passed"], true,
        "{name}: {:#}",
        report["consistency"]
    );
    let _ = std::fs::remove_dir_all(&out);
    Run {
        code: output.status.code(),
        stderr,
        report,
    }
}

/// The error table's rows as (class, message, count).
fn errors(report: &Value) -> Vec<(String, String, u64)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["class"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn totals(report: &Value) -> (u64, u64) {
    let t = &report["totals"];
    (
        t["succeeded"].as_u64().unwrap(),
        t["failed"].as_u64().unwrap(),
    )
}

/// One user sends 6 requests to `serve-sim --faults FAULT` (every 2nd request faulted) and the
/// 3 faulted ones fail, all with `class` and `message`, the 3 others succeed.
fn every_second_request_fails(
    fault: &str,
    sim: &[&str],
    client: &[&str],
    class: &str,
    message: &str,
) {
    let mut sim_args = vec!["--faults", fault];
    sim_args.extend_from_slice(sim);
    // QUICK's pacing, unless `sim` sets its own.
    for pair in QUICK.chunks(2) {
        if !sim.contains(&pair[0]) {
            sim_args.extend_from_slice(pair);
        }
    }
    let server = ServeSim::start(&sim_args);
    let mut args = vec!["--users", "1", "--requests", "6"];
    args.extend_from_slice(client);
    let r = run(fault, &server.url, &args);
    assert_eq!(
        errors(&r.report),
        [(class.to_owned(), message.to_owned(), 3)],
        "{fault}"
    );
    assert_eq!(totals(&r.report), (3, 3), "{fault}");
    server.kill();
}

#[test]
fn refused_is_a_connect_error_and_the_run_goes_on() {
    // Every 4th request the simulator stops listening for 100 ms: the faulted request (closed
    // unanswered) is retried on a new connection and refused, and so are the requests that
    // arrive in the window (2 at 20 requests/s).
    let mut sim_args = vec!["--faults", "refused", "--fault-every", "4"];
    sim_args.extend_from_slice(QUICK);
    let server = ServeSim::start(&sim_args);
    let r = run("refused", &server.url, &["--rps", "20", "--requests", "20"]);
    let rows = errors(&r.report);
    assert!(
        rows.iter()
            .any(|(c, m, _)| c == "connect" && m == "connection refused"),
        "{rows:?}"
    );
    // A faulted request sent as its connection's first is not retried (docs/faults.md); here
    // one connection serves the run, so that is rare, but a busy machine may open a second.
    for (class, message, _) in &rows {
        assert!(
            (class == "connect" && message == "connection refused")
                || (class == "truncated"
                    && message == "connection closed before the response head"),
            "{rows:?}"
        );
    }
    let (ok, failed) = totals(&r.report);
    assert!(ok >= 6 && failed >= 2, "{ok} ok, {failed} failed");
    assert!(
        r.report["totals"]["stale_connection_retries"]
            .as_u64()
            .unwrap()
            >= 1,
        "the faulted requests were retried on a new connection"
    );
    server.kill();
}

#[test]
fn reset_is_truncated() {
    every_second_request_fails(
        "reset",
        &[],
        &[],
        "truncated",
        "connection reset mid-stream",
    );
}

#[test]
fn truncated_is_truncated() {
    every_second_request_fails(
        "truncated",
        &[],
        &[],
        "truncated",
        "stream ended before [DONE]",
    );
}

#[test]
fn malformed_json_is_a_protocol_error() {
    every_second_request_fails(
        "malformed-json",
        &[],
        &[],
        "protocol",
        "malformed chunk: EOF while parsing a string",
    );
}

#[test]
fn invalid_utf8_is_a_protocol_error() {
    every_second_request_fails(
        "invalid-utf8",
        &[],
        &[],
        "protocol",
        "malformed chunk: invalid unicode code point",
    );
}

#[test]
fn oversized_is_a_protocol_error() {
    every_second_request_fails(
        "oversized",
        &[],
        &[],
        "protocol",
        "sse event exceeds the maximum size of 1048576 bytes",
    );
}

/// The response head of a raw `POST` (non-streaming) to `addr`, lower-cased.
fn raw_head(addr: &str) -> String {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

#[test]
fn rate_limited_is_a_429_with_retry_after() {
    every_second_request_fails(
        "rate-limited",
        &[],
        &[],
        "http_status",
        "HTTP 429: Rate limit exceeded",
    );
    let server = ServeSim::start(&["--faults", "rate-limited", "--fault-every", "1"]);
    let head = raw_head(&server.addr());
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    server.kill();
}

#[test]
fn overloaded_is_a_503_with_retry_after() {
    every_second_request_fails(
        "overloaded",
        &[],
        &[],
        "http_status",
        "HTTP 503: Too many concurrent requests",
    );
    let server = ServeSim::start(&["--faults", "overloaded", "--fault-every", "1"]);
    let head = raw_head(&server.addr());
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    server.kill();
}

#[test]
fn slow_headers_are_a_timeout() {
    // The head comes after 1 s; the client waits 300 ms for it (--timeout is both the total
    // and the first-byte deadline, so either may be the one named).
    let server = ServeSim::start(&[
        "--faults",
        "slow-headers",
        "--fault-delay",
        "1s",
        "--ttft",
        "5ms",
        "--itl",
        "2ms",
        "--tokens",
        "8",
    ]);
    let r = run(
        "slow-headers",
        &server.url,
        &["--users", "1", "--requests", "6", "--timeout", "300ms"],
    );
    let rows = errors(&r.report);
    assert!(
        rows.iter()
            .all(|(class, message, _)| class == "timeout"
                && message.ends_with("timeout after 300ms")),
        "{rows:?}"
    );
    assert_eq!(rows.iter().map(|r| r.2).sum::<u64>(), 3, "{rows:?}");
    assert_eq!(totals(&r.report), (3, 3));
    server.kill();
}

#[test]
fn stall_is_an_idle_timeout() {
    every_second_request_fails(
        "stall",
        &["--fault-delay", "1s"],
        &["--idle-timeout", "200ms"],
        "timeout",
        "idle timeout after 200ms",
    );
}

#[test]
fn stream_error_is_a_server_error() {
    every_second_request_fails(
        "stream-error",
        &[],
        &[],
        "server_error",
        "simulated in-stream error",
    );
}

#[test]
fn garbage_status_is_a_protocol_error() {
    every_second_request_fails(
        "garbage-status",
        &[],
        &[],
        "protocol",
        "malformed http response head",
    );
}

#[test]
fn bad_chunking_is_a_protocol_error() {
    every_second_request_fails(
        "bad-chunking",
        &[],
        &[],
        "protocol",
        "malformed http body framing",
    );
}

#[test]
fn linger_after_done_is_no_failure_and_ends_at_the_marker() {
    // Every body stays open 1 s after [DONE]: every request succeeds, and its E2E ends at the
    // marker (8 tokens 2 ms apart), far from the second.
    let server = ServeSim::start(&[
        "--faults",
        "linger",
        "--fault-every",
        "1",
        "--fault-delay",
        "1s",
        "--ttft",
        "5ms",
        "--itl",
        "2ms",
        "--tokens",
        "8",
    ]);
    let r = run("linger", &server.url, &["--users", "1", "--requests", "6"]);
    assert_eq!(errors(&r.report), []);
    assert_eq!(totals(&r.report), (6, 0));
    let e2e_max = r.report["metrics"]["e2e"]["max"].as_f64().unwrap();
    assert!(e2e_max < 500.0, "E2E max {e2e_max} ms includes the linger");
    server.kill();
}

#[test]
fn close_1011_is_a_keepalive_timeout() {
    every_second_request_fails(
        "close-1011",
        &["--protocol", "ws-chat"],
        &["--protocol", "ws-chat"],
        "keepalive_timeout",
        "websocket closed with 1011 (keepalive ping timeout) before the end message (/type=done)",
    );
}

#[test]
fn no_pong_is_a_keepalive_timeout() {
    // 20 tokens 20 ms apart: the client's ping at 50 ms goes unanswered past its 100 ms timeout.
    every_second_request_fails(
        "no-pong",
        &["--protocol", "ws-chat", "--itl", "20ms", "--tokens", "20"],
        &[
            "--protocol",
            "ws-chat",
            "--ping-interval",
            "50ms",
            "--ping-timeout",
            "100ms",
        ],
        "keepalive_timeout",
        "keepalive timeout: no pong within 100ms of a ping",
    );
}

#[test]
fn ws_chat_cycles_through_its_faults() {
    let server = ServeSim::start(&[
        "--protocol",
        "ws-chat",
        "--faults",
        "cycle",
        "--fault-every",
        "1",
        "--itl",
        "20ms",
        "--tokens",
        "12",
        "--ttft",
        "5ms",
    ]);
    let r = run(
        "ws-cycle",
        &server.url,
        &[
            "--protocol",
            "ws-chat",
            "--users",
            "1",
            "--requests",
            "7",
            "--idle-timeout",
            "200ms",
            "--ping-interval",
            "50ms",
            "--ping-timeout",
            "100ms",
        ],
    );
    let rows = errors(&r.report);
    let has = |class: &str, start: &str| {
        rows.iter()
            .any(|(c, m, _)| c == class && m.starts_with(start))
    };
    let expected = [
        ("ws_close", "websocket closed with 1006"),
        ("protocol", "malformed message"),
        ("protocol", "message exceeds the maximum size"),
        ("timeout", "idle timeout after 200ms"),
        ("server_error", "simulated in-stream error"),
        ("keepalive_timeout", "websocket closed with 1011"),
        ("keepalive_timeout", "keepalive timeout: no pong"),
    ];
    for (class, start) in expected {
        assert!(has(class, start), "{class} {start}: {rows:?}");
    }
    assert_eq!(totals(&r.report), (0, 7), "{rows:?}");
    server.kill();
}

#[test]
fn a_fault_the_simulator_lacks_is_one_line_and_exit_2() {
    for (args, needle) in [
        (
            vec!["--faults", "close-1011"],
            "--faults close-1011: not supported by the openai-chat simulator; it supports: refused, reset,",
        ),
        (
            vec!["--protocol", "ws-chat", "--faults", "reset,garbage-status"],
            "--faults garbage-status: not supported by the ws-chat simulator; it supports: reset,",
        ),
        (
            vec!["--protocol", "ollama-chat", "--faults", "cycle"],
            "the ollama-chat simulator injects no faults",
        ),
        (vec!["--fault-every", "3"], "--faults"),
        (vec!["--faults", "reset", "--fault-every", "0"], "--fault-every"),
    ] {
        let mut all = vec!["serve-sim"];
        all.extend_from_slice(&args);
        let o = loadkit(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: nothing listened");
    }
}

#[test]
fn a_tls_handshake_with_a_plain_server_is_classified_before_any_load() {
    let server = ServeSim::start(&[]);
    let https = server.url.replacen("http://", "https://", 1);
    let o = loadkit(&["run", "--url", &https, "--requests", "2", "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("target unreachable") && err.contains("tls handshake failed"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    server.kill();
}

#[test]
fn a_name_that_does_not_resolve_is_one_line_and_exit_3() {
    // `.invalid` never resolves (RFC 2606), with or without a network.
    let o = loadkit(&[
        "run",
        "--url",
        "http://nonexistent.invalid/v1",
        "--requests",
        "2",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("dns resolution failed"), "{err}");
}

/// The `failed N` count of a live line.
fn failed_in(line: &str) -> Option<u64> {
    let rest = line.split(" · failed ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_server_dying_mid_run_and_coming_back_is_survived() {
    let first = ServeSim::start(QUICK);
    let addr = first.addr();
    let url = first.url.clone();
    let out = tmp("restart");
    let mut child = Command::new(BIN)
        .args(["run", "--url", &url, "--rps", "20", "--duration", "4s"])
        .args(["--progress-every", "1s", "--out", out.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let next_live = |what: &str| loop {
        match lines.recv_timeout(HANG) {
            Ok(line) if line.contains("req/s") => break line,
            Ok(_) => {}
            Err(_) => panic!("no live line {what}"),
        }
    };
    // Running and healthy: the first live line. Then the server dies (SIGKILL).
    let healthy = next_live("before the kill");
    assert_eq!(failed_in(&healthy), Some(0), "{healthy}");
    first.kill();
    // Requests fail while it is down; then it comes back on the same port.
    let down = loop {
        let line = next_live("while the server is down");
        if failed_in(&line).unwrap_or(0) > 0 {
            break line;
        }
    };
    let second = ServeSim::start_on(&addr, QUICK);
    let output = finish(child, "the run across a restart");
    let printed = reader.join().unwrap().join("\n");
    assert!(!printed.contains("panicked"), "{printed}");
    assert_eq!(output.status.code(), Some(0), "{printed}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["consistency"]["passed"], true,
        "{:#}",
        report["consistency"]
    );
    let rows = errors(&report);
    assert!(
        rows.iter()
            .any(|(c, m, _)| c == "connect" && m == "connection refused"),
        "{down}: {rows:?}"
    );
    // The last whole second, after the restart, is all successes.
    let timeline = report["timeline"].as_array().unwrap();
    let last = &timeline[3];
    assert_eq!(last["t_s"], 3, "{timeline:?}");
    assert!(last["completed"].as_u64().unwrap() >= 10, "{timeline:?}");
    assert_eq!(last["failed"], 0, "{timeline:?}");
    let _ = std::fs::remove_dir_all(&out);
    second.kill();
}

#[test]
fn a_short_cycle_of_every_fault_names_every_class_in_the_report() {
    let server = ServeSim::start(&[
        "--faults",
        "cycle",
        "--fault-delay",
        "500ms",
        "--ttft",
        "5ms",
        "--itl",
        "2ms",
        "--tokens",
        "8",
    ]);
    let r = run(
        "cycle",
        &server.url,
        &[
            "--rps",
            "40",
            "--duration",
            "5s",
            "--timeout",
            "300ms",
            "--idle-timeout",
            "150ms",
        ],
    );
    let rows = errors(&r.report);
    let expected = [
        ("connect", "connection refused"),
        ("truncated", "connection reset mid-stream"),
        ("truncated", "stream ended before [DONE]"),
        ("protocol", "malformed chunk: EOF while parsing a string"),
        ("protocol", "malformed chunk: invalid unicode code point"),
        (
            "protocol",
            "sse event exceeds the maximum size of 1048576 bytes",
        ),
        ("http_status", "HTTP 429: Rate limit exceeded"),
        ("http_status", "HTTP 503: Too many concurrent requests"),
        ("timeout", "timeout after 300ms"),
        ("timeout", "idle timeout after 150ms"),
        ("server_error", "simulated in-stream error"),
        ("protocol", "malformed http response head"),
        ("protocol", "malformed http body framing"),
    ];
    for (class, message) in expected {
        assert!(
            rows.iter()
                .any(|(c, m, _)| c == class && m.ends_with(message)),
            "{class}: {message}: {rows:?}"
        );
    }
    // Half the requests are answered normally (lingering ones included).
    let (ok, failed) = totals(&r.report);
    assert!(ok * 10 >= (ok + failed) * 4, "{ok} ok, {failed} failed");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    server.kill();
}
