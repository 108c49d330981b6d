//! What every HTTP-based protocol's registration shares (`loadkit_core::protocol`): the HTTP
//! settings taken from the shared settings, a TCP/TLS pre-flight check, and (feature
//! `simulator`) the handle over a running testbed server.

use loadkit_core::protocol::{PreflightError, Settings};

use crate::HttpConfig;

/// Running simulators behind the core's `Simulator` trait, for every HTTP-based protocol.
#[cfg(feature = "simulator")]
pub mod sim {
    use futures::future::BoxFuture;
    use loadkit_core::protocol::{SimScript, Simulator};

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
            flush: if script.per_token_writes {
                loadkit_testbed::Flush::PerToken
            } else {
                loadkit_testbed::Flush::Packed
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
        ..HttpConfig::default()
    }
}

/// A pre-flight check that `target` accepts a connection (TCP, and TLS for `https`).
pub fn tcp_preflight(
    target: String,
    timeout: std::time::Duration,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), PreflightError>> + Send + Sync + 'static
{
    move || {
        let target = target.clone();
        Box::pin(async move {
            crate::preflight(&target, timeout)
                .await
                .map_err(|e| PreflightError::new(format!("target unreachable: {target}: {e}")))
        })
    }
}
