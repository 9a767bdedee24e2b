//! Metric and alarms checks end to end: the gate discovers the deployment on the local CodeDeploy,
//! resolves its variables (through the local ELBv2 for ECS target groups), and asks the local
//! CloudWatch over the Rust SDK's rpcv2Cbor; the datapoints come from the test, published with
//! `PutMetricData` as an application's would. Unhappy paths first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricDatum, StandardUnit, StateValue, Statistic};
use codedeploy_local::cloudwatch::store::{MetricKey, Observation, Sample};
use codedeploy_local::ecs::traffic::TaskSetLabel;
use codedeploy_local::faults::Faults;
use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::deployment::{Answer, Held, HeldTarget, SCALE, scripted, sdk_config};
use greenlight_tests::workspace_root;
use serde_json::{Value, json};
use tokio::time::Instant;

const SERVICE: &str = "checkout-cluster:checkout";

/// One real second of datapoints: what a 60-second period lasts at the harness's time scale.
fn period() -> Duration {
    SCALE.apply(Duration::from_secs(60))
}

async fn cloudwatch(held: &Held) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&sdk_config(&held.endpoint()).await)
}

/// Records one datapoint per (scaled) period for the last `values.len()` periods, oldest first.
/// CloudWatch refuses `AWS/` namespaces from `PutMetricData` (AWS's services publish them), so
/// these go into the local CloudWatch's store as its listeners and Lambda record them;
/// `local/tests/cloudwatch.rs` covers that recording from real traffic.
fn record(held: &Held, namespace: &str, name: &str, dimensions: &[(&str, &str)], values: &[f64]) {
    let now = SystemTime::now();
    let metrics = held.emulator().metrics();
    for (back, value) in values.iter().rev().enumerate() {
        let at = now - period() * (back as u32 + 1);
        let observation = Observation::Value { value: *value, count: 1.0 };
        metrics.put(MetricKey::new(namespace, name, dimensions), Sample { at, observation });
    }
}

/// Publishes p-shaped response times for a task set's target group.
fn response_times(held: &Held, label: TaskSetLabel, values: &[f64]) {
    let group = codedeploy_local::elbv2::target_group(SERVICE, label).dimension;
    let balancer = codedeploy_local::elbv2::load_balancer(SERVICE).dimension;
    let dimensions = [("TargetGroup", group.as_str()), ("LoadBalancer", balancer.as_str())];
    record(held, "AWS/ApplicationELB", "TargetResponseTime", &dimensions, values);
}

fn latency_query(id: &str, group: &str) -> Value {
    json!({"Id": id, "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
        "Dimensions": [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": "${load_balancer}"}]},
        "Period": 60, "Stat": "p99"}})
}

/// Green's p99 against blue's, by rank test, over the last ten minutes.
fn latency_plan() -> Value {
    json!({"checks": [{"name": "p99-vs-blue", "metric": {
        "candidate": [latency_query("green", "${green_target_group}")],
        "baseline": [latency_query("blue", "${blue_target_group}")],
        "window": {"last_ms": 600_000},
        "judge": {"rank_test": {"direction": "increase"}}
    }}]})
}

/// Runs `hook` on the held deployment with `plan`, and reports the verdict.
async fn run(held: &Held, hook: Hook, plan: Value) -> (RunOutcome, AwsClients) {
    judge(held, hook, plan, false).await
}

/// Runs `hook`; a dry run judges without reporting, so the held event stays in progress for the
/// next run.
async fn judge(held: &Held, hook: Hook, plan: Value, dry_run: bool) -> (RunOutcome, AwsClients) {
    let plan = greenlight::plan::parse(&plan.to_string(), &workspace_root());
    let aws = AwsClients::new(&sdk_config(&held.endpoint()).await);
    let gate = Arc::new(Gate::new(hook, plan, aws.clone()).dry_run(dry_run));
    let outcome = gate.run(&held.event(), Instant::now() + Duration::from_secs(10)).await.expect("reported");
    (outcome, aws)
}

fn reasons(outcome: &RunOutcome) -> String {
    let checks: Vec<String> = outcome.verdict.checks.iter().filter_map(|c| c.reason.clone()).collect();
    format!("{} | {}", outcome.verdict.reason, checks.join(" | "))
}

fn blue_latencies() -> Vec<f64> {
    vec![0.30, 0.31, 0.29, 0.32, 0.30, 0.28, 0.31, 0.30, 0.29, 0.33]
}

