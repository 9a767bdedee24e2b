//! End to end through the local CodeDeploy and its runtime host: every drill scenario, with the
//! real hook binaries behind the Lambda Runtime API, the sample checkout apps as real processes,
//! and production traffic through the emulator's alias routing or ECS listeners.

use codedeploy_local::drill::{DrillSetup, ScenarioName, ScenarioOutcome, run_scenario};
use codedeploy_local::emulator::TimeScale;
use greenlight_tests::{bin_dir, workspace_root};

/// Runs `scenario`: what each of its releases did.
async fn releases(scenario: ScenarioName) -> Vec<ScenarioOutcome> {
    let setup = DrillSetup {
        bin_dir: bin_dir(),
        drill_dir: workspace_root().join("examples/drill"),
        out_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill"),
        scale: TimeScale(120.0),
        live: false,
    };
    let outcomes = run_scenario(&setup, scenario).await.expect("the scenario ran");
    for outcome in &outcomes {
        assert!(outcome.picture.exists(), "no picture at {}", outcome.picture.display());
    }
    outcomes
}

/// Runs a scenario of one release.
async fn drill(scenario: ScenarioName) -> ScenarioOutcome {
    let mut outcomes = releases(scenario).await;
    assert_eq!(outcomes.len(), 1, "{} deploys one release", scenario.as_str());
    outcomes.remove(0)
}

fn events(outcome: &ScenarioOutcome) -> Vec<(&str, &str)> {
    outcome.events.iter().map(|(name, status)| (name.as_str(), status.as_str())).collect()
}

fn weights(outcome: &ScenarioOutcome, route: &str) -> Vec<f64> {
    outcome.weights.iter().filter(|(r, _)| r == route).map(|(_, w)| *w).collect()
}

/// The failed checks' reasons of `hook`'s failed verdicts.
fn failures_of<'a>(outcome: &'a ScenarioOutcome, hook: &str) -> Vec<&'a str> {
    outcome
        .verdicts
        .iter()
        .filter(|v| v.hook == hook && v.status == "Failed")
        .flat_map(|v| v.failed_checks.iter().map(|(_, reason)| reason.as_str()))
        .collect()
}

/// Every hook's verdict, as (hook, status), in the order they ran.
fn verdicts(outcome: &ScenarioOutcome) -> Vec<(&str, &str)> {
    outcome.verdicts.iter().map(|v| (v.hook.as_str(), v.status.as_str())).collect()
}

