//! A server that closes its keep-alive connections after each response (as llama.cpp's
//! `llama-server` does) is healthy: requests that meet a closing connection are retried once on
//! a new one and counted, never reported as failures. A server that resets new connections
//! still fails.

use std::time::Duration;

use loadkit_testbed::openai::{self, SimConfig};
use loadkit_testbed::{Connections, Transport};

use crate::support::{config, errors, run};

fn closing(connections: Connections) -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        itl: Duration::ZERO,
        output_tokens: 4,
        transport: Transport {
            connections,
            ..Transport::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_after_each_response_fails_none_of_1000_requests() {
    let server = openai::serve(closing(Connections::OneResponse))
        .await
        .unwrap();
    let result = run(config(&server.base_url()), 1000, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (1000, 0), "{:?}", errors(&result));
    // Every request the server left unanswered was one retry; every answer was the first
    // request of its connection.
    let sim = server.stats();
    assert!(
        c.stale_connection_retries > 0,
        "no request met a closing connection"
    );
    assert_eq!(sim.requests, 1000, "answered requests");
    assert!(sim.connections >= 1000, "{} connections", sim.connections);
    assert!(c.stale_connection_retries < 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_resetting_new_connections_still_fails_every_request() {
    let server = openai::serve(closing(Connections::ResetAll)).await.unwrap();
    let result = run(config(&server.base_url()), 20, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (0, 20));
    assert_eq!(
        c.stale_connection_retries, 0,
        "new connections are not retried"
    );
    let errors = errors(&result);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "truncated");
    assert!(
        errors[0].1.contains("before the response head"),
        "{errors:?}"
    );
}
