//! Lambda's restJson1 routes: Invoke, GetAlias and UpdateAlias, each noted in the calls and
//! answered as an injected fault says before the operation runs.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::emulator::Emulator;
use crate::lambda::InvocationType;
use crate::protocol::ApiError;

/// Lambda's limit on a synchronous request payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// The routes, under `/2015-03-31/functions/`.
pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        // axum's default 2 MiB body limit would refuse payloads Lambda accepts; the handler
        // answers RequestTooLargeException past Lambda's own limit.
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke).layer(DefaultBodyLimit::max(2 * MAX_PAYLOAD)),
        )
        .route("/2015-03-31/functions/{function}/aliases/{alias}", get(get_alias).put(update_alias))
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
    emulator.answer_faults(operation, Some(function), qualifier).await.err().map(ApiError::into_rest_json)
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
