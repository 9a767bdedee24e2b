//! Test harness for greenlight's integration tests, one module per fixture:
//!
//! - [`deployment`]: deployments on the local CodeDeploy (`codedeploy-local`), whole or held in
//!   one event, and real AWS SDK configuration pointed at it;
//! - [`targets`]: HTTP and HTTPS services for checks to judge;
//! - [`binaries`]: the hook binaries and sample apps, built once, and the sample events;
//! - [`python`]: the project's pinned Python tools.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub mod binaries;
pub mod deployment;
pub mod python;
pub mod targets;

pub use binaries::{bin_dir, event_file, hook_binary, workspace_root};
pub use deployment::sdk_config;
pub use targets::{Target, TlsTarget, healthy_cart, serve};

// ---- local CodeDeploy + Lambda ------------------------------------------------------------------

/// A fault injected into the next `PutLifecycleEventHookExecutionStatus` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFault {
    /// HTTP 400 `ThrottlingException`.
    Throttle,
    /// HTTP 500 `InternalFailure`.
    ServerError,
}

/// One report CodeDeploy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReport {
    /// Deployment id.
    pub deployment_id: String,
    /// Hook execution id.
    pub execution_id: String,
    /// `Succeeded` or `Failed`.
    pub status: String,
}

/// How a function answers `Invoke`.
#[derive(Debug, Clone)]
pub struct FunctionAnswer {
    /// The payload returned.
    pub payload: Value,
    /// `X-Amz-Function-Error`, if set.
    pub function_error: Option<String>,
    /// `X-Amz-Executed-Version`; empty leaves the header out.
    pub executed_version: String,
}

#[derive(Debug, Default)]
struct AwsState {
    /// deployment id → (target id, deploymentTarget JSON).
    deployments: HashMap<String, (String, Value)>,
    /// Executions whose event already completed before any report of ours.
    completed: HashSet<String>,
    /// Executions already reported (a second report gets AlreadyCompleted).
    reported: HashSet<String>,
    accepted: Vec<AcceptedReport>,
    report_calls: usize,
    faults: VecDeque<ReportFault>,
    denied: HashSet<String>,
    hanging: HashSet<String>,
    /// ECS green task set: running count added per GetDeploymentTarget call.
    green_step: HashMap<String, i64>,
    functions: HashMap<(String, String), FunctionAnswer>,
    invocations: Vec<(String, String, Value)>,
    calls: Vec<String>,
}

/// A local CodeDeploy (awsJson1_1) and Lambda Invoke (restJson1) on one loopback port.
#[derive(Debug, Clone)]
pub struct LocalAws {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<AwsState>>,
}