fn accepted(outcome: &ScenarioOutcome) -> Vec<&str> {
    outcome.reports.iter().filter(|(_, result)| result == "accepted").map(|(status, _)| status.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_canary_of_a_healthy_version_succeeds() {
    let outcome = drill(ScenarioName::LambdaCanary).await;
    assert_eq!(outcome.status, "Succeeded", "{outcome:#?}");
    assert_eq!(
        events(&outcome),
        [("BeforeAllowTraffic", "Succeeded"), ("AllowTraffic", "Succeeded"), ("AfterAllowTraffic", "Succeeded")]
    );
    assert_eq!(weights(&outcome, "alias"), [10.0, 100.0]);
    assert_eq!(accepted(&outcome), ["Succeeded", "Succeeded"]);
    let hooks: Vec<_> =
        outcome.hook_invocations.iter().map(|(f, attempt, o)| (f.as_str(), *attempt, o.as_str())).collect();
    assert_eq!(hooks, [("CodeDeployHook_pre-traffic", 1, "response"), ("CodeDeployHook_post-traffic", 1, "response")]);
    // post-traffic's error-rate comparison ran on the shift's real traffic and passed.
    assert_eq!(
        verdicts(&outcome),
        [("pre-traffic", "Succeeded"), ("post-traffic", "Succeeded")],
        "{:?}",
        outcome.verdicts
    );
    let blast = outcome.blast_radius;
    assert!(blast.new_ok > 0 && blast.old_ok > 0, "{blast:?}");
    assert_eq!((blast.old_errors, blast.new_errors), (0, 0));
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_lambda_version_is_caught_before_the_alias_moves() {
    let outcome = drill(ScenarioName::LambdaBrokenVersion).await;
    assert_eq!((outcome.status.as_str(), outcome.error_code.as_deref()), ("Failed", Some("HOOK_EXECUTION_FAILURE")));
    assert_eq!(
        events(&outcome),
        [("BeforeAllowTraffic", "Failed"), ("AllowTraffic", "Skipped"), ("AfterAllowTraffic", "Skipped")]
    );
    assert!(weights(&outcome, "alias").iter().all(|w| *w == 0.0), "the alias moved: {:?}", outcome.weights);
    assert_eq!(accepted(&outcome), ["Failed"]);
    assert_eq!(outcome.blast_radius.new_ok + outcome.blast_radius.new_errors, 0, "{:?}", outcome.blast_radius);
    assert_eq!(outcome.blast_radius.old_errors, 0);
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_checkout_contract_break_never_reaches_production() {
    let outcome = drill(ScenarioName::EcsContractBreak).await;
    assert_eq!((outcome.status.as_str(), outcome.error_code.as_deref()), ("Failed", Some("HOOK_EXECUTION_FAILURE")));
    assert_eq!(
        events(&outcome),
        [
            ("BeforeInstall", "Succeeded"),
            ("Install", "Succeeded"),
            ("AfterInstall", "Succeeded"),
            ("AllowTestTraffic", "Succeeded"),
            ("AfterAllowTestTraffic", "Failed"),
            ("BeforeAllowTraffic", "Skipped"),
            ("AllowTraffic", "Skipped"),
            ("AfterAllowTraffic", "Skipped"),
        ]
    );
    assert_eq!(weights(&outcome, "test"), [100.0, 0.0], "test traffic went to green, then back");
    assert!(weights(&outcome, "production").iter().all(|w| *w == 0.0), "{:?}", outcome.weights);
    assert_eq!(accepted(&outcome), ["Succeeded", "Succeeded", "Failed"]);
    let blast = outcome.blast_radius;
    assert_eq!(blast.new_ok + blast.new_errors, 0, "green served production: {blast:?}");
    assert!(blast.old_ok > 0 && blast.old_errors == 0, "{blast:?}");
    assert!(outcome.rollback.is_some());
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecs_canary_of_a_compatible_green_succeeds() {
    let outcome = drill(ScenarioName::EcsCanary).await;
    assert_eq!(outcome.status, "Succeeded", "{outcome:#?}");
    assert!(outcome.events.iter().all(|(_, status)| status == "Succeeded"), "{:?}", outcome.events);
    assert_eq!(outcome.events.len(), 8);
    assert_eq!(weights(&outcome, "production"), [10.0, 100.0]);
    assert_eq!(weights(&outcome, "test"), [100.0]);
    assert_eq!(accepted(&outcome), ["Succeeded"; 5]);
    // after-allow-traffic's p99 rank test, green against blue, ran on the canary's traffic and passed.
    assert_eq!(verdicts(&outcome).last(), Some(&("after-allow-traffic", "Succeeded")), "{:?}", outcome.verdicts);
    assert!(outcome.verdicts.iter().all(|v| v.status == "Succeeded"), "{:?}", outcome.verdicts);
    let blast = outcome.blast_radius;
    assert!(blast.new_ok > 0 && blast.old_ok > 0, "{blast:?}");
    assert_eq!((blast.old_errors, blast.new_errors), (0, 0));
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_during_the_canary_rolls_production_back_to_blue() {
    let outcome = drill(ScenarioName::EcsAlarmRollback).await;
    assert_eq!((outcome.status.as_str(), outcome.error_code.as_deref()), ("Stopped", Some("ALARM_ACTIVE")));
    let statuses = events(&outcome);
    assert_eq!(statuses[6], ("AllowTraffic", "Failed"));
    assert_eq!(statuses[7], ("AfterAllowTraffic", "Skipped"));
    assert_eq!(weights(&outcome, "production"), [10.0, 0.0]);
    assert!(outcome.rollback.as_deref().is_some_and(|m| m.contains("automatic rollback")), "{:?}", outcome.rollback);
    let blast = outcome.blast_radius;
    assert!(blast.new_ok > 0, "the canary got some traffic before the alarm: {blast:?}");
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slower_green_is_rolled_back_by_its_p99_against_blue_while_the_alarm_stays_quiet() {
    let outcome = drill(ScenarioName::EcsLatencyRegression).await;
    assert_eq!((outcome.status.as_str(), outcome.error_code.as_deref()), ("Failed", Some("HOOK_EXECUTION_FAILURE")));
    let statuses = events(&outcome);
    assert_eq!(
        statuses[5..],
        [("BeforeAllowTraffic", "Succeeded"), ("AllowTraffic", "Succeeded"), ("AfterAllowTraffic", "Failed")]
    );
    assert_eq!(statuses[4], ("AfterAllowTestTraffic", "Succeeded"), "the smoke test passes: green answers correctly");
    assert_eq!(weights(&outcome, "production"), [10.0, 100.0, 0.0], "canary, shift, then back to blue");
    assert_eq!(accepted(&outcome), ["Succeeded", "Succeeded", "Succeeded", "Succeeded", "Failed"]);
    let failures = failures_of(&outcome, "after-allow-traffic");
    assert_eq!(failures.len(), 1, "only the metric check failed: {:?}", outcome.verdicts);
    assert!(
        failures[0].contains("candidate green_p99 vs baseline blue_p99: candidate median ")
            && failures[0].contains("higher at 98 % confidence"),
        "{failures:?}"
    );
    assert!(outcome.rollback.is_some());
    let blast = outcome.blast_radius;
    // Green answered correctly; only a request in flight when the rollback stops its tasks can be cut.
    assert!(blast.new_ok > 0 && blast.new_errors <= 1, "green served, correctly: {blast:?}");
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_version_failing_one_call_in_twenty_is_rolled_back_by_post_traffic() {
    let outcome = drill(ScenarioName::LambdaErrorRegression).await;
    assert_eq!((outcome.status.as_str(), outcome.error_code.as_deref()), ("Failed", Some("HOOK_EXECUTION_FAILURE")));
    assert_eq!(
        events(&outcome),
        [("BeforeAllowTraffic", "Succeeded"), ("AllowTraffic", "Succeeded"), ("AfterAllowTraffic", "Failed")]
    );
    let alias = weights(&outcome, "alias");
    assert_eq!(alias.first(), Some(&10.0), "{alias:?}");
    assert!(alias.contains(&100.0) && alias.last() == Some(&0.0), "linear shift, then back: {alias:?}");
    assert_eq!(accepted(&outcome), ["Succeeded", "Failed"]);
    // The smoke check's three calls through the alias may meet one of the failures too; the
    // metric check must fail whatever they meet.
    let failures = failures_of(&outcome, "post-traffic");
    assert!(
        failures.iter().any(|reason| reason.contains("candidate mean ") && reason.contains("is above the baseline's")),
        "{:?}",
        outcome.verdicts
    );
    let blast = outcome.blast_radius;
    assert!(blast.new_errors > 0 && blast.new_ok > 10 * blast.new_errors, "about 5 % failed: {blast:?}");
    assert_eq!(blast.old_errors, 0);
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_deploys_three_services_through_one_set_of_hooks_and_stops_only_the_broken_one() {
    // The plans hold no schema: checkout's rename is for the comparison with blue to find.
    for entry in std::fs::read_dir(workspace_root().join("examples/drill/fleet/ecs")).unwrap() {
        let plan = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!plan.contains("json_schema"), "{plan}");
    }
    let outcomes = releases(ScenarioName::Fleet).await;
    let by_service = |service: &str| {
        outcomes.iter().find(|o| o.release.service == service).unwrap_or_else(|| panic!("no {service} release"))
    };
    let ids: std::collections::BTreeSet<&str> = outcomes.iter().map(|o| o.deployment_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "three deployments: {ids:?}");

    let checkout = by_service("checkout");
    assert_eq!((checkout.status.as_str(), checkout.error_code.as_deref()), ("Failed", Some("HOOK_EXECUTION_FAILURE")));
    assert_eq!(
        verdicts(checkout),
        [("before-install", "Succeeded"), ("after-install", "Succeeded"), ("after-allow-test-traffic", "Failed")]
    );
    // Caught by the comparison alone: green's health check passed.
    assert_eq!(
        failures_of(checkout, "after-allow-test-traffic"),
        [
            "failed 3 of 3 attempts; last: the candidate differs from the baseline: /total_cents: missing in candidate; /total_minor_units: only in candidate"
        ]
    );
    assert!(weights(checkout, "production").iter().all(|w| *w == 0.0), "{:?}", checkout.weights);
    assert_eq!(checkout.blast_radius.new_ok + checkout.blast_radius.new_errors, 0);

    let cart = by_service("cart");
    assert_eq!(cart.status, "Succeeded", "{:?}", cart.verdicts);
    assert_eq!(accepted(cart), ["Succeeded"; 5]);
    assert_eq!(weights(cart, "production").last(), Some(&100.0));

    let payments = by_service("payments");
    assert_eq!(payments.status, "Succeeded", "{:?}", payments.verdicts);
    assert_eq!(verdicts(payments), [("pre-traffic", "Succeeded"), ("post-traffic", "Succeeded")]);
    assert_eq!(weights(payments, "alias").last(), Some(&100.0));

    for outcome in &outcomes {
        assert!(outcome.surprises.is_empty(), "{}: {:?}", outcome.label(), outcome.surprises);
    }
    let summary = codedeploy_local::drill::summary_table(&outcomes);
    for row in ["| fleet/checkout | Failed |", "| fleet/cart | Succeeded |", "| fleet/payments | Succeeded |"] {
        assert!(summary.contains(row), "{summary}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_that_goes_wrong_is_reported_not_waited_for() {
    // The alarm scenario waits for its canary to raise the alarm. Here the smoke test fails
    // first, so there is no canary: the drill must still end and say what went differently.
    let drill_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-drill");
    let source = workspace_root().join("examples/drill");
    for sub in ["plans", "schemas"] {
        std::fs::create_dir_all(drill_dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(source.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), drill_dir.join(sub).join(entry.file_name())).unwrap();
        }
    }
    let smoke = drill_dir.join("plans/after-allow-test-traffic.json");
    let plan = std::fs::read_to_string(&smoke).unwrap().replacen("\"status\": [200]", "\"status\": [418]", 1);
    std::fs::write(&smoke, plan).unwrap();
    let setup = DrillSetup {
        bin_dir: bin_dir(),
        drill_dir,
        out_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-drill-out"),
        scale: TimeScale(120.0),
        live: false,
    };
    let run = run_scenario(&setup, ScenarioName::EcsAlarmRollback);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the drill ended")
        .expect("the scenario ran")
        .remove(0);
    assert_eq!(outcome.status, "Failed");
    assert!(
        outcome.surprises.iter().any(|s| s.contains("status Failed (expected Stopped)")),
        "{:?}",
        outcome.surprises
    );
}

/// (hook, stage, outcome) of the ECS-native hook invocations, forward or in the rollback.
fn ecs_calls(outcome: &ScenarioOutcome, rollback: bool) -> Vec<(&str, &str, &str)> {
    outcome
        .ecs_hook_calls
        .iter()
        .filter(|call| call.rollback == rollback)
        .map(|call| (call.hook.as_str(), call.stage.as_str(), call.outcome.as_str()))
        .collect()
}

/// Every hook of the ECS-native service, invoked at both stages of the rollback, stood aside.
fn assert_the_rollback_stood_aside(outcome: &ScenarioOutcome) {
    let hooks = ["after-allow-test-traffic", "before-allow-traffic", "after-allow-traffic"];
    let expected: Vec<(&str, &str, &str)> = ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]
        .into_iter()
        .flat_map(|stage| hooks.map(|hook| (hook, stage, "SUCCEEDED")))
        .collect();
    assert_eq!(ecs_calls(outcome, true), expected);
    let stood_aside: Vec<&str> =
        outcome.verdicts.iter().filter(|v| v.reason.starts_with("stood aside:")).map(|v| v.hook.as_str()).collect();
    assert_eq!(stood_aside.len(), 6, "{:?}", outcome.verdicts);
    assert!(weights(outcome, "production").last().is_some_and(|w| *w == 0.0), "{:?}", outcome.weights);
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_a_contract_break_is_caught_at_post_test_traffic_shift_before_production() {
    let outcome = drill(ScenarioName::EcsNativeContractBreak).await;
    assert_eq!(outcome.status, "ROLLBACK_SUCCESSFUL", "{outcome:#?}");
    assert_eq!(ecs_calls(&outcome, false), [("after-allow-test-traffic", "POST_TEST_TRAFFIC_SHIFT", "FAILED")]);
    assert!(failures_of(&outcome, "after-allow-test-traffic").iter().any(|r| r.contains("/total_cents is missing")));
    assert_the_rollback_stood_aside(&outcome);
    assert!(weights(&outcome, "production").iter().all(|w| *w == 0.0), "{:?}", outcome.weights);
    let blast = outcome.blast_radius;
    assert_eq!(blast.new_ok + blast.new_errors, 0, "green served production: {blast:?}");
    assert!(blast.old_ok > 0 && blast.old_errors == 0, "{blast:?}");
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_a_per_step_metric_gate_stops_a_linear_deployment_at_its_second_step() {
    let outcome = drill(ScenarioName::EcsNativeCanaryRegression).await;
    assert_eq!(outcome.status, "ROLLBACK_SUCCESSFUL", "{outcome:#?}");
    let gates: Vec<&str> = ecs_calls(&outcome, false)
        .into_iter()
        .filter(|(_, stage, _)| *stage == "PRE_PRODUCTION_TRAFFIC_SHIFT")
        .map(|(_, _, answer)| answer)
        .collect();
    assert_eq!(gates, ["SUCCEEDED", "FAILED"], "the gate before the first step passed, the second's failed");
    assert_eq!(weights(&outcome, "production"), [25.0, 0.0], "one step of 25 %, then back");
    let failures = failures_of(&outcome, "before-allow-traffic");
    assert!(
        failures.iter().any(|r| r.contains("candidate green_5xx_share") && r.contains("not at most 0.01")),
        "{failures:?}"
    );
    assert_the_rollback_stood_aside(&outcome);
    assert!(outcome.blast_radius.new_errors > 0, "green failed some production requests: {:?}", outcome.blast_radius);
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_native_a_bake_longer_than_an_invocation_goes_on_in_progress_and_succeeds() {
    let outcome = drill(ScenarioName::EcsNativeLongBake).await;
    assert_eq!(outcome.status, "SUCCESSFUL", "{outcome:#?}");
    let bake: Vec<(u32, &str)> = outcome
        .ecs_hook_calls
        .iter()
        .filter(|call| call.hook == "after-allow-traffic")
        .map(|call| (call.attempt, call.outcome.as_str()))
        .collect();
    assert!(bake.len() >= 3, "{bake:?}");
    let (last, going_on) = bake.split_last().unwrap();
    assert!(going_on.iter().all(|(_, answer)| *answer == "IN_PROGRESS"), "{bake:?}");
    assert_eq!(last.1, "SUCCEEDED", "{bake:?}");
    assert_eq!(
        bake.iter().map(|(attempt, _)| *attempt).collect::<Vec<_>>(),
        (1..=bake.len() as u32).collect::<Vec<_>>()
    );
    assert!(ecs_calls(&outcome, true).is_empty(), "no rollback");
    assert_eq!(weights(&outcome, "production"), [10.0, 100.0]);
    assert!(outcome.blast_radius.new_ok > 0 && outcome.blast_radius.new_errors == 0, "{:?}", outcome.blast_radius);
    assert!(outcome.surprises.is_empty(), "{:?}", outcome.surprises);
}
