//! One measurement of one check: an HTTP request or a Lambda invocation, judged against its
//! expectations. The runner ([`crate::runner`]) decides how many measurements make a verdict.

mod alarms;
mod compare;
mod http;
mod invoke;
pub mod judge;
mod metric;
pub mod variables;
mod window;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::discover::Deployment;
use crate::plan::{Check, Probe, Redactor};

/// What a measurement needs besides the check itself: clients built once at start-up and what
/// discovery learned. Cheap to share: the clients are handles.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// Client for HTTP checks (TLS verification on, plan CAs added).
    pub http: reqwest::Client,
    /// AWS clients: Lambda for invoke checks, CloudWatch (built on first use) for metric and alarm
    /// checks.
    pub aws: crate::AwsClients,
    /// When this run started: the start of a `since: hook` window.
    pub started_at: std::time::SystemTime,
    /// What this run looked up to fill `${variables}`, each once, by the first check needing it.
    pub lookups: Arc<variables::Lookups>,
    /// The deployment, when discovery ran.
    pub deployment: Option<Arc<Deployment>>,
    /// Which header values must never be shown.
    pub redactor: Redactor,
    /// The process's judging slots ([`judge::JUDGING_SLOTS`]): shared by every run of a gate, so
    /// judgings abandoned by one invocation still count against the next.
    pub judging: Arc<Semaphore>,
}

/// Runs one measurement. `Err` carries the reason the measurement failed.
pub async fn measure_once(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    match &check.probe {
        Probe::Http(_) => http::measure(check, context).await,
        Probe::Invoke(_) => invoke::measure(check, context).await,
        Probe::Metric(_) => metric::measure(check, context).await,
        Probe::Alarms(_) => alarms::measure(check, context).await,
        Probe::Compare(_) => compare::measure(check, context).await,
    }
}

/// How many schema violations a reason lists before summarising the rest.
const VIOLATIONS_SHOWN: usize = 3;

/// Parses a body that must be JSON within `budget` bytes of parsed value, and drops the text, so
/// a body is never held twice while it is validated.
pub(crate) fn parse_json_body(body: Vec<u8>, budget: usize, what: &str) -> Result<serde_json::Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{what} is empty; expected JSON matching the schema"));
    }
    judge::parse_within(&body, budget).map_err(|err| match err {
        judge::ParseError::NotJson(err) => {
            let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).replace(char::is_control, " ");
            format!("{what} is not JSON ({err}); it starts {preview:?}")
        }
        judge::ParseError::OverBudget { budget } => too_dense(what, body.len(), budget),
    })
}

/// Why a body of `len` bytes was not judged: parsed, it would outgrow `budget`.
pub(crate) fn too_dense(what: &str, len: usize, budget: usize) -> String {
    format!(
        "{what} of {len} bytes is too dense to judge: its parsed form would exceed {budget} bytes ({}× its byte cap); \
         judge a smaller document",
        judge::PARSE_BUDGET_FACTOR
    )
}

/// Judges a body that must be JSON valid under `schema`, parsing it within `budget`. Values from
/// the body are masked in the reason (bodies can carry personal data); the JSON pointer says
/// where the contract broke.
pub(crate) fn judge_json_body(
    schema: &jsonschema::Validator,
    body: Vec<u8>,
    budget: usize,
    what: &str,
) -> Result<(), String> {
    let value = parse_json_body(body, budget, what)?;
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

    fn judge(schema: &jsonschema::Validator, body: &[u8]) -> Result<(), String> {
        judge_json_body(schema, body.to_vec(), usize::MAX, "body")
    }

    #[test]
    fn a_missing_field_is_named_by_pointer() {
        let err = judge(&checkout_contract(), br#"{"total_cents": 1299}"#).unwrap_err();
        assert!(err.contains("/total_minor_units is missing"), "{err}");
        assert!(err.contains("/total_cents must not be present"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_named_by_pointer_with_the_value_masked() {
        let err = judge(&checkout_contract(), br#"{"total_minor_units": "12.99 secret"}"#).unwrap_err();
        assert!(err.contains("/total_minor_units:"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn empty_and_non_json_bodies_fail_with_their_reason() {
        let schema = jsonschema::validator_for(&json!({})).unwrap();
        assert!(judge(&schema, b"").unwrap_err().contains("empty"));
        assert!(judge(&schema, b"<html>").unwrap_err().contains("not JSON"));
        assert!(judge(&schema, b"{}").is_ok());
        let dense = judge_json_body(&schema, b"[1,2,3,4,5,6]".to_vec(), 64, "body").unwrap_err();
        assert!(dense.contains("too dense to judge"), "{dense}");
    }
}