impl LocalAws {
    /// Starts the endpoint.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(AwsState::default()));
        let router = Router::new()
            .route("/", post(codedeploy))
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(state.clone());
        let addr = serve(router).await;
        Self { url: format!("http://{addr}"), state }
    }

    fn with<R>(&self, f: impl FnOnce(&mut AwsState) -> R) -> R {
        f(&mut self.state.lock().expect("state lock"))
    }

    /// Adds a Lambda deployment whose `in_progress` lifecycle event is running.
    pub fn add_lambda_deployment(
        &self,
        deployment_id: &str,
        function: &str,
        current: &str,
        target: &str,
        in_progress: &str,
    ) {
        let events = lifecycle_events(&["BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"], in_progress);
        let target_id = format!("{function}:live");
        let doc = json!({
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {
                "deploymentId": deployment_id, "targetId": target_id,
                "targetArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}:live"),
                "status": "InProgress", "lastUpdatedAt": 1_700_000_000.5,
                "lifecycleEvents": events,
                "lambdaFunctionInfo": {"functionName": function, "functionAlias": "live",
                    "currentVersion": current, "targetVersion": target, "targetVersionWeight": 0.0}
            }
        });
        self.with(|s| s.deployments.insert(deployment_id.to_owned(), (target_id, doc)));
    }

    /// Adds an ECS deployment whose `in_progress` event is running; green runs `green_running` of 2.
    pub fn add_ecs_deployment(&self, deployment_id: &str, in_progress: &str, green_running: i64) {
        let names = [
            "BeforeInstall",
            "Install",
            "AfterInstall",
            "AllowTestTraffic",
            "AfterAllowTestTraffic",
            "BeforeAllowTraffic",
            "AllowTraffic",
            "AfterAllowTraffic",
        ];
        let target_id = "checkout-cluster:checkout".to_owned();
        let doc = json!({
            "deploymentTargetType": "ECSTarget",
            "ecsTarget": {
                "deploymentId": deployment_id, "targetId": target_id, "status": "InProgress",
                "lifecycleEvents": lifecycle_events(&names, in_progress),
                "taskSetsInfo": [
                    {"identifer": "ts-blue", "desiredCount": 2, "pendingCount": 0, "runningCount": 2, "status": "PRIMARY",
                     "trafficWeight": 100.0, "targetGroup": {"name": "tg-blue"}, "taskSetLabel": "Blue"},
                    {"identifer": "ts-green", "desiredCount": 2, "pendingCount": 2 - green_running, "runningCount": green_running,
                     "status": "ACTIVE", "trafficWeight": 0.0, "targetGroup": {"name": "tg-green"}, "taskSetLabel": "Green"}
                ]
            }
        });
        self.with(|s| s.deployments.insert(deployment_id.to_owned(), (target_id, doc)));
    }

    /// Each GetDeploymentTarget of this deployment starts `step` more green tasks (up to desired).
    pub fn green_starts_tasks(&self, deployment_id: &str, step: i64) {
        self.with(|s| s.green_step.insert(deployment_id.to_owned(), step));
    }

    /// Marks an execution as already completed (as after an earlier delivery reported).
    pub fn complete_execution(&self, execution_id: &str) {
        self.with(|s| s.completed.insert(execution_id.to_owned()));
    }

    /// Queues faults for the next report calls.
    pub fn fail_reports(&self, faults: &[ReportFault]) {
        self.with(|s| s.faults.extend(faults.iter().copied()));
    }

    /// Never answers `operation`, as an overloaded or unreachable service would.
    pub fn hang(&self, operation: &str) {
        self.with(|s| s.hanging.insert(operation.to_owned()));
    }

    /// Answers `operation` with AccessDeniedException.
    pub fn deny(&self, operation: &str) {
        self.with(|s| s.denied.insert(operation.to_owned()));
    }

    /// Declares how `function:qualifier` answers Invoke.
    pub fn add_function(&self, function: &str, qualifier: &str, answer: FunctionAnswer) {
        self.with(|s| s.functions.insert((function.to_owned(), qualifier.to_owned()), answer));
    }

    /// Reports accepted so far.
    pub fn accepted(&self) -> Vec<AcceptedReport> {
        self.with(|s| s.accepted.clone())
    }

    /// Calls of PutLifecycleEventHookExecutionStatus, accepted or not.
    pub fn report_calls(&self) -> usize {
        self.with(|s| s.report_calls)
    }

    /// Every operation called, in order (CodeDeploy targets and `Invoke`).
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    /// `(function, qualifier, payload)` of every Invoke.
    pub fn invocations(&self) -> Vec<(String, String, Value)> {
        self.with(|s| s.invocations.clone())
    }

    /// Waits up to `limit` for `n` accepted reports.
    pub async fn wait_for_reports(&self, n: usize, limit: Duration) -> Vec<AcceptedReport> {
        let until = tokio::time::Instant::now() + limit;
        while self.accepted().len() < n && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.accepted()
    }
}

fn lifecycle_events(names: &[&str], in_progress: &str) -> Value {
    let position = names.iter().position(|n| *n == in_progress);
    let events: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let status = match position {
                Some(p) if i < p => "Succeeded",
                Some(p) if i == p => "InProgress",
                _ => "Pending",
            };
            json!({"lifecycleEventName": name, "status": status})
        })
        .collect();
    Value::Array(events)
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, json!({"__type": kind, "message": message}).to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

