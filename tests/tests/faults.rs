//! The fault matrix, end to end: a Lambda deployment on the local CodeDeploy whose pre-traffic
//! hook (the real binary, behind the runtime host's Runtime API) meets one fault at a time. For
//! each: the verdict, exactly one accepted report, and a deployment that ends long before the
//! (scaled) one-hour limit. CodeDeploy's report carries only the status, so each test also reads
//! why from the hook's own log, as an operator would in CloudWatch.

use std::collections::BTreeMap;
use std::time::Duration;

use codedeploy_local::config::{AliasConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{Happening, RecordEntry, TimeScale};
use codedeploy_local::faults::{Faults, ReportFault};
use codedeploy_local::server::Server;
use greenlight_tests::{Target, bin_dir};
use serde_json::{Value, json};
use tokio::time::Instant;

/// With this scale the one-hour limit is 60 s; every deployment here must end well before it.
const SCALE: TimeScale = TimeScale(60.0);
const ENDS_WITHIN: Duration = Duration::from_secs(20);

struct Run {
    status: String,
    error_code: Option<String>,
    record: Vec<RecordEntry>,
    took: Duration,
    /// Everything the hook function wrote, across its processes and invocations, with the
    /// runtime host's START/END/REPORT lines in between.
    hook_log: String,
}

impl Run {
    /// (status, result) of every report the emulator received.
    fn reports(&self) -> Vec<(String, String)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Report { status, result, .. } => Some((status.clone(), result.clone())),
                _ => None,
            })
            .collect()
    }

    fn accepted(&self) -> Vec<String> {
        self.reports().into_iter().filter(|(_, result)| result == "accepted").map(|(status, _)| status).collect()
    }

    /// (attempt, outcome) of every hook invocation.
    fn hook_invocations(&self) -> Vec<(u32, String)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Invocation { function, attempt, outcome, .. } if function.starts_with("CodeDeployHook_") => {
                    Some((*attempt, (*outcome).to_owned()))
                }
                _ => None,
            })
            .collect()
    }

    /// The fields of every line the hook logged with this message, in order: `verdict` once per
    /// judged invocation, `check` once per check in it.
    fn logged(&self, message: &str) -> Vec<Value> {
        self.hook_log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .map(|line| line["fields"].clone())
            .collect()
    }

    /// The `reason` of every line logged with this message.
    fn reasons(&self, message: &str) -> Vec<String> {
        self.logged(message).iter().map(|fields| fields["reason"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// The hook logged at least one `message` line, and every one has a reason containing `why`.
    fn assert_logged_reason(&self, message: &str, why: &str) {
        let reasons = self.reasons(message);
        assert!(
            !reasons.is_empty() && reasons.iter().all(|reason| reason.contains(why)),
            "expected every {message:?} reason to contain {why:?}, got {reasons:?}; hook log:\n{}",
            self.hook_log
        );
    }

    /// The one check, `cart`, failed the verdict, and its logged reason contains `why`.
    fn assert_failed_check(&self, why: &str) {
        self.assert_logged_reason("verdict", "1 of 1 checks failed: cart");
        self.assert_logged_reason("check", why);
        let outcomes: Vec<Value> = self.logged("check").iter().map(|fields| fields["outcome"].clone()).collect();
        assert_eq!(outcomes, ["failed"], "{}", self.hook_log);
    }

    /// Exactly one accepted report, of `status`, and a deployment that ended accordingly and in time.
    fn assert_verdict(&self, status: &str) {
        assert_eq!(self.accepted(), [status], "reports: {:?}", self.reports());
        let (deployment_status, code) =
            if status == "Succeeded" { ("Succeeded", None) } else { ("Failed", Some("HOOK_EXECUTION_FAILURE")) };
        assert_eq!((self.status.as_str(), self.error_code.as_deref()), (deployment_status, code));
        assert!(self.took < ENDS_WITHIN, "the deployment took {:?}", self.took);
    }
}

struct Hook {
    command: Vec<String>,
    plan: String,
    timeout_seconds: u64,
}

impl Hook {
    fn pre_traffic(plan: Value) -> Self {
        let command = vec![bin_dir().join("pre-traffic").display().to_string()];
        Self { command, plan: plan.to_string(), timeout_seconds: 10 }
    }
}

fn http_plan(url: String, expect: Value, extra: Value) -> Value {
    let mut check = json!({"name": "cart", "http": {"url": url}, "expect": expect});
    if let (Some(check), Some(extra)) = (check.as_object_mut(), extra.as_object()) {
        check.extend(extra.clone());
    }
    json!({"checks": [check]})
}

async fn deploy(hook: Hook, faults: Faults) -> Run {
    deploy_with(hook, faults, SCALE).await
}

async fn deploy_with(hook: Hook, faults: Faults, scale: TimeScale) -> Run {
    let app = bin_dir().join("checkout-function").display().to_string();
    let version = ProcessConfig { command: vec![app], environment: BTreeMap::new() };
    // JSON logs, as Lambda's advanced logging controls give them, so the tests can read each
    // line's reason as a field.
    let hook_version = ProcessConfig {
        command: hook.command,
        environment: BTreeMap::from([
            ("GREENLIGHT_PLAN".to_owned(), hook.plan),
            ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
        ]),
    };
    let config = LocalConfig {
        functions: BTreeMap::from([
            (
                "app".to_owned(),
                FunctionConfig {
                    timeout_seconds: 5,
                    memory_mb: 128,
                    versions: BTreeMap::from([("1".to_owned(), version.clone()), ("2".to_owned(), version)]),
                    aliases: BTreeMap::from([(
                        "live".to_owned(),
                        AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
                    )]),
                },
            ),
            (
                "CodeDeployHook_pre-traffic".to_owned(),
                FunctionConfig {
                    timeout_seconds: hook.timeout_seconds,
                    memory_mb: 128,
                    versions: BTreeMap::from([("$LATEST".to_owned(), hook_version)]),
                    aliases: BTreeMap::new(),
                },
            ),
        ]),
        ..LocalConfig::default()
    };
    let log_dir = tempfile::tempdir().expect("a log directory");
    let server = Server::start(config, scale, 0, Some(log_dir.path().to_owned())).await.expect("emulator starts");
    let emulator = server.emulator.clone();
    emulator.set_faults(faults).expect("faults name only what is served");
    let call = |operation: &str, input: Value| emulator.codedeploy(operation, &input).expect(operation);
    call("CreateApplication", json!({"applicationName": "app", "computePlatform": "Lambda"}));
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "app", "deploymentGroupName": "live", "serviceRoleArn": "arn:aws:iam::123456789012:role/cd"}),
    );
    let appspec = json!({"Resources": [{"app": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": "app", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}],
        "Hooks": [{"BeforeAllowTraffic": "CodeDeployHook_pre-traffic"}]});
    let started = Instant::now();
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "app", "deploymentGroupName": "live",
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    );
    let id = created["deploymentId"].as_str().expect("deployment id").to_owned();
    let limit = scale.apply(Duration::from_secs(3600)) + Duration::from_secs(30);
    emulator.wait_until_complete(&id, limit).await;
    let took = started.elapsed();
    // Late deliveries (duplicates, retries) get their answers before the record is read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, error_code) = {
        let state = emulator.state();
        let d = &state.deployments[&id];
        (d.status.to_owned(), d.error.as_ref().map(|(code, _)| (*code).to_owned()))
    };
    let record = emulator.record_of(&id);
    server.shutdown().await;
    // A function that never started writes no log file.
    let hook_log = std::fs::read_to_string(log_dir.path().join("CodeDeployHook_pre-traffic.log")).unwrap_or_default();
    Run { status, error_code, record, took, hook_log }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_check_still_reports_failed_once() {
    let target = Target::start().await;
    let mut hook = Hook::pre_traffic(http_plan(format!("{}/v2/cart/healthy", target.url), json!({}), json!({})));
    hook.command = vec![env!("CARGO_BIN_EXE_panicking-hook").to_owned()];
    let run = deploy(hook, Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("check panicked: check \"cart\" hit a bug");
    assert_eq!(run.hook_invocations(), [(1, "response".to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_target_fails_at_the_check_timeout() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/hang", target.url), json!({}), json!({"timeout_ms": 500}));
    let run = deploy(Hook::pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("timed out after 500 ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_slower_than_the_hook_deadline_fails_before_lambda_cuts_the_hook_off() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/slow/30000", target.url), json!({}), json!({"timeout_ms": 60000}));
    let mut hook = Hook::pre_traffic(plan);
    hook.timeout_seconds = 4;
    let run = deploy(hook, Faults::default()).await;
    run.assert_verdict("Failed");
    // Cut off by the run's deadline, not by the check's own 60 s timeout.
    run.assert_failed_check("deadline: attempt 1 was still running");
    assert_eq!(run.hook_invocations(), [(1, "response".to_owned())], "the hook returned before its timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_throttling_on_the_report_are_retried_to_one_acceptance() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/v2/cart/healthy", target.url), json!({"status": [200]}), json!({}));
    let faults = Faults {
        report_failures: [ReportFault::ServerError, ReportFault::Throttle].into_iter().collect(),
        ..Faults::default()
    };
    let run = deploy(Hook::pre_traffic(plan), faults).await;
    run.assert_verdict("Succeeded");
    run.assert_logged_reason("verdict", "1 of 1 checks passed");
    let results: Vec<String> = run.reports().into_iter().map(|(_, result)| result).collect();
    assert_eq!(results, ["InternalFailure (injected)", "ThrottlingException (injected)", "accepted"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let plan = http_plan(format!("http://{closed}/v2/cart/healthy"), json!({}), json!({}));
    let run = deploy(Hook::pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("request failed: ");
    run.assert_logged_reason("check", "Connection refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_delivered_three_times_is_accepted_once() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/v2/cart/healthy", target.url), json!({"status": [200]}), json!({}));
    let run = deploy(Hook::pre_traffic(plan), Faults { deliveries: Some(3), ..Faults::default() }).await;
    run.assert_verdict("Succeeded");
    let reports = run.reports();
    assert_eq!(reports.len(), 3, "every delivery reported: {reports:?}");
    let duplicates = reports.iter().filter(|(_, result)| result == "LifecycleEventAlreadyCompletedException").count();
    assert_eq!(duplicates, 2, "{reports:?}");
    assert_eq!(run.hook_invocations().len(), 3);
    assert!(run.hook_invocations().iter().all(|(_, outcome)| outcome == "response"), "{:?}", run.hook_invocations());
    // Each delivery is judged, unless it finds the event already completed: which ones do
    // depends on how the deliveries overlap.
    let verdicts = run.reasons("verdict");
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
    assert!(verdicts.iter().any(|reason| reason == "1 of 1 checks passed"), "{verdicts:?}");
    assert!(
        verdicts
            .iter()
            .all(|reason| reason == "1 of 1 checks passed" || reason.contains("likely a duplicate delivery")),
        "{verdicts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_refused_without_a_report_and_the_real_one_is_judged() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/v2/cart/healthy", target.url), json!({"status": [200]}), json!({}));
    let run = deploy(Hook::pre_traffic(plan), Faults { malformed_delivery: true, ..Faults::default() }).await;
    run.assert_verdict("Succeeded");
    assert_eq!(run.reports().len(), 1, "the malformed delivery reported nothing: {:?}", run.reports());
    let invocations = run.hook_invocations();
    assert!(invocations.contains(&(1, "function_error".to_owned())), "{invocations:?}");
    assert!(invocations.contains(&(1, "response".to_owned())), "{invocations:?}");
    let refusals = run.logged("malformed event");
    assert!(!refusals.is_empty(), "the refusal was not logged:\n{}", run.hook_log);
    for refusal in refusals {
        assert!(
            refusal["error"].as_str().unwrap_or_default().contains("no usable LifecycleEventHookExecutionId"),
            "{refusal}"
        );
    }
    run.assert_logged_reason("verdict", "1 of 1 checks passed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_plan_reports_failed_naming_where() {
    let plan = json!({"checks": [{"name": "cart", "http": {"url": "not a url"}}]});
    let run = deploy(Hook::pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_logged_reason("verdict", "plan is invalid: at /checks/0/http/url");
    assert!(run.reasons("check").is_empty(), "no check ran: {:?}", run.reasons("check"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_that_is_not_json_reports_failed() {
    let mut hook = Hook::pre_traffic(json!({}));
    hook.plan = r#"{"checks": [{"name": "cart", "http": {"url": "http://127.0.0.1:9/"}}]"#.to_owned();
    let run = deploy(hook, Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_logged_reason("verdict", "plan is not JSON: EOF while parsing");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_fails_without_being_read_whole() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/huge", target.url), json!({"json_schema": {"type": "object"}}), json!({}));
    let run = deploy(Hook::pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("body exceeds max_body_bytes (1048576 bytes)");
    assert!(target.huge_bytes_sent() < 64 * 1024 * 1024, "sent {} bytes", target.huge_bytes_sent());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_json_body_fails_a_contract_check() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/not-json", target.url), json!({"json_schema": {"type": "object"}}), json!({}));
    let run = deploy(Hook::pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("body is not JSON (");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_that_never_reports_fails_the_deployment_at_the_hour_after_lambdas_retries() {
    // A process that exits at once never reaches the Runtime API: Lambda retries the async
    // invocation twice, then CodeDeploy waits out its limit. 3600x makes the hour one second,
    // and the retry delays (one and two minutes) a few milliseconds.
    let mut hook = Hook::pre_traffic(json!({}));
    hook.command = vec!["false".to_owned()];
    let scale = TimeScale(3600.0);
    let run = deploy_with(hook, Faults::default(), scale).await;
    assert_eq!((run.status.as_str(), run.error_code.as_deref()), ("Failed", Some("TIMEOUT")));
    assert!(run.reports().is_empty());
    assert!(run.logged("verdict").is_empty(), "the hook never ran, so it judged nothing: {}", run.hook_log);
    let attempts: Vec<u32> = run.hook_invocations().iter().map(|(attempt, _)| *attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
}
