//! HTTP checks: one request, judged on status, headers, JSON body and (in the runner) latency.

use std::sync::Arc;

use reqwest::Response;

use super::{ProbeContext, error_chain, judge, judge_json_body};
use crate::plan::{Check, HeaderMatch, Probe};

pub(super) async fn measure(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    let (Probe::Http(probe), expect) = (&check.probe, &check.expect) else {
        return Err("not an HTTP check".to_owned());
    };
    let mut request = context.http.request(probe.method.clone(), probe.url.clone()).headers(probe.headers.clone());
    if let Some(body) = &probe.body {
        request = request.body(body.clone());
    }
    // Reasons are logged: leave out the URL, whose query or userinfo may carry a secret; the check's
    // name says which request this was.
    let mut response =
        request.send().await.map_err(|err| format!("request failed: {}", error_chain(&err.without_url())))?;

    let status = response.status().as_u16();
    if !expect.status_ok(status) {
        return Err(format!("status {status}, expected {}", expect.status_description()));
    }
    for (name, matcher) in &expect.headers {
        let Some(value) = response.headers().get(name) else {
            return Err(format!("header {name} missing, expected {}", shown(context, name, matcher)));
        };
        let value = value.to_str().map_err(|_| format!("header {name} is not visible ASCII"))?;
        let matches = match matcher {
            HeaderMatch::Exact(expected) => value == expected,
            HeaderMatch::Regex(regex) => regex.is_match(value),
        };
        if !matches {
            return Err(format!(
                "header {name} is {}, expected {}",
                context.redactor.show(name, value),
                shown(context, name, matcher)
            ));
        }
    }
    if expect.json_schema.is_some() {
        let body = read_capped(&mut response, probe.max_body_bytes).await?;
        drop(response);
        let budget = probe.max_body_bytes.saturating_mul(judge::PARSE_BUDGET_FACTOR);
        let check = Arc::clone(&check);
        judge::off_the_workers(&context.judging, move || match &check.expect.json_schema {
            Some(schema) => judge_json_body(schema, body, budget, "body"),
            None => Ok(()),
        })
        .await??;
    }
    Ok(())
}

fn shown(context: &ProbeContext, name: &reqwest::header::HeaderName, matcher: &HeaderMatch) -> String {
    if context.redactor.is_redacted(name) { "<redacted>".to_owned() } else { matcher.to_string() }
}

/// Reads at most `cap` bytes into one buffer that never grows past `cap`, so the memory budget's
/// "one cap per body" holds. A larger body is a failure, not a silent truncation: a truncated
/// document cannot be judged against a schema.
pub(super) async fn read_capped(response: &mut Response, cap: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("body exceeds max_body_bytes ({cap} bytes); raise the cap or drop the schema");
    let declared = response.content_length();
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) =
        response.chunk().await.map_err(|err| format!("reading body failed: {}", error_chain(&err.without_url())))?
    {
        let needed = body.len() + chunk.len();
        if needed > cap {
            return Err(too_big());
        }
        if needed > body.capacity() {
            // Doubling as Vec would, but never past the cap.
            let target = (body.capacity() * 2).clamp(needed, cap);
            body.reserve_exact(target - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
