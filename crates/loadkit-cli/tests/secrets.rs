//! No secret reaches any output: a distinct secret is planted in each place one can enter (the
//! API key variable, an `Authorization` header, a `Cookie`, a header with a quote and a
//! backslash, a URL's credential query parameter, a URL's userinfo password, `--token`, and a
//! two-byte signature) and sent to a server that echoes every one of them back in its error
//! body, so they reach error messages and the errors table too; then stdout, stderr (`-vv`:
//! request lines and debug logs), every file under `--out` (whatever files a run writes there)
//! and the Prometheus scrapes are searched for each secret in every form.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{loadkit, tmp, BIN};

/// Answers every request with a 401 whose JSON error message repeats the request's target and
/// its credential headers (as a careless server's error page does).
fn start_echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr.to_string()
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // a pre-flight connection, closed unused
    }
    let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut echoed = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "authorization" | "cookie" | "x-api-key" => {
                    echoed.push(format!("{name}={value}"));
                }
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let message = format!("denied {target} with {}", echoed.join(" "));
    let json = serde_json::json!({"error": {"message": message, "type": "auth"}}).to_string();
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = stream.flush();
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Percent-encoded as a query value.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn no_secret_reaches_the_terminal_the_logs_the_files_or_the_metrics() {
    let addr = start_echo_server();
    let api_key = "sk-apikey-111AAA";
    let authorization = "hdr-auth-222BBB";
    let cookie = "cookie-333CCC";
    let odd = r#"xk"q\-444DDD"#;
    let url_key = "url-key-555EEE";
    let password = "pw-666FFF";
    let token = "tok-777GGG";
    let url =
        format!("http://loadkit:{password}@{addr}/v1?api_key={url_key}&sig=q7&model_hint=plain");
    let out = tmp("secrets");
    let mut child = Command::new(BIN)
        .args([
            "-vv",
            "run",
            "--url",
            &url,
            "--requests",
            "4",
            "--rps",
            "20",
            "--header",
            &format!("Authorization: Bearer {authorization}"),
            "--header",
            &format!("Cookie: session={cookie}"),
            "--header",
            &format!("X-Api-Key: {odd}"),
            "--token",
            token,
            "--format",
            "json,html,md,csv",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("OPENAI_API_KEY", api_key)
        .env_remove("LOADKIT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    let mut scrapes = Vec::new();
    let mut metrics = None;
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(a) = line.trim().strip_prefix("metrics at http://") {
            let a = a.trim_end_matches("/metrics").to_owned();
            scrapes.push(http_get(&a, "/metrics"));
            metrics = Some(a);
        }
        if line.starts_with("metrics final") {
            scrapes.push(http_get(metrics.as_deref().unwrap(), "/metrics"));
        }
        err.push_str(&line);
    }
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(scrapes.len(), 2, "{err}");
    assert!(scrapes
        .iter()
        .all(|s| s.contains("loadkit_requests_started_total")));

    // The secrets went out and came back: the errors table has the echo, redacted.
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["totals"]["failed"], 4, "{json}");
    let message = report["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("denied") && message.contains("***"),
        "{message}"
    );
    assert!(message.contains("model_hint=plain"), "{message}");
    assert!(
        err.contains("denied"),
        "the request lines show the error: {err}"
    );

    let mut outputs = vec![("stdout".to_owned(), stdout), ("stderr".to_owned(), err)];
    for (i, scrape) in scrapes.into_iter().enumerate() {
        outputs.push((format!("scrape {i}"), scrape));
    }
    let files = files_under(&out);
    for format_file in ["report.html", "report.md", "summary.csv", "errors.csv"] {
        assert!(
            files.iter().any(|f| f.ends_with(format_file)),
            "{format_file} not written: {files:?}"
        );
    }
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        outputs.push((file.display().to_string(), text));
    }
    let secrets = [
        api_key,
        authorization,
        cookie,
        odd,
        url_key,
        password,
        token,
    ];
    for (name, text) in &outputs {
        for secret in secrets {
            // Each secret's distinctive tail: found in any form it could take (as is, URL-
            // encoded, JSON-escaped, HTML-escaped) if any of them got through.
            let tail = &secret[secret.len() - 6..];
            let forms = [
                secret.to_owned(),
                url_encoded(secret),
                serde_json::to_string(secret).unwrap(),
                tail.to_owned(),
            ];
            for form in forms {
                assert!(!text.contains(&form), "{name} shows {form}:\n{text}");
            }
        }
        // The two-byte signature is hidden where it stands as a value.
        assert!(!text.contains("sig=q7"), "{name} shows sig=q7:\n{text}");
    }
}

#[test]
fn a_mistyped_header_or_url_is_refused_without_showing_its_credential() {
    let o = loadkit(&["run", "--header", "Authorization Bearer sk-nocolon-888HHH"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("Name: value") && !err.contains("888HHH"),
        "{err}"
    );
    let o = loadkit(&["run", "--url", "ftp://me:pw-999III@h/v1?token=t-999JJJ"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("999III") && !err.contains("999JJJ"), "{err}");
}
