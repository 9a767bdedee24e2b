//! The AWS wire protocols, each written once, and the error every service answers with.
//!
//! - [`aws_json`]: `POST /` with `X-Amz-Target: <Service>.<Operation>` and a JSON body
//!   (awsJson1_1 for CodeDeploy and SSM, awsJson1_0 for CloudWatch); errors are HTTP 400 with
//!   `{"__type", "message"}`.
//! - [`rest_json`]: operations on paths, errors with their own HTTP status (restJson1 for Lambda).
//! - [`aws_query`]: `POST /` with a form-encoded `Action=…&Version=…` body and XML answers
//!   (awsQuery for Elastic Load Balancing v2).
//! - [`rpc_v2_cbor`]: `POST /service/<Service>/operation/<Operation>` with CBOR (CloudWatch).
//!
//! awsJson and awsQuery share `POST /`; [`serve_root`] tells them apart by the content type.

pub mod aws_json;
pub mod aws_query;
pub mod rest_json;
pub mod rpc_v2_cbor;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::emulator::Emulator;

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
        aws_json::error(aws_json::Version::V1_1, self)
    }

    /// The restJson1 response.
    pub fn into_rest_json(self) -> Response {
        rest_json::error(self)
    }
}

/// Serves `POST /`: a form-encoded body is an awsQuery request, anything else awsJson.
pub async fn serve_root(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    if aws_query::is_query(&headers) {
        aws_query::serve(emulator, body).await
    } else {
        aws_json::serve(State(emulator), headers, body).await
    }
}

/// A response with `body`, its content type and, for an error, `X-Amzn-Errortype`.
fn response(
    status: StatusCode,
    error_type: Option<&'static str>,
    content_type: &'static str,
    body: &Value,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    if let Some(code) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    headers.insert("content-type", HeaderValue::from_static(content_type));
    response
}

/// Seconds since the Unix epoch, as the JSON protocols' timestamps are.
pub fn epoch_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH).map(|d| (d.as_millis() as f64) / 1000.0).unwrap_or_default()
}
