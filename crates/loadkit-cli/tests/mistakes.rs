//! Every mistake on the command line or in a scenario file is one clear line on stderr and
//! exit 2, before any load, never a panic: a table of them, each with a word the line must
//! contain.

mod common;

use common::{loadkit, tmp};

#[test]
fn every_cli_or_scenario_file_mistake_is_one_line_and_exit_2() {
    let dir = tmp("mistakes");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let unknown_key = file("unknown-key.toml", "[scenarios.a]\nrps = 2\nbogus = 1\n");
    let wrong_type = file("wrong-type.toml", "[scenarios.a]\nrps = [1, 2]\n");
    let bad_duration = file(
        "bad-duration.toml",
        "[scenarios.a]\nduration = \"forever\"\n",
    );
    let bad_toml = file("bad.toml", "[scenarios.a\nrps = 1\n");
    let bad_top = file("top.toml", "rps = 1\n");
    let literal_secret = file(
        "secret.toml",
        "[scenarios.a]\nheader = \"Authorization: Bearer sk-literal\"\n",
    );
    let not_cert = file("not-a-cert.pem", "hello\n");
    let missing = dir.join("missing").to_str().unwrap().to_owned();
    let url = "http://127.0.0.1:9/v1";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--rps", "abc"], "abc"),
        (vec!["run", "--server-metric", "a b"], "not a metric name"),
        (vec!["run", "--read-buffer", "100"], "512 bytes to 1 MiB"),
        (vec!["run", "--read-buffer", "big"], "auto, adaptive"),
        (vec!["run", "--server-metric", "a{b=\"c\""], "closing"),
        (
            vec!["run", "--server-metrics", "https://h/metrics"],
            "http:// only",
        ),
        (vec!["run", "--server-metrics", "sometimes"], "auto, off"),
        (
            vec!["run", "--server-metrics-every", "10ms"],
            "at least 100ms",
        ),
        (vec!["run", "--duration", "5parsecs"], "invalid duration"),
        (vec!["run", "--header", "nocolon"], "Name: value"),
        (vec!["run", "--header", "bad name: x"], "header name"),
        (vec!["run", "--no-such-flag"], "--no-such-flag"),
        (vec!["run", "--protocol", "smoke-signals"], "smoke-signals"),
        (vec!["run", "--format", "pdf"], "pdf"),
        (vec!["run", "--max-in-flight", "0"], ">= 1"),
        (vec!["run", "--threads", "9999"], "1 to 1024"),
        (vec!["run", "--scenario", "a", "-f", &missing], "missing"),
        (vec!["run", "--scenario", "a", "-f", &unknown_key], "bogus"),
        (vec!["run", "--scenario", "a", "-f", &wrong_type], "rps"),
        (
            vec!["run", "--scenario", "a", "-f", &bad_duration],
            "forever",
        ),
        (vec!["run", "--scenario", "a", "-f", &bad_toml], "bad.toml"),
        (
            vec!["run", "--scenario", "a", "-f", &bad_top],
            "unknown top-level key",
        ),
        (vec!["run", "--scenario", "a", "-f", &literal_secret], "${"),
        (vec!["plan", "--scenario", "a", "-f", &unknown_key], "bogus"),
        (vec!["scenarios", "list", "-f", &bad_toml], "bad.toml"),
        (
            vec!["run", "--url", url, "--ca-cert", &missing],
            "--ca-cert",
        ),
        (
            vec!["run", "--url", url, "--ca-cert", &not_cert],
            "no PEM certificate",
        ),
        (vec!["run", "--url", "ftp://h/v1"], "scheme"),
        (
            vec!["run", "--url", url, "--token-env", "LOADKIT_NO_SUCH_VAR_X"],
            "LOADKIT_NO_SUCH_VAR_X",
        ),
        (
            vec!["run", "--url", url, "--env-file", &missing],
            "--env-file",
        ),
        (vec!["report", &missing], "missing"),
        (vec!["compare", &missing, &missing], "missing"),
    ];
    for (args, needle) in cases {
        let o = loadkit(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?} printed:\n{err}");
        assert!(err.contains(needle), "{args:?}: no '{needle}' in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
