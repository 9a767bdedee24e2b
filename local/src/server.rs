//! One loopback port for everything: CodeDeploy (`POST /` with `X-Amz-Target`), Lambda
//! (`/2015-03-31/functions/...`), and a control API under `/_local/` for alarms, injected faults,
//! deployments with ids chosen beforehand, the calls received and the record. Point SDKs at it with
//! `AWS_ENDPOINT_URL=http://127.0.0.1:<port>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::codedeploy::{DeploymentWithIds, TARGET_PREFIX};
use crate::config::LocalConfig;
use crate::emulator::{Emulator, Happening, TimeScale};
use crate::faults::{Faults, ReportFault};
use crate::lambda::InvocationType;
use crate::runtime::RuntimeHost;
use crate::wire::{ApiError, aws_json};

/// Lambda's limit on a synchronous request payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

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
    ) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
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

/// The routes.
pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/", post(codedeploy))
        // axum's default 2 MiB body limit would refuse payloads Lambda accepts; the handler
        // answers RequestTooLargeException past Lambda's own limit.
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke).layer(DefaultBodyLimit::max(2 * MAX_PAYLOAD)),
        )
        .route("/2015-03-31/functions/{function}/aliases/{alias}", get(get_alias).put(update_alias))
        .route("/_local/health", get(|| async { "ok" }))
        .route("/_local/deployments", post(create_deployment_with_ids))
        .route("/_local/deployments/{id}", get(deployment_record))
        .route("/_local/alarms/{name}", post(set_alarm))
        .route("/_local/faults", post(set_faults))
        .route("/_local/calls", get(calls))
        .with_state(emulator)
}

async fn codedeploy(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        let message = format!("X-Amz-Target {target:?} is not a CodeDeploy_20141006 operation");
        return ApiError::client("UnknownOperationException", message).into_aws_json();
    };
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(err) => return ApiError::client("SerializationException", err.to_string()).into_aws_json(),
        }
    };
    emulator.note_call(operation, input.get("deploymentId").and_then(Value::as_str), None);
    if emulator.hangs(operation) {
        return std::future::pending().await;
    }
    if let Some(denied) = emulator.denial(operation) {
        return denied.into_aws_json();
    }
    if operation == "PutLifecycleEventHookExecutionStatus"
        && let Some(fault) = emulator.next_report_fault()
    {
        return injected(&emulator, &input, fault).into_aws_json();
    }
    let result = emulator.codedeploy(operation, &input);
    match result {
        Ok(output) => aws_json(&output),
        Err(err) => err.into_aws_json(),
    }
}

/// An injected report error, recorded like any other report.
fn injected(emulator: &Emulator, input: &Value, fault: ReportFault) -> ApiError {
    let error = fault.error();
    let field = |key: &str| input.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    emulator.record(
        Some(&field("deploymentId")),
        Happening::Report {
            event: String::new(),
            execution_id: field("lifecycleEventHookExecutionId"),
            status: field("status"),
            result: format!("{} (injected)", error.code),
        },
    );
    error
}

#[derive(Debug, serde::Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

