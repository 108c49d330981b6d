//! A TLS front for any simulator (feature `tls`): it accepts TLS on `127.0.0.1:0` with a
//! self-signed certificate for `localhost` and `127.0.0.1` made when it starts, and passes the
//! decrypted bytes to the simulator's address, so `https://` and `wss://` clients are tested
//! against the simulators they already know.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A running TLS front; stopped when dropped.
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    cert_pem: String,
    task: tokio::task::JoinHandle<()>,
}

/// The front could not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsFrontError {
    /// The certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// rustls refused the server setup.
    #[error("tls setup: {0}")]
    Tls(String),
    /// The listener could not bind.
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
}

impl TlsFront {
    /// Starts a front for `upstream` (a simulator's address) on `127.0.0.1:0`, on the current
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// The certificate, the TLS setup or the listener failed.
    pub async fn start(upstream: SocketAddr) -> Result<Self, TlsFrontError> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(|e| TlsFrontError::Certificate(e.to_string()))?;
        let cert_pem = certified.cert.pem();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFrontError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| TlsFrontError::Tls(e.to_string()))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to do.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Ok(Self {
            addr,
            cert_pem,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its certificate (self-signed, so also its CA), PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