fn aws_ok(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

async fn codedeploy(State(state): State<Arc<Mutex<AwsState>>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(operation) = target.strip_prefix("CodeDeploy_20141006.") else {
        return aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", target);
    };
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "body is not JSON");
    };
    let hangs = {
        let mut s = state.lock().expect("state lock");
        s.calls.push(operation.to_owned());
        s.hanging.contains(operation)
    };
    if hangs {
        std::future::pending::<()>().await;
    }
    let mut s = state.lock().expect("state lock");
    if s.denied.contains(operation) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            &format!("not authorized to perform codedeploy:{operation}"),
        );
    }
    let deployment_id = input["deploymentId"].as_str().unwrap_or_default().to_owned();
    match operation {
        "ListDeploymentTargets" => match s.deployments.get(&deployment_id) {
            Some((target_id, _)) => aws_ok(json!({"targetIds": [target_id]})),
            None => aws_error(StatusCode::BAD_REQUEST, "DeploymentDoesNotExistException", &deployment_id),
        },
        "GetDeploymentTarget" => {
            let step = s.green_step.get(&deployment_id).copied();
            let Some((target_id, doc)) = s.deployments.get_mut(&deployment_id) else {
                return aws_error(StatusCode::BAD_REQUEST, "DeploymentDoesNotExistException", &deployment_id);
            };
            if input["targetId"].as_str() != Some(target_id.as_str()) {
                return aws_error(StatusCode::BAD_REQUEST, "DeploymentTargetDoesNotExistException", "no such target");
            }
            let answer = json!({"deploymentTarget": doc.clone()});
            if let (Some(step), Some(green)) = (step, doc.pointer_mut("/ecsTarget/taskSetsInfo/1/runningCount")) {
                *green = json!((green.as_i64().unwrap_or(0) + step).min(2));
            }
            aws_ok(answer)
        }
        "PutLifecycleEventHookExecutionStatus" => {
            s.report_calls += 1;
            if let Some(fault) = s.faults.pop_front() {
                return match fault {
                    ReportFault::Throttle => aws_error(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"),
                    ReportFault::ServerError => {
                        aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "try again")
                    }
                };
            }
            let execution_id = input["lifecycleEventHookExecutionId"].as_str().unwrap_or_default().to_owned();
            let status = input["status"].as_str().unwrap_or_default().to_owned();
            if !s.deployments.contains_key(&deployment_id) {
                return aws_error(StatusCode::BAD_REQUEST, "DeploymentDoesNotExistException", &deployment_id);
            }
            if status != "Succeeded" && status != "Failed" {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidLifecycleEventHookExecutionStatusException",
                    &status,
                );
            }
            if s.completed.contains(&execution_id) || !s.reported.insert(execution_id.clone()) {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "LifecycleEventAlreadyCompletedException",
                    "already completed",
                );
            }
            s.accepted.push(AcceptedReport { deployment_id, execution_id: execution_id.clone(), status });
            aws_ok(json!({"lifecycleEventHookExecutionId": execution_id}))
        }
        other => aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", other),
    }
}

async fn invoke(
    State(state): State<Arc<Mutex<AwsState>>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let qualifier = query.get("Qualifier").cloned().unwrap_or_else(|| "$LATEST".to_owned());
    let payload = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("state lock");
    s.calls.push("Invoke".to_owned());
    if s.denied.contains("Invoke") {
        let mut response = aws_error(StatusCode::FORBIDDEN, "AccessDeniedException", "not authorized");
        response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("AccessDeniedException"));
        return response;
    }
    s.invocations.push((name.clone(), qualifier.clone(), payload));
    let Some(answer) = s.functions.get(&(name.clone(), qualifier.clone())).cloned() else {
        let mut response = aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}:{qualifier}"),
        );
        response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("ResourceNotFoundException"));
        return response;
    };
    let mut response = (StatusCode::OK, answer.payload.to_string()).into_response();
    let headers = response.headers_mut();
    // An empty version stands for a response without the header.
    if !answer.executed_version.is_empty() {
        headers
            .insert("x-amz-executed-version", HeaderValue::from_str(&answer.executed_version).expect("version header"));
    }
    if let Some(kind) = &answer.function_error {
        headers.insert("x-amz-function-error", HeaderValue::from_str(kind).expect("error header"));
    }
    response
}

