//! awsJson1_0 and awsJson1_1: `POST /` with `X-Amz-Target: <Service>.<Operation>` and a JSON
//! body. The two versions differ only in their content type (awsJson1_1: CodeDeploy and SSM;
//! awsJson1_0: CloudWatch). The request is parsed here once and
//! handed to the service its target prefix names.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiError;
use crate::emulator::Emulator;

/// The protocol's version, which names its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// awsJson1_0.
    V1_0,
    /// awsJson1_1 (CodeDeploy, SSM).
    V1_1,
}

impl Version {
    /// `application/x-amz-json-1.0` or `-1.1`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V1_0 => "application/x-amz-json-1.0",
            Self::V1_1 => "application/x-amz-json-1.1",
        }
    }
}

/// A successful response.
pub fn ok(version: Version, body: &Value) -> Response {
    super::response(StatusCode::OK, None, version.content_type(), body)
}

/// An error response: its status, `X-Amzn-Errortype`, and `{"__type", "message"}`.
pub fn error(version: Version, error: ApiError) -> Response {
    let body = json!({"__type": error.code, "message": error.message});
    super::response(error.status, Some(error.code), version.content_type(), &body)
}

/// An error of an awsQueryCompatible service: also `x-amzn-query-error: <code>;Sender` (or
/// `Receiver` for 5xx) when `query_error_code` knows the error's awsQueryError code.
pub fn query_compatible_error(
    version: Version,
    error: ApiError,
    query_error_code: fn(&str) -> Option<&'static str>,
) -> Response {
    let header = query_error_code(error.code).map(|code| {
        let fault = if error.status.is_server_error() { "Receiver" } else { "Sender" };
        format!("{code};{fault}")
    });
    let mut response = self::error(version, error);
    if let Some(value) = header.and_then(|h| axum::http::HeaderValue::from_str(&h).ok()) {
        response.headers_mut().insert("x-amzn-query-error", value);
    }
    response
}

/// The awsJson1_1 services, which share one error shape.
#[derive(Debug, Clone, Copy)]
enum JsonService {
    CodeDeploy,
    Ssm,
    Ecs,
}

/// Serves `POST /`: the service is the target's prefix, the operation what follows it.
pub async fn serve(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (service, operation) = match target.split_once('.') {
        Some((crate::codedeploy::TARGET_SERVICE, operation)) => (JsonService::CodeDeploy, operation),
        Some((crate::ssm::TARGET_SERVICE, operation)) => (JsonService::Ssm, operation),
        Some((crate::ecs::TARGET_SERVICE, operation)) => (JsonService::Ecs, operation),
        Some((crate::cloudwatch::TARGET_SERVICE, operation)) => {
            return serve_cloudwatch(&emulator, operation, &body).await;
        }
        _ => {
            let message = format!("X-Amz-Target {target:?} names no operation of a service served here");
            return error(Version::V1_1, ApiError::client("UnknownOperationException", message));
        }
    };
    let version = Version::V1_1;
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(err) => return error(version, ApiError::client("SerializationException", err.to_string())),
        }
    };
    let output = match service {
        JsonService::CodeDeploy => crate::codedeploy::serve(&emulator, operation, &input).await,
        JsonService::Ssm => crate::ssm::serve(&emulator, operation, &input).await,
        JsonService::Ecs => crate::ecs::api::serve(&emulator, operation, &input).await,
    };
    match output {
        Ok(output) => ok(version, &output),
        Err(err) => error(version, err),
    }
}

/// Serves CloudWatch's awsJson1_0, whose errors also carry `x-amzn-query-error`.
async fn serve_cloudwatch(emulator: &Emulator, operation: &str, body: &[u8]) -> Response {
    let version = Version::V1_0;
    let code = crate::cloudwatch::query_error_code;
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(input) => input,
            Err(err) => {
                return query_compatible_error(
                    version,
                    ApiError::client("SerializationException", err.to_string()),
                    code,
                );
            }
        }
    };
    match crate::cloudwatch::serve(emulator, operation, &input).await {
        Ok(output) => ok(version, &output),
        Err(err) => query_compatible_error(version, err, code),
    }
}
