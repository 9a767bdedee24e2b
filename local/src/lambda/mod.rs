//! The Lambda API subset (restJson1) that hooks and traffic shifting need: Invoke, GetAlias,
//! UpdateAlias. Invocations run on the runtime host; aliases with additional version weights
//! split invocations between versions.

pub(crate) mod http;
pub mod runtime;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::AliasConfig;
use crate::emulator::{Emulator, Happening};
use crate::lambda::runtime::{FunctionVersion, Invocation, InvokeOutcome};
use crate::protocol::ApiError;

/// Every operation served, as the Lambda API names them.
pub const OPERATIONS: &[&str] = &["Invoke", "GetAlias", "UpdateAlias"];

/// Lambda retries a failed asynchronous invocation twice, after about one and two minutes.
const ASYNC_RETRY_DELAYS_MINUTES: [u64; 2] = [1, 2];
/// `X-Amz-Log-Result` carries at most the last 4 KB of the log.
const LOG_TAIL_LIMIT: usize = 4096;

/// How an invocation was asked for (`X-Amz-Invocation-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Wait for the result.
    RequestResponse,
    /// Queue it; Lambda retries a failure twice.
    Event,
    /// Check access and parameters only.
    DryRun,
}

impl InvocationType {
    /// Parses the header value.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("RequestResponse") => Ok(Self::RequestResponse),
            Some("Event") => Ok(Self::Event),
            Some("DryRun") => Ok(Self::DryRun),
            Some(other) => Err(invalid_parameter(format!("X-Amz-Invocation-Type {other:?} is not valid"))),
        }
    }
}

/// A synchronous invocation's result, as the Invoke response carries it.
#[derive(Debug)]
pub struct InvokeResponse {
    /// The version that ran (`X-Amz-Executed-Version`; empty leaves the header out).
    pub executed_version: String,
    /// What the runtime host saw.
    pub invocation: Invocation,
}

impl InvokeResponse {
    /// `X-Amz-Log-Result`: the base64 of the log tail.
    pub fn log_result(&self) -> String {
        let tail = self.invocation.log_tail.as_bytes();
        let tail = &tail[tail.len().saturating_sub(LOG_TAIL_LIMIT)..];
        base64::engine::general_purpose::STANDARD.encode(tail)
    }
}

/// How an invocation named what it runs.
#[derive(Debug, Clone)]
struct Invoked {
    /// The qualifier named, if any.
    qualifier: Option<String>,
    /// Whether it is an alias.
    alias: bool,
}

fn invalid_parameter(message: String) -> ApiError {
    ApiError::client("InvalidParameterValueException", message)
}

fn not_found(message: String) -> ApiError {
    ApiError::with_status(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
}

/// Splits a FunctionName (name, `name:qualifier`, or a function ARN) into name and qualifier.
fn split_function_name(function_name: &str) -> Result<(String, Option<String>), ApiError> {
    let parts: Vec<&str> = function_name.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, qualifier] => (*name, Some(*qualifier)),
        ["arn", _, "lambda", _, _, "function", name] => (*name, None),
        ["arn", _, "lambda", _, _, "function", name, qualifier] => (*name, Some(*qualifier)),
        _ => return Err(invalid_parameter(format!("{function_name:?} is not a function name or ARN"))),
    };
    let valid = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !valid {
        return Err(invalid_parameter(format!("{name:?} is not a valid function name")));
    }
    Ok((name.to_owned(), qualifier.map(str::to_owned)))
}

