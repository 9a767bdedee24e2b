//! One measurement of one check: an HTTP request or a Lambda invocation, judged against its
//! expectations. The runner ([`crate::runner`]) decides how many measurements make a verdict.

mod http;
mod invoke;

use std::sync::Arc;

use crate::discover::Deployment;
use crate::plan::{Check, Probe, Redactor};

/// What a measurement needs besides the check itself: clients built once at start-up and what
/// discovery learned. Cheap to share: the clients are handles.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// Client for HTTP checks (TLS verification on, plan CAs added).
    pub http: reqwest::Client,
    /// Client for invoke checks.
    pub lambda: aws_sdk_lambda::Client,
    /// The deployment, when discovery ran.
    pub deployment: Option<Arc<Deployment>>,
    /// Which header values must never be shown.
    pub redactor: Redactor,
}

/// Runs one measurement. `Err` carries the reason the measurement failed.
pub async fn measure_once(check: &Check, context: &ProbeContext) -> Result<(), String> {
    match &check.probe {
        Probe::Http(probe) => http::measure(probe, &check.expect, context).await,
        Probe::Invoke(probe) => invoke::measure(probe, &check.expect, context).await,
    }
}

/// How many schema violations a reason lists before summarising the rest.
const VIOLATIONS_SHOWN: usize = 3;

/// Judges a body that must be JSON valid under `schema`. Values from the body are masked in the
/// reason (bodies can carry personal data); the JSON pointer says where the contract broke.
pub(crate) fn judge_json_body(schema: &jsonschema::Validator, body: &[u8], what: &str) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{what} is empty; expected JSON matching the schema"));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).replace(char::is_control, " ");
        format!("{what} is not JSON ({err}); it starts {preview:?}")
    })?;
    let violations: Vec<String> = schema
        .iter_errors(&value)
        .map(|error| {
            let pointer = crate::plan::error_pointer(&error);
            let pointer = if pointer.is_empty() { "/".to_owned() } else { pointer };
            match error.kind() {
                jsonschema::error::ValidationErrorKind::Required { .. } => {
                    format!("{pointer} is missing")
                }
                jsonschema::error::ValidationErrorKind::FalseSchema => {
                    format!("{pointer} must not be present")
                }
                _ => format!("{pointer}: {}", error.masked()),
            }
        })
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    let mut reason =
        format!("{what} breaks the schema: {}", violations[..violations.len().min(VIOLATIONS_SHOWN)].join("; "));
    if violations.len() > VIOLATIONS_SHOWN {
        reason.push_str(&format!(" (+{} more)", violations.len() - VIOLATIONS_SHOWN));
    }
    Err(reason)
}

/// An error and its causes on one line, so "error sending request" comes with "connection refused".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checkout_contract() -> jsonschema::Validator {
        jsonschema::validator_for(&json!({
            "type": "object",
            "required": ["total_minor_units"],
            "properties": {"total_minor_units": {"type": "integer"}, "total_cents": false}
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_field_is_named_by_pointer() {
        let err = judge_json_body(&checkout_contract(), br#"{"total_cents": 1299}"#, "body").unwrap_err();
        assert!(err.contains("/total_minor_units is missing"), "{err}");
        assert!(err.contains("/total_cents must not be present"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_named_by_pointer_with_the_value_masked() {
        let err =
            judge_json_body(&checkout_contract(), br#"{"total_minor_units": "12.99 secret"}"#, "body").unwrap_err();
        assert!(err.contains("/total_minor_units:"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn empty_and_non_json_bodies_fail_with_their_reason() {
        let schema = jsonschema::validator_for(&json!({})).unwrap();
        assert!(judge_json_body(&schema, b"", "body").unwrap_err().contains("empty"));
        assert!(judge_json_body(&schema, b"<html>", "body").unwrap_err().contains("not JSON"));
        assert!(judge_json_body(&schema, b"{}", "body").is_ok());
    }
}
