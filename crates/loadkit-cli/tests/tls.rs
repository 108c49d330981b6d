//! TLS from the command line, against the simulator behind a TLS front with a self-signed
//! certificate: refused by default (a classified certificate error, exit 3, not a panic),
//! accepted with `--ca-cert` and with `--insecure` (one warning, recorded in the report); a bad
//! `--ca-cert` file is one line and exit 2.

use std::time::Duration;

use loadkit_testbed::openai::{self, SimConfig};
use loadkit_testbed::tls::TlsFront;
use serde_json::Value;

mod common;

use common::{loadkit, tmp};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn https_verifies_certificates_by_default_and_takes_a_ca_file_or_insecure() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (server, front) = runtime.block_on(async {
        let server = openai::serve(SimConfig {
            ttft: Duration::from_millis(2),
            itl: Duration::from_millis(1),
            output_tokens: 4,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let front = TlsFront::start(server.addr()).await.unwrap();
        (server, front)
    });
    let url = format!("https://127.0.0.1:{}/v1", front.addr().port());
    let dir = tmp("tls");
    std::fs::create_dir_all(&dir).unwrap();

    // Verified by default: the self-signed certificate is refused before any load.
    let o = loadkit(&["run", "--url", &url, "--requests", "2", "-q"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("tls") && err.contains("certificate"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Its certificate as a private CA.
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, front.cert_pem()).unwrap();
    let out = dir.join("ca-run");
    let o = loadkit(&[
        "run",
        "--url",
        &url,
        "--requests",
        "3",
        "-q",
        "--ca-cert",
        ca.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("insecure"), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(r["totals"]["succeeded"], 3, "{r}");
    assert!(r["run"].get("insecure").is_none(), "{r}");

    // --insecure: accepted, one warning line at the start, recorded in the report.
    let out = dir.join("insecure-run");
    let o = loadkit(&[
        "run",
        "--url",
        &url,
        "--requests",
        "3",
        "-q",
        "--insecure",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("--insecure")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].starts_with("warning: "), "{err}");
    assert!(err.trim_start().starts_with("warning: --insecure"), "{err}");
    let r = report(&out);
    assert_eq!(r["totals"]["succeeded"], 3, "{r}");
    assert_eq!(r["run"]["insecure"], true, "{r}");

    // A file that is no certificate, and one that is missing: one line, exit 2.
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let broken = dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.join("missing.pem");
    for file in [&junk, &broken, &missing] {
        let o = loadkit(&["run", "--url", &url, "--ca-cert", file.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("--ca-cert") && err.contains(file.to_str().unwrap()),
            "{err}"
        );
    }
    drop(front);
    runtime.block_on(server.shutdown());
}

fn report(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}
