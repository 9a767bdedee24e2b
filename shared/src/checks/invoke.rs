//! Invoke checks: call a Lambda function (by default the version being deployed) and judge what it
//! returns. API-Gateway-shaped results (`statusCode` + `body`) are judged like HTTP responses.

use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;

use std::sync::Arc;

use super::{ProbeContext, judge, judge_json_body};
use crate::discover::DeploymentKind;
use crate::plan::{Check, Expect, FunctionRef, InvokeProbe, Probe, QualifierRef};

/// A function and qualifier resolved against the deployment.
struct Resolved {
    function: String,
    qualifier: Option<String>,
    /// The version that must run, when the qualifier names one from the deployment.
    expected_version: Option<String>,
}

fn resolve(probe: &InvokeProbe, context: &ProbeContext) -> Result<Resolved, String> {
    let lambda = match context.deployment.as_deref().map(|d| &d.target) {
        Some(DeploymentKind::Lambda(lambda)) => Some(lambda),
        _ => None,
    };
    let needs_deployment = |what: &str| match context.deployment.as_deref() {
        None => format!("{what} refers to the deployment, but no deployment was discovered"),
        Some(d) => format!(
            "{what} refers to a Lambda deployment, but {} is an ECS deployment; name the function (and qualifier)",
            d.id
        ),
    };
    let function = match &probe.function {
        FunctionRef::Named(name) => name.clone(),
        FunctionRef::Target => lambda.ok_or_else(|| needs_deployment("function \"target\""))?.function_name.clone(),
    };
    let (qualifier, expected_version) = match &probe.qualifier {
        None => (None, None),
        Some(QualifierRef::Named(name)) => (Some(name.clone()), None),
        Some(QualifierRef::Target) => {
            let version = lambda.ok_or_else(|| needs_deployment("qualifier \"target\""))?.target_version.clone();
            (Some(version.clone()), Some(version))
        }
        Some(QualifierRef::Current) => {
            let version = lambda.ok_or_else(|| needs_deployment("qualifier \"current\""))?.current_version.clone();
            (Some(version.clone()), Some(version))
        }
        Some(QualifierRef::Alias) => {
            (Some(lambda.ok_or_else(|| needs_deployment("qualifier \"alias\""))?.alias.clone()), None)
        }
    };
    Ok(Resolved { function, qualifier, expected_version })
}

pub(super) async fn measure(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    let Probe::Invoke(probe) = &check.probe else {
        return Err("not an invoke check".to_owned());
    };
    let Resolved { function, qualifier, expected_version } = resolve(probe, context)?;
    let shown = match &qualifier {
        Some(qualifier) => format!("{function}:{qualifier}"),
        None => function.clone(),
    };
    let mut output = context
        .aws
        .lambda
        .invoke()
        .function_name(&function)
        .set_qualifier(qualifier)
        .payload(Blob::new(probe.payload.clone()))
        .send()
        .await
        .map_err(|err| invoke_error(&shown, err))?;

    // The hook exists to judge one version; a result from another version judges nothing.
    if let Some(expected) = &expected_version {
        match output.executed_version() {
            Some(ran) if ran == expected => {}
            Some(ran) => return Err(format!("{shown} ran version {ran}, expected {expected}")),
            None => return Err(format!("{shown} did not say which version ran (no X-Amz-Executed-Version)")),
        }
    }
    let payload = output.payload.take().map(Blob::into_inner).unwrap_or_default();
    let cap = probe.max_result_bytes;
    if payload.len() > cap {
        return Err(format!(
            "result of {} bytes exceeds max_result_bytes ({cap} bytes); raise the cap or drop the schema",
            payload.len()
        ));
    }
    let function_error = output.function_error.take();
    let check = Arc::clone(&check);
    judge::off_the_workers(&context.judging, move || {
        judge_result(&check.expect, payload, function_error, cap.saturating_mul(judge::PARSE_BUDGET_FACTOR))
    })
    .await?
}

/// Judges an invocation's result: the function error against what is expected, then an
/// API-Gateway-shaped result like an HTTP response, any other result as a JSON document.
fn judge_result(
    expect: &Expect,
    payload: Vec<u8>,
    function_error: Option<String>,
    budget: usize,
) -> Result<(), String> {
    match (function_error, expect.function_error) {
        (Some(kind), false) => {
            let message = judge::parse_within(&payload, budget)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "no errorMessage".to_owned());
            return Err(format!("function error ({kind}): {message}"));
        }
        (None, true) => return Err("expected a function error, the function succeeded".to_owned()),
        (Some(_), true) => return Ok(()),
        (None, false) => {}
    }

    // Only an object can be API-Gateway-shaped; anything else is judged as the document it is,
    // without parsing it twice.
    let looks_like_object = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut result = if looks_like_object { judge::parse_within(&payload, budget).ok() } else { None };
    // API Gateway accepts a statusCode given as a number or a numeric string; so do we.
    let api_gateway = result.as_ref().and_then(|v| v.get("statusCode")).and_then(|code| match code {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        other => other.as_u64(),
    });
    match api_gateway {
        Some(status) => {
            let status = u16::try_from(status).unwrap_or(u16::MAX);
            if !expect.status_ok(status) {
                return Err(format!("statusCode {status}, expected {}", expect.status_description()));
            }
            if let Some(schema) = &expect.json_schema {
                drop(payload);
                let body = api_gateway_body(result.as_mut())?;
                drop(result);
                judge_json_body(schema, body, budget, "result body")?;
            }
        }
        None => {
            if expect.status.is_some() {
                return Err("expect.status needs an API-Gateway-shaped result with a statusCode".to_owned());
            }
            if let Some(schema) = &expect.json_schema {
                drop(result);
                judge_json_body(schema, payload, budget, "result")?;
            }
        }
    }
    Ok(())
}

/// Takes the body out of an API-Gateway-shaped result, so the result can be dropped before the
/// body is parsed.
pub(super) fn api_gateway_body(result: Option<&mut Value>) -> Result<Vec<u8>, String> {
    let Some(result) = result else { return Ok(Vec::new()) };
    let encoded = result.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    match result.get_mut("body").map(Value::take) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if encoded => {
            aws_smithy_types::base64::decode(text).map_err(|err| format!("result body is not valid base64: {err}"))
        }
        Some(Value::String(text)) => Ok(text.into_bytes()),
        // Some handlers return the body as an object; judge it as it is.
        Some(other) => Ok(other.to_string().into_bytes()),
    }
}

pub(super) fn invoke_error<E, R>(shown: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if crate::is_access_denied(err.as_service_error().and_then(|e| e.code())) {
        return format!(
            "access denied calling lambda:InvokeFunction on {shown}: grant the hook's role lambda:InvokeFunction on it"
        );
    }
    format!("invoking {shown} failed: {}", crate::aws_http::call_failure(&err))
}
