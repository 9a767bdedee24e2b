//! The gate end to end, in process: real HTTP targets, real AWS SDK clients, a local CodeDeploy.
//! Unhappy paths first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use codedeploy_local::faults::{Faults, GreenStart, ReportFault};
use greenlight::event::HookEvent;
use greenlight::report::{ReportError, ReportOutcome};
use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::deployment::{Answer, Held, HeldTarget, api_gateway, function, scripted, sdk_config};
use greenlight_tests::targets::{Target, healthy_cart};
use greenlight_tests::workspace_root;
use serde_json::{Value, json};
use tokio::time::Instant;

struct World {
    aws: Held,
    target: Target,
}

impl World {
    /// A local CodeDeploy with an ECS deployment held in AfterAllowTestTraffic, and a target service.
    async fn ecs() -> Self {
        Self { aws: Held::ecs("AfterAllowTestTraffic").await, target: Target::start().await }
    }

    /// A Lambda deployment (checkout 4 → 5) held in BeforeAllowTraffic, version 5 answering `target`.
    async fn lambda(target: Answer) -> Self {
        Self::lambda_with(target, Faults::default(), BTreeMap::new()).await
    }

    async fn lambda_with(
        target: Answer,
        faults: Faults,
        functions: BTreeMap<String, codedeploy_local::config::FunctionConfig>,
    ) -> Self {
        let current = scripted(Answer::Payload(json!({"ok": true})));
        let held = HeldTarget::Lambda { current, target: scripted(target) };
        Self { aws: Held::start(held, "BeforeAllowTraffic", functions, faults).await, target: Target::start().await }
    }

    async fn gate(&self, hook: Hook, plan: Value) -> Arc<Gate> {
        let plan = greenlight::plan::parse(&plan.to_string(), &workspace_root().join("examples/plans"));
        Arc::new(Gate::new(hook, plan, AwsClients::new(&sdk_config(&self.aws.endpoint()).await)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url)
    }

    /// One HTTP check against `path` on the target.
    fn http_plan(&self, path: &str, expect: Value) -> Value {
        json!({"checks": [{"name": "smoke", "http": {"url": self.url(path)}, "expect": expect}]})
    }

    fn fail_reports(&self, faults: &[ReportFault]) {
        self.aws.set_faults(Faults { report_failures: faults.iter().copied().collect(), ..Faults::default() });
    }
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn reason(outcome: &RunOutcome) -> String {
    let verdict = &outcome.verdict;
    let checks: Vec<String> = verdict.checks.iter().filter_map(|c| c.reason.clone()).collect();
    format!("{} | {}", verdict.reason, checks.join(" | "))
}

/// Runs the smoke hook on the ECS deployment and returns the outcome and the accepted reports.
async fn smoke(world: &World, plan: Value) -> RunOutcome {
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    let accepted = world.aws.accepted();
    assert_eq!(accepted.len(), 1, "exactly one accepted report: {accepted:?}");
    assert_eq!(accepted[0].status, outcome.verdict.status.as_str());
    assert_eq!(accepted[0].execution_id, world.aws.execution_id);
    outcome
}

#[tokio::test]
async fn a_hanging_target_fails_at_the_deadline_and_the_report_still_arrives() {
    let world = World::ecs().await;
    let plan = json!({"checks": [{"name": "hangs", "http": {"url": world.url("/hang")}, "timeout_ms": 600000}]});
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, plan).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let outcome = gate.run(&world.aws.event(), deadline).await.expect("reported");
    assert!(Instant::now() < deadline, "returned after the Lambda deadline");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("deadline"), "{}", reason(&outcome));
    assert_eq!(world.aws.accepted().len(), 1);
    assert_eq!(world.aws.accepted()[0].status, "Failed");
}

#[tokio::test]
async fn a_deadline_shorter_than_the_report_reserve_skips_the_checks_and_still_reports() {
    let world = World::ecs().await;
    let plan = json!({"checks": [{"name": "hangs", "http": {"url": world.url("/hang")}}]});
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, plan).await;
    let deadline = Instant::now() + Duration::from_millis(700);
    let outcome = gate.run(&world.aws.event(), deadline).await.expect("reported");
    assert!(Instant::now() < deadline, "returned after the Lambda deadline");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("deadline"), "{}", reason(&outcome));
    assert_eq!(world.aws.accepted()[0].status, "Failed");
}

