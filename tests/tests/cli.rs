//! Every hook binary in CLI mode, as a person or a CI job runs it: a real process, its sample
//! event, a plan, and a local CodeDeploy reached through the standard AWS endpoint variables.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use codedeploy_local::faults::{Faults, ReportFault};
use greenlight::Hook;
use greenlight::hook::Platform;
use greenlight_tests::deployment::{Answer, Held, HeldTarget, empty, scripted};
use greenlight_tests::targets::{Target, healthy_cart};
use greenlight_tests::{event_file, hook_binary, workspace_root};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn command(hook: &str, endpoint: &str, plan: Option<&Value>) -> Command {
    let mut command = Command::new(hook_binary(hook));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
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

/// A local CodeDeploy whose deployment is held in `hook`'s own event; version 5 of a Lambda
/// deployment's function answers the healthy cart.
async fn deployment_for(hook: Hook) -> Held {
    let target = match hook.platform {
        Platform::Ecs => HeldTarget::Ecs,
        Platform::Lambda => HeldTarget::Lambda {
            current: scripted(Answer::Payload(json!({"ok": true}))),
            target: scripted(Answer::Payload(healthy_cart())),
        },
    };
    Held::start(target, hook.event.as_str(), BTreeMap::new(), Faults::default()).await
}

fn fail_reports(aws: &Held) {
    aws.set_faults(Faults { report_failures: [ReportFault::ServerError; 3].into(), ..Faults::default() });
}

/// Runs the smoke hook (`after-allow-test-traffic`) on its sample event with `args` and `envs`.
async fn smoke_run(aws: &Held, plan: Option<&Value>, args: &[&str], envs: &[(&str, &str)]) -> Output {
    command("after-allow-test-traffic", &aws.endpoint(), plan)
        .args(args)
        .envs(envs.iter().copied())
        .arg("--event")
        .arg(aws.event_file("after-allow-test-traffic"))
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
        let output = command(hook.name, &aws.endpoint(), Some(&plan))
            .arg("--event")
            .arg(aws.event_file(hook.name))
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}: {}", hook.name, text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("verdict: Succeeded") && stdout.contains("report: accepted"), "{}", text(&output));
        let accepted = aws.accepted();
        assert_eq!(accepted.len(), 1, "{}", hook.name);
        assert_eq!(accepted[0].status, "Succeeded");
        let event: Value = serde_json::from_slice(&std::fs::read(aws.event_file(hook.name)).unwrap()).unwrap();
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
    assert_eq!(json["deployment_id"], aws.deployment_id);
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
        let output = command("after-allow-test-traffic", &aws.endpoint(), Some(&plan))
            .arg("--event")
            .arg(&path)
            .output()
            .await
            .unwrap();
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
    let mut child = command("pre-traffic", &aws.endpoint(), Some(&plan))
        .args(["--dry-run", "--event", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let event = std::fs::read(aws.event_file("pre-traffic")).unwrap();
    child.stdin.take().unwrap().write_all(&event).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("report: skipped (dry run)"), "{}", text(&output));
    assert_eq!(aws.report_calls(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    let aws = empty().await;
    let output = command("post-traffic", &aws.endpoint(), None).arg("--format").arg("yaml").output().await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = command("post-traffic", &aws.endpoint(), None)
        .args(["--skip-discovery", "--event"])
        .arg(event_file("post-traffic"))
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "--skip-discovery needs --dry-run: {}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--dry-run"), "{}", text(&output));
    assert!(aws.emulator.calls().is_empty(), "{:?}", aws.emulator.calls());
    let output = command("post-traffic", &aws.endpoint(), None).arg("--help").output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Lambda AfterAllowTraffic"), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_land_still_prints_the_verdict_and_exits_1() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    fail_reports(&aws);
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

// ---- evidence: --junit and --report ------------------------------------------------------------

/// Reads a JUnit file with junitparser, as CI test reporters read one, and says what it found.
const JUNIT_SUMMARY: &str = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = [{"classname": case.classname, "name": case.name, "time": case.time,
              "results": [{"kind": type(r).__name__, "message": r.message} for r in case.result]}
             for case in suite]
    suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                   "errors": suite.errors, "skipped": suite.skipped, "time": suite.time,
                   "properties": {p.name: p.value for p in suite.properties()}, "cases": cases})
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "suites": suites}))
"#;

fn junit_summary(path: &Path) -> Value {
    let output = std::process::Command::new(greenlight_tests::python::venv_python())
        .args(["-c", JUNIT_SUMMARY])
        .arg(path)
        .output()
        .expect("run junitparser");
    assert!(output.status.success(), "junitparser cannot read {}: {}", path.display(), text(&output));
    serde_json::from_slice(&output.stdout).expect("junitparser summary")
}