async fn invoke(
    State(emulator): State<Emulator>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let qualifier = query.qualifier.as_deref();
    if let Some(answer) = lambda_fault(&emulator, "Invoke", &function, qualifier).await {
        return answer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let invocation_type = match InvocationType::parse(header("x-amz-invocation-type")) {
        Ok(kind) => kind,
        Err(err) => return err.into_rest_json(),
    };
    if body.len() > MAX_PAYLOAD {
        let message = format!("Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation");
        return ApiError::with_status(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException", message)
            .into_rest_json();
    }
    // An empty payload is allowed (the function gets `{}`); anything else must be JSON.
    if !body.is_empty()
        && let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&body)
    {
        let message = format!("Could not parse request body into json: {err}");
        return ApiError::client("InvalidRequestContentException", message).into_rest_json();
    }
    let body = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    match invocation_type {
        InvocationType::DryRun => match emulator.resolve(&function, qualifier) {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(err) => err.into_rest_json(),
        },
        InvocationType::Event => match emulator.invoke_async(&function, qualifier, body) {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(err) => err.into_rest_json(),
        },
        InvocationType::RequestResponse => {
            let tail = header("x-amz-log-type") == Some("Tail");
            match emulator.invoke(&function, qualifier, body).await {
                Ok(result) => {
                    let mut response = (StatusCode::OK, result.invocation.payload.clone()).into_response();
                    let headers = response.headers_mut();
                    headers.insert("content-type", HeaderValue::from_static("application/json"));
                    if !result.executed_version.is_empty()
                        && let Ok(version) = HeaderValue::from_str(&result.executed_version)
                    {
                        headers.insert("x-amz-executed-version", version);
                    }
                    if let Some(kind) = result.invocation.function_error() {
                        headers.insert("x-amz-function-error", HeaderValue::from_static(kind));
                    }
                    if tail && let Ok(log) = HeaderValue::from_str(&result.log_result()) {
                        headers.insert("x-amz-log-result", log);
                    }
                    response
                }
                Err(err) => err.into_rest_json(),
            }
        }
    }
}

/// Notes a Lambda call and answers it as an injected fault says, if one applies.
async fn lambda_fault(
    emulator: &Emulator,
    operation: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Option<Response> {
    emulator.note_call(operation, Some(function), qualifier);
    if emulator.hangs(operation) {
        return std::future::pending().await;
    }
    emulator.denial(operation).map(ApiError::into_rest_json)
}

async fn get_alias(State(emulator): State<Emulator>, Path((function, alias)): Path<(String, String)>) -> Response {
    if let Some(answer) = lambda_fault(&emulator, "GetAlias", &function, None).await {
        return answer;
    }
    match emulator.get_alias(&function, &alias) {
        Ok(output) => axum::Json(output).into_response(),
        Err(err) => err.into_rest_json(),
    }
}

async fn update_alias(
    State(emulator): State<Emulator>,
    Path((function, alias)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(answer) = lambda_fault(&emulator, "UpdateAlias", &function, None).await {
        return answer;
    }
    let input: Value = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(err) => return ApiError::client("InvalidParameterValueException", err.to_string()).into_rest_json(),
    };
    match emulator.update_alias(&function, &alias, &input) {
        Ok(output) => axum::Json(output).into_response(),
        Err(err) => err.into_rest_json(),
    }
}

async fn create_deployment_with_ids(
    State(emulator): State<Emulator>,
    axum::Json(chosen): axum::Json<DeploymentWithIds>,
) -> Response {
    match emulator.create_deployment_with_ids(&chosen) {
        Ok(output) => aws_json(&output),
        Err(err) => err.into_aws_json(),
    }
}

async fn deployment_record(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    let state = emulator.state();
    let Some(deployment) = state.deployments.get(&id) else {
        return (StatusCode::NOT_FOUND, format!("no deployment {id}")).into_response();
    };
    let summary = json!({
        "deployment_id": deployment.id,
        "status": deployment.status,
        "error_code": deployment.error.as_ref().map(|(code, _)| code),
        "error_message": deployment.error.as_ref().map(|(_, message)| message),
        "rollback_message": deployment.rollback_message,
        "events": deployment.events,
        "target": deployment.target,
    });
    drop(state);
    let mut summary = summary;
    summary["record"] = json!(emulator.record_of(&id));
    axum::Json(summary).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct AlarmState {
    state: String,
}

async fn set_alarm(
    State(emulator): State<Emulator>,
    Path(name): Path<String>,
    axum::Json(body): axum::Json<AlarmState>,
) -> Response {
    match body.state.as_str() {
        "ALARM" => emulator.set_alarm(&name, true),
        "OK" => emulator.set_alarm(&name, false),
        other => return (StatusCode::BAD_REQUEST, format!("state {other:?}: use ALARM or OK")).into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_faults(State(emulator): State<Emulator>, axum::Json(faults): axum::Json<Faults>) -> Response {
    match emulator.set_faults(faults) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

async fn calls(State(emulator): State<Emulator>) -> Response {
    axum::Json(emulator.calls()).into_response()
}
