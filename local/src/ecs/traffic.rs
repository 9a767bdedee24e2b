//! ECS traffic: production and test listeners as loopback HTTP proxies in front of blue and green.
//!
//! An ECS blue/green deployment moves traffic by changing load-balancer listener weights between the
//! original (blue) and replacement (green) task sets. Here each listener is a small reverse proxy whose
//! weights the lifecycle engine moves the same way, so a load generator pointed at a listener sees what
//! real clients would see, and can tell from [`TASK_SET_HEADER`] which task set answered. A listener
//! bound with [`Listener::bind_recording`] also records every request as the load balancer's
//! CloudWatch metrics ([`crate::cloudwatch::recording`]).

use std::error::Error as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{StatusCode, uri::PathAndQuery};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cloudwatch::recording::{AlbRecorder, ListenerOutcome};

/// Response header naming the task set that answered (`Blue` or `Green`), so a load generator can
/// attribute every response, errors included, to a version.
pub const TASK_SET_HEADER: &str = "x-codedeploy-local-task-set";

/// A hung app must not hang the drill: past this, the listener answers 504 itself.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Loopback connects either succeed at once or are refused; waiting longer only delays the 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests are buffered whole; this bounds what a misbehaving client can make the proxy hold.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Weights are kept in hundredths of a percent so the round-robin works in exact integers.
const SCALE: i64 = 10_000;

/// A task set behind a listener, spelled the way CodeDeploy spells `TargetLabel` in its lifecycle
/// APIs, so results can be reported per task set without translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TaskSetLabel {
    /// The original task set, serving production before the deployment.
    Blue,
    /// The replacement task set the deployment shifts traffic to.
    Green,
}

impl TaskSetLabel {
    /// CodeDeploy's spelling: `Blue` or `Green`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "Blue",
            Self::Green => "Green",
        }
    }
}

/// What a listener has done so far, per task set: the drill compares it with what the load
/// generator saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Served {
    /// Requests answered by blue, whatever the status.
    pub blue: u64,
    /// Requests answered by green, whatever the status.
    pub green: u64,
    /// Requests the listener answered itself (502/504) because the chosen task set could not.
    pub upstream_errors: u64,
}

/// A listener (production or test) that the lifecycle engine reroutes while clients keep using the
/// same address. Clones share one listener; it stops on [`Listener::shutdown`] or when the last clone
/// is dropped.
#[derive(Debug, Clone)]
pub struct Listener {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    client: reqwest::Client,
    routing: Mutex<Routing>,
    blue: AtomicU64,
    green: AtomicU64,
    upstream_errors: AtomicU64,
    recorder: Option<AlbRecorder>,
}

impl Listener {
    /// Binds `127.0.0.1:port` (0 picks a free port) and forwards every request to `blue`, as a
    /// listener does before any deployment starts.
    pub async fn bind(name: &str, port: u16, blue: SocketAddr) -> std::io::Result<Self> {
        Self::bind_recording(name, port, blue, None).await
    }