impl Emulator {
    /// Resolves what an invocation runs: the version named, or one of an alias's versions by
    /// its weights. No qualifier means `$LATEST`.
    pub fn resolve(&self, function_name: &str, qualifier: Option<&str>) -> Result<FunctionVersion, ApiError> {
        let (name, from_name) = split_function_name(function_name)?;
        let qualifier = match (from_name, qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid_parameter(format!(
                    "the qualifier in the function name ({a}) does not match the Qualifier ({b})"
                )));
            }
            (a, b) => a.or(b.map(str::to_owned)).unwrap_or_else(|| "$LATEST".to_owned()),
        };
        let state = self.state();
        let function = state
            .functions
            .get(&name)
            .ok_or_else(|| not_found(format!("Function not found: {}", function_arn(&name, None))))?;
        let version = match function.aliases.get(&qualifier) {
            Some(alias) => self.pick_version(&name, &qualifier, alias),
            None => qualifier.clone(),
        };
        let process = function
            .versions
            .get(&version)
            .ok_or_else(|| not_found(format!("Function not found: {}", function_arn(&name, Some(&qualifier)))))?;
        Ok(FunctionVersion {
            function_name: name,
            version,
            process: process.clone(),
            timeout: function.timeout(),
            memory_mb: function.memory_mb,
        })
    }

    /// Smooth weighted round robin over an alias's versions, so a 10% weight means every tenth
    /// invocation, not roughly one in ten.
    fn pick_version(&self, function: &str, alias_name: &str, alias: &AliasConfig) -> String {
        let extra: f64 = alias.additional_version_weights.values().sum();
        let mut weights = vec![(alias.version.clone(), (1.0 - extra).max(0.0))];
        weights.extend(alias.additional_version_weights.iter().map(|(v, w)| (v.clone(), *w)));
        let mut rotation = self.inner.alias_rotation.lock().unwrap_or_else(|p| p.into_inner());
        let credit = rotation.entry(format!("{function}:{alias_name}")).or_default();
        credit.retain(|version, _| weights.iter().any(|(v, _)| v == version));
        let mut best: Option<(String, f64)> = None;
        for (version, weight) in &weights {
            let value = credit.entry(version.clone()).or_insert(0.0);
            *value += weight;
            if best.as_ref().is_none_or(|(_, b)| *value > *b) {
                best = Some((version.clone(), *value));
            }
        }
        let chosen = best.map_or_else(|| alias.version.clone(), |(version, _)| version);
        if let Some(value) = credit.get_mut(&chosen) {
            *value -= 1.0;
        }
        chosen
    }

    /// Invokes and waits for the result (RequestResponse).
    pub async fn invoke(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        payload: Bytes,
    ) -> Result<InvokeResponse, ApiError> {
        let function = self.resolve(function_name, qualifier)?;
        let invoked = self.invoked_as(function_name, qualifier);
        let mut response = self.run_invocation(&function, &invoked, payload, "RequestResponse", 1).await;
        if let Some(claimed) = self.faults().executed_versions.get(&function.function_name) {
            response.executed_version.clone_from(claimed);
        }
        Ok(response)
    }

    /// Queues an invocation (Event), retried twice on failure as Lambda does. Returns at once.
    pub fn invoke_async(&self, function_name: &str, qualifier: Option<&str>, payload: Bytes) -> Result<(), ApiError> {
        let function = self.resolve(function_name, qualifier)?;
        let invoked = self.invoked_as(function_name, qualifier);
        let emulator = self.clone();
        tokio::spawn(async move {
            let attempts = 1 + ASYNC_RETRY_DELAYS_MINUTES.len() as u32;
            for attempt in 1..=attempts {
                let response = emulator.run_invocation(&function, &invoked, payload.clone(), "Event", attempt).await;
                if response.invocation.outcome == InvokeOutcome::Response {
                    return;
                }
                if let Some(minutes) = ASYNC_RETRY_DELAYS_MINUTES.get(attempt as usize - 1) {
                    let delay = emulator.scale().apply(std::time::Duration::from_secs(minutes * 60));
                    tokio::time::sleep(delay).await;
                }
            }
        });
        Ok(())
    }

    /// The qualifier an invocation named (in the FunctionName or the Qualifier) and whether it is
    /// an alias: what Lambda's metrics call the `Resource`.
    fn invoked_as(&self, function_name: &str, qualifier: Option<&str>) -> Invoked {
        let (name, from_name) = split_function_name(function_name).unwrap_or_default();
        let qualifier = from_name.or(qualifier.map(str::to_owned));
        let alias = qualifier.as_ref().is_some_and(|q| {
            self.state().functions.get(&name).is_some_and(|function| function.aliases.contains_key(q))
        });
        Invoked { qualifier, alias }
    }

    async fn run_invocation(
        &self,
        function: &FunctionVersion,
        invoked: &Invoked,
        payload: Bytes,
        invocation_type: &'static str,
        attempt: u32,
    ) -> InvokeResponse {
        // Hook invocations carry their deployment id (CodeDeploy's) or ARN (an ECS service
        // deployment's); recording it ties them to the deployment.
        let deployment_id = serde_json::from_slice::<Value>(&payload).ok().as_ref().and_then(deployment_of_event);
        let invocation = self.runtime().invoke(function, payload).await;
        crate::cloudwatch::recording::lambda_invocation(
            self.metrics(),
            &function.function_name,
            invoked.qualifier.as_deref(),
            &function.version,
            invoked.alias,
            invocation.outcome != InvokeOutcome::Response,
            invocation.duration,
        );
        self.record(
            deployment_id.as_deref(),
            Happening::Invocation {
                function: function.function_name.clone(),
                version: function.version.clone(),
                invocation_type,
                attempt,
                outcome: outcome_name(&invocation.outcome),
                duration_ms: invocation.duration.as_millis() as u64,
                cold_start: invocation.cold_start,
                max_memory_kb: invocation.max_memory_kb,
            },
        );
        InvokeResponse { executed_version: function.version.clone(), invocation }
    }

    /// GetAlias.
    pub fn get_alias(&self, function_name: &str, alias: &str) -> Result<Value, ApiError> {
        let (name, _) = split_function_name(function_name)?;
        let state = self.state();
        let function = state.functions.get(&name).ok_or_else(|| not_found(format!("Function not found: {name}")))?;
        let config = function
            .aliases
            .get(alias)
            .ok_or_else(|| not_found(format!("Alias not found: {}", function_arn(&name, Some(alias)))))?;
        Ok(alias_configuration(&name, alias, config))
    }

    /// UpdateAlias: a new version and/or routing weights.
    pub fn update_alias(&self, function_name: &str, alias: &str, input: &Value) -> Result<Value, ApiError> {
        let (name, _) = split_function_name(function_name)?;
        let weights: BTreeMap<String, f64> = match input.pointer("/RoutingConfig/AdditionalVersionWeights") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| invalid_parameter(format!("RoutingConfig.AdditionalVersionWeights: {e}")))?,
        };
        if weights.values().any(|w| !(0.0..=1.0).contains(w)) || weights.values().sum::<f64>() > 1.0 {
            return Err(invalid_parameter("version weights must be between 0 and 1 and sum to at most 1".to_owned()));
        }
        let mut state = self.state();
        let function =
            state.functions.get_mut(&name).ok_or_else(|| not_found(format!("Function not found: {name}")))?;
        let current = function
            .aliases
            .get(alias)
            .ok_or_else(|| not_found(format!("Alias not found: {}", function_arn(&name, Some(alias)))))?;
        let version = input.get("FunctionVersion").and_then(Value::as_str).unwrap_or(&current.version).to_owned();
        for v in std::iter::once(&version).chain(weights.keys()) {
            if !function.versions.contains_key(v) {
                return Err(not_found(format!("Function not found: {}", function_arn(&name, Some(v)))));
            }
        }
        let updated = AliasConfig { version, additional_version_weights: weights };
        function.aliases.insert(alias.to_owned(), updated.clone());
        Ok(alias_configuration(&name, alias, &updated))
    }
}

