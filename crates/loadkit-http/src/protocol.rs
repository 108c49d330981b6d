//! What every HTTP-based protocol's registration shares (`loadkit_core::protocol`): the HTTP
//! settings taken from the shared settings, a TCP/TLS pre-flight check, and (feature
//! `simulator`) the handle over a running testbed server.

use loadkit_core::protocol::{PreflightError, Settings};

use crate::tls::TlsOptions;
use crate::HttpConfig;

/// Running simulators behind the core's `Simulator` trait, for every HTTP-based protocol.
#[cfg(feature = "simulator")]
pub mod sim {
    use futures::future::BoxFuture;
    use loadkit_core::protocol::{SimScript, SimWrites, Simulator};

    /// A testbed server: its URL and how to stop it.
    pub struct Running {
        /// The URL clients are pointed at.
        pub url: String,
        /// Stops it.
        pub stop: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
    }

    impl std::fmt::Debug for Running {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Running({})", self.url)
        }
    }

    impl Simulator for Running {
        fn url(&self) -> String {
            self.url.clone()
        }

        fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
            (self.stop)()
        }
    }

    /// The testbed transport for `script`'s write mode.
    pub fn transport(script: &SimScript) -> loadkit_testbed::Transport {
        loadkit_testbed::Transport {
            flush: match script.writes {
                SimWrites::PerChunk => loadkit_testbed::Flush::PerChunk,
                SimWrites::Packed => loadkit_testbed::Flush::Packed,
                _ => loadkit_testbed::Flush::PerToken,
            },
            ..loadkit_testbed::Transport::default()
        }
    }
}

/// The HTTP settings every HTTP-based protocol takes from the shared settings.
pub fn http_config(s: &Settings) -> HttpConfig {
    HttpConfig {
        connect_timeout: s.connect_timeout,
        first_byte_timeout: s.first_byte_timeout,
        idle_timeout: s.idle_timeout,
        tls: tls_options(s),
        read_buffer: s.read_buffer,
        ..HttpConfig::default()
    }
}

/// The TLS options the shared settings ask for (`--insecure`, `--ca-cert`).
pub fn tls_options(s: &Settings) -> TlsOptions {
    TlsOptions {
        insecure: s.insecure,
        ca_pem: s.ca_certs.clone(),
    }
}

/// A pre-flight check that `target` accepts a connection (TCP, and TLS for `https`, checked
/// as `config.tls` says) within `config.connect_timeout`.
pub fn tcp_preflight(
    target: String,
    config: HttpConfig,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), PreflightError>> + Send + Sync + 'static
{
    move || {
        let target = target.clone();
        let config = config.clone();
        Box::pin(async move {
            crate::preflight_with(&target, config)
                .await
                .map_err(|e| PreflightError::new(format!("target unreachable: {target}: {e}")))
        })
    }
}

/// `--health-path PATH`: the speech protocols' health check (shared, so one flag serves them).
pub const HEALTH_PATH: loadkit_core::protocol::OptionSpec =
    loadkit_core::protocol::OptionSpec::value(
        "health-path",
        "PATH",
        "Before the load, GET this path on the target's host and require a 2xx answer",
    )
    .default("/health");

/// `--no-health-check`: skip it (for servers without one).
pub const NO_HEALTH_CHECK: loadkit_core::protocol::OptionSpec =
    loadkit_core::protocol::OptionSpec::switch(
        "no-health-check",
        "Do not GET the health path before the load (a TCP/TLS connect is still checked)",
    );

