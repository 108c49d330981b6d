//! Every failure the client can meet, each classified into its error class with a message that
//! groups, and each followed by a new connection: refused, upgrade refused, TLS, closes with
//! 1011 / 1009 / 1008, a dropped connection, an error message, malformed JSON, a stream that
//! never ends, an oversized message, the context limit.

use std::time::Duration;

use loadkit_testbed::harness::errors;
use loadkit_testbed::openai::Trigger;
use loadkit_testbed::ws_chat::{self, WsChatSimConfig, WsFault};
use loadkit_ws::WsChatConfig;

use crate::support::{config, run};

fn quick() -> WsChatSimConfig {
    WsChatSimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        natural_tokens: 8,
        ..WsChatSimConfig::default()
    }
}

/// Three requests of one user against a server with `fault` on every request: the error
/// groups, how many connections the server accepted, and how long the run took.
async fn every_request_meets(
    fault: WsFault,
    edit: impl FnOnce(&mut WsChatConfig),
) -> (Vec<(String, String, u64)>, u64, Duration) {
    let server = ws_chat::serve(WsChatSimConfig {
        faults: vec![(Trigger::Always, fault)],
        ..quick()
    })
    .await
    .unwrap();
    let mut c = config(&server.url());
    edit(&mut c);
    let result = run(c, 3, 1).await;
    assert_eq!(result.stats.counters.failed, 3, "{:?}", errors(&result));
    assert_eq!(result.stats.counters.stale_connection_retries, 0);
    let connections = server.stats().connections;
    server.shutdown().await;
    (errors(&result), connections, result.elapsed)
}

fn one(class: &str, message: &str) -> Vec<(String, String, u64)> {
    vec![(class.to_owned(), message.to_owned(), 3)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_are_keepalive_timeouts_for_1011_and_ws_close_with_their_code_otherwise() {
    let close = |code: u16, reason: &str| WsFault::Close {
        after_tokens: 2,
        code,
        reason: reason.into(),
    };
    let end = "before the end message (/type=done)";
    let cases = [
        (
            close(1011, "keepalive ping timeout"),
            one(
                "keepalive_timeout",
                &format!("websocket closed with 1011 (keepalive ping timeout) {end}"),
            ),
        ),
        (
            close(1009, ""),
            one(
                "ws_close",
                &format!("websocket closed with 1009 (message too big) {end}"),
            ),
        ),
        (
            close(1008, "policy  violation:\n no token"),
            one(
                "ws_close",
                &format!("websocket closed with 1008 (policy violation: no token) {end}"),
            ),
        ),
        (
            WsFault::Drop { after_tokens: 2 },
            one(
                "ws_close",
                &format!(
                    "websocket closed with 1006 (connection dropped without a close frame) {end}"
                ),
            ),
        ),
    ];
    for (fault, expected) in cases {
        let (errors, connections, _) = every_request_meets(fault.clone(), |_| {}).await;
        assert_eq!(errors, expected, "{fault:?}");
        assert_eq!(
            connections, 3,
            "a new connection after each failure: {fault:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_fail_a_request() {
    let (e, connections, _) = every_request_meets(
        WsFault::ErrorMessage {
            after_tokens: 3,
            message: "CUDA out of\n memory".into(),
        },
        |_| {},
    )
    .await;
    assert_eq!(e, one("server_error", "CUDA out of memory"));
    assert_eq!(connections, 3);
    let (e, _, _) = every_request_meets(WsFault::Malformed { after_tokens: 1 }, |_| {}).await;
    assert_eq!(
        e,
        one("protocol", "malformed message: EOF while parsing a string")
    );
    let (e, _, _) = every_request_meets(
        WsFault::Oversized {
            after_tokens: 1,
            bytes: 100_000,
        },
        |c| c.max_message_size = 64 * 1024,
    )
    .await;
    assert_eq!(
        e,
        one(
            "protocol",
            "message exceeds the maximum size of 65536 bytes"
        )
    );
}

/// A stream without its end message ends in a timeout that names the end rule, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_end_message_is_a_timeout_naming_the_rule() {
    let (e, connections, took) = every_request_meets(WsFault::NoEnd { after_tokens: 3 }, |c| {
        c.idle_timeout = Duration::from_millis(200);
    })
    .await;
    assert_eq!(
        e,
        one(
            "timeout",
            "idle timeout after 200ms waiting for the end message (/type=done)"
        )
    );
    assert_eq!(connections, 3, "a timed-out connection is not reused");
    // Each request waits its 200 ms, not the first-byte timeout (5 s) or longer.
    assert!(took < Duration::from_millis(3 * 200 + 1000), "{took:?}");
    let (e, _, took) = every_request_meets(WsFault::NoEnd { after_tokens: 0 }, |c| {
        c.first_byte_timeout = Duration::from_millis(200);
        c.end_when = "/type=finished".into();
    })
    .await;
    assert_eq!(
        e,
        one(
            "timeout",
            "first byte timeout after 200ms waiting for the first message (the end message is /type=finished)"
        )
    );
    assert!(took < Duration::from_millis(3 * 200 + 1000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_context_limit_is_a_server_error_with_its_text() {
    let server = ws_chat::serve(WsChatSimConfig {
        max_prompt_words: Some(3),
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 3, 1).await;
    assert_eq!(
        errors(&result),
        one("server_error", "context length exceeded: 5 words > 3")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_upgrades_and_tls() {
    // A port nobody listens on: bind one, note it, close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("ws://{addr}/ws/chat/v2");
    let result = run(config(&url), 3, 1).await;
    assert_eq!(errors(&result), one("connect", "connection refused"));
    let e = loadkit_ws::preflight(&url, &[], Duration::from_secs(1), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot open a websocket to {url}: connection refused")
    );

    let server = ws_chat::serve(WsChatSimConfig {
        required_header: Some(("authorization".into(), "Bearer t0ken".into())),
        ..quick()
    })
    .await
    .unwrap();
    let wrong_path = format!("ws://{}/ws/chat/v1", server.addr());
    let result = run(config(&wrong_path), 3, 1).await;
    assert_eq!(
        errors(&result),
        one("http_status", "HTTP 404: no chat endpoint at /ws/chat/v1")
    );
    let result = run(config(&server.url()), 3, 1).await;
    assert_eq!(
        errors(&result),
        one(
            "http_status",
            "HTTP 401: missing or wrong authorization header"
        )
    );
    let mut with_header = config(&server.url());
    with_header.headers = vec![("Authorization".into(), "Bearer t0ken".into())];
    let result = run(with_header, 3, 1).await;
    assert_eq!(result.stats.counters.succeeded, 3, "{:?}", errors(&result));
    assert_eq!(server.stats().rejected, 6);

    // A server that accepts TCP and never answers the upgrade: the connect deadline covers it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("ws://{}/ws", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut c = config(&silent_url);
    c.connect_timeout = Duration::from_millis(200);
    let result = run(c, 2, 1).await;
    assert_eq!(
        errors(&result),
        [("timeout".into(), "connect timeout after 200ms".into(), 2)]
    );
    holder.abort();

    // TLS spoken to a plain server fails the handshake.
    let wss = format!("wss://{}/ws/chat/v2", server.addr());
    let result = run(config(&wss), 2, 1).await;
    let e = errors(&result);
    assert_eq!((e.len(), e[0].0.as_str(), e[0].2), (1, "tls", 2), "{e:?}");
    assert!(e[0].1.starts_with("tls handshake failed"), "{e:?}");
    server.shutdown().await;
}
