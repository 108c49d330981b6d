//! `--server-metrics` through the binary: the simulator's vLLM-named `/metrics` scraped beside
//! the load (its slot count is the truth the running gauge must not exceed), an endpoint that
//! is not there recorded as failures without failing the run, and `off`.

use std::path::Path;

use serde_json::Value;

mod common;

use common::{loadkit, tmp, Sim};

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Two slots of 100 ms (20 ms to the first token, 8 more 10 ms apart) serve 20 req/s; 30 req/s
/// for 4 s queues the rest. The server's own running gauge stays at the two slots, its waiting
/// gauge and queue time grow, and its token counter rises at the slots' 180 tokens/s.
#[test]
fn the_server_s_view_is_scraped_per_second_beside_the_client_s() {
    let sim = Sim::start(&[
        "--slots", "2", "--ttft", "20ms", "--itl", "10ms", "--tokens", "9",
    ]);
    let out = tmp("server-metrics");
    let o = loadkit(&[
        "run",
        "--url",
        &sim.url,
        "--rps",
        "30",
        "--duration",
        "4s",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "html,csv",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("server      vllm at http://"), "{stdout}");
    let r = report(&out);
    let sm = &r["server_metrics"];
    assert_eq!(sm["kind"], "vllm", "{sm}");
    assert_eq!(sm["failures"]["count"], 0, "{sm}");
    assert!(sm["scrapes"].as_u64().unwrap() >= 4, "{sm}");
    let series = &sm["series"];
    let running = &series["vllm:num_requests_running"];
    assert_eq!(
        running["max"], 2.0,
        "never more running than slots: {running}"
    );
    let waiting = &series["vllm:num_requests_waiting"];
    assert!(
        waiting["max"].as_f64().unwrap() >= 5.0,
        "a queue builds: {waiting}"
    );
    let kv = &series["vllm:kv_cache_usage_perc"];
    assert_eq!(kv["source"], "vllm:gpu_cache_usage_perc");
    assert_eq!(kv["max"], 1.0, "both slots busy: {kv}");
    let queue = &series["vllm:request_queue_time_seconds"];
    assert_eq!(queue["unit"], "ms");
    assert!(
        queue["max"].as_f64().unwrap() > 50.0,
        "requests waited: {queue}"
    );
    let tokens = &series["vllm:generation_tokens_total"];
    let rate = tokens["mean"].as_f64().unwrap();
    assert!(
        (120.0..=220.0).contains(&rate),
        "two slots make 180 tokens/s: {tokens}"
    );
    assert!(sm["missing"].as_array().unwrap().is_empty(), "{sm}");
    // Per second on the timeline: every whole second of the run has its scrape.
    let timeline = r["timeline"].as_array().unwrap();
    let with = timeline
        .iter()
        .filter(|row| row["server"]["vllm:num_requests_running"].is_number())
        .count();
    assert!(with >= 3, "{timeline:?}");
    let csv = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("server:vllm:num_requests_waiting"),
        "{csv}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in [
        "chart-server-requests",
        "chart-server-queue",
        "chart-server-tokens",
    ] {
        assert!(html.contains(&format!("<figure id=\"{id}\">")), "{id}");
    }
}

#[test]
fn an_endpoint_that_is_not_there_is_recorded_and_the_run_goes_on() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{dead}/metrics");
    let out = tmp("server-metrics-dead");
    let o = loadkit(&[
        "run",
        "--requests",
        "20",
        "--rps",
        "10",
        "--server-metrics",
        &url,
        "--server-metrics-every",
        "200ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("server metrics: {url} every 200ms")),
        "{stderr}"
    );
    let r = report(&out);
    assert_eq!(r["totals"]["succeeded"], 20);
    let sm = &r["server_metrics"];
    let scrapes = sm["scrapes"].as_u64().unwrap();
    assert!(scrapes >= 3, "{sm}");
    assert_eq!(sm["failures"]["count"].as_u64(), Some(scrapes), "{sm}");
    let first = sm["failures"]["first_error"].as_str().unwrap();
    assert!(first.starts_with("connect: "), "{first}");
    assert_eq!(sm["kind"], "other");
    assert!(sm["series"].as_object().unwrap().is_empty());
}

#[test]
fn off_and_servers_without_metrics_leave_no_section() {
    for args in [
        &["--server-metrics", "off"][..],
        // The Ollama simulator has no /metrics (as Ollama itself): auto finds none, quietly.
        &["--protocol", "ollama-chat"][..],
    ] {
        let out = tmp("server-metrics-off");
        let mut all = vec!["run", "--requests", "3", "--out", out.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = loadkit(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("server metrics"), "{stderr}");
        assert!(report(&out).get("server_metrics").is_none(), "{args:?}");
    }
}