// ---- Lambda Runtime API ------------------------------------------------------------------------

/// What a function posted back for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeResult {
    /// `POST /runtime/invocation/{id}/response`.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`.
    Error(Value),
}

#[derive(Debug, Default)]
struct RuntimeState {
    queue: VecDeque<(String, Vec<u8>, u64)>,
    results: HashMap<String, RuntimeResult>,
    init_errors: Vec<Value>,
    next_id: u32,
}

/// A minimal Lambda Runtime API (`next`, `response`, `error`, `init/error`), enough to run a hook
/// binary in Lambda mode through `lambda_runtime`: events are queued with a deadline, results
/// recorded per request id.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    state: Arc<Mutex<RuntimeState>>,
    queued: Arc<tokio::sync::Notify>,
}

impl RuntimeApi {
    /// Starts the endpoint.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(RuntimeState::default()));
        let queued = Arc::new(tokio::sync::Notify::new());
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(runtime_next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(runtime_response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(runtime_error))
            .route("/2018-06-01/runtime/init/error", post(runtime_init_error))
            .with_state((state.clone(), queued.clone()));
        let addr = serve(router).await;
        Self { address: addr.to_string(), state, queued }
    }

    /// Queues an invocation of `payload` (raw bytes) with `timeout` left; returns its request id.
    pub fn invoke(&self, payload: impl Into<Vec<u8>>, timeout: Duration) -> String {
        let deadline = std::time::SystemTime::now() + timeout;
        let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
        let id = {
            let mut s = self.state.lock().expect("runtime lock");
            s.next_id += 1;
            let id = format!("req-{}", s.next_id);
            s.queue.push_back((id.clone(), payload.into(), deadline_ms));
            id
        };
        self.queued.notify_one();
        id
    }

    /// Waits up to `limit` for the result of `request_id`.
    pub async fn result(&self, request_id: &str, limit: Duration) -> Option<RuntimeResult> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if let Some(result) = self.state.lock().expect("runtime lock").results.get(request_id).cloned() {
                return Some(result);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Init errors posted so far.
    pub fn init_errors(&self) -> Vec<Value> {
        self.state.lock().expect("runtime lock").init_errors.clone()
    }

    /// The environment Lambda gives a function, pointing at this Runtime API.
    pub fn lambda_environment(&self, function_name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/greenlight-test"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]test"),
            ("LAMBDA_TASK_ROOT", "/nonexistent-task-root"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

type RuntimeShared = (Arc<Mutex<RuntimeState>>, Arc<tokio::sync::Notify>);

async fn runtime_next(State((state, queued)): State<RuntimeShared>) -> Response {
    loop {
        let next = state.lock().expect("runtime lock").queue.pop_front();
        if let Some((id, payload, deadline_ms)) = next {
            return Response::builder()
                .header("lambda-runtime-aws-request-id", id)
                .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:greenlight-test",
                )
                .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                .body(Body::from(payload))
                .expect("next response");
        }
        queued.notified().await;
    }
}

async fn runtime_response(State((state, _)): State<RuntimeShared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.lock().expect("runtime lock").results.insert(id, RuntimeResult::Response(value));
    StatusCode::ACCEPTED
}

async fn runtime_error(State((state, _)): State<RuntimeShared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.lock().expect("runtime lock").results.insert(id, RuntimeResult::Error(value));
    StatusCode::ACCEPTED
}

async fn runtime_init_error(State((state, _)): State<RuntimeShared>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.lock().expect("runtime lock").init_errors.push(value);
    StatusCode::ACCEPTED
}
