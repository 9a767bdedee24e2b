//! The hooks on an ECS-native deployment, over the wire: a service that the local ECS deploys
//! itself (CreateService, then UpdateService to a new task definition), and the gate judging an
//! ECS lifecycle stage of that service deployment with the real ECS and ELBv2 clients: discovery,
//! the variables it fills, the plan's choice by `hookDetails`. Then the real hook binaries as the
//! local ECS's lifecycle hooks: a contract break rolled back before production, and a bake longer
//! than one invocation carried across several. And ECS throttling, denying or not answering the
//! hooks' reads: the gate fails closed, in time, saying why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use codedeploy_local::config::{LoadBalancerConfig, LocalConfig, ProcessConfig};
use codedeploy_local::elbv2::{ListenerRole, listener_rule_arn, numbered_target_group};
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;
use codedeploy_local::ssm::store::ParameterType;
use greenlight::event::{EcsHookEvent, Invocation};
use greenlight::plan::select::Plans;
use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::{bin_dir, sdk_config};
use serde_json::{Value, json};
use tokio::time::Instant;

/// A local AWS with the `checkout` load balancer, task definitions checkout:1 (the sample service
/// answering `cents`) and checkout:2 (answering `green`), and `functions`.
async fn world_of(green: &str, functions: BTreeMap<String, codedeploy_local::config::FunctionConfig>) -> Server {
    let service = bin_dir().join("checkout-service").display().to_string();
    let task = |shape: &str| ProcessConfig {
        command: vec![service.clone(), "--port".into(), "{port}".into(), "--shape".into(), shape.into()],
        environment: BTreeMap::new(),
    };
    let mut config = LocalConfig { functions, ..LocalConfig::default() };
    config.task_definitions.insert("checkout:1".into(), task("cents"));
    config.task_definitions.insert("checkout:2".into(), task(green));
    let server = Server::start(config, TimeScale(600.0), 0, None).await.expect("the emulator starts");
    let ports = LoadBalancerConfig { production_port: 0, test_port: 0 };
    server.emulator.add_load_balancer("checkout", &ports).await.expect("the load balancer starts");
    server
}

async fn world() -> Server {
    world_of("both", BTreeMap::new()).await
}

/// Creates the service on checkout:1 and updates it to checkout:2: the service deployment's ARN.
async fn deploy(server: &Server) -> String {
    let ecs = aws_sdk_ecs::Client::new(&sdk_config(&server.endpoint()).await);
    create_service(server, json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})).await;
    let updated = call(
        server,
        "UpdateService",
        &json!({"cluster": "shop", "service": "checkout", "taskDefinition": "checkout:2"}),
    )
    .await;
    let arn = updated["service"]["currentServiceDeployment"].as_str().expect("a service deployment").to_owned();
    // The SDK's client reads it back as the hooks' discovery will.
    let described = ecs.describe_service_deployments().service_deployment_arns(&arn).send().await.expect("described");
    assert_eq!(described.service_deployments().len(), 1, "{described:?}");
    arn
}

/// Creates `shop/checkout` on checkout:1 behind the `checkout` load balancer with
/// `configuration` as its deploymentConfiguration.
async fn create_service(server: &Server, configuration: Value) {
    let body = json!({
        "cluster": "shop", "serviceName": "checkout", "taskDefinition": "checkout:1", "desiredCount": 1,
        "deploymentConfiguration": configuration,
        "loadBalancers": [{
            "targetGroupArn": numbered_target_group("checkout", 1).arn, "containerName": "checkout", "containerPort": 8080,
            "advancedConfiguration": {
                "alternateTargetGroupArn": numbered_target_group("checkout", 2).arn,
                "productionListenerRule": listener_rule_arn("checkout", ListenerRole::Production),
                "testListenerRule": listener_rule_arn("checkout", ListenerRole::Test),
                "roleArn": "arn:aws:iam::123456789012:role/ecs-load-balancers"
            }
        }]
    });
    call(server, "CreateService", &body).await;
}

