//! HTTP services for checks to judge: [`Target`] with the behaviours a smoke test meets in the
//! wild (healthy, contract-breaking, 500, not JSON, empty, hanging, slow, huge), and
//! [`TlsTarget`] behind a throwaway CA.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Starts `router` on an ephemeral loopback port; the server lives as long as the runtime.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

/// An HTTP service with the behaviours smoke tests meet. Paths:
/// `/v2/cart/healthy` (the v2 contract), `/v2/cart/renamed-back` (carries `total_cents`, lacks
/// `total_minor_units`), `/v2/cart/string-total` (wrong type), `/status/{code}`, `/not-json`,
/// `/empty`, `/hang`, `/slow/{ms}`, `/huge` (64 MiB, streamed), `/flaky` (500 twice, then healthy),
/// `/versioned` (headers `x-app-version: 47` and a secret-looking `x-session-token`).
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    huge_bytes_sent: Arc<std::sync::atomic::AtomicUsize>,
}

/// The healthy v2 cart.
pub fn healthy_cart() -> Value {
    json!({"cart_id": "c-1", "currency": "EUR", "total_minor_units": 1299, "items": [{"sku": "tea", "quantity": 1}]})
}

impl Target {
    /// Starts the service.
    pub async fn start() -> Self {
        let flaky = Arc::new(Mutex::new(0u32));
        let huge_bytes_sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let huge_counter = huge_bytes_sent.clone();
        let router =
            Router::new()
                .route("/v2/cart/healthy", get(|| async { axum::Json(healthy_cart()) }))
                .route(
                    "/v2/cart/renamed-back",
                    get(|| async {
                        axum::Json(json!({"cart_id": "c-1", "currency": "EUR", "total_cents": 1299, "items": []}))
                    }),
                )
                .route(
                    "/v2/cart/string-total",
                    get(|| async {
                        axum::Json(
                            json!({"cart_id": "c-1", "currency": "EUR", "total_minor_units": "12.99", "items": []}),
                        )
                    }),
                )
                .route(
                    "/status/{code}",
                    any(|Path(code): Path<u16>| async move {
                        StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
                    }),
                )
                .route(
                    "/not-json",
                    get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>maintenance</html>") }),
                )
                .route("/empty", get(|| async { StatusCode::OK }))
                .route("/hang", get(|| async { std::future::pending::<()>().await }))
                .route(
                    "/slow/{ms}",
                    get(|Path(ms): Path<u64>| async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        axum::Json(healthy_cart())
                    }),
                )
                .route("/huge", get(move || huge(huge_counter.clone())))
                .route(
                    "/flaky",
                    get(move || {
                        let flaky = flaky.clone();
                        async move {
                            let mut calls = flaky.lock().expect("flaky lock");
                            *calls += 1;
                            if *calls <= 2 {
                                StatusCode::INTERNAL_SERVER_ERROR.into_response()
                            } else {
                                axum::Json(healthy_cart()).into_response()
                            }
                        }
                    }),
                )
                .route(
                    "/versioned",
                    get(|| async {
                        ([("x-app-version", "47"), ("x-session-token", "tok-SECRET-46")], axum::Json(healthy_cart()))
                    }),
                );
        let addr = serve(router).await;
        Self { url: format!("http://{addr}"), huge_bytes_sent }
    }

    /// How many bytes of `/huge` the server has handed to the connection so far.
    pub fn huge_bytes_sent(&self) -> usize {
        self.huge_bytes_sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// 64 MiB of JSON-looking bytes, streamed without a content length, so only a reader that caps
/// what it reads finishes quickly.
async fn huge(sent: Arc<std::sync::atomic::AtomicUsize>) -> Response {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let first = Bytes::from_static(b"{\"pad\": \"");
    let stream = futures_stream(first, chunk, 1024, sent);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("huge response")
}

fn futures_stream(
    first: Bytes,
    chunk: Bytes,
    count: usize,
    sent: Arc<std::sync::atomic::AtomicUsize>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if sender.send(Ok(first)).await.is_err() {
            return;
        }
        for _ in 0..count {
            if sender.send(Ok(chunk.clone())).await.is_err() {
                return;
            }
            sent.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// An HTTPS service (the healthy cart at `/v2/cart/healthy`) whose certificate is signed by a
/// throwaway test CA, so TLS verification can be exercised with and without that CA trusted.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The test CA, PEM.
    pub ca_pem: String,
}

impl TlsTarget {
    /// Generates a CA and a leaf for 127.0.0.1/localhost, and starts the service.
    pub async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        // The test build has both rustls providers, so rustls cannot pick one by itself; the hooks'.
        greenlight::tls::install_crypto_provider();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "greenlight test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("leaf params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf cert");

        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            leaf.pem().into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        )
        .await
        .expect("TLS config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        // `POST /` answers an AWS JSON call with an error of its own, so a test can tell an SDK call
        // that got through TLS to here from one that failed the handshake.
        let aws_call = || async {
            let error = json!({"__type": "ValidationException", "message": "answered by the TLS target"});
            (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], error.to_string())
        };
        let router = Router::new()
            .route("/v2/cart/healthy", get(|| async { axum::Json(healthy_cart()) }))
            .route("/", axum::routing::post(aws_call));
        // TCP_NODELAY, as production TLS front ends set it: without it, the response waits behind
        // the session tickets for a delayed ACK, and every other first request takes 40 ms more.
        let acceptor =
            axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(axum_server::accept::NoDelayAcceptor::new());
        let server = axum_server::from_tcp(listener).expect("TLS server").acceptor(acceptor);
        tokio::spawn(async move { server.serve(router.into_make_service()).await.expect("serve TLS") });
        Self { url: format!("https://{addr}"), ca_pem: ca_cert.pem() }
    }
}