/// The health check's URL: `path` on `target`'s scheme and host (`ws` becomes `http`, `wss`
/// becomes `https`).
///
/// ```
/// use loadkit_http::protocol::health_url;
///
/// assert_eq!(
///     health_url("ws://127.0.0.1:9000/ws/tts?x=1", "/health").unwrap(),
///     "http://127.0.0.1:9000/health"
/// );
/// assert_eq!(
///     health_url("https://api.example.com/v1/audio/transcriptions", "healthz").unwrap(),
///     "https://api.example.com/healthz"
/// );
/// assert!(health_url("not a url", "/health").is_err());
/// ```
///
/// # Errors
///
/// `target` has no scheme and host.
pub fn health_url(target: &str, path: &str) -> Result<String, PreflightError> {
    let invalid = || PreflightError::new(format!("invalid target URL '{target}'"));
    let (scheme, rest) = target.split_once("://").ok_or_else(invalid)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => return Err(invalid()),
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let path = path.trim();
    let slash = if path.starts_with('/') { "" } else { "/" };
    Ok(format!("{scheme}://{host}{slash}{path}"))
}

/// The speech protocols' pre-flight: `GET` [`health_url`] within `timeout` (connect and
/// answer), requiring a 2xx status, or, when `path` is `None` (`--no-health-check`), only a
/// TCP/TLS connect. The error is one line naming the URL and what went wrong.
pub fn health_preflight(
    target: String,
    path: Option<String>,
    timeout: std::time::Duration,
    tls: TlsOptions,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), PreflightError>> + Send + Sync + 'static
{
    move || {
        let target = target.clone();
        let path = path.clone();
        let tls = tls.clone();
        Box::pin(async move {
            let Some(path) = path else {
                let url = health_url(&target, "/")?;
                let config = crate::HttpConfig {
                    connect_timeout: timeout,
                    tls,
                    ..crate::HttpConfig::default()
                };
                return crate::preflight_with(&url, config).await.map_err(|e| {
                    PreflightError::new(format!("target unreachable: {target}: {e}"))
                });
            };
            let url = health_url(&target, &path)?;
            health_get(&url, timeout, tls).await.map_err(|e| {
                PreflightError::new(format!(
                    "health check failed: GET {url}: {e} (--health-path PATH, or --no-health-check)"
                ))
            })
        })
    }
}

async fn health_get(
    url: &str,
    timeout: std::time::Duration,
    tls: TlsOptions,
) -> Result<(), String> {
    let uri = crate::parse_url(url).map_err(|e| e.to_string())?;
    let client = crate::HttpClient::new(crate::HttpConfig {
        connect_timeout: timeout,
        first_byte_timeout: timeout,
        idle_timeout: timeout,
        tls,
        ..crate::HttpConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let request = http::Request::get(uri)
        .body(bytes::Bytes::new())
        .map_err(|e| e.to_string())?;
    let mut probe = loadkit_core::Probe::standalone();
    let response = client
        .send(request, &mut probe)
        .await
        .map_err(|e| e.message)?;
    if response.status.is_success() {
        let _ = tokio::time::timeout(timeout, response.body.finish()).await;
        return Ok(());
    }
    // `error` reads the body and names the status and the server's message.
    Err(response.error(&mut probe).await.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server answering every connection with `response`, on 127.0.0.1:0.
    async fn answering(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        format!("ws://{addr}/ws/tts")
    }

    #[tokio::test]
    async fn the_health_check_needs_a_2xx_and_names_the_url_and_the_answer() {
        let t = Duration::from_secs(5);
        let ok = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        health_preflight(ok.clone(), Some("/health".into()), t, TlsOptions::default())()
            .await
            .unwrap();
        let busy = answering(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 13\r\nconnection: close\r\n\r\nmodel loading",
        )
        .await;
        let e = health_preflight(
            busy.clone(),
            Some("/health".into()),
            t,
            TlsOptions::default(),
        )()
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/health") && e.contains("HTTP 503") && e.contains("model loading"),
            "{e}"
        );
        // Skipped: a connect is enough, whatever the server answers.
        health_preflight(busy, None, t, TlsOptions::default())()
            .await
            .unwrap();
        // Nobody listening: one line.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let e = health_preflight(closed, Some("/health".into()), t, TlsOptions::default())()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("health check failed: GET http://127.0.0.1:"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
