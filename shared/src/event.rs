//! The two events a hook is invoked with, told apart by their keys:
//!
//! - CodeDeploy's lifecycle-hook payload, `{"DeploymentId": ..., "LifecycleEventHookExecutionId": ...}`
//!   ([`HookEvent`]), answered by reporting to CodeDeploy;
//! - Amazon ECS's own lifecycle-hook payload, `{"executionId", "lifecycleStage", "resourceArn",
//!   "executionDetails": {...}, "hookDetails": {...}}` ([`EcsHookEvent`]; the older form with the
//!   `executionDetails` members at the top level too), answered by the function's return value.
//!
//! Without its ids nothing can be reported, so a malformed event is the one case where a hook
//! returns an error instead of reporting `Failed` (ECS rolls back on a function error). The error
//! says exactly what is missing.

use std::collections::BTreeMap;

use aws_lambda_events::event::codedeploy::CodeDeployLifecycleEvent;
use serde_json::{Map, Value};

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

/// Amazon ECS's lifecycle-hook payload for a service deployment (BLUE_GREEN, LINEAR, CANARY).
#[derive(Debug, Clone, PartialEq)]
pub struct EcsHookEvent {
    /// The id of this hook execution.
    pub execution_id: String,
    /// The lifecycle stage ECS is at, e.g. `POST_TEST_TRAFFIC_SHIFT`.
    pub stage: String,
    /// The service deployment's ARN (`arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>`).
    pub resource_arn: String,
    /// The service's ARN, when ECS sent it.
    pub service_arn: Option<String>,
    /// The revision being deployed, when ECS sent it.
    pub target_revision_arn: Option<String>,
    /// Test traffic per revision ARN, in percent; empty outside the test traffic shift.
    pub test_weights: BTreeMap<String, f64>,
    /// Production traffic per revision ARN, in percent; empty outside a production shift.
    pub production_weights: BTreeMap<String, f64>,
    /// The lifecycle hook's configured `hookDetails`, merged with what the last answer returned.
    pub hook_details: Map<String, Value>,
}

impl EcsHookEvent {
    /// The deployment's id, the last part of its ARN, for log lines.
    pub fn deployment_id(&self) -> &str {
        self.resource_arn.rsplit('/').next().unwrap_or(&self.resource_arn)
    }

    /// Whether the weights show traffic moving back: a shift in which the target revision gets
    /// 0 % while another revision gets some. That is how a rollback shows in the event.
    pub fn shifts_back(&self) -> bool {
        let Some(target) = &self.target_revision_arn else { return false };
        [&self.test_weights, &self.production_weights].into_iter().any(|weights| {
            weights.get(target).is_some_and(|w| *w == 0.0) && weights.iter().any(|(arn, w)| arn != target && *w > 0.0)
        })
    }
}

/// A hook invocation: CodeDeploy's or Amazon ECS's.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// A CodeDeploy lifecycle event: judged, then reported.
    CodeDeploy(HookEvent),
    /// An ECS service deployment's lifecycle stage: judged, then answered.
    Ecs(EcsHookEvent),
}

impl Invocation {
    /// Parses raw bytes (CLI mode: a file or stdin).
    pub fn from_slice(raw: &[u8]) -> Result<Self, EventError> {
        Self::from_value(serde_json::from_slice(raw).map_err(EventError::NotJson)?)
    }

    /// Tells the two events apart by their keys (ECS's are camelCase, CodeDeploy's PascalCase).
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(map) = &value else {
            return Err(EventError::NotAnObject(json_type_name(&value)));
        };
        if ECS_KEYS.iter().any(|key| map.contains_key(*key)) {
            return EcsHookEvent::from_map(map).map(Self::Ecs);
        }
        HookEvent::from_value(value).map(Self::CodeDeploy)
    }

    /// The deployment's id, for log lines.
    pub fn deployment_id(&self) -> &str {
        match self {
            Self::CodeDeploy(event) => &event.deployment_id,
            Self::Ecs(event) => event.deployment_id(),
        }
    }
}

/// Keys only ECS's event has; any of them makes an event ECS's.
const ECS_KEYS: [&str; 4] = ["executionId", "lifecycleStage", "resourceArn", "executionDetails"];

impl EcsHookEvent {
    fn from_map(map: &Map<String, Value>) -> Result<Self, EventError> {
        let present = || present_keys(map);
        // The current form nests these in executionDetails; the older one has them at the top.
        let details = match map.get("executionDetails") {
            None | Some(Value::Null) => map,
            Some(Value::Object(details)) => details,
            Some(other) => {
                return Err(EventError::Malformed(format!(
                    "executionDetails must be an object, got {}",
                    json_type_name(other)
                )));
            }
        };
        let required = |field: &'static str| {
            map.get(field).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_owned).ok_or_else(
                || {
                    EventError::Malformed(format!(
                        "no usable {field} (ECS's keys are case-sensitive camelCase; keys present: {})",
                        present()
                    ))
                },
            )
        };
        let optional = |field: &str| -> Result<Option<String>, EventError> {
            match details.get(field).or_else(|| map.get(field)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(EventError::Malformed(format!(
                    "{field} must be a non-empty string, got {}",
                    json_type_name(other)
                ))),
            }
        };
        let weights = |field: &str| -> Result<BTreeMap<String, f64>, EventError> {
            match details.get(field).or_else(|| map.get(field)) {
                None | Some(Value::Null) => Ok(BTreeMap::new()),
                Some(Value::Object(weights)) => weights
                    .iter()
                    .map(|(arn, weight)| match weight.as_f64() {
                        Some(w) if (0.0..=100.0).contains(&w) => Ok((arn.clone(), w)),
                        _ => Err(EventError::Malformed(format!(
                            "{field}[{arn:?}] must be a percentage from 0 to 100, got {weight}"
                        ))),
                    })
                    .collect(),
                Some(other) => {
                    Err(EventError::Malformed(format!("{field} must be an object, got {}", json_type_name(other))))
                }
            }
        };
        let hook_details = match map.get("hookDetails") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(details)) => details.clone(),
            Some(other) => {
                return Err(EventError::Malformed(format!(
                    "hookDetails must be an object, got {}",
                    json_type_name(other)
                )));
            }
        };
        Ok(Self {
            execution_id: required("executionId")?,
            stage: required("lifecycleStage")?,
            resource_arn: required("resourceArn")?,
            service_arn: optional("serviceArn")?,
            target_revision_arn: optional("targetServiceRevisionArn")?,
            test_weights: weights("testTrafficWeights")?,
            production_weights: weights("productionTrafficWeights")?,
            hook_details,
        })
    }
}

