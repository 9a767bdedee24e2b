//! The Lambda Runtime API one process polls: `next`, the response, and the errors it posts.

use super::*;

/// One invocation on its way to a process.
pub(super) struct Event {
    pub(super) request_id: String,
    pub(super) payload: Bytes,
    pub(super) trace_id: String,
    /// Told when the process takes the event: the function timeout starts then.
    pub(super) taken: oneshot::Sender<Instant>,
    pub(super) answer: oneshot::Sender<Result<Bytes, Failure>>,
}

/// The invocation a process has taken and not yet answered.
pub(super) struct InFlight {
    pub(super) request_id: String,
    pub(super) answer: oneshot::Sender<Result<Bytes, Failure>>,
}

/// The state behind one process's Runtime API.
pub(super) struct RuntimeApi {
    pub(super) function_arn: String,
    pub(super) version: String,
    /// Where the START line goes: written before the process sees the event, it comes before
    /// anything the process prints about it.
    pub(super) log: Arc<ProcessLog>,
    pub(super) timeout: Duration,
    pub(super) events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    pub(super) in_flight: Mutex<Option<InFlight>>,
    /// Taken by the first poll: after that, init errors are rejected as Lambda rejects them.
    pub(super) init: Mutex<Option<oneshot::Sender<Failure>>>,
}

impl RuntimeApi {
    pub(super) fn take_in_flight(&self, request_id: &str) -> Option<InFlight> {
        let mut in_flight = lock(&self.in_flight);
        if in_flight.as_ref().is_some_and(|f| f.request_id == request_id) { in_flight.take() } else { None }
    }
}

pub(super) fn runtime_api(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{request_id}/response", post(post_response))
        .route("/2018-06-01/runtime/invocation/{request_id}/error", post(post_error))
        .route("/2018-06-01/runtime/init/error", post(post_init_error))
        // Oversized responses are the function's error to report, not a transport failure.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

pub(super) async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> Response {
    // Polling ends init; from here on an init error can no longer be reported.
    lock(&api.init).take();
    let Some(event) = api.events.lock().await.recv().await else {
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "the execution environment is gone");
    };
    let deadline = SystemTime::now() + api.timeout;
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let headers = [
        ("lambda-runtime-aws-request-id", event.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", api.function_arn.clone()),
        ("lambda-runtime-trace-id", event.trace_id),
    ];
    api.log.line(&start_line(&event.request_id, &api.version));
    *lock(&api.in_flight) = Some(InFlight { request_id: event.request_id, answer: event.answer });
    // The invoker may have given up already; its process is killed then.
    let _ = event.taken.send(Instant::now());
    let mut response = ([(CONTENT_TYPE, "application/json")], event.payload).into_response();
    for (name, value) in headers {
        // Names and versions are validated by the config; an odd one only loses its header.
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    response
}

pub(super) async fn post_response(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(in_flight) = api.take_in_flight(&request_id) else { return invalid_request_id(&request_id) };
    if body.len() > MAX_RESPONSE_BYTES {
        let message =
            format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).");
        let _ = in_flight.answer.send(Err(Failure::new("Function.ResponseSizeTooLarge", message.clone())));
        return api_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message);
    }
    let _ = in_flight.answer.send(Ok(body));
    accepted()
}

pub(super) async fn post_error(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(in_flight) = api.take_in_flight(&request_id) else { return invalid_request_id(&request_id) };
    let _ = in_flight.answer.send(Err(Failure::posted(&headers, &body, "Unhandled")));
    accepted()
}

pub(super) async fn post_init_error(State(api): State<Arc<RuntimeApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(init) = lock(&api.init).take() else {
        return api_error(StatusCode::FORBIDDEN, "InvalidStateTransition", "init error reported after init");
    };
    let _ = init.send(Failure::posted(&headers, &body, "Runtime.InitError"));
    accepted()
}

pub(super) fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

pub(super) fn invalid_request_id(request_id: &str) -> Response {
    let message = format!("invalid request id {request_id}: no such invocation in flight");
    api_error(StatusCode::BAD_REQUEST, "InvalidRequestID", &message)
}

pub(super) fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errorMessage": message, "errorType": error_type}))).into_response()
}
