//! Every hook binary in CLI mode, as a person or a CI job runs it: a real process, its sample
//! event, a plan, and a local CodeDeploy reached through the standard AWS endpoint variables.

use std::path::Path;
use std::process::Output;

use greenlight::Hook;
use greenlight::hook::Platform;
use greenlight_tests::{FunctionAnswer, LocalAws, Target, event_file, healthy_cart, hook_binary, workspace_root};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const ECS_EVENT_DEPLOYMENT: &str = "d-ECS000001";
const LAMBDA_EVENT_DEPLOYMENT: &str = "d-LAMBDA001";

fn command(hook: &str, aws: &LocalAws, plan: Option<&Value>) -> Command {
    let mut command = Command::new(hook_binary(hook));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &aws.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(workspace_root());
    if let Some(plan) = plan {
        command.env("GREENLIGHT_PLAN", plan.to_string());
    }
    command
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A local CodeDeploy where the sample event's deployment is in `hook`'s own event.
async fn deployment_for(hook: Hook) -> LocalAws {
    let aws = LocalAws::start().await;
    match hook.platform {
        Platform::Ecs => aws.add_ecs_deployment(ECS_EVENT_DEPLOYMENT, hook.event.as_str(), 2),
        Platform::Lambda => {
            aws.add_lambda_deployment(LAMBDA_EVENT_DEPLOYMENT, "checkout", "4", "5", hook.event.as_str())
        }
    }
    aws.add_function(
        "checkout",
        "5",
        FunctionAnswer { payload: healthy_cart(), function_error: None, executed_version: "5".into() },
    );
    aws
}

/// Runs the smoke hook (`after-allow-test-traffic`) on its sample event with `args` and `envs`.
async fn smoke_run(aws: &LocalAws, plan: Option<&Value>, args: &[&str], envs: &[(&str, &str)]) -> Output {
    command("after-allow-test-traffic", aws, plan)
        .args(args)
        .envs(envs.iter().copied())
        .arg("--event")
        .arg(event_file("after-allow-test-traffic"))
        .output()
        .await
        .expect("run the smoke hook")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hook_binary_judges_and_reports_its_sample_event() {
    let target = Target::start().await;
    for hook in Hook::ALL {
        let aws = deployment_for(hook).await;
        let mut checks = vec![json!({"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)},
            "expect": {"json_schema_file": "examples/plans/schemas/checkout-cart.json"}})];
        if hook.platform == Platform::Lambda {
            checks.push(json!({"name": "new version", "invoke": {}, "expect": {"json_schema": {"required": ["total_minor_units"]}}}));
        }
        let plan = json!({"checks": checks});
        let output =
            command(hook.name, &aws, Some(&plan)).arg("--event").arg(event_file(hook.name)).output().await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{}: {}", hook.name, text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("verdict: Succeeded") && stdout.contains("report: accepted"), "{}", text(&output));
        let accepted = aws.accepted();
        assert_eq!(accepted.len(), 1, "{}", hook.name);
        assert_eq!(accepted[0].status, "Succeeded");
        let event: Value = serde_json::from_slice(&std::fs::read(event_file(hook.name)).unwrap()).unwrap();
        assert_eq!(accepted[0].execution_id, event["LifecycleEventHookExecutionId"].as_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_gate_exits_1_and_reports_failed() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "down", "http": {"url": format!("{}/status/503", target.url)}}]});
    let output = smoke_run(&aws, Some(&plan), &[], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL"), "{}", text(&output));
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_carries_the_verdict_and_each_check() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "renamed", "http": {"url": format!("{}/v2/cart/renamed-back", target.url)},
        "expect": {"json_schema_file": "examples/plans/schemas/checkout-cart.json"}}]});
    let output = smoke_run(&aws, Some(&plan), &["--format", "json"], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    assert_eq!(json["verdict"]["status"], "Failed");
    assert_eq!(json["report"], "accepted");
    assert_eq!(json["deployment_id"], ECS_EVENT_DEPLOYMENT);
    assert!(json["verdict"]["checks"][0]["reason"].as_str().unwrap().contains("/total_minor_units is missing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_are_usage_errors_and_report_nothing() {
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": []});
    let cases = [
        ("wrong-case", "no usable DeploymentId"),
        ("missing-execution-id", "no usable LifecycleEventHookExecutionId"),
        ("empty-deployment-id", "no usable DeploymentId"),
        ("not-json", "event is not JSON"),
        ("not-an-object", "got an array"),
    ];
    for (file, message) in cases {
        let path = Path::new("events/malformed").join(format!("{file}.json"));
        let output =
            command("after-allow-test-traffic", &aws, Some(&plan)).arg("--event").arg(&path).output().await.unwrap();
        assert_eq!(output.status.code(), Some(2), "{file}: {}", text(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains(message), "{file}: {}", text(&output));
    }
    assert_eq!(aws.report_calls(), 0, "nothing to report to");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_plan_reports_failed_then_exits_2() {
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "x", "http": {"url": "http://127.0.0.1:1"}, "attempts": 0}]});
    let output = smoke_run(&aws, Some(&plan), &[], &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at /checks/0/attempts"), "{}", text(&output));
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_plan_at_all_is_a_clear_error_and_fails_closed() {
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let output = smoke_run(&aws, None, &[], &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("set GREENLIGHT_PLAN"), "{}", text(&output));
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reads_the_event_from_stdin_and_reports_nothing() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::PRE_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "down", "http": {"url": format!("{}/status/503", target.url)}}]});
    let mut child = command("pre-traffic", &aws, Some(&plan))
        .args(["--dry-run", "--event", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let event = std::fs::read(event_file("pre-traffic")).unwrap();
    child.stdin.take().unwrap().write_all(&event).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("report: skipped (dry run)"), "{}", text(&output));
    assert_eq!(aws.report_calls(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    let aws = LocalAws::start().await;
    let output = command("post-traffic", &aws, None).arg("--format").arg("yaml").output().await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = command("post-traffic", &aws, None)
        .args(["--skip-discovery", "--event"])
        .arg(event_file("post-traffic"))
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "--skip-discovery needs --dry-run: {}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--dry-run"), "{}", text(&output));
    assert_eq!(aws.report_calls(), 0);
    let output = command("post-traffic", &aws, None).arg("--help").output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Lambda AfterAllowTraffic"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_land_still_prints_the_verdict_and_exits_1() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    aws.fail_reports(&[greenlight_tests::ReportFault::ServerError; 3]);
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let output = smoke_run(
        &aws,
        Some(&plan),
        &["--format", "json"],
        &[("AWS_RETRY_MODE", "standard"), ("AWS_MAX_ATTEMPTS", "3")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    assert_eq!(json["verdict"]["status"], "Succeeded");
    assert_eq!(json["report"], "not_delivered");
    assert!(json["report_error"].as_str().unwrap().contains("InternalFailure"), "{}", text(&output));
    assert!(aws.accepted().is_empty());
}
