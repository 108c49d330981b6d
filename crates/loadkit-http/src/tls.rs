//! The TLS client setup every protocol that dials TLS shares (hyper-rustls here, tokio-rustls in
//! loadkit-ws): rustls with the `ring` provider, certificates verified against the Mozilla roots
//! by default, plus private CAs from PEM files ([`TlsOptions::ca_pem`]), or, only when asked
//! for ([`TlsOptions::insecure`]), no verification at all.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How server certificates are checked. The default verifies them against the Mozilla roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Accept any certificate (self-signed, expired, another host's): no verification at all.
    pub insecure: bool,
    /// PEM texts (each one or more `CERTIFICATE` blocks) of CAs trusted beside the Mozilla roots.
    pub ca_pem: Vec<Vec<u8>>,
}

/// The TLS setup cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A CA file holds no PEM certificate.
    #[error("no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// A CA file's PEM does not decode.
    #[error("not a PEM certificate file: {0}")]
    BadPem(String),
    /// A CA certificate decodes but rustls refuses it as a root.
    #[error("the certificate cannot be used as a CA: {0}")]
    BadCertificate(String),
    /// rustls refused the configuration.
    #[error("tls setup failed: {0}")]
    Setup(String),
}

/// The certificates of one PEM text (every `CERTIFICATE` block; other blocks are skipped).
///
/// # Errors
///
/// The text does not decode as PEM, or holds no certificate.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// A rustls client configuration for `options`, with `alpn` as its ALPN protocols (empty for
/// hyper-rustls, which sets them itself).
///
/// # Errors
///
/// A CA is unusable, or rustls refuses the setup.
pub fn client_config(
    options: &TlsOptions,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for pem in &options.ca_pem {
            for cert in parse_ca_pem(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// `--insecure`: every certificate is accepted; the handshake's signatures are still checked
/// (so the session is encrypted to whoever holds the key the certificate names).
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_typed_errors() {
        assert_eq!(parse_ca_pem(b"hello"), Err(TlsError::NoCertificate));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(parse_ca_pem(broken), Err(TlsError::BadPem(_))));
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let options = TlsOptions {
            insecure: false,
            ca_pem: vec![garbage.to_vec()],
        };
        assert!(matches!(
            client_config(&options, &[]),
            Err(TlsError::BadCertificate(_))
        ));
        assert!(client_config(&TlsOptions::default(), &[b"http/1.1"]).is_ok());
    }
}