fn present_keys(map: &Map<String, Value>) -> String {
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
}

/// Why a payload is not a usable CodeDeploy lifecycle event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The input is not JSON at all.
    #[error("event is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The input is JSON but not an object.
    #[error(
        "event must be a JSON object (CodeDeploy's DeploymentId and LifecycleEventHookExecutionId, or ECS's executionId, lifecycleStage and resourceArn), got {0}"
    )]
    NotAnObject(&'static str),
    /// A required id is absent, null, empty or not a string.
    #[error("event has no usable {field} (ids are case-sensitive PascalCase; keys present: {present})")]
    MissingField {
        /// The missing PascalCase field name.
        field: &'static str,
        /// The keys the object did have, for spotting `deploymentId`-style casing mistakes.
        present: String,
    },
    /// An ECS event member has the wrong type or an impossible value.
    #[error("ECS lifecycle-hook event: {0}")]
    Malformed(String),
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
        let present = || present_keys(map);
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

    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/r9Ukd6sTXh4hQZ";
    const GREEN: &str = "arn:aws:ecs:us-east-1:123456789012:service-revision/shop/checkout/2";
    const BLUE: &str = "arn:aws:ecs:us-east-1:123456789012:service-revision/shop/checkout/1";

    fn ecs(value: serde_json::Value) -> Result<EcsHookEvent, EventError> {
        match Invocation::from_value(value)? {
            Invocation::Ecs(event) => Ok(event),
            other => panic!("read as {other:?}"),
        }
    }

    #[test]
    fn the_ecs_event_is_read_in_its_current_form() {
        let event = ecs(serde_json::json!({
            "executionId": "a1b2", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT", "resourceArn": ARN,
            "executionDetails": {"serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/shop/checkout",
                "targetServiceRevisionArn": GREEN, "testTrafficWeights": {GREEN: 100}, "productionTrafficWeights": {}},
            "hookDetails": {"plan_parameter": "/plans/checkout"}
        }))
        .unwrap();
        assert_eq!(event.stage, "POST_TEST_TRAFFIC_SHIFT");
        assert_eq!(event.deployment_id(), "r9Ukd6sTXh4hQZ");
        assert_eq!(event.target_revision_arn.as_deref(), Some(GREEN));
        assert_eq!(event.test_weights.get(GREEN), Some(&100.0));
        assert!(event.production_weights.is_empty());
        assert_eq!(event.hook_details["plan_parameter"], "/plans/checkout");
        assert!(!event.shifts_back());
    }

    #[test]
    fn the_older_flat_form_reads_the_same() {
        let flat = ecs(serde_json::json!({
            "executionId": "a1b2", "lifecycleStage": "PRODUCTION_TRAFFIC_SHIFT", "resourceArn": ARN,
            "targetServiceRevisionArn": GREEN, "productionTrafficWeights": {GREEN: 0, BLUE: 100}
        }))
        .unwrap();
        assert_eq!(flat.target_revision_arn.as_deref(), Some(GREEN));
        assert!(flat.shifts_back(), "the target revision going to 0 is a shift back");
        assert!(flat.hook_details.is_empty());
    }

    #[test]
    fn a_malformed_ecs_event_says_what_is_wrong() {
        let missing = ecs(serde_json::json!({"executionId": "a", "resourceArn": ARN})).unwrap_err().to_string();
        assert!(missing.contains("lifecycleStage") && missing.contains("executionId, resourceArn"), "{missing}");
        let weights = ecs(serde_json::json!({"executionId": "a", "lifecycleStage": "S", "resourceArn": ARN,
            "executionDetails": {"testTrafficWeights": {GREEN: "all"}}}))
        .unwrap_err()
        .to_string();
        assert!(weights.contains("testTrafficWeights") && weights.contains("percentage"), "{weights}");
        let details = ecs(serde_json::json!({"executionId": "a", "lifecycleStage": "S", "resourceArn": ARN,
            "hookDetails": "plan"}))
        .unwrap_err()
        .to_string();
        assert!(details.contains("hookDetails must be an object"), "{details}");
    }

    #[test]
    fn codedeploys_event_is_still_codedeploys() {
        let invocation =
            Invocation::from_slice(br#"{"DeploymentId":"d-ABC","LifecycleEventHookExecutionId":"eyJ"}"#).unwrap();
        assert!(matches!(invocation, Invocation::CodeDeploy(ref e) if e.deployment_id == "d-ABC"));
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        let raw = "é".repeat(RAW_INPUT_LOG_LIMIT);
        let cut = truncate_for_log(&raw);
        assert!(cut.ends_with(&format!("({} bytes in all)", raw.len())));
    }
}
