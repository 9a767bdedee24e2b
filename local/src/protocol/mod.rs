//! The two AWS wire protocols the emulator speaks, and their error shapes.
//!
//! - CodeDeploy, awsJson1_1: `POST /` with `X-Amz-Target: CodeDeploy_20141006.<Operation>`; errors
//!   are HTTP 400 with `{"__type": "<Name>", "message": "..."}` and the `X-Amzn-Errortype` header.
//! - Lambda, restJson1: errors carry their HTTP status, `X-Amzn-Errortype` and
//!   `{"Type": "User", "message": "..."}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error as AWS returns it: the modelled exception name and a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status (400 for every modelled CodeDeploy exception).
    pub status: StatusCode,
    /// The exception's short name, e.g. `LifecycleEventAlreadyCompletedException`.
    pub code: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl ApiError {
    /// A client error (HTTP 400), the status of every CodeDeploy exception.
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// An error with another HTTP status (Lambda's restJson1 errors carry theirs).
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// The awsJson1_1 response.
    pub fn into_aws_json(self) -> Response {
        let body = json!({"__type": self.code, "message": self.message});
        error_response(self.status, self.code, "application/x-amz-json-1.1", body)
    }

    /// The restJson1 response. Lambda's model spells the message member `Message` for
    /// ResourceNotFoundException and `message` for the others served here; clients tolerate
    /// either, but the model is the contract.
    pub fn into_rest_json(self) -> Response {
        let key = if self.code == "ResourceNotFoundException" { "Message" } else { "message" };
        let body = json!({"Type": "User", key: self.message});
        error_response(self.status, self.code, "application/json", body)
    }
}

fn error_response(status: StatusCode, code: &'static str, content_type: &'static str, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    headers.insert("content-type", HeaderValue::from_static(content_type));
    response
}

/// A successful awsJson1_1 response.
pub fn aws_json(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

/// Seconds since the Unix epoch, as CodeDeploy's JSON timestamps are.
pub fn epoch_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH).map(|d| (d.as_millis() as f64) / 1000.0).unwrap_or_default()
}
