//! Connections to Postgres with TLS, as libpq's `sslmode` asks: `require` encrypts without
//! checking the certificate (libpq's meaning), `verify-ca` checks it against the root
//! certificates, `verify-full` also checks that it names the host. The roots are the file in
//! `sslrootcert` (RDS publishes its bundle) or else the Mozilla roots. `disable` and `prefer`
//! connect in plain text, as before.

use std::sync::Arc;

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How a connection protects itself, from the URL's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// `disable` or `prefer` (no TLS client here, so `prefer` means plain text).
    Plain,
    /// `require`: encrypted, certificate not checked.
    Require,
    /// `verify-ca`: encrypted, certificate chain checked.
    VerifyCa,
    /// `verify-full`: encrypted, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// The mode an `sslmode` value names; `allow` and unknown values are errors.
    pub(crate) fn parse(mode: &str) -> Result<Self, String> {
        match mode {
            "disable" | "prefer" => Ok(Self::Plain),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            // tokio-postgres has no `allow` and would refuse it only once connecting.
            "allow" => Err(
                "sslmode=allow is not supported by the Postgres driver; use disable, prefer, \
                            require, verify-ca or verify-full"
                    .to_owned(),
            ),
            other => Err(format!(
                "unknown sslmode {other:?}; expected disable, prefer, require, verify-ca or verify-full"
            )),
        }
    }
}

/// Opens one connection to `url`, with TLS when its `sslmode` asks for it. The URL's
/// `sslrootcert` names a PEM file of root certificates.
pub(crate) async fn establish(url: &str) -> ConnectionResult<AsyncPgConnection> {
    let (plain_url, mode, root_cert) = split_tls_params(url).map_err(ConnectionError::BadConnection)?;
    if mode == SslMode::Plain {
        return <AsyncPgConnection as diesel_async::AsyncConnection>::establish(&plain_url).await;
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
        client_config(mode, root_cert.as_deref()).map_err(ConnectionError::BadConnection)?,
    );
    let mut config: tokio_postgres::Config = plain_url
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnectionError::BadConnection(e.to_string()))?;
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, connection) = config.connect(tls).await.map_err(|e| {
        ConnectionError::BadConnection(format!("TLS connection ({mode:?}): {}", with_causes(&e)))
    })?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// The URL without `sslmode` and `sslrootcert` (tokio-postgres knows neither `verify-*` nor
/// root files), the mode, and the root certificate path.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<String>), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("invalid database URL: {e}"))?;
    let mut mode = SslMode::Plain;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = SslMode::parse(&value)?,
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), mode, root_cert))
}

/// `error: cause: cause`: tokio-postgres keeps the TLS reason (a certificate for another name,
/// an unknown issuer) in the source.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client configuration for `mode`.
fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let chain = match mode {
        SslMode::Require => None,
        SslMode::VerifyCa | SslMode::VerifyFull => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(root_cert)?), provider())
                .build()
                .map_err(|e| format!("TLS verifier: {e}"))?,
        ),
        SslMode::Plain => unreachable!("plain connections build no TLS configuration"),
    };
    let verifier = SslModeVerifier {
        chain,
        check_name: mode == SslMode::VerifyFull,
        provider: provider(),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The roots in the PEM file `path`, or the Mozilla roots.
fn root_store(path: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("reading sslrootcert {path}: {e}"))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {path} holds no certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// Checks a server's certificate as the sslmode says: not at all (`require`, libpq's meaning),
/// its chain (`verify-ca`), or its chain and name (`verify-full`). Handshake signatures are
/// always verified.
#[derive(Debug)]
struct SslModeVerifier {
    /// The chain check; `None`: the certificate is not checked.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must name the host.
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SslModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
    fn tls_parameters_leave_the_url_and_modes_parse() {
        let (url, mode, root) =
            split_tls_params("postgres://u:p@db:5432/parsec?sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem&application_name=x")
                .unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/parsec?application_name=x");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/etc/rds.pem"));
        assert_eq!(split_tls_params("postgres://db/p").unwrap().1, SslMode::Plain);
        assert!(SslMode::parse("allow").unwrap_err().contains("not supported"));
        assert!(SslMode::parse("verify").unwrap_err().contains("unknown sslmode"));
    }
}
