//! Compare checks: the same request to the baseline and the candidate, judged by how the answers
//! differ ([`diff`]), so a contract break such as `total_cents` becoming `total_minor_units` is
//! caught with no schema written.
//!
//! Over HTTP the baseline is the production listener (blue) and the candidate the test listener
//! (green), unless the check names other base URLs. For Lambda, the deployment's current and
//! target versions are invoked with the same payload; an API-Gateway-shaped result is compared
//! by its status, content type and body. In values mode the baseline answers twice, and what
//! those two answers disagree on is noise.

use std::sync::Arc;

use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;

use super::{ProbeContext, error_chain, invoke, judge};
use crate::discover::DeploymentKind;
use crate::plan::compare::{CompareMode, CompareProbe, CompareTarget};
use crate::plan::{Check, Probe};

mod diff;

use diff::{Answer, Body};

/// How many differences a reason lists before counting the rest.
const SHOWN: usize = 5;

pub(super) async fn measure(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    let Probe::Compare(probe) = &check.probe else {
        return Err("not a compare check".to_owned());
    };
    let twice = matches!(probe.mode, CompareMode::Values { .. });
    let (baseline, second, candidate) = match &probe.target {
        CompareTarget::Http { baseline, candidate, .. } => {
            let ask = |url, side| http_answer(probe, url, side, context);
            if twice {
                let (b, s, c) =
                    tokio::join!(ask(baseline, "baseline"), ask(baseline, "baseline"), ask(candidate, "candidate"));
                (b?, Some(s?), c?)
            } else {
                let (b, c) = tokio::join!(ask(baseline, "baseline"), ask(candidate, "candidate"));
                (b?, None, c?)
            }
        }
        CompareTarget::Invoke { payload } => {
            let Some(DeploymentKind::Lambda(lambda)) = context.deployment.as_deref().map(|d| &d.target) else {
                return Err("an invoke comparison needs a Lambda deployment's current and target versions".to_owned());
            };
            let ask = |version: &str, side| {
                invoke_answer(probe, &lambda.function_name, version.to_owned(), payload, side, context)
            };
            if twice {
                let current = &lambda.current_version;
                let (b, s, c) = tokio::join!(
                    ask(current, "baseline"),
                    ask(current, "baseline"),
                    ask(&lambda.target_version, "candidate")
                );
                (b?, Some(s?), c?)
            } else {
                let (b, c) =
                    tokio::join!(ask(&lambda.current_version, "baseline"), ask(&lambda.target_version, "candidate"));
                (b?, None, c?)
            }
        }
    };
    // An error page on both sides would compare equal and pass, and a baseline that errs is no
    // baseline: the path must be one production serves.
    if !(200..400).contains(&baseline.status) {
        return Err(format!(
            "the baseline answered status {}, so there is nothing to compare the candidate with; compare a request the baseline serves",
            baseline.status
        ));
    }
    let check = Arc::clone(&check);
    let found = judge::off_the_workers(&context.judging, move || {
        let Probe::Compare(probe) = &check.probe else { return Ok::<_, String>(Vec::new()) };
        let parse = |answer: Answer, side: &str| parsed(answer, probe.max_body_bytes, side);
        let (baseline, candidate) =
            (parse(baseline, "the baseline's body")?, parse(candidate, "the candidate's body")?);
        let second = second.map(|s| parse(s, "the baseline's second body")).transpose()?;
        Ok(diff::differences(probe, &baseline, second.as_ref(), &candidate))
    })
    .await??;
    if !found.iter().any(|d| d.fails) {
        return Ok(());
    }
    let mut shown: Vec<String> = found.iter().take(SHOWN).map(ToString::to_string).collect();
    if found.len() > SHOWN {
        shown.push(format!("and {} more", found.len() - SHOWN));
    }
    Err(format!("the candidate differs from the baseline: {}", shown.join("; ")))
}

/// An answer with its body parsed when it is JSON (bodies arrive as bytes in `Body::Other`). A
/// JSON body too dense to parse within the memory budget fails the check: compared as bytes, two
/// such bodies could only pass or fail without knowing why.
fn parsed(mut answer: Answer, cap: usize, what: &str) -> Result<Answer, String> {
    if let Body::Other(bytes) = &answer.body {
        let json_typed = answer.content_type.as_deref().is_none_or(|t| t == "application/json" || t.ends_with("+json"));
        let budget = cap.saturating_mul(judge::PARSE_BUDGET_FACTOR);
        match json_typed.then(|| judge::parse_within(bytes, budget)) {
            Some(Ok(value)) => answer.body = Body::Json(value),
            Some(Err(judge::ParseError::OverBudget { budget })) => {
                return Err(super::too_dense(what, bytes.len(), budget));
            }
            Some(Err(judge::ParseError::NotJson(_))) | None => {}
        }
    }
    Ok(answer)
}

fn media_type(value: Option<&str>) -> Option<String> {
    value.map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()).filter(|v| !v.is_empty())
}

async fn http_answer(
    probe: &CompareProbe,
    url: &reqwest::Url,
    side: &str,
    context: &ProbeContext,
) -> Result<Answer, String> {
    let CompareTarget::Http { method, headers, body, .. } = &probe.target else {
        return Err("not an HTTP comparison".to_owned());
    };
    let mut request = context.http.request(method.clone(), url.clone()).headers(headers.clone());
    if let Some(body) = body {
        request = request.body(body.clone());
    }
    // As in HTTP checks, the URL stays out of reasons: its query may carry a secret.
    let mut response =
        request.send().await.map_err(|err| format!("{side}: request failed: {}", error_chain(&err.without_url())))?;
    let status = response.status().as_u16();
    let content_type = media_type(response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    let bytes =
        super::http::read_capped(&mut response, probe.max_body_bytes).await.map_err(|err| format!("{side}: {err}"))?;
    Ok(Answer { status, content_type, body: Body::Other(bytes) })
}

async fn invoke_answer(
    probe: &CompareProbe,
    function: &str,
    version: String,
    payload: &[u8],
    side: &str,
    context: &ProbeContext,
) -> Result<Answer, String> {
    let shown = format!("{function}:{version}");
    let mut output = context
        .aws
        .lambda
        .invoke()
        .function_name(function)
        .qualifier(version)
        .payload(Blob::new(payload.to_vec()))
        .send()
        .await
        .map_err(|err| format!("{side}: {}", invoke::invoke_error(&shown, err)))?;
    if let Some(error) = output.function_error() {
        return Err(format!("{side}: {shown} failed with a function error ({error})"));
    }
    let result = output.payload.take().map(Blob::into_inner).unwrap_or_default();
    if result.len() > probe.max_body_bytes {
        return Err(format!(
            "{side}: a result of {} bytes exceeds max_body_bytes ({})",
            result.len(),
            probe.max_body_bytes
        ));
    }
    let mut value: Value = match serde_json::from_slice(&result) {
        Ok(value) => value,
        Err(_) => return Ok(Answer { status: 200, content_type: None, body: Body::Other(result) }),
    };
    let Some(status) = value.get("statusCode").and_then(Value::as_u64) else {
        return Ok(Answer { status: 200, content_type: Some("application/json".to_owned()), body: Body::Json(value) });
    };
    let header = |name: &str| {
        value.get("headers").and_then(Value::as_object).and_then(|headers| {
            headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
        })
    };
    let content_type = media_type(header("content-type"));
    let body = invoke::api_gateway_body(Some(&mut value)).map_err(|err| format!("{side}: {err}"))?;
    Ok(Answer { status: status as u16, content_type, body: Body::Other(body) })
}