/// One ECS call over awsJson1_1 with a body the SDK's builders would make; the hooks' own calls
/// in these tests go through the SDK.
async fn call(server: &Server, operation: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(server.endpoint())
        .header("x-amz-target", format!("AmazonEC2ContainerServiceV20141113.{operation}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .expect("the emulator answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{operation}: {status} {answer}");
    answer
}

fn event(arn: &str, stage: &str, details: Value, weights: Value) -> EcsHookEvent {
    let raw = json!({"executionId": "exec-1", "lifecycleStage": stage, "resourceArn": arn,
        "executionDetails": {"testTrafficWeights": weights}, "hookDetails": details});
    match Invocation::from_value(raw).expect("an ECS event") {
        Invocation::Ecs(event) => event,
        other => panic!("{other:?}"),
    }
}

async fn answer(server: &Server, hook: Hook, plans: Plans, event: &EcsHookEvent) -> RunOutcome {
    answer_within(server, hook, plans, event, Duration::from_secs(15)).await
}

async fn answer_within(server: &Server, hook: Hook, plans: Plans, event: &EcsHookEvent, time: Duration) -> RunOutcome {
    let aws = AwsClients::new(&sdk_config(&server.endpoint()).await);
    let gate = Arc::new(Gate::with_plans(hook, plans, aws));
    gate.answer(event, Instant::now() + time).await
}

/// after-allow-test-traffic, a fleet hook (plans per deployment), on the deployment at its stage,
/// the lifecycle hook naming `parameter` as its plan.
async fn by_plan_parameter(server: &Server, arn: &str, parameter: &str) -> RunOutcome {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Some("/greenlight/plans/{application}/{deployment_group}/{hook}");
    let plans = Plans::per_deployment(None, fleet, Duration::ZERO, dir.path(), None);
    let details = json!({"plan_parameter": parameter});
    answer(server, Hook::AFTER_ALLOW_TEST_TRAFFIC, plans, &event(arn, "POST_TEST_TRAFFIC_SHIFT", details, json!({})))
        .await
}

fn status(outcome: &RunOutcome) -> &str {
    outcome.answer.as_ref().map_or("none", |a| a.hook_status)
}

fn reasons(outcome: &RunOutcome) -> String {
    let checks: Vec<String> = outcome.verdict.checks.iter().filter_map(|c| c.reason.clone()).collect();
    format!("{} | {}", outcome.verdict.reason, checks.join(" | "))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_service_deployment_fails_closed_naming_it() {
    let server = world().await;
    let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/nosuch";
    let plan =
        greenlight::plan::parse(r#"{"checks":[{"name":"up","http":{"url":"http://127.0.0.1:9/"}}]}"#, ".".as_ref());
    let outcome = answer(
        &server,
        Hook::AFTER_ALLOW_TEST_TRAFFIC,
        Plans::ready(plan),
        &event(arn, "POST_TEST_TRAFFIC_SHIFT", json!({}), json!({})),
    )
    .await;
    assert_eq!(status(&outcome), "FAILED");
    assert!(
        outcome.verdict.reason.contains(&format!("ECS has no service deployment {arn} (MISSING)")),
        "{}",
        reasons(&outcome)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_throttling_denying_or_hanging_fails_the_gate_closed_in_time_saying_why() {
    use codedeploy_local::faults::Faults;
    let server = world().await;
    let arn = deploy(&server).await;
    let plan = || {
        let plan =
            greenlight::plan::parse(r#"{"checks":[{"name":"up","http":{"url":"${test_url}/health"}}]}"#, ".".as_ref());
        Plans::ready(plan)
    };
    let at_its_stage = event(&arn, "POST_TEST_TRAFFIC_SHIFT", json!({}), json!({}));
    let cases = [
        ("throttled", "DescribeServiceDeployments", "ecs:DescribeServiceDeployments failed: Rate exceeded"),
        ("denied", "DescribeServiceRevisions", "grant the hook's role ecs:DescribeServiceRevisions"),
        ("hanging", "DescribeServiceDeployments", "deadline: discovery did not finish in time"),
    ];
    for (fault, operation, said) in cases {
        let set = BTreeMap::from([(fault, vec![operation])]);
        let faults: Faults = serde_json::from_value(json!(set)).expect("faults");
        server.emulator.set_faults(faults).expect("served operations");
        let calls_before = server.emulator.calls().iter().filter(|c| c.operation == operation).count();
        let started = Instant::now();
        let outcome =
            answer_within(&server, Hook::AFTER_ALLOW_TEST_TRAFFIC, plan(), &at_its_stage, Duration::from_secs(4)).await;
        assert_eq!(status(&outcome), "FAILED", "{fault}: {}", reasons(&outcome));
        assert!(outcome.verdict.reason.contains(said), "{fault}: {}", reasons(&outcome));
        assert!(outcome.verdict.checks.is_empty(), "{fault}: no check runs on an unknown deployment");
        assert!(started.elapsed() < Duration::from_secs(4), "{fault}: answered after {:?}", started.elapsed());
        let calls = server.emulator.calls().iter().filter(|c| c.operation == operation).count() - calls_before;
        if fault == "throttled" {
            assert!(calls > 1, "the SDK retries a throttled call: {calls} call(s)");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_fills_the_fleets_variables_from_ecs_and_elbv2_and_the_plan_comes_from_hook_details() {
    let server = world().await;
    let arn = deploy(&server).await;
    let plan = json!({"checks": [
        {"name": "test listener", "http": {"url": "${test_url}/health"}},
        {"name": "names", "http": {"url": "${production_url}/v2/cart/${cluster}-${service}", "headers": {"x-green": "${green_target_group}", "x-blue": "${blue_target_group}"}},
            "expect": {"json_schema": {"required": ["total_cents"]}}}
    ]});
    let name = "/greenlight/plans/ecs/shop/checkout/after-allow-test-traffic";
    server.emulator.ssm().put(name, &plan.to_string(), ParameterType::String).expect("parameter seeded");
    let outcome = by_plan_parameter(&server, &arn, name).await;
    assert_eq!(status(&outcome), "SUCCEEDED", "{}", reasons(&outcome));
    assert_eq!(outcome.verdict.checks.len(), 2);
    let deployment = outcome.verdict.deployment.as_ref().expect("discovered");
    let service_deployment = deployment.service_deployment.as_ref().expect("ECS-native");
    assert_eq!(service_deployment.arn, arn);
    let greenlight::discover::DeploymentKind::Ecs(ecs) = &deployment.target else { panic!("{deployment:?}") };
    assert_eq!(ecs.target_id, "shop:checkout");
    let group = |set: &Option<greenlight::discover::TaskSet>| set.as_ref().and_then(|s| s.target_group.clone());
    assert_eq!(group(&ecs.blue).as_deref(), Some(numbered_target_group("checkout", 1).name.as_str()));
    assert_eq!(group(&ecs.green).as_deref(), Some(numbered_target_group("checkout", 2).name.as_str()));
    let listeners = ecs.listeners.as_ref().expect("named by advancedConfiguration");
    assert_eq!(
        listeners.test.as_deref(),
        Some(codedeploy_local::elbv2::listener_arn("checkout", ListenerRole::Test).as_str())
    );
    let calls: Vec<String> = server.emulator.calls().into_iter().map(|c| c.operation).collect();
    for operation in [
        "DescribeServiceDeployments",
        "DescribeServiceRevisions",
        "DescribeListeners",
        "DescribeLoadBalancers",
        "DescribeTargetGroups",
        "GetParameter",
    ] {
        assert!(calls.iter().any(|c| c == operation), "{operation} not called: {calls:?}");
    }
    assert!(
        !calls.iter().any(|c| c.starts_with("GetDeployment") || c == "ListDeploymentTargets"),
        "no CodeDeploy call: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_names_fail_only_the_check_that_uses_them_and_a_missing_plan_parameter_fails_closed() {
    let server = world().await;
    let arn = deploy(&server).await;
    let plan = greenlight::plan::parse(
        r#"{"checks":[{"name":"group","http":{"url":"${test_url}/v2/cart/${deployment_group}"}},{"name":"health","http":{"url":"${test_url}/health"}}]}"#,
        ".".as_ref(),
    );
    let outcome = answer(
        &server,
        Hook::AFTER_ALLOW_TEST_TRAFFIC,
        Plans::ready(plan),
        &event(&arn, "POST_TEST_TRAFFIC_SHIFT", json!({}), json!({})),
    )
    .await;
    assert_eq!(status(&outcome), "FAILED");
    let group = &outcome.verdict.checks[0];
    assert!(
        group
            .reason
            .as_deref()
            .unwrap()
            .contains("an ECS-native deployment has no CodeDeploy application or deployment group"),
        "{}",
        reasons(&outcome)
    );
    assert!(outcome.verdict.checks[1].passed, "{}", reasons(&outcome));

    let outcome = by_plan_parameter(&server, &arn, "/greenlight/plans/ecs/shop/checkout/none-here").await;
    assert_eq!(status(&outcome), "FAILED");
    assert!(outcome.verdict.reason.contains("parameter /greenlight/plans/ecs/shop/checkout/none-here, which the lifecycle hook's hookDetails.plan_parameter names (cluster shop, service checkout), does not exist"), "{}", reasons(&outcome));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_at_a_stage_it_does_not_serve_asks_ecs_and_fails_naming_both() {
    let server = world().await;
    let arn = deploy(&server).await;
    let plan =
        greenlight::plan::parse(r#"{"checks":[{"name":"health","http":{"url":"${test_url}/health"}}]}"#, ".".as_ref());
    let outcome = answer(
        &server,
        Hook::AFTER_ALLOW_TRAFFIC,
        Plans::ready(plan),
        &event(&arn, "POST_TEST_TRAFFIC_SHIFT", json!({}), json!({})),
    )
    .await;
    assert_eq!(status(&outcome), "FAILED");
    assert!(
        outcome.verdict.reason.starts_with(
            "after-allow-traffic serves ECS's POST_PRODUCTION_TRAFFIC_SHIFT but was invoked at POST_TEST_TRAFFIC_SHIFT"
        ),
        "{}",
        reasons(&outcome)
    );
    let calls: Vec<String> = server.emulator.calls().into_iter().map(|c| c.operation).collect();
    assert!(calls.iter().any(|c| c == "DescribeServiceDeployments"), "asked ECS whether it rolls back: {calls:?}");
    assert_eq!(outcome.verdict.status, Status::Failed);
}

/// The real hook binaries as Lambda functions of the local AWS, each with `plans[hook]`.
fn hook_functions(plans: &[(Hook, Value)]) -> BTreeMap<String, codedeploy_local::config::FunctionConfig> {
    plans
        .iter()
        .map(|(hook, plan)| {
            let process = ProcessConfig {
                command: vec![greenlight_tests::hook_binary(hook.name).display().to_string()],
                environment: BTreeMap::from([("GREENLIGHT_PLAN".to_owned(), plan.to_string())]),
            };
            let function = codedeploy_local::config::FunctionConfig {
                timeout_seconds: 6,
                memory_mb: 256,
                versions: BTreeMap::from([("$LATEST".to_owned(), process)]),
                aliases: BTreeMap::new(),
            };
            (hook.name.to_owned(), function)
        })
        .collect()
}

/// Deploys checkout:1 → checkout:`green` with `strategy`, ECS invoking the real hooks at their own
/// stages. Returns the deployment's final status and record.
async fn released(
    green: &str,
    strategy: Value,
    plans: &[(Hook, Value)],
) -> (Server, String, Vec<codedeploy_local::ecs::service::RecordEntry>) {
    let server = world_of(green, hook_functions(plans)).await;
    let role = "arn:aws:iam::123456789012:role/ecs-hooks";
    let function = |hook: Hook| format!("arn:aws:lambda:us-east-1:123456789012:function:{}", hook.name);
    let hooks: Vec<Value> = plans
        .iter()
        .map(|(hook, _)| json!({"hookTargetArn": function(*hook), "roleArn": role, "lifecycleStages": [hook.ecs_stage().unwrap()]}))
        .collect();
    let mut configuration = strategy;
    configuration["lifecycleHooks"] = Value::from(hooks);
    create_service(&server, configuration).await;
    let updated = call(
        &server,
        "UpdateService",
        &json!({"cluster": "shop", "service": "checkout", "taskDefinition": "checkout:2"}),
    )
    .await;
    let arn = updated["service"]["currentServiceDeployment"].as_str().expect("a deployment").to_owned();
    let ended = server.emulator.wait_until_service_deployment_ends(&arn, Duration::from_secs(120)).await;
    let record = server.emulator.service_deployment_record(&arn);
    assert!(ended, "the deployment did not end: {record:?}");
    let described = call(&server, "DescribeServiceDeployments", &json!({"serviceDeploymentArns": [arn]})).await;
    let status = described["serviceDeployments"][0]["status"].as_str().unwrap().to_owned();
    (server, status, record)
}

fn invocations(record: &[codedeploy_local::ecs::service::RecordEntry]) -> Vec<(String, String, bool, Value)> {
    use codedeploy_local::ecs::service::ServiceDeploymentHappening as Happening;
    record
        .iter()
        .filter_map(|entry| match &entry.what {
            Happening::HookInvocation { stage, outcome, rollback, answer, .. } => {
                Some((stage.to_string(), outcome.to_string(), *rollback, answer.clone()))
            }
            _ => None,
        })
        .collect()
}

fn production_weights_on_green(record: &[codedeploy_local::ecs::service::RecordEntry]) -> Vec<f64> {
    use codedeploy_local::ecs::service::ServiceDeploymentHappening as Happening;
    record
        .iter()
        .filter_map(|entry| match &entry.what {
            Happening::Weights { route: "production", target, .. } => Some(*target),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contract_break_is_caught_at_post_test_traffic_shift_and_green_never_takes_production() {
    let contract = json!({"checks": [{"name": "cart contract", "http": {"url": "${test_url}/v2/cart/demo"},
        "expect": {"json_schema": {"required": ["total_cents"]}}}]});
    let health = json!({"checks": [{"name": "health", "http": {"url": "${production_url}/health"}}]});
    let plans = [(Hook::AFTER_ALLOW_TEST_TRAFFIC, contract), (Hook::AFTER_ALLOW_TRAFFIC, health)];
    let (server, ended, record) =
        released("minor-units", json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}), &plans).await;
    assert_eq!(ended, "ROLLBACK_SUCCESSFUL", "{record:?}");
    let calls = invocations(&record);
    let forward: Vec<_> = calls.iter().filter(|(_, _, rollback, _)| !rollback).collect();
    assert_eq!(forward.len(), 1, "only the test-traffic hook ran: {calls:?}");
    let (stage, outcome, _, answered) = forward[0];
    assert_eq!((stage.as_str(), outcome.as_str()), ("POST_TEST_TRAFFIC_SHIFT", "FAILED"), "{answered}");
    assert_eq!(answered["hookStatus"], "FAILED");
    assert!(production_weights_on_green(&record).iter().all(|w| *w == 0.0), "green took production: {record:?}");
    // The rollback invokes both hooks at both shift stages, neither of which they serve: each
    // stands aside by the weights going back, without asking ECS.
    let back: Vec<(&str, &str)> = calls
        .iter()
        .filter(|(_, _, rollback, _)| *rollback)
        .map(|(stage, outcome, _, _)| (stage.as_str(), outcome.as_str()))
        .collect();
    let shift = |stage| [(stage, "SUCCEEDED"), (stage, "SUCCEEDED")];
    assert_eq!(back, [shift("TEST_TRAFFIC_SHIFT"), shift("PRODUCTION_TRAFFIC_SHIFT")].concat(), "{calls:?}");

    // A late invocation at a hook's own stage, once ECS has rolled back, stands aside: ECS's
    // status says so, whatever the weights.
    let arn = record.first().map(|entry| entry.service_deployment_arn.clone()).expect("a record");
    let plan =
        greenlight::plan::parse(r#"{"checks":[{"name":"health","http":{"url":"http://127.0.0.1:9/"}}]}"#, ".".as_ref());
    let late = event(&arn, "POST_PRODUCTION_TRAFFIC_SHIFT", json!({}), json!({}));
    let outcome = answer(&server, Hook::AFTER_ALLOW_TRAFFIC, Plans::ready(plan), &late).await;
    assert_eq!(status(&outcome), "SUCCEEDED", "{}", reasons(&outcome));
    assert!(
        outcome.verdict.reason.starts_with("stood aside: ECS is rolling service deployment"),
        "{}",
        reasons(&outcome)
    );
    assert!(outcome.verdict.reason.contains("ROLLBACK_SUCCESSFUL"), "{}", reasons(&outcome));
    assert!(outcome.verdict.checks.is_empty(), "no check ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bake_longer_than_an_invocation_goes_on_in_progress_and_then_succeeds() {
    // Four healthy measurements 2 s apart do not fit a 6 s function: the hook answers IN_PROGRESS
    // and ECS invokes it again, where the streak goes on.
    let bake = json!({"checks": [{"name": "bake", "http": {"url": "${production_url}/health"},
        "attempts": 4, "interval_ms": 2000, "consecutive_successes": 4}]});
    let plans = [(Hook::BEFORE_ALLOW_TRAFFIC, bake)];
    let (_server, status, record) =
        released("both", json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}), &plans).await;
    assert_eq!(status, "SUCCESSFUL", "{record:?}");
    let calls = invocations(&record);
    let outcomes: Vec<&str> = calls.iter().map(|(_, outcome, _, _)| outcome.as_str()).collect();
    assert!(outcomes.len() >= 2 && outcomes[..outcomes.len() - 1].iter().all(|o| *o == "IN_PROGRESS"), "{calls:?}");
    assert_eq!(outcomes.last(), Some(&"SUCCEEDED"), "{calls:?}");
    let first = &calls[0].3;
    assert!(first["callBackDelay"].as_u64().is_some_and(|d| d >= 1), "{first}");
    assert!(
        first["hookDetails"]["greenlight_state"]["checks"][0]["attempts"].as_u64().is_some_and(|a| a >= 1),
        "{first}"
    );
}
