//! Stop rules, SLOs, goodput, signals and crash-safe results, driven through the binary: a run
//! stops where its rules say and why, and its reports survive Ctrl+C and `kill -9`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

mod common;

use common::{loadkit, tmp, BIN};

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An OpenAI-compatible server written here (not the testbed): each request streams two
/// tokens `token_gap` apart, until request number `fail_from`; from then on every request gets
/// `503` with `Retry-After: 1`.
struct Server {
    url: String,
    requests: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(fail_from: u64, token_gap: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&requests);
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let count = Arc::clone(&count);
                tokio::spawn(serve(socket, count, fail_from, token_gap));
            }
        });
        Server {
            url,
            requests,
            _runtime: runtime,
        }
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    count: Arc<AtomicU64>,
    fail_from: u64,
    token_gap: Duration,
) {
    let mut buf = Vec::new();
    loop {
        // One request: its head, then the body its Content-Length announces.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        let n = count.fetch_add(1, Ordering::Relaxed);
        let written = if n >= fail_from {
            let body = "Too many concurrent requests";
            socket
                .write_all(
                    format!(
                        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await
        } else {
            stream(&mut socket, token_gap).await
        };
        if written.is_err() {
            return;
        }
    }
}

async fn stream(socket: &mut tokio::net::TcpStream, gap: Duration) -> std::io::Result<()> {
    socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    let event = |content: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
        )
    };
    let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
    socket.write_all(chunk(&event("hello")).as_bytes()).await?;
    tokio::time::sleep(gap).await;
    socket.write_all(chunk(&event(" world")).as_bytes()).await?;
    let end = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    socket.write_all(chunk(end).as_bytes()).await?;
    socket.write_all(b"0\r\n\r\n").await
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Reads the child's stderr until a line containing `needle`; the lines read.
fn wait_for_line(lines: &mut impl Iterator<Item = String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let found = line.contains(needle);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("no line with {needle:?} in {seen:?}");
}

#[test]
fn max_failures_stops_the_run_at_the_fifth_failure_and_says_why() {
    let server = Server::start(20, Duration::ZERO);
    let out = tmp("max-failures");
    let o = loadkit(&[
        "run",
        "--url",
        &server.url,
        "--users",
        "1",
        "--duration",
        "30s",
        // The scripted server counts every request: no /metrics probe.
        "--server-metrics",
        "off",
        "--max-failures",
        "5",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stopped: 5 failures reached --max-failures 5"),
        "{}",
        stderr(&o)
    );
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "max_failures");
    // One user: the 20 good requests, then exactly five failures.
    assert_eq!(
        (
            r["totals"]["succeeded"].as_u64(),
            r["totals"]["failed"].as_u64()
        ),
        (Some(20), Some(5))
    );
    assert_eq!(
        r["errors"][0]["message"],
        "HTTP 503: Too many concurrent requests"
    );
    assert_eq!(r["consistency"]["passed"], true, "{}", r["consistency"]);
    assert_eq!(server.requests.load(Ordering::Relaxed), 25);
}

#[test]
fn max_failures_comes_from_the_environment_too() {
    let server = Server::start(3, Duration::ZERO);
    let out = tmp("max-failures-env");
    let o = Command::new(BIN)
        .args([
            "run",
            "--url",
            &server.url,
            "--users",
            "1",
            "--duration",
            "30s",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .env("LOADKIT_MAX_FAILURES", "2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "max_failures");
    assert_eq!(r["totals"]["failed"], 2);
}

#[test]
fn the_error_rate_rule_stops_a_run_whose_server_starts_failing() {
    // 20 req/s; from the 40th request (2 s) every answer is a 503.
    let server = Server::start(40, Duration::ZERO);
    let out = tmp("error-rate");
    let o = loadkit(&[
        "run",
        "--url",
        &server.url,
        "--rps",
        "20",
        "--duration",
        "30s",
        // The scripted server counts every request: no /metrics probe.
        "--server-metrics",
        "off",
        "--max-error-rate",
        "50%",
        "--error-window",
        "2s",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stopped: failures reached --max-error-rate 50.0 %"),
        "{}",
        stderr(&o)
    );
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "max_error_rate");
    assert_eq!(r["totals"]["succeeded"], 40);
    let elapsed = r["run"]["elapsed_s"].as_f64().unwrap();
    assert!(elapsed < 8.0, "stopped at {elapsed} s");
}

#[test]
fn an_slo_passes_a_run_that_meets_it_and_fails_one_that_does_not() {
    for (slo, code) in [
        ("ttft.p95<5s,success>=99%,rps>1", 0),
        ("ttft.p95<5ms,success>=99%", 1),
    ] {
        let out = tmp(&format!("slo-{code}"));
        let o = loadkit(&[
            "run",
            "--rps",
            "20",
            "--duration",
            "1s",
            "--slo",
            slo,
            "--goodput",
            "ttft<5s,e2e<10s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(code), "{slo}: {}", stderr(&o));
        let r = report(&out);
        let s = &r["slo"];
        assert_eq!(s["passed"], code == 0, "{s}");
        assert_eq!(s["targets"][1]["passed"], true);
        assert_eq!(s["goodput_requests"], r["totals"]["succeeded"]);
        assert_eq!(s["goodput_ratio"], 1.0);
        let stdout = String::from_utf8_lossy(&o.stdout);
        if code == 1 {
            // The simulator's TTFT is 50 ms.
            assert_eq!(s["targets"][0]["passed"], false);
            let observed = s["targets"][0]["observed"].as_f64().unwrap();
            assert!(observed > 45.0, "{observed}");
            assert!(
                stderr(&o).contains("SLO failed: ttft.p95<5ms: "),
                "{}",
                stderr(&o)
            );
            assert!(stdout.contains("FAIL ttft.p95<5ms"), "{stdout}");
        } else {
            assert!(stdout.contains("SLO         passed"), "{stdout}");
        }
    }
}

#[test]
fn abort_on_slo_stops_the_run_once_its_sample_shows_the_breach() {
    let out = tmp("abort-on-slo");
    let o = loadkit(&[
        "run",
        "--rps",
        "100",
        "--duration",
        "30s",
        "--slo",
        "ttft.p50<10ms",
        "--abort-on-slo",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "slo");
    assert!(r["run"]["elapsed_s"].as_f64().unwrap() < 10.0);
    let why = r["slo"]["aborted_by"].as_str().unwrap();
    assert!(why.starts_with("ttft.p50<10ms was "), "{why}");
}

#[test]
fn a_user_waits_the_retry_after_of_a_503_when_asked() {
    let server = Server::start(0, Duration::ZERO);
    let out = tmp("retry-after");
    let o = loadkit(&[
        "run",
        "--url",
        &server.url,
        "--users",
        "1",
        "--duration",
        "2500ms",
        // The scripted server counts every request: no /metrics probe.
        "--server-metrics",
        "off",
        "--respect-retry-after",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    // Sent at 0, ~1 and ~2 s: each 503 asks for a second.
    assert_eq!(r["totals"]["failed"], 3, "{}", r["totals"]);
    assert_eq!(r["totals"]["retry_after_waits"], 3);
    assert_eq!(server.requests.load(Ordering::Relaxed), 3);
}

#[test]
fn ctrl_c_lets_in_flight_requests_finish_writes_every_report_and_exits_130() {
    // Each stream takes 1.5 s: in flight whenever the signal comes.
    let server = Server::start(u64::MAX, Duration::from_millis(1500));
    let out = tmp("sigint");
    let mut child = spawn(&[
        "run",
        "--url",
        &server.url,
        "--users",
        "4",
        "--duration",
        "60s",
        "--progress-every",
        "1s",
        "--format",
        "json,html,md,csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    wait_for_line(&mut lines, "req/s");
    let asked = Instant::now();
    signal(&child, "-INT");
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(
        rest.iter()
            .any(|l| l.contains("in-flight ones get up to 30s")),
        "{rest:?}"
    );
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "signal");
    assert_eq!(r["run"]["interrupted"], true);
    assert!(r["run"].get("checkpoint").is_none());
    // The four in flight finished: none cancelled, none failed.
    assert_eq!(r["totals"]["cancelled"], 0, "{}", r["totals"]);
    assert_eq!(r["totals"]["failed"], 0);
    assert_eq!(r["totals"]["succeeded"], r["totals"]["requests"]);
    assert!(r["totals"]["succeeded"].as_u64().unwrap() >= 4);
    assert_eq!(r["consistency"]["passed"], true, "{}", r["consistency"]);
    for file in ["report.html", "report.md", "summary.csv", "timeline.csv"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
}

#[test]
fn a_second_ctrl_c_cancels_in_flight_requests_and_still_writes_the_report() {
    let server = Server::start(u64::MAX, Duration::from_secs(20));
    let out = tmp("sigint-twice");
    let mut child = spawn(&[
        "run",
        "--url",
        &server.url,
        "--users",
        "3",
        "--duration",
        "60s",
        "--progress-every",
        "1s",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    wait_for_line(&mut lines, "req/s");
    signal(&child, "-INT");
    wait_for_line(&mut lines, "interrupted: no new requests");
    let asked = Instant::now();
    signal(&child, "-TERM");
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the 20 s streams were not cancelled"
    );
    let r = report(&out);
    assert_eq!(r["run"]["stop_reason"], "signal");
    assert_eq!(
        (
            r["totals"]["cancelled"].as_u64(),
            r["totals"]["failed"].as_u64()
        ),
        (Some(3), Some(0))
    );
}

#[test]
fn after_kill_9_the_last_checkpoint_is_a_valid_report_and_the_raw_records_hold_up() {
    let server = Server::start(u64::MAX, Duration::from_millis(20));
    let out = tmp("kill-9");
    let mut child = spawn(&[
        "run",
        "--url",
        &server.url,
        "--rps",
        "20",
        "--duration",
        "60s",
        "--checkpoint-every",
        "1s",
        "--progress-every",
        "1s",
        "--raw",
        "requests.jsonl",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    // The live lines come each second, as do the checkpoints: after the third, at least two
    // checkpoints were due.
    for _ in 0..3 {
        wait_for_line(&mut lines, "req/s");
    }
    let path = out.join("report.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "-KILL");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by the signal");
    let r = report(&out);
    assert_eq!(r["run"]["checkpoint"], true);
    assert_eq!(r["run"]["interrupted"], true);
    assert_eq!(r["run"]["stop_reason"], "running");
    assert_eq!(r["consistency"]["passed"], true, "{}", r["consistency"]);
    let succeeded = r["totals"]["succeeded"].as_u64().unwrap();
    assert!(succeeded >= 20, "{succeeded}");
    // Raw lines flushed each second: at least every request the checkpoint counted, each a
    // JSON object with its milestones (the last line may be cut by the kill).
    let raw = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let parsed: Vec<Value> = raw
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        parsed.len() as u64 + 20 >= succeeded,
        "{} lines, {succeeded} in the checkpoint",
        parsed.len()
    );
    for line in &parsed {
        assert_eq!(line["status"], "ok");
        assert!(line["first_token_ms"].as_f64().unwrap() >= line["sent_ms"].as_f64().unwrap());
        assert!(line["end_ms"].as_f64().unwrap() >= line["first_token_ms"].as_f64().unwrap());
    }
}

#[test]
fn a_concurrency_beyond_the_open_file_limit_is_one_clear_line_before_any_load() {
    let o = loadkit(&[
        "run",
        "--rps",
        "10",
        "--duration",
        "1s",
        "--quiet",
        "--max-in-flight",
        "4000000000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("open files"), "{err}");
}

#[test]
fn slo_and_stop_rule_mistakes_are_one_line_and_exit_2() {
    for args in [
        vec!["--slo", "ttft<500ms"],
        vec!["--slo", "sucess>99%"],
        vec!["--goodput", "success>99%"],
        vec!["--max-error-rate", "0%"],
        vec!["--error-window", "5s"],
        vec!["--abort-on-slo"],
    ] {
        let mut all = vec!["run", "--rps", "5", "--duration", "1s"];
        all.extend(&args);
        let o = loadkit(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_scenario_file_takes_the_same_keys() {
    let dir = tmp("scenario-slo");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "[scenarios.gate]\nrps = 20\nduration = \"1s\"\nslo = \"ttft.p95<5ms\"\ngoodput = \"ttft<5s\"\nmax-error-rate = \"50%\"\nraw = \"r.jsonl\"\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = loadkit(&[
        "run",
        "-f",
        file.to_str().unwrap(),
        "--scenario",
        "gate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(r["slo"]["targets"][0]["expr"], "ttft.p95<5ms");
    assert_eq!(r["slo"]["goodput"], "ttft<5s");
    let lines = std::fs::read_to_string(out.join("r.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines as u64, r["totals"]["requests"].as_u64().unwrap());
}

#[test]
fn discover_reports_the_capacity_the_bracket_and_the_cause() {
    // Every level meets a loose target: the search ramps to --max-load.
    let out = tmp("discover-good");
    let o = loadkit(&[
        "discover",
        "--slo",
        "ttft.p95<5s",
        "--start",
        "2",
        "--max-load",
        "4",
        "--step-duration",
        "2s",
        "--step-warmup",
        "0s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = &report(&out)["discovery"];
    assert_eq!(
        (d["unit"].as_str(), d["max_load_meeting_targets"].as_f64()),
        (Some("rps"), Some(4.0))
    );
    assert!(d["first_bad_load"].is_null());
    assert_eq!(d["steps"].as_array().unwrap().len(), 2);
    // The simulator's 50 ms TTFT misses 10 ms at once: bisected down from the first level.
    let out = tmp("discover-bad");
    let o = loadkit(&[
        "discover",
        "--slo",
        "ttft.p95<10ms",
        "--start",
        "2",
        "--tolerance",
        "50%",
        "--step-duration",
        "2s",
        "--step-warmup",
        "0s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = &report(&out)["discovery"];
    assert!(d["max_load_meeting_targets"].is_null(), "{d}");
    assert_eq!(d["first_bad_load"].as_f64(), Some(1.0));
    assert!(
        d["cause"].as_str().unwrap().starts_with("ttft.p95<10ms"),
        "{d}"
    );
    assert_eq!(d["steps"].as_array().unwrap().len(), 2);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Capacity    none"), "{stdout}");
}