#[tokio::test]
async fn green_three_times_slower_than_blue_fails_after_allow_traffic_with_the_numbers() {
    let held = Held::ecs("AfterAllowTraffic").await;
    response_times(&held, TaskSetLabel::Blue, &blue_latencies());
    let slower: Vec<f64> = blue_latencies().iter().map(|v| v * 3.0).collect();
    response_times(&held, TaskSetLabel::Green, &slower);
    let (outcome, _) = run(&held, Hook::AFTER_ALLOW_TRAFFIC, latency_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("candidate green vs baseline blue") && why.contains("higher at 98"), "{why}");
    assert_eq!(held.accepted().len(), 1);
    let calls = held.calls();
    assert!(calls.iter().any(|c| c == "DescribeTargetGroups"), "{calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "GetMetricData").count(), 1, "one call per measurement: {calls:?}");
}

#[tokio::test]
async fn green_as_fast_as_blue_passes_on_noisy_traffic() {
    let held = Held::ecs("AfterAllowTraffic").await;
    response_times(&held, TaskSetLabel::Blue, &blue_latencies());
    response_times(&held, TaskSetLabel::Green, &[0.31, 0.29, 0.30, 0.33, 0.28, 0.30, 0.32, 0.29, 0.31, 0.30]);
    let (outcome, aws) = run(&held, Hook::AFTER_ALLOW_TRAFFIC, latency_plan()).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    assert!(aws.cloudwatch_built());
}

#[tokio::test]
async fn no_green_datapoints_fail_closed_naming_the_candidate() {
    let held = Held::ecs("AfterAllowTraffic").await;
    response_times(&held, TaskSetLabel::Blue, &blue_latencies());
    let (outcome, _) = run(&held, Hook::AFTER_ALLOW_TRAFFIC, latency_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(
        why.contains("no data: candidate green has 0 datapoint(s)") && why.contains("the candidate below"),
        "{why}"
    );
}

#[tokio::test]
async fn a_denied_get_metric_data_names_the_action_to_grant() {
    let faults = Faults { denied: ["GetMetricData".to_owned()].into(), ..Faults::default() };
    let held = Held::start(HeldTarget::Ecs, "AfterAllowTraffic", BTreeMap::new(), faults).await;
    let (outcome, _) = run(&held, Hook::AFTER_ALLOW_TRAFFIC, latency_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("access denied calling cloudwatch:GetMetricData: grant the hook's role"), "{why}");
}

#[tokio::test]
async fn a_throttled_get_metric_data_fails_after_the_sdks_retries_naming_the_call() {
    let faults = Faults { throttled: ["GetMetricData".to_owned()].into(), ..Faults::default() };
    let held = Held::start(HeldTarget::Ecs, "AfterAllowTraffic", BTreeMap::new(), faults).await;
    let (outcome, _) = run(&held, Hook::AFTER_ALLOW_TRAFFIC, latency_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("cloudwatch:GetMetricData failed: Throttling: Rate exceeded"), "{why}");
    let calls = held.calls().iter().filter(|c| *c == "GetMetricData").count();
    assert_eq!(calls, 3, "the SDK's three attempts, then the verdict");
    assert_eq!(held.accepted().len(), 1);
}

#[tokio::test]
async fn a_hanging_get_metric_data_still_reports_failed_before_the_deadline() {
    let faults = Faults { hanging: ["GetMetricData".to_owned()].into(), ..Faults::default() };
    let held = Held::start(HeldTarget::Ecs, "AfterAllowTraffic", BTreeMap::new(), faults).await;
    let plan = greenlight::plan::parse(&latency_plan().to_string(), &workspace_root());
    let gate =
        Arc::new(Gate::new(Hook::AFTER_ALLOW_TRAFFIC, plan, AwsClients::new(&sdk_config(&held.endpoint()).await)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(4);
    let outcome = gate.run(&held.event(), deadline).await.expect("reported");
    assert!(Instant::now() < deadline, "reported after the deadline");
    assert_eq!(outcome.verdict.status, Status::Failed, "{}", reasons(&outcome));
    assert_eq!(held.accepted().len(), 1);
}

#[tokio::test]
async fn a_plan_without_metric_or_alarm_checks_builds_no_cloudwatch_client() {
    let held = lambda_post_traffic().await;
    let plan = json!({"checks": [{"name": "new-version-answers", "invoke": {}}]});
    let (outcome, aws) = run(&held, Hook::POST_TRAFFIC, plan).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
    assert!(!aws.cloudwatch_built(), "a CloudWatch client was built for a plan that never calls it");
}

/// A Lambda deployment (checkout 4 → 5 behind `live`) held in AfterAllowTraffic.
async fn lambda_post_traffic() -> Held {
    let answer = || scripted(Answer::Payload(json!({"ok": true})));
    let target = HeldTarget::Lambda { current: answer(), target: answer() };
    Held::start(target, "AfterAllowTraffic", BTreeMap::new(), Faults::default()).await
}

/// Errors and invocations per period of one version behind `checkout:live`.
fn version_traffic(held: &Held, version: &str, errors: &[f64], invocations: &[f64]) {
    let dimensions = [("FunctionName", "checkout"), ("Resource", "checkout:live"), ("ExecutedVersion", version)];
    record(held, "AWS/Lambda", "Errors", &dimensions, errors);
    record(held, "AWS/Lambda", "Invocations", &dimensions, invocations);
}

fn lambda_error_rate(prefix: &str, version: &str) -> Vec<Value> {
    let stat = |id: String, metric: &str| {
        json!({"Id": id, "ReturnData": false, "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": "${function_name}"},
                           {"Name": "Resource", "Value": "${function_name}:${alias}"},
                           {"Name": "ExecutedVersion", "Value": version}]},
            "Period": 60, "Stat": "Sum"}})
    };
    vec![
        stat(format!("{prefix}_errors"), "Errors"),
        stat(format!("{prefix}_calls"), "Invocations"),
        json!({"Id": format!("{prefix}_rate"), "Expression": format!("{prefix}_errors / {prefix}_calls")}),
    ]
}

