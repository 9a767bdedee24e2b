//! Hook binaries in Lambda mode: the real `lambda_runtime` loop against a local Runtime API, the
//! deadline taken from `Lambda-Runtime-Deadline-Ms`, reports to a local CodeDeploy.

use std::process::Stdio;
use std::time::Duration;

use greenlight_tests::{LocalAws, ReportFault, RuntimeApi, RuntimeResult, Target, hook_binary, workspace_root};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const DEPLOYMENT: &str = "d-ECS0000042";

fn event(execution_id: &str) -> Vec<u8> {
    json!({"DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": execution_id}).to_string().into_bytes()
}

/// Starts `after-allow-test-traffic` as Lambda would, with `plan` and any `extra` environment.
fn start_function(runtime: &RuntimeApi, aws: &LocalAws, plan: &Value, extra: &[(&str, &str)]) -> Child {
    let mut command = Command::new(hook_binary("after-allow-test-traffic"));
    command
        .env_clear()
        .envs(runtime.lambda_environment("CodeDeployHook_after-allow-test-traffic"))
        .env("AWS_ENDPOINT_URL", &aws.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("GREENLIGHT_PLAN", plan.to_string())
        .envs(extra.iter().copied())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn().expect("start the hook")
}

async fn world() -> (RuntimeApi, LocalAws, Target) {
    let aws = LocalAws::start().await;
    aws.add_ecs_deployment(DEPLOYMENT, "AfterAllowTestTraffic", 2);
    (RuntimeApi::start().await, aws, Target::start().await)
}

async fn stop(mut child: Child) -> String {
    child.start_kill().expect("kill");
    let output = child.wait_with_output().await.expect("output");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_target_is_reported_before_the_lambda_deadline() {
    let (runtime, aws, target) = world().await;
    let plan =
        json!({"checks": [{"name": "hangs", "http": {"url": format!("{}/hang", target.url)}, "timeout_ms": 600000}]});
    let child = start_function(&runtime, &aws, &plan, &[]);
    let started = std::time::Instant::now();
    let request = runtime.invoke(event("exec-hang"), Duration::from_secs(4));
    let result = runtime.result(&request, Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    let logs = stop(child).await;
    let Some(RuntimeResult::Response(response)) = result else { panic!("no response: {result:?}\n{logs}") };
    assert!(elapsed < Duration::from_secs(4), "answered after the deadline: {elapsed:?}");
    assert_eq!(response["verdict"]["status"], "Failed", "{response}");
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_an_invocation_error_and_reports_nothing() {
    let (runtime, aws, _target) = world().await;
    let child = start_function(&runtime, &aws, &json!({"checks": []}), &[]);
    let request = runtime.invoke(r#"{"deploymentId": "d-ECS0000042"}"#, Duration::from_secs(5));
    let result = runtime.result(&request, Duration::from_secs(10)).await;
    let logs = stop(child).await;
    let Some(RuntimeResult::Error(error)) = result else { panic!("expected an error: {result:?}\n{logs}") };
    assert_eq!(error["errorType"], "greenlight.MalformedEvent", "{error}");
    assert!(error["errorMessage"].as_str().unwrap().contains("DeploymentId"), "{error}");
    assert!(logs.contains("raw=") && logs.contains("d-ECS0000042"), "the raw input is logged: {logs}");
    assert_eq!(aws.report_calls(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_fails_is_an_error_and_lambdas_retry_delivers_it() {
    let (runtime, aws, target) = world().await;
    aws.fail_reports(&[ReportFault::ServerError; 3]);
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let child = start_function(&runtime, &aws, &plan, &[("AWS_MAX_ATTEMPTS", "3")]);
    let first = runtime.invoke(event("exec-retry"), Duration::from_secs(20));
    let first = runtime.result(&first, Duration::from_secs(25)).await;
    // Lambda retries a failed asynchronous invocation with the same event.
    let retry = runtime.invoke(event("exec-retry"), Duration::from_secs(20));
    let retry = runtime.result(&retry, Duration::from_secs(25)).await;
    let logs = stop(child).await;
    let Some(RuntimeResult::Error(error)) = first else { panic!("expected an error: {first:?}\n{logs}") };
    assert_eq!(error["errorType"], "greenlight.ReportFailed", "{error}");
    assert!(matches!(retry, Some(RuntimeResult::Response(_))), "{retry:?}\n{logs}");
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_throttled_twice_lands_before_the_deadline_with_the_sdks_real_backoff() {
    let (runtime, aws, target) = world().await;
    aws.fail_reports(&[ReportFault::Throttle, ReportFault::Throttle]);
    // The default SDK retry backs off up to 1 s and then 2 s (jittered): 3 s, which fits in a 4 s
    // reserve. The reserve is capped at a third of the time left, so the invocation gets 12 s.
    let plan = json!({"report_reserve_ms": 4000,
        "checks": [{"name": "hangs", "http": {"url": format!("{}/hang", target.url)}, "timeout_ms": 600000}]});
    let child = start_function(&runtime, &aws, &plan, &[]);
    let started = std::time::Instant::now();
    let request = runtime.invoke(event("exec-throttled"), Duration::from_secs(12));
    let result = runtime.result(&request, Duration::from_secs(20)).await;
    let elapsed = started.elapsed();
    let logs = stop(child).await;
    assert!(matches!(result, Some(RuntimeResult::Response(_))), "{result:?}\n{logs}");
    assert!(elapsed < Duration::from_secs(12), "answered after the deadline: {elapsed:?}");
    assert_eq!(aws.report_calls(), 3);
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_plan_reports_failed_on_every_invocation() {
    let (runtime, aws, _target) = world().await;
    let child = start_function(&runtime, &aws, &json!({"checks": "none"}), &[]);
    let request = runtime.invoke(event("exec-badplan"), Duration::from_secs(5));
    let result = runtime.result(&request, Duration::from_secs(10)).await;
    let logs = stop(child).await;
    let Some(RuntimeResult::Response(response)) = result else { panic!("no response: {result:?}\n{logs}") };
    assert!(response["verdict"]["reason"].as_str().unwrap().contains("at /checks"), "{response}");
    assert_eq!(aws.accepted()[0].status, "Failed");
    assert!(runtime.init_errors().is_empty(), "a bad plan must not crash init");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_one_line_per_check_and_a_summary() {
    let (runtime, aws, target) = world().await;
    let plan = json!({"checks": [
        {"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url),
            "headers": {"authorization": "Bearer very-secret-token"}}},
        {"name": "down", "http": {"url": format!("{}/status/503", target.url)}}
    ]});
    let child = start_function(&runtime, &aws, &plan, &[("AWS_LAMBDA_LOG_FORMAT", "JSON")]);
    let request = runtime.invoke(event("exec-logs"), Duration::from_secs(10));
    let result = runtime.result(&request, Duration::from_secs(15)).await;
    let logs = stop(child).await;
    assert!(matches!(result, Some(RuntimeResult::Response(_))), "{result:?}\n{logs}");
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "no JSON log lines: {logs}");
    let checks: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "check").collect();
    assert_eq!(checks.len(), 2, "{logs}");
    let down = checks.iter().find(|l| l["fields"]["check"] == "down").expect("down line");
    assert_eq!(down["fields"]["outcome"], "failed");
    assert_eq!(down["fields"]["attempts"], 1);
    assert!(down["fields"]["reason"].as_str().unwrap().contains("status 503"));
    let summary = lines.iter().find(|l| l["fields"]["message"] == "verdict").expect("summary line");
    assert_eq!(summary["fields"]["deployment_id"], DEPLOYMENT);
    assert_eq!(summary["fields"]["verdict"], "Failed");
    assert!(!logs.contains("very-secret-token"), "a secret reached the logs");
}
