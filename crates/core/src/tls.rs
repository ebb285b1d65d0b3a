//! TLS client configuration shared by drivers that speak TLS themselves.
//!
//! A full build links rustls with both its `ring` and `aws-lc-rs` back ends, so
//! rustls cannot pick a crypto provider by itself. Every configuration built here
//! names the `ring` provider explicitly, and [`install_default_provider`] sets the
//! process default for client libraries that build their own configuration.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::{ConnectorError, ErrorCode, SslMode};

/// The crypto provider every TLS configuration in the workspace uses.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(crypto::ring::default_provider()))
        .clone()
}

/// Installs [`provider`] as the process default if none is installed yet.
/// Idempotent and cheap; call it before using a client library that builds its
/// own rustls configuration.
pub fn install_default_provider() {
    if CryptoProvider::get_default().is_none() {
        let _ = CryptoProvider::install_default(crypto::ring::default_provider());
    }
}

/// Parses PEM text into certificates; an error when none is found.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(ConnectorError::invalid_config(
            "sslCaPem",
            "sslCaPem holds no PEM certificate",
        )),
        Err(e) => Err(ConnectorError::invalid_config(
            "sslCaPem",
            format!("sslCaPem is not valid PEM: {e}"),
        )),
    }
}

/// The trust anchors for a configuration: the given CA certificates when present
/// (they replace the public roots, as libpq's `sslrootcert` does), else the
/// Mozilla roots.
pub fn root_store(ca_pem: Option<&str>) -> Result<RootCertStore, ConnectorError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in parse_pem_certs(pem)? {
                roots.add(cert).map_err(|e| {
                    ConnectorError::invalid_config(
                        "sslCaPem",
                        format!("unusable CA certificate: {e}"),
                    )
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// A rustls client configuration for a TLS mode; `None` for `disable`.
pub fn client_config(
    mode: SslMode,
    ca_pem: Option<&str>,
) -> Result<Option<ClientConfig>, ConnectorError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::internal(format!("TLS set-up: {e}")).with_source(e))?;
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::VerifyFull => builder
            .with_root_certificates(root_store(ca_pem)?)
            .with_no_client_auth(),
        SslMode::VerifyCa => {
            let inner = webpki_verifier(ca_pem, &provider)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                .with_no_client_auth()
        }
        SslMode::Require => {
            if ca_pem.is_some() {
                // libpq: require with a root certificate behaves like verify-ca.
                let inner = webpki_verifier(ca_pem, &provider)?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                    .with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny { provider }))
                    .with_no_client_auth()
            }
        }
    };
    Ok(Some(config))
}

fn webpki_verifier(
    ca_pem: Option<&str>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, ConnectorError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(ca_pem)?), provider.clone())
        .build()
        .map_err(|e| ConnectorError::internal(format!("TLS verifier: {e}")))
}

/// Whether an error, or anything in its source chain, is a TLS failure.
pub fn is_tls_error(err: &(dyn StdError + 'static)) -> bool {
    crate::error::find_source::<rustls::Error>(err).is_some()
}

/// Maps a TLS failure found in an error chain to `SSL_HANDSHAKE_FAILED` with a
/// message that says what was wrong with the certificate.
pub fn tls_error(err: &(dyn StdError + 'static)) -> Option<ConnectorError> {
    let tls = crate::error::find_source::<rustls::Error>(err)?;
    Some(
        ConnectorError::new(ErrorCode::SslHandshakeFailed, format!("TLS: {tls}"))
            .with_source(tls.clone()),
    )
}

/// `verify-ca`: the chain must verify; the host name may differ.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `require` without a CA: encryption without authentication of the server, as
/// libpq does. Handshake signatures are still checked.
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
        crypto::verify_tls12_signature(
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
        crypto::verify_tls13_signature(
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
    fn disable_builds_nothing_and_others_build() {
        assert!(client_config(SslMode::Disable, None).unwrap().is_none());
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert!(client_config(mode, None).unwrap().is_some(), "{mode}");
        }
    }

    #[test]
    fn bad_pem_is_a_configuration_error() {
        let err = client_config(SslMode::VerifyFull, Some("not a pem")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(is_tls_error(&io));
        let err = ConnectorError::from_io(io, "db:5432");
        assert_eq!(err.code(), ErrorCode::SslHandshakeFailed);
    }
}
