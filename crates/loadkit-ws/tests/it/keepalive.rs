//! Keepalive both ways: the client's pings unanswered (a server that does not read, or a
//! blocking prefill longer than the ping timeout) fail the request as `keepalive_timeout`, and
//! the same prefill with pings off succeeds; the server's pings are answered while the client
//! reads, and its 1011 close of an idle connection costs the user a reconnect, not a failure.

use std::time::Duration;

use loadkit_core::schedule::FixedInterval;
use loadkit_core::Runner;
use loadkit_testbed::harness::{errors, ms};
use loadkit_testbed::openai::Trigger;
use loadkit_testbed::ws_chat::{self, SimKeepalive, WsChatSimConfig, WsFault};
use loadkit_ws::{WsChatClient, WsChatConfig};

use crate::support::{config, count, request, run, PROMPT};

fn pinging(url: &str) -> WsChatConfig {
    let mut c = config(url);
    c.ping_interval = Some(Duration::from_millis(50));
    c.ping_timeout = Duration::from_millis(100);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_no_ping_fails_with_keepalive_timeout() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(20),
        natural_tokens: 40,
        faults: vec![(Trigger::Always, WsFault::IgnorePings)],
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let result = run(pinging(&server.url()), 2, 1).await;
    assert_eq!(
        errors(&result),
        [(
            "keepalive_timeout".into(),
            "keepalive timeout: no pong within 100ms of a ping".into(),
            2
        )]
    );
    // Ping at 50 ms, no pong by 150 ms: the stream (800 ms) was cut short.
    assert!(result.stats.itl_failed.count() > 0);
    assert!(result.stats.itl_failed.count() < 2 * 39);
    server.shutdown().await;
}

/// 5 words × 60 ms of prefill that blocks the server's event loop: 300 ms without a pong, past
/// the client's 100 ms ping timeout. With pings off the same request succeeds, and its TTFT
/// shows the prefill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_prefill_past_the_ping_timeout_fails_unless_pings_are_off() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(2),
        natural_tokens: 8,
        prefill_per_word: Duration::from_millis(60),
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let result = run(pinging(&server.url()), 2, 1).await;
    assert_eq!(
        count(
            &result,
            "keepalive_timeout",
            "keepalive timeout: no pong within 100ms of a ping"
        ),
        2,
        "{:?}",
        errors(&result)
    );
    assert_eq!(result.stats.counters.succeeded, 0);

    let mut no_ping = pinging(&server.url());
    no_ping.ping_interval = None;
    let result = run(no_ping, 2, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (2, 0), "{:?}", errors(&result));
    let prefill = 60.0 * PROMPT.split_whitespace().count() as f64;
    let ttft = ms(result.stats.ttft.quantile(0.5));
    assert!(
        (prefill + 10.0..prefill + 40.0).contains(&ttft),
        "ttft p50 {ttft:.1} ms after a {prefill} ms prefill"
    );

    // A ping timeout longer than the prefill: the pong comes late, but in time.
    let mut patient = pinging(&server.url());
    patient.ping_timeout = Duration::from_secs(2);
    let result = run(patient, 2, 1).await;
    assert_eq!(result.stats.counters.succeeded, 2, "{:?}", errors(&result));
    assert!(server.stats().pings_received >= 2, "the client pinged");
    server.shutdown().await;
}

/// The server pings every 20 ms and closes with 1011 after 60 ms without a pong: the client
/// answers while it reads a 400 ms stream, so nothing is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_pings_are_answered_while_reading() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(10),
        natural_tokens: 40,
        keepalive: Some(SimKeepalive {
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(60),
        }),
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let mut c = config(&server.url());
    c.ping_interval = None;
    let result = run(c, 3, 1).await;
    let counters = &result.stats.counters;
    assert_eq!(
        (counters.succeeded, counters.failed),
        (3, 0),
        "{:?}",
        errors(&result)
    );
    let sim = server.stats();
    assert!(sim.pings_sent >= 3 * 15, "{sim:?}");
    assert!(sim.pongs_received + 1 >= sim.pings_sent, "{sim:?}");
    assert_eq!(sim.keepalive_closes, 0);
    assert_eq!(sim.connections, 1);
    server.shutdown().await;
}

/// Between a user's requests nobody reads its connection, so the server's ping goes unanswered
/// and it closes the idle connection with 1011. The next request notices before sending,
/// reconnects, and counts a stale-connection retry: no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_servers_keepalive_closed_is_replaced() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        natural_tokens: 4,
        keepalive: Some(SimKeepalive {
            interval: Duration::from_millis(30),
            timeout: Duration::from_millis(30),
        }),
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let mut c = config(&server.url());
    c.ping_interval = None;
    let client = WsChatClient::new(c).unwrap();
    // One request every 400 ms: each connection sits idle long past 30 + 30 ms.
    let result = Runner::builder(client, request)
        .closed_loop(FixedInterval::new(1, Duration::from_millis(400)).unwrap())
        .requests(3)
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap()
        .run()
        .await;
    let counters = &result.stats.counters;
    assert_eq!(
        (counters.succeeded, counters.failed),
        (3, 0),
        "{:?}",
        errors(&result)
    );
    assert_eq!(counters.stale_connection_retries, 2);
    let sim = server.stats();
    assert_eq!(sim.connections, 3);
    assert!(sim.keepalive_closes >= 2, "{sim:?}");
    server.shutdown().await;
}