#[tokio::test]
async fn a_plan_that_judges_nothing_fails_closed() {
    let world = World::ecs().await;
    let outcome = smoke(&world, json!({"checks": []})).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(outcome.verdict.reason.starts_with("nothing was judged"), "{}", outcome.verdict.reason);
    let plan = json!({"checks": [{"name": "trial", "http": {"url": world.url("/v2/cart/healthy")}, "dry_run": true}]});
    let world = World::ecs().await;
    let outcome = smoke(&world, plan).await;
    assert_eq!(outcome.verdict.reason, "nothing was judged: all 1 check(s) are dry runs");
}

#[tokio::test]
async fn wait_for_green_on_a_lambda_deployment_does_not_count_as_a_judgement() {
    let world = World::lambda(Answer::Silent).await;
    let gate = world.gate(Hook::PRE_TRAFFIC, json!({"wait_for_green": true, "checks": []})).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(outcome.verdict.reason.starts_with("nothing was judged"), "{}", outcome.verdict.reason);
}

#[tokio::test]
async fn a_500_fails() {
    let world = World::ecs().await;
    let outcome = smoke(&world, world.http_plan("/status/500", json!({}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("status 500, expected 2xx"), "{}", reason(&outcome));
}

#[tokio::test]
async fn a_body_that_is_not_json_fails_when_a_schema_is_expected() {
    let world = World::ecs().await;
    let outcome = smoke(&world, world.http_plan("/not-json", json!({"json_schema": {"type": "object"}}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("body is not JSON"), "{}", reason(&outcome));
}

#[tokio::test]
async fn an_empty_body_fails_when_a_schema_is_expected() {
    let world = World::ecs().await;
    let outcome = smoke(&world, world.http_plan("/empty", json!({"json_schema": true}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("body is empty"), "{}", reason(&outcome));
}

#[tokio::test]
async fn the_checkout_contract_break_fails_naming_the_field() {
    let world = World::ecs().await;
    let expect = json!({"json_schema_file": "schemas/checkout-cart.json"});
    let outcome = smoke(&world, world.http_plan("/v2/cart/renamed-back", expect)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = reason(&outcome);
    assert!(why.contains("/total_minor_units is missing"), "{why}");
    assert!(why.contains("/total_cents must not be present"), "{why}");
}

#[tokio::test]
async fn a_wrongly_typed_field_fails_naming_its_pointer() {
    let world = World::ecs().await;
    let expect = json!({"json_schema_file": "schemas/checkout-cart.json"});
    let outcome = smoke(&world, world.http_plan("/v2/cart/string-total", expect)).await;
    assert!(reason(&outcome).contains("/total_minor_units:"), "{}", reason(&outcome));
}

#[tokio::test]
async fn the_healthy_contract_passes() {
    let world = World::ecs().await;
    let expect = json!({"status": [200], "json_schema_file": "schemas/checkout-cart.json", "headers": {"content-type": {"regex": "^application/json"}}});
    let outcome = smoke(&world, world.http_plan("/v2/cart/healthy", expect)).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    assert_eq!(outcome.report, ReportOutcome::Accepted);
    assert_eq!(world.aws.calls()[..2], ["ListDeploymentTargets", "GetDeploymentTarget"]);
}

#[tokio::test]
async fn a_huge_body_is_capped_not_read() {
    let world = World::ecs().await;
    let plan = json!({"checks": [{"name": "huge", "http": {"url": world.url("/huge"), "max_body_bytes": 65536},
        "expect": {"json_schema": true}, "timeout_ms": 20000}]});
    let outcome = smoke(&world, plan).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("exceeds max_body_bytes (65536 bytes)"), "{}", reason(&outcome));
    // The server streams 64 MiB; a capped reader stops after a few chunks (plus socket buffers).
    let sent = world.target.huge_bytes_sent();
    assert!(sent < 8 * 1024 * 1024, "the hook read on: {sent} bytes were sent");
}

#[tokio::test]
async fn an_invalid_plan_is_reported_failed_with_its_pointer() {
    let world = World::ecs().await;
    let outcome = smoke(&world, json!({"checks": [{"name": "x", "http": {"url": "ftp://nope"}}]})).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(outcome.verdict.reason.contains("at /checks/0/http/url"), "{}", outcome.verdict.reason);
    assert!(
        world.aws.calls().iter().all(|c| c == "PutLifecycleEventHookExecutionStatus"),
        "no discovery for a bad plan"
    );
}

#[tokio::test]
async fn a_panicking_check_is_reported_failed() {
    let world = World::ecs().await;
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let gate = Arc::new(
        Arc::try_unwrap(gate)
            .expect("sole owner")
            .with_probe(Arc::new(|_, _| Box::pin(async { panic!("index out of bounds") }))),
    );
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(reason(&outcome).contains("check panicked: index out of bounds"), "{}", reason(&outcome));
    assert_eq!(world.aws.accepted()[0].status, "Failed");
}

#[tokio::test]
async fn a_report_throttled_twice_is_accepted_exactly_once() {
    let world = World::ecs().await;
    world.fail_reports(&[ReportFault::Throttle, ReportFault::Throttle]);
    let outcome = smoke(&world, world.http_plan("/v2/cart/healthy", json!({}))).await;
    assert_eq!(outcome.report, ReportOutcome::Accepted);
    assert_eq!(world.aws.report_calls(), 3);
}

#[tokio::test]
async fn a_report_answered_with_5xx_is_retried() {
    let world = World::ecs().await;
    world.fail_reports(&[ReportFault::ServerError]);
    let outcome = smoke(&world, world.http_plan("/v2/cart/healthy", json!({}))).await;
    assert_eq!(outcome.report, ReportOutcome::Accepted);
    assert_eq!(world.aws.report_calls(), 2);
}

#[tokio::test]
async fn a_report_that_keeps_failing_returns_an_error_for_lambda_to_retry() {
    let world = World::ecs().await;
    world.fail_reports(&[ReportFault::ServerError; 3]);
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let err = gate.run(&world.aws.event(), in_secs(10)).await.expect_err("report failed");
    assert!(matches!(err, ReportError::Call { status: Status::Succeeded, .. }), "{err}");
    assert!(world.aws.accepted().is_empty());
    assert_eq!(world.aws.report_calls(), 3, "the SDK's three attempts, no loop of our own");
}

#[tokio::test]
async fn already_completed_means_a_duplicate_delivery_and_is_success() {
    let world = World::ecs().await;
    // An earlier delivery already reported.
    let report = json!({"deploymentId": world.aws.deployment_id, "lifecycleEventHookExecutionId": world.aws.execution_id,
        "status": "Succeeded"});
    world.aws.emulator().codedeploy("PutLifecycleEventHookExecutionStatus", &report).expect("the first report");
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("not an error");
    assert_eq!(outcome.report, ReportOutcome::AlreadyReported);
    assert_eq!(world.aws.report_calls(), 1, "no retry loop");
}

#[tokio::test]
async fn the_same_event_delivered_three_times_is_reported_once() {
    let world = World::ecs().await;
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(gate.run(&world.aws.event(), in_secs(10)).await.expect("no error").report);
    }
    assert_eq!(outcomes, [ReportOutcome::Accepted, ReportOutcome::AlreadyReported, ReportOutcome::AlreadyReported]);
    assert_eq!(world.aws.accepted().len(), 1);
}

#[tokio::test]
async fn slow_checks_run_concurrently() {
    let world = World::ecs().await;
    let checks: Vec<Value> =
        (0..20).map(|i| json!({"name": format!("slow {i}"), "http": {"url": world.url("/slow/300")}})).collect();
    let started = Instant::now();
    let outcome = smoke(&world, json!({"checks": checks})).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    // One at a time would take 20 × 300 ms = 6 s; all at once, about 300 ms plus discovery and report.
    assert!(elapsed < Duration::from_millis(1500), "20 checks of 300 ms took {elapsed:?}");
}

#[tokio::test]
async fn a_hook_wired_to_the_wrong_event_fails_naming_both() {
    let world = World::ecs().await;
    let gate = world.gate(Hook::BEFORE_ALLOW_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = &outcome.verdict.reason;
    assert!(why.contains("serves BeforeAllowTraffic") && why.contains("is in AfterAllowTestTraffic"), "{why}");
    assert!(outcome.verdict.checks.is_empty(), "no check runs for a misrouted hook");
    assert_eq!(world.aws.accepted()[0].status, "Failed");
}

#[tokio::test]
async fn an_ecs_hook_on_a_lambda_deployment_fails() {
    let world = World::lambda(Answer::Silent).await;
    let gate = world.gate(Hook::BEFORE_ALLOW_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert!(outcome.verdict.reason.contains("use the pre-traffic hook"), "{}", outcome.verdict.reason);
}

#[tokio::test]
async fn missing_permission_is_named() {
    let world = World::ecs().await;
    world.aws.set_faults(Faults { denied: ["ListDeploymentTargets".to_owned()].into(), ..Faults::default() });
    let outcome = smoke(&world, world.http_plan("/v2/cart/healthy", json!({}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        outcome.verdict.reason.contains("grant the hook's role codedeploy:ListDeploymentTargets"),
        "{}",
        outcome.verdict.reason
    );
}

#[tokio::test]
async fn a_hanging_codedeploy_fails_discovery_at_the_deadline_and_the_report_still_arrives() {
    let world = World::ecs().await;
    world.aws.set_faults(Faults { hanging: ["GetDeploymentTarget".to_owned()].into(), ..Faults::default() });
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let deadline = in_secs(3);
    let outcome = gate.run(&world.aws.event(), deadline).await.expect("reported");
    assert!(Instant::now() < deadline, "returned after the Lambda deadline");
    assert_eq!(outcome.verdict.reason, "deadline: discovery did not finish in time");
    assert_eq!(world.aws.accepted()[0].status, "Failed");
}

#[tokio::test]
async fn an_unknown_deployment_fails_closed() {
    let world = World::ecs().await;
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, world.http_plan("/v2/cart/healthy", json!({}))).await;
    let outcome = gate
        .judge_and_report(
            &HookEvent { deployment_id: "d-NOSUCH001".into(), execution_id: "exec-x".into() },
            in_secs(10),
        )
        .await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        outcome.verdict.reason.starts_with("discovery: codedeploy:ListDeploymentTargets failed"),
        "{}",
        outcome.verdict.reason
    );
    assert!(outcome.verdict.reason.contains("DeploymentDoesNotExist"), "{}", outcome.verdict.reason);
    // CodeDeploy refuses the report too (the deployment does not exist): an error, for Lambda to retry.
    assert_eq!(outcome.report, ReportOutcome::NotDelivered);
    assert!(outcome.report_error.is_some());
}

#[tokio::test]
async fn retries_ride_out_a_flaky_target() {
    let world = World::ecs().await;
    let plan =
        json!({"checks": [{"name": "flaky", "http": {"url": world.url("/flaky")}, "attempts": 3, "interval_ms": 10}]});
    let outcome = smoke(&world, plan).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    assert_eq!(outcome.verdict.checks[0].attempts, 3);
}

#[tokio::test]
async fn latency_budget_and_headers_are_judged() {
    let world = World::ecs().await;
    let plan = json!({"checks": [
        {"name": "slow", "http": {"url": world.url("/slow/300")}, "expect": {"max_latency_ms": 100}},
        {"name": "version", "http": {"url": world.url("/versioned")}, "expect": {"headers": {"x-app-version": "48"}}},
        {"name": "token", "http": {"url": world.url("/versioned")}, "expect": {"headers": {"x-session-token": {"regex": "^tok-LIVE"}}}}
    ], "redact_headers": ["x-session-token"]});
    let outcome = smoke(&world, plan).await;
    let reasons: Vec<String> = outcome.verdict.checks.iter().map(|c| c.reason.clone().unwrap_or_default()).collect();
    assert!(reasons[0].contains("over the 100 ms budget"), "{reasons:?}");
    assert_eq!(reasons[1], "header x-app-version is \"47\", expected \"48\"");
    assert_eq!(reasons[2], "header x-session-token is <redacted>, expected <redacted>");
    assert!(!format!("{outcome:?}").contains("SECRET"));
}

#[tokio::test]
async fn dry_run_checks_are_logged_but_do_not_decide() {
    let world = World::ecs().await;
    let plan = json!({"checks": [
        {"name": "gate", "http": {"url": world.url("/v2/cart/healthy")}},
        {"name": "experimental", "http": {"url": world.url("/status/503")}, "dry_run": true}
    ]});
    let outcome = smoke(&world, plan).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded);
    assert!(!outcome.verdict.checks[1].passed);
}

#[tokio::test]
async fn a_dry_run_plan_judges_without_reporting() {
    let world = World::ecs().await;
    let plan = json!({"dry_run": true, "checks": [{"name": "x", "http": {"url": world.url("/status/500")}}]});
    let gate = world.gate(Hook::AFTER_ALLOW_TEST_TRAFFIC, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("ok");
    assert_eq!((outcome.verdict.status, outcome.report), (Status::Failed, ReportOutcome::Skipped));
    assert_eq!(world.aws.report_calls(), 0);
}

// ---- Lambda deployments -------------------------------------------------------------------------

async fn pre_traffic(world: &World, expect: Value) -> RunOutcome {
    let plan =
        json!({"checks": [{"name": "new version", "invoke": {"payload": {"path": "/v2/cart"}}, "expect": expect}]});
    let gate = world.gate(Hook::PRE_TRAFFIC, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(world.aws.accepted().len(), 1);
    outcome
}

/// Version 5 answers `payload`, but Invoke claims `version` ran (empty: says nothing).
async fn claiming(payload: Value, version: &str) -> World {
    let faults =
        Faults { executed_versions: [("checkout".to_owned(), version.to_owned())].into(), ..Faults::default() };
    World::lambda_with(Answer::Payload(payload), faults, BTreeMap::new()).await
}

#[tokio::test]
async fn pre_traffic_invokes_the_target_version_and_judges_its_api_gateway_result() {
    let world = World::lambda(Answer::Payload(api_gateway(200, &healthy_cart()))).await;
    let outcome = pre_traffic(&world, json!({"status": [200], "json_schema_file": "schemas/checkout-cart.json"})).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    assert_eq!(world.aws.invocations(), [("checkout".to_owned(), "5".to_owned())]);
    assert_eq!(world.aws.events_received("checkout", 1).await, [json!({"path": "/v2/cart"})]);
}

#[tokio::test]
async fn a_broken_new_version_fails_pre_traffic() {
    let broken = json!({"cart_id": "c-1", "currency": "EUR", "total_cents": 1299, "items": []});
    let world = World::lambda(Answer::Payload(api_gateway(200, &broken))).await;
    let outcome = pre_traffic(&world, json!({"json_schema_file": "schemas/checkout-cart.json"})).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        reason(&outcome).contains("result body breaks the schema: /total_minor_units is missing"),
        "{}",
        reason(&outcome)
    );
}

#[tokio::test]
async fn a_function_error_fails_unless_expected() {
    let error = Answer::Error { error_type: "TypeError", message: "TypeError: total is undefined" };
    let world = World::lambda(error).await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(
        reason(&outcome).contains("function error (Unhandled): TypeError: total is undefined"),
        "{}",
        reason(&outcome)
    );
}

#[tokio::test]
async fn a_wrong_executed_version_fails() {
    let world = claiming(json!({"ok": true}), "4").await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(reason(&outcome).contains("ran version 4, expected 5"), "{}", reason(&outcome));
}

#[tokio::test]
async fn an_api_gateway_error_status_fails() {
    let world = World::lambda(Answer::Payload(api_gateway(502, &json!({"message": "bad gateway"})))).await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(reason(&outcome).contains("statusCode 502, expected 2xx"), "{}", reason(&outcome));
}

#[tokio::test]
async fn a_string_status_code_is_still_judged() {
    let result = json!({"statusCode": "500", "body": "{\"message\": \"boom\"}"});
    let world = World::lambda(Answer::Payload(result)).await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(reason(&outcome).contains("statusCode 500, expected 2xx"), "{}", reason(&outcome));
}

#[tokio::test]
async fn a_result_without_its_executed_version_fails() {
    let world = claiming(json!({"ok": true}), "").await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(reason(&outcome).contains("did not say which version ran"), "{}", reason(&outcome));
}

#[tokio::test]
async fn a_named_function_is_invoked_unqualified_unless_told() {
    let runner = function([("$LATEST", scripted(Answer::Payload(json!({"ok": true}))))]);
    let functions = BTreeMap::from([("smoke-runner".to_owned(), runner)]);
    let world = World::lambda_with(Answer::Payload(json!({"ok": true})), Faults::default(), functions).await;
    let plan = json!({"checks": [
        {"name": "runner", "invoke": {"function": "smoke-runner"}},
        {"name": "alias", "invoke": {"qualifier": "alias"}}
    ]});
    let gate = world.gate(Hook::PRE_TRAFFIC, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    let mut invoked = world.aws.invocations();
    invoked.sort();
    assert_eq!(
        invoked,
        [("checkout".to_owned(), "live".to_owned()), ("smoke-runner".to_owned(), "$LATEST".to_owned())]
    );
}

#[tokio::test]
async fn missing_invoke_permission_is_named() {
    let faults = Faults { denied: ["Invoke".to_owned()].into(), ..Faults::default() };
    let world = World::lambda_with(Answer::Payload(json!({"ok": true})), faults, BTreeMap::new()).await;
    let outcome = pre_traffic(&world, json!({})).await;
    assert!(reason(&outcome).contains("grant the hook's role lambda:InvokeFunction"), "{}", reason(&outcome));
}

#[tokio::test]
async fn invoking_the_target_from_an_ecs_hook_explains_itself() {
    let world = World::ecs().await;
    let outcome = smoke(&world, json!({"checks": [{"name": "x", "invoke": {}}]})).await;
    assert!(reason(&outcome).contains("is an ECS deployment"), "{}", reason(&outcome));
}

// ---- after-install ------------------------------------------------------------------------------

/// An ECS deployment held in AfterInstall whose green task set starts as `start` says.
async fn installing(start: GreenStart) -> World {
    let faults = Faults { green_start: Some(start), ..Faults::default() };
    let aws = Held::start(HeldTarget::Ecs, "AfterInstall", BTreeMap::new(), faults).await;
    World { aws, target: Target::start().await }
}

#[tokio::test]
async fn after_install_waits_for_green_then_checks() {
    let world = installing(GreenStart { running_at_install: 0, started_per_read: 1 }).await;
    let plan = json!({"wait_for_green_interval_ms": 100, "checks": [{"name": "x", "http": {"url": world.url("/v2/cart/healthy")}}]});
    let gate = world.gate(Hook::AFTER_INSTALL, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(10)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reason(&outcome));
    let polls = world.aws.calls().iter().filter(|c| *c == "GetDeploymentTarget").count();
    assert_eq!(polls, 3, "0 → 1 → 2 running tasks");
}

#[tokio::test]
async fn after_install_fails_when_green_never_starts() {
    let world = installing(GreenStart { running_at_install: 1, started_per_read: 0 }).await;
    let plan = json!({"wait_for_green_interval_ms": 100, "checks": []});
    let gate = world.gate(Hook::AFTER_INSTALL, plan).await;
    let outcome = gate.run(&world.aws.event(), in_secs(3)).await.expect("reported");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        outcome.verdict.reason.contains("green task set ecs-svc/green runs 1/2 tasks"),
        "{}",
        outcome.verdict.reason
    );
}
