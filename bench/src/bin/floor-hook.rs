//! The floor: the least a hook can do, with nothing but the standard library. Plain HTTP/1.1 over
//! loopback, one connection per request, no TLS, no signing, no JSON parser, no async runtime:
//! the Runtime API's `next`, the two discovery calls, one GET of the target, the report, the
//! Runtime API's `response`. No real hook should be this bare; the bench shows greenlight's cold
//! start as a multiple of it, which is what the rest of the work has to justify.
//!
//! Environment: `AWS_LAMBDA_RUNTIME_API`, `AWS_ENDPOINT_URL_CODEDEPLOY` (or `AWS_ENDPOINT_URL`),
//! `TARGET_URL` (an `http://` URL).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

fn main() -> ExitCode {
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floor-hook: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), String> {
    let runtime = env("AWS_LAMBDA_RUNTIME_API")?;
    let codedeploy = env("AWS_ENDPOINT_URL_CODEDEPLOY").or_else(|_| env("AWS_ENDPOINT_URL"))?;
    let codedeploy = host_of(&codedeploy)?;
    let target_url = env("TARGET_URL")?;
    let (target_host, target_path) = split_url(&target_url)?;
    loop {
        let next = request(&runtime, "GET", "/2018-06-01/runtime/invocation/next", &[], "")?;
        let request_id = next.header("lambda-runtime-aws-request-id").ok_or("next: no request id")?.to_owned();
        let deployment_id = string_after(&next.body, "DeploymentId").ok_or("event: no DeploymentId")?;
        let execution_id = string_after(&next.body, "LifecycleEventHookExecutionId")
            .ok_or("event: no LifecycleEventHookExecutionId")?;

        let targets =
            codedeploy_call(&codedeploy, "ListDeploymentTargets", &format!(r#"{{"deploymentId":"{deployment_id}"}}"#))?;
        let target_id = string_after(&targets, "targetIds").ok_or("ListDeploymentTargets: no target")?;
        codedeploy_call(
            &codedeploy,
            "GetDeploymentTarget",
            &format!(r#"{{"deploymentId":"{deployment_id}","targetId":"{target_id}"}}"#),
        )?;
        let checked = request(target_host, "GET", target_path, &[], "")?;
        let status = if checked.status == 200 { "Succeeded" } else { "Failed" };
        codedeploy_call(
            &codedeploy,
            "PutLifecycleEventHookExecutionStatus",
            &format!(
                r#"{{"deploymentId":"{deployment_id}","lifecycleEventHookExecutionId":"{execution_id}","status":"{status}"}}"#
            ),
        )?;
        let path = format!("/2018-06-01/runtime/invocation/{request_id}/response");
        request(&runtime, "POST", &path, &[], &format!(r#"{{"status":"{status}"}}"#))?;
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn host_of(url: &str) -> Result<String, String> {
    split_url(url).map(|(host, _)| host.to_owned())
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs"))?;
    Ok(match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    })
}

fn codedeploy_call(host: &str, operation: &str, body: &str) -> Result<String, String> {
    let target = format!("CodeDeploy_20141006.{operation}");
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
    let response = request(host, "POST", "/", &headers, body)?;
    if response.status != 200 {
        return Err(format!("{operation}: HTTP {}: {}", response.status, response.body));
    }
    Ok(response.body)
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One request on its own connection, read until the server closes it.
fn request(host: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Result<Response, String> {
    let mut stream = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("write {host}: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("read {host}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{host}: no end of headers"))?;
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("{host}: no status"))?;
    let response = Response { status, head: head.to_owned(), body: body.to_owned() };
    let body = if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        unchunk(&response.body)
    } else {
        response.body.clone()
    };
    Ok(Response { body, ..response })
}

/// The payload of a chunked body.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The first JSON string after `"key"`: its value, or the first element of its array value.
fn string_after(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('[').map_or(rest, str::trim_start);
    let rest = rest.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}
