//! The report files people look at (`--format html,md,csv`, `loadkit report`), driven through
//! the binary against the built-in simulator, and the HTML page opened in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

use common::{loadkit, tmp, BIN};

/// Every chart the HTML report of a successful LLM run has.
const CHARTS: [&str; 12] = [
    "chart-rps",
    "chart-in-flight",
    "chart-latency",
    "chart-failed",
    // The server's view: the built-in simulator serves vLLM's /metrics.
    "chart-server-requests",
    "chart-server-queue",
    "chart-server-tokens",
    "chart-server-kv",
    "chart-percentiles-ttft",
    "chart-percentiles-itl",
    "chart-percentiles-e2e",
    "chart-percentiles-schedule_lag",
];

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A short run of the built-in simulator writing `formats` into `out`.
fn short_run(out: &Path, formats: &str) {
    let o = loadkit(&[
        "run",
        "--rps",
        "10",
        "--duration",
        "1s",
        "-q",
        "--format",
        formats,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn a_spike_run_writes_html_markdown_and_csv_that_show_the_spike() {
    let out = tmp("spike");
    // 2 req/s, and 40 req/s for the second from 2 s on.
    let o = loadkit(&[
        "run",
        "--pattern",
        "spike",
        "--rps",
        "2",
        "--spike-rps",
        "40",
        "--spike-duration",
        "1s",
        "--spike-every",
        "2s",
        "--duration",
        "3s",
        "-q",
        "--format",
        "html,md,csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    for name in [
        "report.json",
        "report.html",
        "report.md",
        "summary.csv",
        "timeline.csv",
        "errors.csv",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(
            stdout.contains(&out.join(name).display().to_string()),
            "{name} not printed:\n{stdout}"
        );
    }

    let html = read(&out.join("report.html"));
    for id in CHARTS {
        assert!(html.contains(&format!("<figure id=\"{id}\">")), "{id}");
    }
    assert_eq!(html.matches("<svg").count(), CHARTS.len());
    assert_eq!(html.matches("<figcaption>").count(), CHARTS.len());
    assert!(!html.contains("<script"));

    // The requests/s series shows the spike, in the CSV and the JSON alike.
    let timeline = read(&out.join("timeline.csv"));
    let mut lines = timeline.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with(
            "t_s,intended,started,completed,failed,in_flight,output_tokens,ttft_p50_ms,e2e_p95_ms,\
             server:vllm:"
        ),
        "{header}"
    );
    let intended: Vec<u64> = lines
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let first = intended[0];
    let peak = *intended.iter().max().unwrap();
    assert!(first <= 3 && peak >= 30, "no spike in {intended:?}");
    let report: Value = serde_json::from_str(&read(&out.join("report.json"))).unwrap();
    let from_json: Vec<u64> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["intended"].as_u64().unwrap())
        .collect();
    assert_eq!(intended, from_json);

    let md = read(&out.join("report.md"));
    assert!(md.contains("Pattern **spike**"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| ttft | ms | ")), "{md}");
    let summary = read(&out.join("summary.csv"));
    let requests = summary
        .lines()
        .find(|l| l.starts_with("totals.requests,"))
        .unwrap();
    assert_eq!(
        requests.rsplit(',').next().unwrap(),
        report["totals"]["requests"].to_string()
    );
}

#[test]
fn loadkit_report_renders_an_existing_report_and_escapes_what_servers_wrote() {
    let out = tmp("render");
    short_run(&out, "json");
    let json_path = out.join("report.json");
    // A hostile server's error message, put in the report as the engine would group it.
    let mut report: Value = serde_json::from_str(&read(&json_path)).unwrap();
    report["errors"] = serde_json::json!([
        {"class": "http_status", "message": "<script>alert(1)</script>", "count": 2},
        {"class": "protocol", "message": "bad \"chunk\", at 3", "count": 1}
    ]);
    std::fs::write(&json_path, report.to_string()).unwrap();

    let o = loadkit(&[
        "report",
        json_path.to_str().unwrap(),
        "--format",
        "html,md,csv",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let printed: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    let expected: Vec<String> = [
        "report.html",
        "report.md",
        "summary.csv",
        "timeline.csv",
        "errors.csv",
    ]
    .iter()
    .map(|n| out.join(n).display().to_string())
    .collect();
    assert_eq!(printed, expected);
    let html = read(&out.join("report.html"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script"), "a script tag in the page");
    assert!(read(&out.join("report.md")).contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(read(&out.join("errors.csv")).contains("protocol,\"bad \"\"chunk\"\", at 3\",1"));

    // --out elsewhere; the default format is html.
    let elsewhere = tmp("render-elsewhere");
    let o = loadkit(&[
        "report",
        json_path.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(elsewhere.join("report.html").is_file());
    assert!(!elsewhere.join("report.md").exists());
}

#[test]
fn loadkit_report_refuses_bad_input_in_one_line() {
    let dir = tmp("bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.json");
    let o = loadkit(&["report", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot read") && err.contains(missing.to_str().unwrap()),
        "{err}"
    );

    let other = dir.join("other.json");
    std::fs::write(&other, r#"{"name": "not a report"}"#).unwrap();
    let o = loadkit(&["report", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a loadkit report"), "{err}");

    let o = loadkit(&["report", other.to_str().unwrap(), "--format", "html,pdf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown report format 'pdf'"));

    let o = loadkit(&["report", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = text(&o.stdout);
    assert!(
        help.trim_end()
            .lines()
            .last()
            .unwrap()
            .trim_start()
            .starts_with("loadkit report "),
        "{help}"
    );
}

/// Chromium: `/usr/bin/chromium`, or `chromium` on the PATH.
fn chromium() -> PathBuf {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return fixed.to_owned();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: this test opens the HTML report in headless \
                 Chromium; install it with `apt-get install -y chromium` (.ci/run does)"
            )
        })
}

/// Runs headless Chromium (bounded by `timeout`, with a profile of its own) on `args`.
fn run_chromium(profile: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_html_report_renders_every_chart_in_headless_chromium() {
    let out = tmp("chromium");
    short_run(&out, "html");
    let page = format!("file://{}", out.join("report.html").display());
    let profile = out.join("chromium-profile");

    let o = run_chromium(&profile, &["--dump-dom", &page]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let dom = text(&o.stdout);
    assert!(dom.contains("<h1>loadkit report</h1>"), "{dom}");
    for id in CHARTS {
        let start = dom
            .find(&format!("<figure id=\"{id}\">"))
            .unwrap_or_else(|| panic!("{id} not in the DOM"));
        let figure = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg"), "{id} has no svg in the DOM");
        assert!(
            figure.contains("<polyline") || figure.contains("<path"),
            "{id}: no line"
        );
    }
    assert_eq!(dom.matches("<figure id=\"chart-").count(), CHARTS.len());

    let shot = std::env::temp_dir().join("loadkit-report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let o = run_chromium(
        &profile,
        &[
            "--window-size=1200,2400",
            &format!("--screenshot={}", shot.display()),
            &page,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let png = std::fs::read(&shot).expect("no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn no_report_file_holds_the_session_token() {
    let out = tmp("token");
    let secret = "sk-session-4f9a7c";
    let o = Command::new(BIN)
        .args([
            "run",
            "--requests",
            "3",
            "-q",
            "--token-env",
            "LOADKIT_TEST_TOKEN",
            "--format",
            "html,md,csv",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("LOADKIT_TEST_TOKEN", secret)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut files = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let content = read(&path);
        assert!(
            !content.contains(secret),
            "{} holds the token",
            path.display()
        );
        files += 1;
    }
    assert_eq!(files, 6);
    // The target shows where the token went, redacted.
    assert!(read(&out.join("report.html")).contains("?token=***"));
    assert!(read(&out.join("summary.csv")).contains("?token=***"));
}