fn function_arn(name: &str, qualifier: Option<&str>) -> String {
    let base = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    qualifier.map_or(base.clone(), |q| format!("{base}:{q}"))
}

fn alias_configuration(function: &str, alias: &str, config: &AliasConfig) -> Value {
    let mut value = json!({
        "AliasArn": function_arn(function, Some(alias)),
        "Name": alias,
        "FunctionVersion": config.version,
        "Description": "",
        "RevisionId": format!("{:x}", fingerprint(config)),
    });
    if !config.additional_version_weights.is_empty() {
        value["RoutingConfig"] = json!({"AdditionalVersionWeights": config.additional_version_weights});
    }
    value
}

fn fingerprint(config: &AliasConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    config.version.hash(&mut hasher);
    for (version, weight) in &config.additional_version_weights {
        version.hash(&mut hasher);
        weight.to_bits().hash(&mut hasher);
    }
    hasher.finish()
}

fn outcome_name(outcome: &InvokeOutcome) -> &'static str {
    match outcome {
        InvokeOutcome::Response => "response",
        InvokeOutcome::FunctionError { .. } => "function_error",
        InvokeOutcome::Timeout => "timeout",
        InvokeOutcome::Crashed => "crashed",
        InvokeOutcome::InitError => "init_error",
    }
}

fn deployment_of_event(event: &Value) -> Option<String> {
    let ecs_deployment =
        event.get("resourceArn").and_then(Value::as_str).filter(|arn| arn.contains(":service-deployment/"));
    event.get("DeploymentId").and_then(Value::as_str).or(ecs_deployment).map(str::to_owned)
}
