//! One set of hooks for many services, end to end on the local CodeDeploy: the plan chosen by the
//! deployment's application and group (a catalog, Parameter Store), and variables filled from the
//! deployment. Unhappy paths first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use codedeploy_local::faults::Faults;
use codedeploy_local::ssm::store::ParameterType;
use greenlight::plan::select::Plans;
use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::deployment::{Answer, Held, HeldTarget, scripted, sdk_config};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The held deployments' application and deployment group.
const APPLICATION: &str = "app";
const GROUP: &str = "live";

/// A Lambda deployment of `checkout` from version 4 to 5 held in AfterAllowTraffic; version 5
/// answers `{"version": 5}`.
async fn lambda(faults: Faults) -> Held {
    let target = HeldTarget::Lambda {
        current: scripted(Answer::Payload(json!({"version": 4}))),
        target: scripted(Answer::Payload(json!({"version": 5}))),
    };
    Held::start(target, "AfterAllowTraffic", BTreeMap::new(), faults).await
}

/// An invoke check of the deployment's target version, named through variables.
fn invoke_plan(name: &str) -> Value {
    json!({"checks": [{"name": name, "invoke": {"function": "${function_name}", "qualifier": "${target_version}",
        "payload": {"deployment": "${deployment_id}", "group": "${application}/${deployment_group}"}}}]})
}

async fn run(held: &Held, hook: Hook, plans: Plans) -> RunOutcome {
    let aws = AwsClients::new(&sdk_config(&held.endpoint()).await);
    let gate = Arc::new(Gate::with_plans(hook, plans, aws));
    gate.run(&held.event(), Instant::now() + Duration::from_secs(10)).await.expect("reported")
}

fn reasons(outcome: &RunOutcome) -> String {
    let checks: Vec<String> = outcome.verdict.checks.iter().filter_map(|c| c.reason.clone()).collect();
    format!("{} | {}", outcome.verdict.reason, checks.join(" | "))
}

fn catalog(dir: &Path, catalog: &Value) -> Plans {
    let path = dir.join("catalog.json");
    std::fs::write(&path, catalog.to_string()).expect("catalog written");
    Plans::per_deployment(Some(&path), None, Duration::ZERO, dir, None)
}