fn lambda_plan() -> Value {
    json!({"checks": [{"name": "error-rate-vs-current", "metric": {
        "candidate": lambda_error_rate("new", "${target_version}"),
        "baseline": lambda_error_rate("old", "${current_version}"),
        "window": {"last_ms": 600_000},
        "judge": {"relative": {"direction": "increase", "max_ratio": 2, "margin": 0.01}}
    }}]})
}

#[tokio::test]
async fn a_new_version_failing_five_percent_fails_post_traffic_against_the_old_one() {
    let held = lambda_post_traffic().await;
    version_traffic(&held, "4", &[0.0, 1.0, 0.0, 0.0, 1.0], &[100.0; 5]);
    version_traffic(&held, "5", &[5.0, 6.0, 4.0, 5.0, 5.0], &[100.0; 5]);
    let (outcome, _) = run(&held, Hook::POST_TRAFFIC, lambda_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("candidate mean 0.05 is above the baseline's 0.004"), "{why}");
}

#[tokio::test]
async fn a_new_version_as_healthy_as_the_old_one_passes_post_traffic() {
    let held = lambda_post_traffic().await;
    version_traffic(&held, "4", &[0.0, 1.0, 0.0, 0.0, 1.0], &[100.0; 5]);
    version_traffic(&held, "5", &[1.0, 0.0, 0.0, 1.0, 0.0], &[100.0; 5]);
    let (outcome, _) = run(&held, Hook::POST_TRAFFIC, lambda_plan()).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
}

#[tokio::test]
async fn ecs_variables_in_a_lambda_deployment_fail_the_check_that_uses_them() {
    let held = lambda_post_traffic().await;
    let (outcome, _) = run(&held, Hook::POST_TRAFFIC, latency_plan()).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("${green_target_group}: an ECS deployment's variable, and d-"), "{why}");
}

async fn alarm(held: &Held, name: &str) {
    let client = cloudwatch(held).await;
    client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("Checkout")
        .metric_name("Failures")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("notBreaching")
        .send()
        .await
        .expect("PutMetricAlarm");
}

/// A datapoint that breaches `checkout-failures`, published now as the application would: a
/// period the alarm has already evaluated does not count again.
async fn breach(held: &Held) {
    let datum = MetricDatum::builder()
        .metric_name("Failures")
        .timestamp(SystemTime::now().into())
        .value(5.0)
        .unit(StandardUnit::Count)
        .build();
    let client = cloudwatch(held).await;
    client.put_metric_data().namespace("Checkout").metric_data(datum).send().await.expect("PutMetricData");
}

/// Waits until the alarm's evaluation has put it in `state`.
async fn wait_for_state(held: &Held, name: &str, state: StateValue) {
    let client = cloudwatch(held).await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let output = client.describe_alarms().alarm_names(name).send().await.expect("DescribeAlarms");
        if output.metric_alarms().first().and_then(|a| a.state_value()) == Some(&state) {
            return;
        }
        assert!(Instant::now() < until, "{name} never reached {state:?}: {output:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alarms_plan(window: Option<Value>) -> Value {
    let mut alarms = json!({"names": ["checkout-failures"]});
    if let Some(window) = window {
        alarms["window"] = window;
    }
    json!({"checks": [{"name": "production-quiet", "alarms": alarms}]})
}

#[tokio::test]
async fn an_alarm_that_does_not_exist_fails_and_one_in_alarm_fails_with_its_reason() {
    let held = Held::ecs("BeforeAllowTraffic").await;
    let (outcome, _) = judge(&held, Hook::BEFORE_ALLOW_TRAFFIC, alarms_plan(None), true).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("no such alarm: checkout-failures"), "{why}");

    alarm(&held, "checkout-failures").await;
    breach(&held).await;
    wait_for_state(&held, "checkout-failures", StateValue::Alarm).await;
    let (outcome, _) = run(&held, Hook::BEFORE_ALLOW_TRAFFIC, alarms_plan(None)).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("alarm checkout-failures is ALARM"), "{why}");
}

