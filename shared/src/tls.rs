//! TLS for both of the hooks' HTTP stacks (the AWS SDK's and reqwest's), on rustls with ring.
//!
//! The SDK's default client uses aws-lc. Its newer releases gather CPU-jitter entropy the first
//! time a process needs randomness, a one-off cost of tens of milliseconds that lands on the first
//! HTTPS request of every cold start, and several times that on a CPU-throttled function. ring
//! reads the kernel's random source, and is also about a megabyte smaller. Both stacks verify
//! certificates against the system's roots (Lambda's `/etc/pki`), as they did before.

use aws_sdk_codedeploy::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Makes ring the process's rustls provider, which reqwest picks up. Idempotent; the first call
/// wins, and every later one (or a provider installed by someone else) leaves it as it is.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for the AWS SDK clients: hyper with rustls on ring, HTTPS or plain HTTP (a
/// local endpoint).
pub fn sdk_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}
