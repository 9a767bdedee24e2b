//! The CodeDeploy lifecycle-hook payload: `{"DeploymentId": ..., "LifecycleEventHookExecutionId": ...}`.
//!
//! Without both ids nothing can be reported, so a malformed event is the one case where a hook
//! returns an error instead of reporting `Failed`. The error says exactly what is missing.

use aws_lambda_events::event::codedeploy::CodeDeployLifecycleEvent;
use serde_json::Value;

/// How much of a malformed input is kept for the log line.
pub const RAW_INPUT_LOG_LIMIT: usize = 1024;

/// The two ids CodeDeploy sends, validated to be present and non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    /// The deployment being judged, e.g. `d-ABCDEF123`.
    pub deployment_id: String,
    /// The opaque id of this hook execution, needed to report.
    pub execution_id: String,
}

/// Why a payload is not a usable CodeDeploy lifecycle event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The input is not JSON at all.
    #[error("event is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The input is JSON but not an object.
    #[error("event must be a JSON object with DeploymentId and LifecycleEventHookExecutionId, got {0}")]
    NotAnObject(&'static str),
    /// A required id is absent, null, empty or not a string.
    #[error("event has no usable {field} (ids are case-sensitive PascalCase; keys present: {present})")]
    MissingField {
        /// The missing PascalCase field name.
        field: &'static str,
        /// The keys the object did have, for spotting `deploymentId`-style casing mistakes.
        present: String,
    },
}

impl HookEvent {
    /// Parses raw bytes (CLI mode: a file or stdin).
    pub fn from_slice(raw: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(raw).map_err(EventError::NotJson)?;
        Self::from_value(value)
    }

    /// Parses an already-decoded JSON value (Lambda mode).
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(map) = &value else {
            return Err(EventError::NotAnObject(json_type_name(&value)));
        };
        let present = || {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
        };
        for field in ["DeploymentId", "LifecycleEventHookExecutionId"] {
            let usable = map.get(field).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
            if !usable {
                return Err(EventError::MissingField { field, present: present() });
            }
        }
        // Both fields are known to be non-empty strings, so the model type cannot reject them.
        let event: CodeDeployLifecycleEvent = serde_json::from_value(value).map_err(EventError::NotJson)?;
        Ok(Self { deployment_id: event.deployment_id, execution_id: event.lifecycle_event_hook_execution_id })
    }
}

/// The JSON type of a value, for error messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Truncates raw input for a log line, on a character boundary, marking the cut.
pub fn truncate_for_log(raw: &str) -> String {
    match crate::clip(raw, RAW_INPUT_LOG_LIMIT) {
        clipped if clipped.len() < raw.len() => format!("{clipped}… ({} bytes in all)", raw.len()),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_codedeploy_payload() {
        let event =
            HookEvent::from_slice(br#"{"DeploymentId":"d-ABC","LifecycleEventHookExecutionId":"eyJ"}"#).unwrap();
        assert_eq!(event.deployment_id, "d-ABC");
        assert_eq!(event.execution_id, "eyJ");
    }

    #[test]
    fn wrong_case_names_the_missing_field_and_the_keys_present() {
        let err =
            HookEvent::from_slice(br#"{"deploymentId":"d-ABC","lifecycleEventHookExecutionId":"x"}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("DeploymentId"), "{text}");
        assert!(text.contains("deploymentId, lifecycleEventHookExecutionId"), "{text}");
    }

    #[test]
    fn missing_execution_id_is_named() {
        let err = HookEvent::from_slice(br#"{"DeploymentId":"d-ABC"}"#).unwrap_err();
        assert!(err.to_string().contains("LifecycleEventHookExecutionId"), "{err}");
    }

    #[test]
    fn empty_or_non_string_ids_are_rejected() {
        assert!(HookEvent::from_slice(br#"{"DeploymentId":"","LifecycleEventHookExecutionId":"x"}"#).is_err());
        assert!(HookEvent::from_slice(br#"{"DeploymentId":7,"LifecycleEventHookExecutionId":"x"}"#).is_err());
    }

    #[test]
    fn not_json_and_not_object_are_distinguished() {
        assert!(matches!(HookEvent::from_slice(b"hello"), Err(EventError::NotJson(_))));
        assert!(matches!(HookEvent::from_slice(b"[1]"), Err(EventError::NotAnObject("an array"))));
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        let raw = "é".repeat(RAW_INPUT_LOG_LIMIT);
        let cut = truncate_for_log(&raw);
        assert!(cut.ends_with(&format!("({} bytes in all)", raw.len())));
    }
}