/// The only suite of a JUnit summary.
fn the_suite(summary: &Value) -> &Value {
    let suites = summary["suites"].as_array().expect("suites");
    assert_eq!(suites.len(), 1, "one testsuite per run: {summary}");
    &suites[0]
}

fn case<'a>(suite: &'a Value, name: &str) -> &'a Value {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {suite}"))
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("greenlight-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_has_a_case_per_check_with_failures_and_dry_run_skips() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let odd_name = "cart <v2> & \"total\"\u{1}";
    let plan = json!({"checks": [
        {"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}},
        {"name": "down", "http": {"url": format!("{}/status/503", target.url)}},
        {"name": "shadow", "dry_run": true, "http": {"url": format!("{}/not-json", target.url)}, "expect": {"json_schema": {}}},
        {"name": odd_name, "http": {"url": format!("{}/v2/cart/healthy", target.url)}},
    ]});
    let dir = scratch("cases");
    let (junit, report) = (dir.join("junit.xml"), dir.join("outcome.json"));
    let output = smoke_run(
        &aws,
        Some(&plan),
        &["--format", "json", "--junit", path_arg(&junit), "--report", path_arg(&report)],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    let summary = junit_summary(&junit);
    let suite = the_suite(&summary);
    assert_eq!(suite["name"], "after-allow-test-traffic", "{suite}");
    assert_eq!(
        (&suite["tests"], &suite["failures"], &suite["skipped"], &suite["errors"]),
        (&json!(4), &json!(1), &json!(1), &json!(0))
    );
    assert!(suite["time"].as_f64().unwrap() > 0.0, "{suite}");
    assert_eq!(suite["properties"]["verdict"], "Failed");
    assert_eq!(suite["properties"]["deployment_id"], aws.deployment_id);
    assert_eq!(suite["properties"]["report"], "accepted");
    for case in suite["cases"].as_array().unwrap() {
        assert_eq!(case["classname"], "after-allow-test-traffic", "{case}");
        assert!(case["time"].as_f64().is_some_and(|t| t >= 0.0), "{case}");
    }
    assert_eq!(case(suite, "cart")["results"], json!([]));
    let down = &case(suite, "down")["results"];
    assert_eq!(down[0]["kind"], "Failure", "{down}");
    assert!(down[0]["message"].as_str().unwrap().contains("status 503"), "{down}");
    let shadow = &case(suite, "shadow")["results"];
    assert_eq!(shadow[0]["kind"], "Skipped", "{shadow}");
    assert!(shadow[0]["message"].as_str().unwrap().starts_with("dry run: failed: "), "{shadow}");
    // Markup survives escaping; the one character XML cannot carry at all is replaced.
    assert_eq!(case(suite, "cart <v2> & \"total\"\u{FFFD}")["results"], json!([]));
    assert!(suite["cases"].as_array().unwrap().iter().all(|c| c["name"] != "(verdict)"), "the failed check shows why");

    let stdout: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).expect("--report is JSON");
    assert_eq!(written, stdout, "--report writes the document --format json prints");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_cannot_judge_fails_its_verdict_case() {
    let dir = scratch("cannot-judge");
    let (junit, report) = (dir.join("junit.xml"), dir.join("outcome.json"));
    let files = ["--junit", path_arg(&junit), "--report", path_arg(&report)];
    let verdict_failure = |expected_tests: u64| {
        let summary = junit_summary(&junit);
        let suite = the_suite(&summary).clone();
        assert_eq!((&suite["tests"], &suite["failures"]), (&json!(expected_tests), &json!(1)), "{suite}");
        let verdict = case(&suite, "(verdict)").clone();
        assert_eq!(verdict["classname"], "after-allow-test-traffic");
        assert_eq!(verdict["results"][0]["kind"], "Failure", "{verdict}");
        verdict["results"][0]["message"].as_str().unwrap().to_owned()
    };

    // A bad plan: exit 2, Failed reported, and CI sees it fail.
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "x", "http": {"url": "http://127.0.0.1:1"}, "attempts": 0}]});
    let output = smoke_run(&aws, Some(&plan), &files, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(verdict_failure(1).contains("at /checks/0/attempts"));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["verdict"]["status"], "Failed");

    // A deployment CodeDeploy does not know: discovery fails before any check runs.
    let empty = empty().await;
    let plan = json!({"checks": [{"name": "never runs", "http": {"url": "http://127.0.0.1:1"}}]});
    let output = command("after-allow-test-traffic", &empty.endpoint(), Some(&plan))
        .args(files)
        .arg("--event")
        .arg(event_file("after-allow-test-traffic"))
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(verdict_failure(1).contains("discovery"));

    // Every check a dry run: nothing judged, nothing failed, and still not green. The bad plan
    // completed the first deployment's event, so this one gets a deployment of its own.
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "dry_run": true, "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let output = smoke_run(&aws, Some(&plan), &files, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(verdict_failure(2).contains("nothing was judged"));

    // An event that cannot be read stops before the gate: the JUnit still fails, the JSON says why.
    let output = command("after-allow-test-traffic", &aws.endpoint(), Some(&plan))
        .args(files)
        .args(["--event", "events/malformed/not-json.json"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(verdict_failure(1).contains("event is not JSON"));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(written["error"].as_str().unwrap().contains("event is not JSON"), "{written}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_land_fails_the_junit_although_every_check_passed() {
    let target = Target::start().await;
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    fail_reports(&aws);
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let dir = scratch("not-delivered");
    let (junit, report) = (dir.join("junit.xml"), dir.join("outcome.json"));
    let output = smoke_run(
        &aws,
        Some(&plan),
        &["--junit", path_arg(&junit), "--report", path_arg(&report)],
        &[("AWS_RETRY_MODE", "standard"), ("AWS_MAX_ATTEMPTS", "3")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let summary = junit_summary(&junit);
    let suite = the_suite(&summary);
    assert_eq!(case(suite, "cart")["results"], json!([]));
    let message = case(suite, "(verdict)")["results"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("report not delivered: ") && message.contains("InternalFailure"), "{message}");
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["report"], "not_delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_files_that_cannot_be_written_stop_the_run_before_it_reports() {
    let aws = deployment_for(Hook::AFTER_ALLOW_TEST_TRAFFIC).await;
    let plan = json!({"checks": [{"name": "x", "http": {"url": "http://127.0.0.1:1"}}]});
    let missing = scratch("unwritable").join("no-such-dir").join("out");
    for (flag, what) in [("--junit", "JUnit report"), ("--report", "JSON report")] {
        let output = smoke_run(&aws, Some(&plan), &[flag, path_arg(&missing)], &[]).await;
        assert_eq!(output.status.code(), Some(2), "{flag}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("cannot write the {what} to {}", missing.display())), "{}", text(&output));
    }
    assert_eq!(aws.report_calls(), 0, "an unwritable report path is caught before CodeDeploy hears anything");
}

// ---- the GitHub Actions example ----------------------------------------------------------------

fn workflow_step<'a>(steps: &'a [Value], pick: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    steps.iter().find(|s| pick(s)).unwrap_or_else(|| panic!("the workflow has no step that {what}"))
}

fn run_script(step: &Value) -> &str {
    step["run"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_github_actions_example_runs_real_flags_and_publishes_the_junit_it_writes() {
    let raw = std::fs::read_to_string(workspace_root().join("examples/github-actions/smoke.yml")).unwrap();
    let workflow: Value = yaml_serde::from_str(&raw).expect("the workflow is YAML");
    let jobs = workflow["jobs"].as_object().expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let steps = jobs.values().next().unwrap()["steps"].as_array().expect("steps");

    // The hook step is one plain command (no shell syntax), so its words are exactly the argv.
    let hook_step = workflow_step(
        steps,
        |s| Hook::ALL.iter().any(|h| run_script(s).starts_with(&format!("{} ", h.name))),
        "runs a hook",
    );
    let script = run_script(hook_step);
    assert!(!script.contains(['$', '|', '&', ';', '<', '>', '\'', '"', '\\']), "{script}");
    let words: Vec<&str> = script.split_whitespace().collect();
    let (hook, args) = (words[0], &words[1..]);
    let value_of = |flag: &str| {
        let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("{flag} missing: {script}"));
        args[at + 1]
    };
    for flag in ["--dry-run", "--skip-discovery"] {
        assert!(args.contains(&flag), "needs no AWS account, so {flag}: {script}");
    }
    let build = workflow_step(steps, |s| run_script(s).contains("cargo build"), "builds");
    assert!(run_script(build).contains(&format!("-p {hook}")), "the hook is built: {}", run_script(build));

    // The report action publishes the file the hook writes, and also when the gate failed.
    let publish = workflow_step(
        steps,
        |s| s["uses"].as_str().is_some_and(|u| u.starts_with("mikepenz/action-junit-report@")),
        "publishes the JUnit",
    );
    assert_eq!(publish["with"]["report_paths"], value_of("--junit"));
    let condition = publish["if"].as_str().unwrap_or("");
    assert!(
        condition.contains("always()") || condition.contains("!cancelled()"),
        "runs after a failed step: {condition:?}"
    );

    // The plan points at the service the workflow starts.
    let start = workflow_step(steps, |s| run_script(s).starts_with("checkout-service "), "starts the service");
    let service: Vec<&str> =
        run_script(start).lines().next().unwrap().split(" >").next().unwrap().split_whitespace().collect();
    let port_at = service.iter().position(|w| *w == "--port").expect("--port") + 1;
    let plan_path = workspace_root().join(value_of("--plan"));
    let plan = std::fs::read_to_string(&plan_path).unwrap();
    let authority = format!("127.0.0.1:{}", service[port_at]);
    assert!(plan.contains(&authority), "{} does not point at {authority}", plan_path.display());

    // Run both as the workflow does: the service on a free port instead, the plan moved to it, and
    // the reports written to a scratch directory instead of the checkout.
    let mut service_args: Vec<String> = service[1..].iter().map(|w| (*w).to_owned()).collect();
    service_args[port_at - 1] = "0".to_owned();
    let mut server = Command::new(hook_binary("checkout-service"))
        .args(&service_args)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start checkout-service");
    let mut banner = String::new();
    let mut stderr = tokio::io::BufReader::new(server.stderr.take().unwrap());
    tokio::io::AsyncBufReadExt::read_line(&mut stderr, &mut banner).await.unwrap();
    let listening = banner.trim().rsplit(' ').next().expect("address").to_owned();
    let dir = scratch("workflow");
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    for schema in std::fs::read_dir(plan_path.parent().unwrap().join("schemas")).unwrap() {
        let schema = schema.unwrap().path();
        std::fs::copy(&schema, dir.join("schemas").join(schema.file_name().unwrap())).unwrap();
    }
    let moved_plan = dir.join("plan.json");
    std::fs::write(&moved_plan, plan.replace(&authority, &listening)).unwrap();
    let moved: Vec<std::path::PathBuf> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| match i.checked_sub(1).map(|prev| args[prev]) {
            Some("--plan") => moved_plan.clone(),
            Some("--junit" | "--report") => dir.join(arg),
            _ => std::path::PathBuf::from(arg),
        })
        .collect();
    let aws = empty().await;
    let output = command(hook, &aws.endpoint(), None).args(&moved).output().await.unwrap();
    let _ = server.start_kill();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(aws.emulator.calls().is_empty(), "no AWS call: {:?}", aws.emulator.calls());

    let summary = junit_summary(&dir.join(value_of("--junit")));
    let suite = the_suite(&summary);
    assert_eq!((&suite["tests"], &suite["failures"]), (&json!(2), &json!(0)), "{suite}");
    assert_eq!(suite["name"], hook);
    let outcome: Value = serde_json::from_slice(&std::fs::read(dir.join(value_of("--report"))).unwrap()).unwrap();
    assert_eq!(outcome["verdict"]["status"], "Succeeded", "{outcome}");
}

/// Runs `hook` on its ECS-native sample event with `plan` (as --plan), discovery skipped: ECS's
/// event carries everything but the deployment's description, so the plan and the answer are
/// what is rehearsed.
async fn ecs_native_rehearsal(hook: &str, plan: &Value) -> Output {
    let dir = scratch(&format!("ecs-native-{hook}"));
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    command(hook, "http://127.0.0.1:9", None)
        .args(["--format", "json", "--skip-discovery", "--plan", path_arg(&plan_file), "--event"])
        .arg(workspace_root().join("events/ecs-native").join(format!("{hook}.json")))
        .output()
        .await
        .expect("run the hook")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hook_answers_its_ecs_native_sample_event() {
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    for hook in Hook::ALL {
        let output = ecs_native_rehearsal(hook.name, &plan).await;
        assert_eq!(output.status.code(), Some(0), "{}: {}", hook.name, text(&output));
        let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(outcome["answer"], json!({"hookStatus": "SUCCEEDED", "hookDetails": {}}), "{}", hook.name);
        assert_eq!(outcome["report"], "answered", "{}", hook.name);
        let reason = outcome["verdict"]["reason"].as_str().unwrap();
        match hook.ecs_stage() {
            // Its own stage: judged by the plan's check.
            Some(_) => assert_eq!(outcome["verdict"]["checks"][0]["passed"], true, "{}: {outcome}", hook.name),
            // The Lambda hooks' samples are a rollback's shift back, where every hook stands aside.
            None => assert!(reason.starts_with("stood aside:"), "{}: {reason}", hook.name),
        }
        assert!(String::from_utf8_lossy(&output.stderr).contains("in place of the event's hookDetails.plan_parameter"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecs_native_gate_that_fails_answers_failed_and_exits_1() {
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)},
        "expect": {"status": [418]}}]});
    let output = ecs_native_rehearsal("after-allow-test-traffic", &plan).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["answer"]["hookStatus"], "FAILED", "{outcome}");
    assert_eq!(outcome["verdict"]["status"], "Failed");
}
