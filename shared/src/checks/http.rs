//! HTTP checks: one request, judged on status, headers, JSON body and (in the runner) latency.

use reqwest::Response;

use super::{ProbeContext, error_chain, judge_json_body};
use crate::plan::{Expect, HeaderMatch, HttpProbe};

pub(super) async fn measure(probe: &HttpProbe, expect: &Expect, context: &ProbeContext) -> Result<(), String> {
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
    if let Some(schema) = &expect.json_schema {
        let body = read_capped(&mut response, probe.max_body_bytes).await?;
        judge_json_body(schema, &body, "body")?;
    }
    Ok(())
}

fn shown(context: &ProbeContext, name: &reqwest::header::HeaderName, matcher: &HeaderMatch) -> String {
    if context.redactor.is_redacted(name) { "<redacted>".to_owned() } else { matcher.to_string() }
}

/// Reads at most `cap` bytes. A larger body is a failure, not a silent truncation: a truncated
/// document cannot be judged against a schema.
async fn read_capped(response: &mut Response, cap: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("body exceeds max_body_bytes ({cap} bytes); raise the cap or drop the schema");
    if response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|err| format!("reading body failed: {}", error_chain(&err.without_url())))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
