//! The report built from a real (paused-clock) run: schema, values, round trip, terminal text.

use std::time::Duration;

use loadkit_core::metrics::ErrorKind;
use loadkit_core::schedule::ConstantRate;
use loadkit_core::{Client, Probe, RequestCtx, RequestError, Runner};
use loadkit_report::{render_summary, Report, RunMeta};

struct Fake;

impl Client for Fake {
    type Request = u64;

    async fn call(&self, seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if seq % 10 == 9 {
            return Err(RequestError::new(
                ErrorKind::HttpStatus(503),
                "HTTP 503: Too many concurrent requests",
            ));
        }
        probe.mark_first_byte();
        for i in 0..5 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            probe.content(1, 3);
        }
        probe.usage(Some(12), Some(5));
        probe.server_timing("server_eval", Duration::from_millis(40));
        Ok(())
    }
}

async fn report() -> Report {
    let result = Runner::builder(Fake, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(Duration::from_secs(3))
        .build()
        .unwrap()
        .run()
        .await;
    let meta = RunMeta {
        protocol: "openai-chat".into(),
        target: "http://127.0.0.1:1/v1/chat/completions".into(),
        model: Some("sim".into()),
        seed: Some(7),
        ..RunMeta::default()
    };
    Report::from_run(&result, meta)
}

#[tokio::test(start_paused = true)]
async fn the_json_report_follows_the_schema() {
    let r = report().await;
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["schema_version"], 1);
    for key in [
        "run",
        "totals",
        "throughput",
        "tokens",
        "metrics",
        "errors",
        "timeline",
        "generator",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["run"]["pattern"]["kind"], "constant");
    assert_eq!(json["run"]["pattern"]["rps"], 10.0);
    assert_eq!(json["run"]["stop_reason"], "duration");
    assert_eq!(json["run"]["interrupted"], false);
    assert_eq!(json["totals"]["requests"], 30);
    assert_eq!(json["totals"]["succeeded"], 27);
    assert_eq!(json["totals"]["failed"], 3);
    assert_eq!(json["tokens"]["source"], "server");
    assert_eq!(json["tokens"]["output_total"], 27 * 5);
    assert_eq!(json["tokens"]["input_total"], 27 * 12);
    for name in [
        "ttft",
        "ttft_corrected",
        "itl",
        "tpot",
        "e2e",
        "e2e_corrected",
        "schedule_lag",
    ] {
        let m = &json["metrics"][name];
        assert_eq!(m["unit"], "ms", "{name}");
        assert!(m["hdr"].as_str().unwrap().len() > 10, "{name}");
    }
    let ttft = json["metrics"]["ttft"]["p50"].as_f64().unwrap();
    assert!((ttft - 50.0).abs() < 2.0, "{ttft}");
    let itl = json["metrics"]["itl"]["p50"].as_f64().unwrap();
    assert!((itl - 10.0).abs() < 1.0, "{itl}");
    assert_eq!(json["errors"][0]["class"], "http_status");
    assert_eq!(json["errors"][0]["count"], 3);
    assert_eq!(json["timeline"].as_array().unwrap().len(), 3);
    assert_eq!(json["timeline"][0]["started"], 10);
}

#[tokio::test(start_paused = true)]
async fn reports_round_trip_and_histograms_decode() {
    let r = report().await;
    let back = Report::from_json(&r.to_json()).unwrap();
    assert_eq!(back, r);
    let h = loadkit_core::metrics::Histogram::from_base64(&back.metrics["e2e"].hdr).unwrap();
    assert_eq!(h.count(), 27);
    let newer = r
        .to_json()
        .replacen("\"schema_version\": 1", "\"schema_version\": 99", 1);
    assert!(Report::from_json(&newer)
        .unwrap_err()
        .to_string()
        .contains("newer"));
}

#[tokio::test(start_paused = true)]
async fn the_terminal_summary_shows_requests_latencies_and_grouped_errors() {
    let text = render_summary(&report().await);
    assert!(
        text.contains("30 sent · 27 ok · 3 failed (90.0 % success)"),
        "{text}"
    );
    assert!(
        text.contains("[3x] HTTP 503: Too many concurrent requests"),
        "{text}"
    );
    let ttft = text.lines().find(|l| l.starts_with("TTFT ")).unwrap();
    assert!(ttft.contains("50."), "{ttft}");
    let server = text
        .lines()
        .find(|l| l.starts_with("server_eval "))
        .expect("server timings shown");
    assert!(server.contains("40.0"), "{server}");
    for label in ["ITL", "TPOT", "E2E"] {
        assert!(
            text.lines().any(|l| l.starts_with(label)),
            "{label} row missing:\n{text}"
        );
    }
}
