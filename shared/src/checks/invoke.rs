//! Invoke checks: call a Lambda function (by default the version being deployed) and judge what it
//! returns. API-Gateway-shaped results (`statusCode` + `body`) are judged like HTTP responses.

use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::Value;

use super::{ProbeContext, judge_json_body};
use crate::discover::DeploymentKind;
use crate::plan::{Expect, FunctionRef, InvokeProbe, QualifierRef};

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

pub(super) async fn measure(probe: &InvokeProbe, expect: &Expect, context: &ProbeContext) -> Result<(), String> {
    let Resolved { function, qualifier, expected_version } = resolve(probe, context)?;
    let shown = match &qualifier {
        Some(qualifier) => format!("{function}:{qualifier}"),
        None => function.clone(),
    };
    let output = context
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
    let payload = output.payload().map(Blob::as_ref).unwrap_or_default();
    match (output.function_error(), expect.function_error) {
        (Some(kind), false) => {
            let message = serde_json::from_slice::<Value>(payload)
                .ok()
                .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "no errorMessage".to_owned());
            return Err(format!("function error ({kind}): {message}"));
        }
        (None, true) => return Err("expected a function error, the function succeeded".to_owned()),
        (Some(_), true) => return Ok(()),
        (None, false) => {}
    }

    let result: Option<Value> = serde_json::from_slice(payload).ok();
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
                let body = api_gateway_body(result.as_ref())?;
                judge_json_body(schema, &body, "result body")?;
            }
        }
        None => {
            if expect.status.is_some() {
                return Err("expect.status needs an API-Gateway-shaped result with a statusCode".to_owned());
            }
            if let Some(schema) = &expect.json_schema {
                judge_json_body(schema, payload, "result")?;
            }
        }
    }
    Ok(())
}

fn api_gateway_body(result: Option<&Value>) -> Result<Vec<u8>, String> {
    let encoded = result.and_then(|v| v.get("isBase64Encoded")).and_then(Value::as_bool).unwrap_or(false);
    match result.and_then(|v| v.get("body")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if encoded => {
            aws_smithy_types::base64::decode(text).map_err(|err| format!("result body is not valid base64: {err}"))
        }
        Some(Value::String(text)) => Ok(text.clone().into_bytes()),
        // Some handlers return the body as an object; judge it as it is.
        Some(other) => Ok(other.to_string().into_bytes()),
    }
}

fn invoke_error<E, R>(shown: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if crate::is_access_denied(err.as_service_error().and_then(|e| e.code())) {
        return format!(
            "access denied calling lambda:InvokeFunction on {shown}: grant the hook's role lambda:InvokeFunction on it"
        );
    }
    format!("invoking {shown} failed: {}", DisplayErrorContext(&err))
}
