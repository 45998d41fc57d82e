//! TLS to Postgres as libpq does it, for every connection the origin and its tools open: the
//! connection string's `sslmode` and `sslrootcert`, over rustls (ring).
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by a trusted root |
//! | `verify-full` | always | signed by a trusted root and issued for the host |
//!
//! The trusted roots are the PEM file `sslrootcert` names, else (or with `sslrootcert=system`)
//! the system's store (`rustls-native-certs`). tokio-postgres knows only `disable`, `prefer`
//! and `require`, so the two verifying modes and `sslrootcert` are taken out of the string
//! here and become the connector's certificate verifier.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, unverified.
    Prefer,
    /// TLS always, unverified (verified as `VerifyCa` when a root file is given).
    Require,
    /// TLS, the chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// What is wrong with a connection string's TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsSettingsError {
    /// The rest of the string does not parse.
    #[error("not a postgres url: {0}")]
    Url(tokio_postgres::Error),
    /// An unknown `sslmode`.
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    /// `sslrootcert` cannot be read or holds no certificate.
    #[error("sslrootcert {path:?}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A verifying mode found no trusted root at all.
    #[error("sslmode {0} needs trusted roots and none were found (set sslrootcert)")]
    NoRoots(&'static str),
    /// rustls refused the settings.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A Postgres server to connect to: the driver's settings and the TLS connector they ask for.
#[derive(Clone)]
pub struct Target {
    /// The driver's settings (`ssl_mode` set from `sslmode`).
    pub config: tokio_postgres::Config,
    /// The connector (unused when `mode` is `Disable`).
    pub tls: MakeRustlsConnect,
    /// The mode asked for.
    pub mode: Mode,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The connection string without `sslmode`/`sslrootcert`, and their values.
fn split_tls_settings(url: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None, None);
        };
        let mut kept = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "sslmode" => mode = Some(value.into_owned()),
                "sslrootcert" => root = Some(value.into_owned()),
                _ => {
                    kept.append_pair(&key, &value);
                }
            }
        }
        let kept = kept.finish();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{kept}")
        };
        return (rest, mode, root);
    }
    // The `key=value` form (values with spaces are not supported for these two keys).
    let mut kept = Vec::new();
    for pair in url.split_whitespace() {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.trim_matches('\'').to_owned()),
            Some(("sslrootcert", value)) => root = Some(value.trim_matches('\'').to_owned()),
            _ => kept.push(pair),
        }
    }
    (kept.join(" "), mode, root)
}

/// Parses `url` (a `postgres://` URL or `key=value` pairs) with its TLS settings.
pub fn target(url: &str) -> Result<Target, TlsSettingsError> {
    let (rest, mode, root) = split_tls_settings(url);
    let mode = match mode.as_deref() {
        None => Mode::Prefer,
        Some(value) => {
            Mode::parse(value).ok_or_else(|| TlsSettingsError::Mode(value.to_owned()))?
        }
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(TlsSettingsError::Url)?;
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let root_file = root.filter(|root| root != "system").map(PathBuf::from);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = match (mode, &root_file) {
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => Check::Nothing,
        (Mode::Require | Mode::VerifyCa, _) => Check::Chain,
        (Mode::VerifyFull, _) => Check::ChainAndHost,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unverified(Arc::clone(&provider))),
        Check::Chain | Check::ChainAndHost => {
            let roots = roots(root_file.as_ref(), mode)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| {
                        TlsSettingsError::Rustls(rustls::Error::General(error.to_string()))
                    })?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Target {
        config,
        tls: MakeRustlsConnect::new(client),
        mode,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndHost,
}

fn roots(file: Option<&PathBuf>, mode: Mode) -> Result<RootCertStore, TlsSettingsError> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let failed = |reason: String| TlsSettingsError::RootCert {
                path: path.clone(),
                reason,
            };
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|error| failed(error.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|error| failed(error.to_string()))?;
            if certificates.is_empty() {
                return Err(failed("no PEM certificate in the file".to_owned()));
            }
            for certificate in certificates {
                store
                    .add(certificate)
                    .map_err(|error| failed(error.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    if store.is_empty() {
        let name = if mode == Mode::VerifyFull {
            "verify-full"
        } else {
            "verify-ca"
        };
        return Err(TlsSettingsError::NoRoots(name));
    }
    Ok(store)
}

/// `prefer` and `require`: the connection is encrypted and the handshake's signatures are
/// checked, but any certificate is accepted (libpq's behaviour for these modes).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name it was issued for is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether `error` (a connection error) was the TLS handshake refusing the server, as opposed
/// to the server being unreachable: a configuration error to report at start.
pub fn is_tls_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// Connects to `target` and drives the connection in a task; the client and that task.
pub async fn connect(
    target: &Target,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = target.config.connect(target.tls.clone()).await?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "postgres connection closed");
        }
    });
    Ok((client, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_keys_are_taken_out_of_urls_and_pairs() {
        let (rest, mode, root) = split_tls_settings(
            "postgres://u:p@db.example:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/app?application_name=x"
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, root) =
            split_tls_settings("host=db user=u sslmode=require sslrootcert=/ca.pem dbname=app");
        assert_eq!(rest, "host=db user=u dbname=app");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        assert_eq!(
            split_tls_settings("postgres://h/db"),
            ("postgres://h/db".to_owned(), None, None)
        );
    }

    #[test]
    fn modes_map_to_the_driver_and_bad_ones_are_refused() {
        let mode =
            |url: &str| target(url).map(|target| (target.mode, target.config.get_ssl_mode()));
        assert_eq!(
            mode("postgres://h/db").ok(),
            Some((Mode::Prefer, SslMode::Prefer))
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=disable").ok(),
            Some((Mode::Disable, SslMode::Disable))
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=require").ok(),
            Some((Mode::Require, SslMode::Require))
        );
        assert!(matches!(
            target("postgres://h/db?sslmode=allow-everything"),
            Err(TlsSettingsError::Mode(_))
        ));
        assert!(matches!(
            target("postgres://h/db?sslmode=verify-full&sslrootcert=/no/such/file.pem"),
            Err(TlsSettingsError::RootCert { .. })
        ));
        assert!(matches!(
            target("postgres://h:notaport/db"),
            Err(TlsSettingsError::Url(_))
        ));
    }
}
