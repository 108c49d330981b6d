//! `wss://`: a self-signed server is refused by default (a classified `tls` error, not a
//! panic), accepted with its certificate as a private CA, and accepted with `insecure`.

use std::time::Duration;

use loadkit_http::tls::TlsOptions;
use loadkit_testbed::harness::errors;
use loadkit_testbed::tls::TlsFront;
use loadkit_testbed::ws_chat::{self, WsChatSimConfig};

use crate::support::{config, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_verifies_certificates_unless_given_the_ca_or_told_not_to() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        natural_tokens: 4,
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let front = TlsFront::start(server.addr()).await.unwrap();
    let url = server
        .url()
        .replace("ws://", "wss://")
        .replace(&server.addr().to_string(), &front.addr().to_string());
    let t = Duration::from_secs(5);

    let e = loadkit_ws::preflight(&url, &[], t, &TlsOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls handshake failed") && e.contains("certificate"),
        "{e}"
    );
    let refused = run(config(&url), 2, 1).await;
    let groups = errors(&refused);
    assert_eq!(refused.stats.counters.succeeded, 0, "{groups:?}");
    assert!(
        groups.iter().any(|(class, _, _)| class == "tls"),
        "{groups:?}"
    );

    let trusted = TlsOptions {
        insecure: false,
        ca_pem: vec![front.cert_pem().as_bytes().to_vec()],
    };
    loadkit_ws::preflight(&url, &[], t, &trusted).await.unwrap();
    let mut with_ca = config(&url);
    with_ca.tls = trusted;
    let ok = run(with_ca, 3, 1).await;
    assert_eq!(ok.stats.counters.succeeded, 3, "{:?}", errors(&ok));

    let insecure = TlsOptions {
        insecure: true,
        ca_pem: Vec::new(),
    };
    loadkit_ws::preflight(&url, &[], t, &insecure)
        .await
        .unwrap();
    let mut any = config(&url);
    any.tls = insecure;
    let ok = run(any, 3, 1).await;
    assert_eq!(ok.stats.counters.succeeded, 3, "{:?}", errors(&ok));
    server.shutdown().await;
}
