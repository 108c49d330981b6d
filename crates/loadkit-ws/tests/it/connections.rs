//! Connections: one per user and reused, or one per request; a connection the server closed
//! while idle is replaced and counted, never failed; a failure drops the user's connection and
//! its next request succeeds on a new one; the preflight upgrades and closes.

use std::time::Duration;

use loadkit_testbed::harness::errors;
use loadkit_testbed::openai::Trigger;
use loadkit_testbed::ws_chat::{self, Recycle, WsChatSimConfig, WsFault};
use loadkit_ws::Connection;

use crate::support::{config, count, eventually, request, run};

fn quick() -> WsChatSimConfig {
    WsChatSimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        natural_tokens: 4,
        ..WsChatSimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_reuses_one_connection_per_user_per_request_opens_one_each() {
    let server = ws_chat::serve(quick()).await.unwrap();
    let result = run(config(&server.url()), 12, 3).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (12, 0), "{:?}", errors(&result));
    assert_eq!(c.stale_connection_retries, 0);
    assert_eq!(server.stats().connections, 3, "3 users × 4 requests");

    let mut per_request = config(&server.url());
    per_request.connection = Connection::PerRequest;
    let result = run(per_request, 12, 3).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (12, 0), "{:?}", errors(&result));
    assert_eq!(server.stats().connections, 3 + 12, "one per request");
    assert_eq!(server.stats().completed, 24);
    // Every connection was closed with a close frame: the 3 users' when their sessions ended,
    // and each per-request one after its request.
    assert!(
        eventually(&server, |s| s.closes_received == 3 + 12).await,
        "{:?}",
        server.stats()
    );
    server.shutdown().await;
}

/// A call the engine abandons (its total timeout) leaves its connection in an unknown state:
/// the engine resets the user's session, the connection is closed politely, and the user's
/// next request opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_engine_abandons_takes_its_connection_with_it() {
    let server = ws_chat::serve(WsChatSimConfig {
        faults: vec![(Trigger::EveryNth(2), WsFault::NoEnd { after_tokens: 1 })],
        ..quick()
    })
    .await
    .unwrap();
    let client = loadkit_ws::WsChatClient::new(config(&server.url())).unwrap();
    let result = loadkit_core::Runner::builder(client, request)
        .closed_loop(loadkit_core::schedule::FixedUsers::new(1).unwrap())
        .requests(3)
        .timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap()
        .run()
        .await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (2, 1), "{:?}", errors(&result));
    assert_eq!(count(&result, "timeout", "total timeout after 300ms"), 1);
    assert_eq!(server.stats().connections, 2);
    // The abandoned connection, then the user's second one when the run ended.
    assert!(
        eventually(&server, |s| s.closes_received == 2).await,
        "{:?}",
        server.stats()
    );
    server.shutdown().await;
}

/// A server that closes each connection (1000) right after its response: every later request
/// of the user meets a closed connection and goes out on a new one, counted, never failed; the
/// server never sees it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_replaced_and_counted() {
    let server = ws_chat::serve(WsChatSimConfig {
        recycle: Some(Recycle::AfterResponses(1)),
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 6, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (6, 0), "{:?}", errors(&result));
    assert_eq!(
        c.stale_connection_retries, 5,
        "every request after the first"
    );
    let sim = server.stats();
    assert_eq!((sim.connections, sim.requests, sim.completed), (6, 6, 6));
    server.shutdown().await;
}

/// A server that closes (1001) a reused connection when the next request arrives on it, with
/// no answer: the request is sent once more on a new connection and counted. On a new
/// connection the same close is a failure, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_closed_on_before_answering_is_sent_again() {
    let server = ws_chat::serve(WsChatSimConfig {
        recycle: Some(Recycle::OnRequestAfter(1)),
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 6, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (6, 0), "{:?}", errors(&result));
    assert_eq!(c.stale_connection_retries, 5);
    let sim = server.stats();
    assert_eq!(
        (sim.connections, sim.requests, sim.refused_requests),
        (6, 6, 5)
    );
    server.shutdown().await;

    let server = ws_chat::serve(WsChatSimConfig {
        recycle: Some(Recycle::OnRequestAfter(0)),
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 3, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.failed, c.stale_connection_retries), (3, 0));
    assert_eq!(
        count(
            &result,
            "ws_close",
            "websocket closed with 1001 (going away) before the end message (/type=done)"
        ),
        3,
        "{:?}",
        errors(&result)
    );
    server.shutdown().await;
}

/// Every second request fails with a server error: the user's connection is dropped each time,
/// and its next request succeeds on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failure_the_users_next_request_succeeds_on_a_new_connection() {
    let server = ws_chat::serve(WsChatSimConfig {
        faults: vec![(
            Trigger::EveryNth(2),
            WsFault::ErrorMessage {
                after_tokens: 2,
                message: "model overloaded".into(),
            },
        )],
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 5, 1).await;
    let c = &result.stats.counters;
    // Requests 0, 2, 4 succeed; 1 and 3 fail and take their connection with them.
    assert_eq!((c.succeeded, c.failed), (3, 2), "{:?}", errors(&result));
    assert_eq!(count(&result, "server_error", "model overloaded"), 2);
    assert_eq!(c.stale_connection_retries, 0);
    assert_eq!(server.stats().connections, 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_upgrades_and_closes() {
    let server = ws_chat::serve(quick()).await.unwrap();
    loadkit_ws::preflight(
        &server.url(),
        &[],
        Duration::from_secs(2),
        &Default::default(),
    )
    .await
    .unwrap();
    let sim = server.stats();
    assert_eq!((sim.connections, sim.requests), (1, 0));
    let wrong = format!("ws://{}/nope", server.addr());
    let e = loadkit_ws::preflight(&wrong, &[], Duration::from_secs(2), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot open a websocket to {wrong}: HTTP 404: no chat endpoint at /nope")
    );
    let e = loadkit_ws::preflight(
        "http://127.0.0.1:1/ws",
        &[],
        Duration::from_secs(2),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, loadkit_ws::PreflightError::Config(_)), "{e}");
    server.shutdown().await;
}