    /// As [`Listener::bind`], recording every request in `recorder` as the load balancer's
    /// CloudWatch metrics (`AWS/ApplicationELB`).
    pub async fn bind_recording(
        name: &str,
        port: u16,
        blue: SocketAddr,
        recorder: Option<AlbRecorder>,
    ) -> std::io::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let tcp = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = tcp.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            client,
            routing: Mutex::new(Routing::new(blue, None, 0)),
            blue: AtomicU64::new(0),
            green: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            recorder,
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = Router::new().fallback(forward).with_state(Arc::clone(&shared));
        let name = name.to_owned();
        tokio::spawn(async move {
            // Ends on shutdown() and also when the last handle drops the sender.
            let signal = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(tcp, app).with_graceful_shutdown(signal).await {
                warn!(listener = %name, error = %err, "listener stopped");
            }
        });
        info!(listener = shared.name, %addr, %blue, "listening");
        Ok(Self { shared, addr, stop: Arc::new(stop) })
    }

    /// Where clients send requests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `green_percent` of new requests to `green` and the rest to `blue`; with no green, all go
    /// to blue. Requests already in flight finish where they started, as on a load balancer.
    ///
    /// The percentage is clamped to 0..=100 (NaN counts as 0) and kept to 0.01%. Each call restarts
    /// the rotation, so the first requests after a shift follow the new weights exactly.
    pub fn route(&self, blue: SocketAddr, green: Option<SocketAddr>, green_percent: f64) {
        let share = match green {
            // `as` saturates and maps NaN to 0, which is the clamp wanted here.
            Some(_) => (green_percent.clamp(0.0, 100.0) * 100.0).round() as i64,
            None => 0,
        };
        *self.shared.routing.lock().unwrap_or_else(PoisonError::into_inner) = Routing::new(blue, green, share);
        info!(listener = self.shared.name, %blue, green = ?green, green_percent = share as f64 / 100.0, "route");
    }

    /// `(blue_percent, green_percent)` currently in force; `(100, 0)` while there is no green.
    pub fn weights(&self) -> (f64, f64) {
        let green = self.shared.routing.lock().unwrap_or_else(PoisonError::into_inner).green_share;
        ((SCALE - green) as f64 / 100.0, green as f64 / 100.0)
    }

    /// Requests answered so far, per task set.
    pub fn served(&self) -> Served {
        Served {
            blue: self.shared.blue.load(Ordering::Relaxed),
            green: self.shared.green.load(Ordering::Relaxed),
            upstream_errors: self.shared.upstream_errors.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting connections; requests in flight still finish.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// Smooth weighted round-robin (as in nginx): deterministic, and spreads the minority task set evenly,
/// so 10% means exactly one request in every ten.
#[derive(Debug)]
struct Routing {
    blue: SocketAddr,
    green: Option<SocketAddr>,
    /// Green's weight out of [`SCALE`]; always 0 without a green.
    green_share: i64,
    blue_credit: i64,
    green_credit: i64,
}

impl Routing {
    fn new(blue: SocketAddr, green: Option<SocketAddr>, green_share: i64) -> Self {
        Self { blue, green, green_share, blue_credit: 0, green_credit: 0 }
    }

    fn pick(&mut self) -> (TaskSetLabel, SocketAddr) {
        let Some(green) = self.green else { return (TaskSetLabel::Blue, self.blue) };
        self.blue_credit += SCALE - self.green_share;
        self.green_credit += self.green_share;
        if self.green_credit > self.blue_credit {
            self.green_credit -= SCALE;
            (TaskSetLabel::Green, green)
        } else {
            self.blue_credit -= SCALE;
            (TaskSetLabel::Blue, self.blue)
        }
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Read the body before choosing a task set, so a rejected request does not advance the rotation.
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        let message = format!(
            "codedeploy-local listener {}: request body unreadable or over {MAX_BODY_BYTES} bytes\n",
            shared.name
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    };
    let (label, upstream) = shared.routing.lock().unwrap_or_else(PoisonError::into_inner).pick();
    let started = std::time::Instant::now();
    let result = shared.call(upstream, parts, body).await;
    if let Some(recorder) = &shared.recorder {
        let outcome = match &result {
            Ok(response) => ListenerOutcome::Target { status: response.status().as_u16(), elapsed: started.elapsed() },
            Err(_) => ListenerOutcome::Listener,
        };
        recorder.request(label, outcome);
    }
    let mut response = match result {
        Ok(response) => {
            let counter = match label {
                TaskSetLabel::Blue => &shared.blue,
                TaskSetLabel::Green => &shared.green,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            response
        }
        Err(err) => {
            shared.upstream_errors.fetch_add(1, Ordering::Relaxed);
            let (status, what) = if err.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, format!("did not answer within {} s", UPSTREAM_TIMEOUT.as_secs()))
            } else if err.is_connect() {
                (StatusCode::BAD_GATEWAY, "is unreachable".to_owned())
            } else {
                (StatusCode::BAD_GATEWAY, "failed".to_owned())
            };
            let cause = error_chain(&err);
            warn!(listener = shared.name, task_set = label.as_str(), %upstream, error = cause, "upstream {what}");
            let message = format!(
                "codedeploy-local listener {}: {} task set at {upstream} {what}: {cause}\n",
                shared.name,
                label.as_str()
            );
            (status, message).into_response()
        }
    };
    response.headers_mut().insert(TASK_SET_HEADER, HeaderValue::from_static(label.as_str()));
    response
}

impl Shared {
    /// Forwards one request to `upstream` and returns its response as is, apart from hop-by-hop headers.
    async fn call(&self, upstream: SocketAddr, parts: Parts, body: Bytes) -> Result<Response, reqwest::Error> {
        let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let mut headers = parts.headers;
        remove_hop_by_hop(&mut headers);
        let reply = self
            .client
            .request(parts.method, format!("http://{upstream}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = reply.status();
        let mut headers = reply.headers().clone();
        remove_hop_by_hop(&mut headers);
        let body = reply.bytes().await?;
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Removes the headers that describe one connection rather than the message (RFC 9110, 7.6.1): each
/// side of the proxy has its own connection.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    let standard = [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    for name in named.iter().chain(&standard) {
        headers.remove(name);
    }
}

/// The error with all its causes: reqwest's own message alone ("error sending request") hides whether
/// the connection was refused or reset.
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
