//! restJson1 (Lambda): errors carry their HTTP status, `X-Amzn-Errortype` and
//! `{"Type": "User", "message": "..."}`.

use axum::response::Response;
use serde_json::json;

use super::ApiError;

/// The error response. Lambda's model spells the message member `Message` for
/// ResourceNotFoundException and `message` for the others served here; clients tolerate either,
/// but the model is the contract.
pub fn error(error: ApiError) -> Response {
    let key = if error.code == "ResourceNotFoundException" { "Message" } else { "message" };
    let body = json!({"Type": "User", key: error.message});
    super::response(error.status, Some(error.code), "application/json", &body)
}
