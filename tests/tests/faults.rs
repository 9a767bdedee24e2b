//! The fault matrix, end to end: a Lambda deployment on the local CodeDeploy whose pre-traffic
//! hook (the real binary, behind the runtime host's Runtime API) meets one fault at a time. For
//! each: the verdict, exactly one accepted report, and a deployment that ends long before the
//! (scaled) one-hour limit. CodeDeploy's report carries only the status, so each test also reads
//! why from the hook's own log, as an operator would in CloudWatch.

use std::time::Duration;

use codedeploy_local::emulator::TimeScale;
use codedeploy_local::faults::{Faults, ReportFault};
use greenlight_tests::deployment::{DeployOptions, HookFunction, Run};
use greenlight_tests::targets::Target;
use serde_json::{Value, json};

/// With the fixture's scale the one-hour limit is 60 s; every deployment here must end well before it.
const ENDS_WITHIN: Duration = Duration::from_secs(20);

/// What the hook logged, read as an operator reads CloudWatch.
trait HookLog {
    /// The fields of every line the hook logged with this message, in order: `verdict` once per
    /// judged invocation, `check` once per check in it.
    fn logged(&self, message: &str) -> Vec<Value>;

    /// The `reason` of every line logged with this message.
    fn reasons(&self, message: &str) -> Vec<String> {
        self.logged(message).iter().map(|fields| fields["reason"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// The hook logged at least one `message` line, and every one has a reason containing `why`.
    fn assert_logged_reason(&self, message: &str, why: &str);

    /// The one check, `cart`, failed the verdict, and its logged reason contains `why`.
    fn assert_failed_check(&self, why: &str);

    /// Exactly one accepted report, of `status`, and a deployment that ended accordingly and in time.
    fn assert_verdict(&self, status: &str);
}

impl HookLog for Run {
    fn logged(&self, message: &str) -> Vec<Value> {
        self.hook_log
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .map(|line| line["fields"].clone())
            .collect()
    }

    fn assert_logged_reason(&self, message: &str, why: &str) {
        let reasons = self.reasons(message);
        assert!(
            !reasons.is_empty() && reasons.iter().all(|reason| reason.contains(why)),
            "expected every {message:?} reason to contain {why:?}, got {reasons:?}; hook log:\n{}",
            self.hook_log
        );
    }

    fn assert_failed_check(&self, why: &str) {
        self.assert_logged_reason("verdict", "1 of 1 checks failed: cart");
        self.assert_logged_reason("check", why);
        let outcomes: Vec<Value> = self.logged("check").iter().map(|fields| fields["outcome"].clone()).collect();
        assert_eq!(outcomes, ["failed"], "{}", self.hook_log);
    }

    fn assert_verdict(&self, status: &str) {
        assert_eq!(self.accepted(), [status], "reports: {:?}", self.reports());
        let (deployment_status, code) =
            if status == "Succeeded" { ("Succeeded", None) } else { ("Failed", Some("HOOK_EXECUTION_FAILURE")) };
        assert_eq!((self.status.as_str(), self.error_code.as_deref()), (deployment_status, code));
        assert!(self.took < ENDS_WITHIN, "the deployment took {:?}", self.took);
    }
}

/// The pre-traffic binary with `plan`, logging JSON as Lambda's advanced logging controls give
/// it, so the tests can read each line's reason as a field.
fn pre_traffic(plan: Value) -> HookFunction {
    let mut hook = HookFunction::pre_traffic(&plan);
    hook.environment.insert("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned());
    hook
}

fn http_plan(url: String, expect: Value, extra: Value) -> Value {
    let mut check = json!({"name": "cart", "http": {"url": url}, "expect": expect});
    if let (Some(check), Some(extra)) = (check.as_object_mut(), extra.as_object()) {
        check.extend(extra.clone());
    }
    json!({"checks": [check]})
}

async fn deploy(hook: HookFunction, faults: Faults) -> Run {
    greenlight_tests::deployment::deploy(hook, DeployOptions { faults, ..DeployOptions::default() }).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_check_still_reports_failed_once() {
    let target = Target::start().await;
    let mut hook = pre_traffic(http_plan(format!("{}/v2/cart/healthy", target.url), json!({}), json!({})));
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
    let run = deploy(pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("timed out after 500 ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_slower_than_the_hook_deadline_fails_before_lambda_cuts_the_hook_off() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/slow/30000", target.url), json!({}), json!({"timeout_ms": 60000}));
    let mut hook = pre_traffic(plan);
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
    let run = deploy(pre_traffic(plan), faults).await;
    run.assert_verdict("Succeeded");
    run.assert_logged_reason("verdict", "1 of 1 checks passed");
    let results: Vec<String> = run.reports().into_iter().map(|(_, result)| result).collect();
    assert_eq!(results, ["InternalFailure (injected)", "ThrottlingException (injected)", "accepted"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let plan = http_plan(format!("http://{closed}/v2/cart/healthy"), json!({}), json!({}));
    let run = deploy(pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("request failed: ");
    run.assert_logged_reason("check", "Connection refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_delivered_three_times_is_accepted_once() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/v2/cart/healthy", target.url), json!({"status": [200]}), json!({}));
    let run = deploy(pre_traffic(plan), Faults { deliveries: Some(3), ..Faults::default() }).await;
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
    let run = deploy(pre_traffic(plan), Faults { malformed_delivery: true, ..Faults::default() }).await;
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
    let run = deploy(pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_logged_reason("verdict", "plan is invalid: at /checks/0/http/url");
    assert!(run.reasons("check").is_empty(), "no check ran: {:?}", run.reasons("check"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_that_is_not_json_reports_failed() {
    let mut hook = pre_traffic(json!({}));
    hook.plan = r#"{"checks": [{"name": "cart", "http": {"url": "http://127.0.0.1:9/"}}]"#.to_owned();
    let run = deploy(hook, Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_logged_reason("verdict", "plan is not JSON: EOF while parsing");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_fails_without_being_read_whole() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/huge", target.url), json!({"json_schema": {"type": "object"}}), json!({}));
    let run = deploy(pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("body exceeds max_body_bytes (1048576 bytes)");
    assert!(target.huge_bytes_sent() < 64 * 1024 * 1024, "sent {} bytes", target.huge_bytes_sent());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_json_body_fails_a_contract_check() {
    let target = Target::start().await;
    let plan = http_plan(format!("{}/not-json", target.url), json!({"json_schema": {"type": "object"}}), json!({}));
    let run = deploy(pre_traffic(plan), Faults::default()).await;
    run.assert_verdict("Failed");
    run.assert_failed_check("body is not JSON (");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_that_never_reports_fails_the_deployment_at_the_hour_after_lambdas_retries() {
    // A process that exits at once never reaches the Runtime API: Lambda retries the async
    // invocation twice, then CodeDeploy waits out its limit. 3600x makes the hour one second,
    // and the retry delays (one and two minutes) a few milliseconds.
    let mut hook = pre_traffic(json!({}));
    hook.command = vec!["false".to_owned()];
    let scale = TimeScale(3600.0);
    let run = greenlight_tests::deployment::deploy(hook, DeployOptions { scale, ..DeployOptions::default() }).await;
    assert_eq!((run.status.as_str(), run.error_code.as_deref()), ("Failed", Some("TIMEOUT")));
    assert!(run.reports().is_empty());
    assert!(run.logged("verdict").is_empty(), "the hook never ran, so it judged nothing: {}", run.hook_log);
    let attempts: Vec<u32> = run.hook_invocations().iter().map(|(attempt, _)| *attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
}