#[tokio::test]
async fn an_alarm_that_fired_and_cleared_in_the_window_fails_and_outside_it_passes() {
    let held = Held::ecs("BeforeAllowTraffic").await;
    alarm(&held, "checkout-failures").await;
    wait_for_state(&held, "checkout-failures", StateValue::Ok).await;
    let since_deployment = || alarms_plan(Some(json!({"since": "deployment"})));
    let (outcome, _) = judge(&held, Hook::BEFORE_ALLOW_TRAFFIC, since_deployment(), true).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));

    breach(&held).await;
    wait_for_state(&held, "checkout-failures", StateValue::Alarm).await;
    wait_for_state(&held, "checkout-failures", StateValue::Ok).await;
    let (outcome, _) = judge(&held, Hook::BEFORE_ALLOW_TRAFFIC, since_deployment(), true).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    assert!(why.contains("alarm checkout-failures went to ALARM during the window"), "{why}");
    // Without a window only the state now counts, and it is OK.
    let (outcome, _) = run(&held, Hook::BEFORE_ALLOW_TRAFFIC, alarms_plan(None)).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{}", reasons(&outcome));
}

/// Records, live, one datapoint per (scaled) period for `periods` periods: what a listener
/// records under steady traffic, all of it inside the AllowTraffic window.
async fn live_traffic(held: &Held, periods: u32, each: impl Fn(u32) -> Vec<(&'static str, TaskSetLabel, f64)>) {
    let balancer = codedeploy_local::elbv2::load_balancer(SERVICE).dimension;
    let metrics = held.emulator().metrics();
    for period_index in 0..periods {
        for (name, label, value) in each(period_index) {
            let group = codedeploy_local::elbv2::target_group(SERVICE, label).dimension;
            let key = MetricKey::new(
                "AWS/ApplicationELB",
                name,
                &[("TargetGroup", group.as_str()), ("LoadBalancer", balancer.as_str())],
            );
            metrics.put(key, Sample { at: SystemTime::now(), observation: Observation::Value { value, count: 1.0 } });
        }
        tokio::time::sleep(period()).await;
    }
}

fn example_plan(name: &str) -> Value {
    let path = workspace_root().join("examples/plans").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the example plan")).expect("JSON")
}

#[tokio::test]
async fn the_ecs_example_plan_fails_green_erring_five_times_as_often_as_blue_over_the_canary_window() {
    let held = Held::ecs("AfterAllowTraffic").await;
    live_traffic(&held, 6, |i| {
        let jitter = f64::from(i % 3) * 0.01;
        vec![
            ("RequestCount", TaskSetLabel::Blue, 900.0),
            ("HTTPCode_Target_5XX_Count", TaskSetLabel::Blue, 9.0),
            ("TargetResponseTime", TaskSetLabel::Blue, 0.30 + jitter),
            ("RequestCount", TaskSetLabel::Green, 100.0),
            ("HTTPCode_Target_5XX_Count", TaskSetLabel::Green, 5.0),
            ("TargetResponseTime", TaskSetLabel::Green, 0.31 - jitter),
        ]
    })
    .await;
    let (outcome, _) =
        run(&held, Hook::AFTER_ALLOW_TRAFFIC, example_plan("ecs-after-allow-traffic-metrics.json")).await;
    let why = reasons(&outcome);
    assert_eq!(outcome.verdict.status, Status::Failed, "{why}");
    let failed: Vec<&str> =
        outcome.verdict.checks.iter().filter(|c| c.reason.is_some()).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["green 5xx rate vs blue (canary window)"], "{why}");
    assert!(why.contains("candidate mean 0.05 is above the baseline's 0.01"), "{why}");
}

#[tokio::test]
async fn the_example_plans_load() {
    for name in
        ["ecs-after-allow-traffic-metrics.json", "lambda-post-traffic-metrics.json", "before-allow-traffic-alarms.json"]
    {
        let plan = greenlight::plan::parse(&example_plan(name).to_string(), &workspace_root());
        let plan = plan.unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(plan.checks.iter().all(|check| check.probe.uses_cloudwatch()), "{name}");
    }
}
