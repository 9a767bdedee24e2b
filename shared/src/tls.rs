//! TLS for every HTTPS connection a hook makes: one set of trusted roots, loaded once per process,
//! and one rustls configuration on ring, used by the HTTP checks and by the AWS SDK's calls
//! ([`crate::aws_http`]) alike.
//!
//! **Roots.** By default the hooks trust Mozilla's root program as compiled into the binary
//! (`webpki-roots`), so a cold start reads no file and parses no certificate: with the system
//! store, loading and parsing the roots was about two thirds of init, and both HTTP stacks did it
//! (docs/performance.md). Every root that AWS endpoints chain to (Amazon Root CA 1–4, Starfield) is
//! in that set. When `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, the certificates found there replace
//! the compiled set, as OpenSSL reads those variables. A plan's `ca_bundle_file` adds its CAs on
//! top of either, for its HTTP checks.
//!
//! **Provider.** ring, not aws-lc: aws-lc gathers CPU-jitter entropy the first time a process needs
//! randomness, tens of milliseconds on the first handshake of every cold start, and several times
//! that on a CPU-throttled function. ring reads the kernel's random source, and is about a
//! megabyte smaller.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// The environment variables that replace the compiled roots, as OpenSSL reads them.
pub const ROOTS_FROM_ENV: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Why no TLS configuration could be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// Makes ring the process's default rustls provider. Idempotent; the first call wins, and every
/// later one (or a provider installed by someone else) leaves it as it is.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the trusted roots come from: `"compiled"`, or the variable that named them.
pub fn roots_source() -> &'static str {
    ROOTS_FROM_ENV.into_iter().find(|key| std::env::var_os(key).is_some()).unwrap_or("compiled")
}

/// The process's trusted roots, loaded on first use and shared from then on.
pub fn roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS.get_or_init(load_roots).clone()
}

fn load_roots() -> Result<Arc<RootCertStore>, TlsError> {
    if roots_source() == "compiled" {
        // Trust anchors as data: nothing to read or parse.
        return Ok(Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }));
    }
    // Reads only the places the variables name.
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (_, unparsable) = store.add_parsable_certificates(loaded.certs);
    if store.is_empty() {
        let why = match loaded.errors.first() {
            Some(err) => err.to_string(),
            None if unparsable > 0 => format!("{unparsable} certificates that do not parse"),
            None => "no certificates".to_owned(),
        };
        return Err(TlsError(format!("no trusted roots from {}: {why}", env_roots_named())));
    }
    for err in &loaded.errors {
        tracing::warn!("trusted roots from {}: {err}", env_roots_named());
    }
    Ok(Arc::new(store))
}

fn env_roots_named() -> String {
    ROOTS_FROM_ENV
        .into_iter()
        .filter_map(|key| std::env::var_os(key).map(|value| format!("{key}={}", value.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Parses a PEM bundle of CA certificates and checks that each one can be a trust anchor, so that
/// a bad bundle is refused where it is named, not at the first handshake.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError(format!("not a PEM bundle: {err}")))?;
    if certs.is_empty() {
        return Err(TlsError("holds no PEM certificate".to_owned()));
    }
    let mut store = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|err| TlsError(format!("certificate {} of the bundle: {err}", index + 1)))?;
    }
    Ok(certs)
}

/// A client configuration that trusts [`roots`] and, on top, `extra` (a plan's CA bundle, already
/// checked by [`parse_ca_bundle`]). HTTP/1.1 is all the hooks speak.
pub fn client_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, TlsError> {
    let roots = roots()?;
    let roots = if extra.is_empty() {
        roots
    } else {
        let mut store = RootCertStore::clone(&roots);
        for cert in extra {
            store.add(cert.clone()).map_err(|err| TlsError(format!("CA certificate: {err}")))?;
        }
        Arc::new(store)
    };
    config_trusting(roots)
}

/// A configuration that trusts no root, for a client that must still speak plain HTTP when
/// [`client_config`] failed: any HTTPS connection it opens fails verification.
pub fn trusting_nothing() -> Result<rustls::ClientConfig, TlsError> {
    config_trusting(Arc::new(RootCertStore::empty()))
}

fn config_trusting(roots: Arc<RootCertStore>) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError(format!("TLS versions: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_roots_hold_amazons() {
        // Without the variables (cargo test may inherit them; this reads the set directly).
        let compiled = webpki_roots::TLS_SERVER_ROOTS;
        assert!(compiled.len() > 100, "{} roots", compiled.len());
        let amazon =
            compiled.iter().filter(|anchor| anchor.subject.as_ref().windows(6).any(|w| w == b"Amazon")).count();
        assert!(amazon >= 4, "Amazon Root CA 1-4 expected, found {amazon}");
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let err = parse_ca_bundle(b"not a certificate\n").unwrap_err();
        assert_eq!(err.to_string(), "holds no PEM certificate");
    }

    #[test]
    fn a_certificate_that_does_not_parse_is_refused_with_its_position() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = parse_ca_bundle(pem).unwrap_err();
        assert!(err.to_string().starts_with("certificate 1 of the bundle:"), "{err}");
    }
}
