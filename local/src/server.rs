//! One loopback port for everything: the services, each by its wire protocol (CodeDeploy's and
//! SSM's awsJson1_1 on `POST /`, Lambda's restJson1 under `/2015-03-31/functions/`, CloudWatch's
//! rpcv2Cbor under `/service/` and awsJson1_0 on `POST /`), and the
//! [`crate::control`] API under `/_local/`. Point SDKs at it with
//! `AWS_ENDPOINT_URL=http://127.0.0.1:<port>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::State;
use axum::routing::post;

use crate::config::LocalConfig;
use crate::emulator::{Emulator, StartError, TimeScale};
use crate::lambda::runtime::RuntimeHost;

/// A running emulator and the address it serves on.
#[derive(Debug)]
pub struct Server {
    /// The emulator.
    pub emulator: Emulator,
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:port` (0 picks one), starts the hosted ECS services, and serves. The
    /// functions it runs get `AWS_ENDPOINT_URL` pointing back here and dummy credentials.
    pub async fn start(
        config: LocalConfig,
        scale: TimeScale,
        port: u16,
        log_dir: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| StartError::Listen { port, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen { port, source })?;
        let runtime = RuntimeHost::new(function_environment(addr), log_dir);
        let emulator = Emulator::start(config, runtime, scale).await?;
        let app = router(emulator.clone());
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "the emulator's server stopped");
            }
        });
        Ok(Self { emulator, addr, task })
    }

    /// The endpoint URL to give SDKs.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and stops every process the emulator started.
    pub async fn shutdown(self) {
        self.task.abort();
        self.emulator.shutdown().await;
    }
}

/// What every hosted function finds in its environment, on top of Lambda's own variables.
fn function_environment(addr: SocketAddr) -> BTreeMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", format!("http://{addr}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "codedeploy-local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "codedeploy-local".to_owned()),
        ("AWS_SESSION_TOKEN", "codedeploy-local".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The routes: every service, by its protocol, and the control API. Each request's call is timed
/// from arrival to answer ([`Emulator::timing_answer`]).
pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/", post(crate::protocol::serve_root))
        .route("/service/{service}/operation/{operation}", post(crate::protocol::rpc_v2_cbor::serve))
        .merge(crate::lambda::http::routes())
        .merge(crate::control::routes())
        .layer(axum::middleware::from_fn_with_state(emulator.clone(), timed))
        .with_state(emulator)
}

async fn timed(
    State(emulator): State<Emulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    emulator.timing_answer(next.run(request)).await
}