#[tokio::test]
async fn no_catalog_entry_for_the_deployment_fails_naming_its_application_and_group() {
    let held = lambda(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let plans = catalog(dir.path(), &json!({"plans": [{"application": "cart", "plan": invoke_plan("cart")}]}));
    let outcome = run(&held, Hook::POST_TRAFFIC, plans).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert_eq!(
        outcome.verdict.reason,
        "no plan for application app, deployment group live: no catalog entry matches, the catalog has no default"
    );
    assert_eq!(held.accepted().len(), 1, "reported exactly once");
}

#[tokio::test]
async fn an_invalid_catalog_plan_fails_the_deployments_it_matches_with_its_pointer() {
    let held = lambda(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let broken = json!({"checks": [{"name": "x", "invoke": {"function": "${functon_name}"}}]});
    let plans = catalog(dir.path(), &json!({"plans": [{"application": "a*", "plan": broken}]}));
    let outcome = run(&held, Hook::POST_TRAFFIC, plans).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = &outcome.verdict.reason;
    assert!(
        why.starts_with(
            "catalog entry /plans/0: plan is invalid: at /checks/0/invoke/function: unknown variable ${functon_name}"
        ),
        "{why}"
    );
}

#[tokio::test]
async fn a_denied_get_deployment_fails_naming_the_action() {
    let faults = Faults { denied: ["GetDeployment".to_owned()].into(), ..Faults::default() };
    let held = lambda(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let plans = catalog(dir.path(), &json!({"plans": [], "default": {"plan": invoke_plan("default")}}));
    let outcome = run(&held, Hook::POST_TRAFFIC, plans).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        outcome.verdict.reason.starts_with("choosing the plan: access denied calling codedeploy:GetDeployment"),
        "{}",
        outcome.verdict.reason
    );
}

#[tokio::test]
async fn the_catalog_entry_for_the_deployment_runs_with_its_variables_filled() {
    let held = lambda(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let plans = catalog(
        dir.path(),
        &json!({"plans": [
            {"application": "cart", "plan": invoke_plan("cart")},
            {"application": "ap?", "deployment_group": "{live,canary}", "plan": invoke_plan("checkout")}],
            "default": {"plan": invoke_plan("default")}}),
    );
    let outcome = run(&held, Hook::POST_TRAFFIC, plans).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    assert_eq!(outcome.verdict.checks[0].name, "checkout", "the first matching entry");
    let invoked = held.invocations();
    assert!(invoked.iter().any(|(function, qualifier)| function == "checkout" && qualifier == "5"), "{invoked:?}");
    let events = held.events_received("checkout", 1).await;
    let payload = json!({"deployment": held.deployment_id, "group": format!("{APPLICATION}/{GROUP}")});
    assert!(events.contains(&payload), "{events:?}");
}

#[tokio::test]
async fn the_catalogs_default_serves_a_deployment_no_entry_matches() {
    let held = lambda(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let plans = catalog(
        dir.path(),
        &json!({"plans": [{"application": "cart", "plan": invoke_plan("cart")}], "default": {"plan_file": "smoke.json"}}),
    );
    std::fs::write(dir.path().join("smoke.json"), invoke_plan("smoke").to_string()).unwrap();
    let outcome = run(&held, Hook::POST_TRAFFIC, plans).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    assert_eq!(outcome.verdict.checks[0].name, "smoke");
}

#[tokio::test]
async fn an_ecs_variable_in_a_lambda_deployment_fails_only_its_check_saying_which() {
    let held = lambda(Faults::default()).await;
    let plan = json!({"checks": [
        {"name": "listener", "http": {"url": "${test_url}/health"}},
        {"name": "version", "invoke": {"qualifier": "${target_version}"}}]});
    let plan = greenlight::plan::parse(&plan.to_string(), Path::new("."));
    let outcome = run(&held, Hook::POST_TRAFFIC, Plans::ready(plan)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let listener = &outcome.verdict.checks[0];
    assert_eq!(
        listener.reason.as_deref(),
        Some(&*format!(
            "${{test_url}}: an ECS deployment's variable, and {} is a Lambda deployment",
            held.deployment_id
        ))
    );
    assert!(outcome.verdict.checks[1].passed, "{}", reasons(&outcome));
}

// ---- plans in Parameter Store --------------------------------------------------------------------

const TEMPLATE: &str = "/greenlight/plans/{application}/{deployment_group}";
const PARAMETER: &str = "/greenlight/plans/app/live";

fn parameter_plans(cache_for: Duration) -> Plans {
    Plans::per_deployment(None, Some(TEMPLATE), cache_for, Path::new("."), None)
}

fn seed(held: &Held, plan: &Value, kind: ParameterType) {
    held.emulator().ssm().put(PARAMETER, &plan.to_string(), kind).expect("parameter seeded");
}

#[tokio::test]
async fn a_missing_parameter_fails_naming_it() {
    let held = lambda(Faults::default()).await;
    let outcome = run(&held, Hook::POST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert_eq!(
        outcome.verdict.reason,
        format!("no plan for application app, deployment group live: parameter {PARAMETER} does not exist")
    );
}

#[tokio::test]
async fn a_denied_parameter_read_names_the_action_and_the_parameter() {
    let faults = Faults { denied: ["GetParameter".to_owned()].into(), ..Faults::default() };
    let held = lambda(faults).await;
    let outcome = run(&held, Hook::POST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = &outcome.verdict.reason;
    assert!(
        why.starts_with(&format!(
            "access denied reading parameter {PARAMETER} (application app, deployment group live): grant the hook's role ssm:GetParameter on arn:aws:ssm:<region>:<account>:parameter{PARAMETER}"
        )),
        "{why}"
    );
    assert_eq!(held.accepted().len(), 1);
}

#[tokio::test]
async fn a_throttled_parameter_read_fails_after_the_sdks_retries() {
    let faults = Faults { throttled: ["GetParameter".to_owned()].into(), ..Faults::default() };
    let held = lambda(faults).await;
    let outcome = run(&held, Hook::POST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(
        outcome.verdict.reason.starts_with(&format!("ssm:GetParameter for parameter {PARAMETER}")),
        "{}",
        outcome.verdict.reason
    );
    assert_eq!(held.calls().iter().filter(|c| *c == "GetParameter").count(), 3, "the SDK's three attempts");
}

#[tokio::test]
async fn an_invalid_plan_in_a_parameter_fails_with_its_pointer_and_version() {
    let held = lambda(Faults::default()).await;
    seed(&held, &json!({"checks": [{"name": "x", "invoke": {}, "attempts": 0}]}), ParameterType::String);
    let outcome = run(&held, Hook::POST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = &outcome.verdict.reason;
    assert!(
        why.starts_with(&format!(
            "the plan in parameter {PARAMETER} version 1 (application app, deployment group live): plan is invalid: at /checks/0/attempts"
        )),
        "{why}"
    );
}

#[tokio::test]
async fn a_secure_string_plan_is_read_decrypted_and_kept_while_fresh() {
    let held = lambda(Faults::default()).await;
    seed(&held, &invoke_plan("from-parameter"), ParameterType::SecureString);
    let plans = parameter_plans(Duration::from_secs(60));
    let aws = AwsClients::new(&sdk_config(&held.endpoint()).await);
    let gate = Arc::new(Gate::with_plans(Hook::POST_TRAFFIC, plans, aws).dry_run(true));
    for _ in 0..2 {
        let outcome = gate.run(&held.event(), Instant::now() + Duration::from_secs(10)).await.expect("judged");
        assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
        assert_eq!(outcome.verdict.checks[0].name, "from-parameter");
    }
    let calls = held.calls();
    assert_eq!(calls.iter().filter(|c| *c == "GetParameter").count(), 1, "the second run used the cache: {calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "GetDeployment").count(), 2, "each run names its deployment: {calls:?}");
}

#[tokio::test]
async fn a_catalog_entry_comes_before_the_parameter_and_the_default_after_it() {
    let held = lambda(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("catalog.json"),
        json!({"plans": [{"application": "cart", "plan": invoke_plan("cart")}], "default": {"plan": invoke_plan("default")}})
            .to_string(),
    )
    .unwrap();
    let plans = || {
        Plans::per_deployment(Some(&dir.path().join("catalog.json")), Some(TEMPLATE), Duration::ZERO, dir.path(), None)
    };
    let outcome = run(&held, Hook::POST_TRAFFIC, plans()).await;
    assert_eq!(outcome.verdict.checks[0].name, "default", "no entry, no parameter: the default");

    let held = lambda(Faults::default()).await;
    seed(&held, &invoke_plan("parameter"), ParameterType::String);
    let outcome = run(&held, Hook::POST_TRAFFIC, plans()).await;
    assert_eq!(outcome.verdict.checks[0].name, "parameter", "the parameter before the default");
}

// ---- ECS: the listeners' URLs ----------------------------------------------------------------------

#[tokio::test]
async fn one_shared_plan_finds_the_test_listener_of_the_deployment() {
    let held = Held::ecs("AfterAllowTestTraffic").await;
    seed(
        &held,
        &json!({"checks": [
            {"name": "green-health", "http": {"url": "${test_url}/health"}, "expect": {"status": [200]}},
            {"name": "blue-health", "http": {"url": "${production_url}/health", "headers": {"x-service": "${cluster}/${service}"}}}]}),
        ParameterType::String,
    );
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    let calls = held.calls();
    for call in ["GetParameter", "GetDeploymentGroup", "DescribeListeners", "DescribeLoadBalancers"] {
        assert_eq!(calls.iter().filter(|c| *c == call).count(), 1, "{call} once per run: {calls:?}");
    }
}

#[tokio::test]
async fn the_listeners_asked_for_beside_the_plan_fail_only_a_plan_that_uses_them() {
    // An ECS hook with plans per deployment asks for the group's listeners while it reads the
    // plan. A role without GetDeploymentGroup then fails only the checks that need the URLs.
    let faults = || Faults { denied: ["GetDeploymentGroup".to_owned()].into(), ..Faults::default() };
    let held = Held::start(HeldTarget::Ecs, "AfterAllowTestTraffic", BTreeMap::new(), faults()).await;
    seed(&held, &json!({"checks": [{"name": "names", "http": {"url": "${test_url}/health"}}]}), ParameterType::String);
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert!(why.starts_with("${test_url}: access denied calling codedeploy:GetDeploymentGroup"), "{why}");
    assert_eq!(held.calls().iter().filter(|c| *c == "GetDeploymentGroup").count(), 1, "{:?}", held.calls());

    let held = Held::start(HeldTarget::Ecs, "AfterAllowTestTraffic", BTreeMap::new(), faults()).await;
    let plan = json!({"checks": [{"name": "deployment", "invoke": {"function": "probe-${cluster}"}}]});
    seed(&held, &plan, ParameterType::String);
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, parameter_plans(Duration::ZERO)).await;
    let why = reasons(&outcome);
    assert!(!why.contains("GetDeploymentGroup"), "a plan without the URLs never hears of the call: {why}");
    assert_eq!(held.accepted().len(), 1, "reported exactly once");
}

#[tokio::test]
async fn a_denied_listener_lookup_fails_the_checks_that_need_it_naming_the_action() {
    let faults = Faults { denied: ["DescribeListeners".to_owned()].into(), ..Faults::default() };
    let held = Held::start(HeldTarget::Ecs, "AfterAllowTestTraffic", BTreeMap::new(), faults).await;
    let plan = json!({"checks": [{"name": "green-health", "http": {"url": "${test_url}/health"}}]});
    let plan = greenlight::plan::parse(&plan.to_string(), Path::new("."));
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, Plans::ready(plan)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert!(
        why.starts_with(
            "${test_url}: access denied calling elasticloadbalancing:DescribeListeners: grant the hook's role"
        ),
        "{why}"
    );
}

// ---- the network ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_hook_that_cannot_reach_codedeploy_says_what_is_likely_missing() {
    // A port nothing listens on: connections are refused, as an endpoint without a route fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let aws = AwsClients::new(&sdk_config(&format!("http://{closed}")).await);
    let plan = greenlight::plan::parse(&invoke_plan("x").to_string(), Path::new("."));
    let gate = Arc::new(Gate::with_plans(Hook::POST_TRAFFIC, Plans::ready(plan), aws).dry_run(true));
    let event = greenlight::event::HookEvent { deployment_id: "d-NOROUTE1".into(), execution_id: "e".into() };
    let outcome = gate.run(&event, Instant::now() + Duration::from_secs(10)).await.expect("a dry run reports nothing");
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = &outcome.verdict.reason;
    assert!(why.starts_with("discovery: codedeploy:ListDeploymentTargets failed: "), "{why}");
    assert!(why.ends_with(greenlight::aws_http::UNREACHABLE), "{why}");
}

// ---- compare: blue against green, no schema ---------------------------------------------------------

fn compare_plan(compare: Value) -> Plans {
    let plan = json!({"checks": [{"name": "cart-contract", "compare": compare}]});
    Plans::ready(greenlight::plan::parse(&plan.to_string(), Path::new(".")))
}

#[tokio::test]
async fn the_checkout_rename_is_caught_by_comparing_green_with_blue() {
    let held =
        Held::start(HeldTarget::EcsGreen("minor-units"), "AfterAllowTestTraffic", BTreeMap::new(), Faults::default())
            .await;
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, compare_plan(json!({"path": "/v2/cart/42"}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert_eq!(
        why,
        "the candidate differs from the baseline: /total_cents: missing in candidate; /total_minor_units: only in candidate"
    );
    assert!(!why.contains("1250") && !why.contains("EUR"), "reasons name pointers, never values: {why}");
}

#[tokio::test]
async fn a_compatible_green_passes_and_forbid_added_catches_its_new_field() {
    let held = Held::ecs("AfterAllowTestTraffic").await;
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, compare_plan(json!({"path": "/v2/cart/42"}))).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));

    let held = Held::ecs("AfterAllowTestTraffic").await;
    let strict = compare_plan(json!({"path": "/v2/cart/42", "forbid_added": true}));
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, strict).await;
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert_eq!(why, "the candidate differs from the baseline: /total_minor_units: only in candidate");
}

#[tokio::test]
async fn a_path_the_baseline_does_not_serve_fails_instead_of_comparing_two_error_pages() {
    let held = Held::ecs("AfterAllowTestTraffic").await;
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, compare_plan(json!({"path": "/v2/no-such-route"}))).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert_eq!(
        why,
        "the baseline answered status 404, so there is nothing to compare the candidate with; compare a request the baseline serves"
    );
}

#[tokio::test]
async fn values_mode_sends_the_baseline_twice_and_ignores_what_differs_there() {
    let held = Held::ecs("AfterAllowTestTraffic").await;
    let outcome =
        run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, compare_plan(json!({"path": "/v2/cart/42", "mode": "values"})))
            .await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
}

#[tokio::test]
async fn a_compare_with_side_effects_must_say_so_and_a_lambda_deployment_has_no_listeners() {
    let plan = json!({"checks": [{"name": "c", "compare": {"path": "/orders", "method": "POST"}}]});
    let err = greenlight::plan::parse(&plan.to_string(), Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("at /checks/0/compare: only GET and HEAD without a body"), "{err}");

    let held = lambda(Faults::default()).await;
    let outcome = run(&held, Hook::POST_TRAFFIC, compare_plan(json!({"path": "/v2/cart/42"}))).await;
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert!(why.starts_with("${production_url}: an ECS deployment's variable"), "{why}");
}

#[tokio::test]
async fn lambda_versions_are_compared_with_the_same_payload() {
    // Version 4 answers {"version": 4}, version 5 {"version": 5}: one shape, two values.
    let held = lambda(Faults::default()).await;
    let outcome = run(&held, Hook::POST_TRAFFIC, compare_plan(json!({"invoke": {"payload": {"cart": 42}}}))).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    let invoked = held.invocations();
    assert!(invoked.contains(&("checkout".to_owned(), "4".to_owned())), "{invoked:?}");
    assert!(invoked.contains(&("checkout".to_owned(), "5".to_owned())), "{invoked:?}");

    let held = lambda(Faults::default()).await;
    let values = compare_plan(json!({"invoke": {"payload": {"cart": 42}}, "mode": "values"}));
    let outcome = run(&held, Hook::POST_TRAFFIC, values).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let why = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert_eq!(why, "the candidate differs from the baseline: /version: value changed");
}

// ---- the example fleet catalog ---------------------------------------------------------------------

#[tokio::test]
async fn the_example_catalogs_plans_all_load_and_its_checkout_plan_catches_the_rename() {
    let folder = greenlight_tests::workspace_root().join("examples/fleet");
    let catalog = greenlight::plan::catalog::Catalog::load(&folder.join("after-allow-test-traffic.catalog.json"), None)
        .expect("the example catalog loads");
    assert_eq!(catalog.errors().collect::<Vec<_>>(), Vec::<&str>::new(), "every plan in it is valid");

    let held = Held::ecs("AfterAllowTestTraffic").await;
    let smoke =
        greenlight::plan::load(&greenlight::plan::PlanSource::File(folder.join("plans/test-traffic.json")), &folder);
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, Plans::ready(smoke)).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));

    let held =
        Held::start(HeldTarget::EcsGreen("minor-units"), "AfterAllowTestTraffic", BTreeMap::new(), Faults::default())
            .await;
    let checkout = greenlight::plan::load(
        &greenlight::plan::PlanSource::File(folder.join("plans/checkout-test-traffic.json")),
        &folder,
    );
    let outcome = run(&held, Hook::AFTER_ALLOW_TEST_TRAFFIC, Plans::ready(checkout)).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let contract = outcome.verdict.checks.iter().find(|c| c.name == "cart-contract").expect("the contract check");
    assert!(
        contract.reason.as_deref().is_some_and(|r| r.contains("/total_cents: missing in candidate")),
        "{contract:?}"
    );
    assert!(outcome.verdict.checks.iter().find(|c| c.name == "health").is_some_and(|c| c.passed));
}

#[tokio::test]
async fn a_hanging_parameter_read_still_reports_failed_before_the_deadline() {
    let faults = Faults { hanging: ["GetParameter".to_owned()].into(), ..Faults::default() };
    let held = lambda(faults).await;
    let aws = AwsClients::new(&sdk_config(&held.endpoint()).await);
    let gate = Arc::new(Gate::with_plans(Hook::POST_TRAFFIC, parameter_plans(Duration::ZERO), aws));
    let deadline = Instant::now() + Duration::from_secs(4);
    let outcome = gate.run(&held.event(), deadline).await.expect("reported");
    assert!(Instant::now() < deadline, "reported after the deadline");
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert_eq!(outcome.verdict.reason, "deadline: the plan did not load in time");
    assert_eq!(held.accepted().len(), 1, "reported exactly once");
}
