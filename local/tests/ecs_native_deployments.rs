//! ECS-native service deployments end to end: each strategy's stages and weights, hooks invoked
//! synchronously with ECS's payload and obeyed by their answers, and rollbacks (on a FAILED
//! answer, a function error, an invalid answer, an alarm) that shift both listeners back while
//! invoking every hook at the traffic shift stages with the target's weight at 0; and the
//! load balancer's metrics, by the target group that answered. The hook is a tiny scripted
//! function (`tests/fixtures/ecs_hook.py`); the service's tasks are Python's HTTP server.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use codedeploy_local::config::{FunctionConfig, LoadBalancerConfig, LocalConfig, ProcessConfig};
use codedeploy_local::ecs::service::{RecordEntry, ServiceDeploymentHappening as Happening};
use codedeploy_local::elbv2::{ListenerRole, listener_rule_arn, numbered_target_group};
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::123456789012:role/ecs-infrastructure";
const HOOK: &str = "arn:aws:lambda:us-east-1:123456789012:function:ecs-hook";
/// Minutes become tenths of a second.
const SCALE: TimeScale = TimeScale(600.0);

fn config(answers: &Value) -> LocalConfig {
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecs_hook.py");
    let hook = ProcessConfig {
        command: vec!["python3".to_owned(), script.display().to_string()],
        environment: BTreeMap::from([("ECS_HOOK_ANSWERS".to_owned(), answers.to_string())]),
    };
    LocalConfig {
        functions: BTreeMap::from([(
            "ecs-hook".to_owned(),
            FunctionConfig {
                timeout_seconds: 5,
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), hook)]),
                aliases: BTreeMap::new(),
            },
        )]),
        task_definitions: BTreeMap::from([("web:1".to_owned(), web.clone()), ("web:2".to_owned(), web)]),
        ..LocalConfig::default()
    }
}

/// A deployment that ran to its end: its ARN, revisions and record.
struct Ran {
    server: Server,
    arn: String,
    source: String,
    target: String,
    record: Vec<RecordEntry>,
}

/// Creates `shop/web` on web:1 with a hook at every hook stage (unless `strategy`, the
/// deploymentConfiguration, names its own), updates it to web:2, and waits for the deployment's end.
/// `during` runs once the deployment has started.
async fn deploy(strategy: Value, answers: Value, during: impl AsyncFnOnce(&Server, &str)) -> Ran {
    let server = Server::start(config(&answers), SCALE, 0, None).await.expect("the emulator starts");
    let emulator = &server.emulator;
    emulator.add_load_balancer("shop", &LoadBalancerConfig::default()).await.expect("the load balancer");
    let groups = [1, 2].map(|n| numbered_target_group("shop", n).arn);
    let rule = |role| listener_rule_arn("shop", role);
    let load_balancers = json!([{"targetGroupArn": groups[0], "containerName": "web", "containerPort": 8080,
        "advancedConfiguration": {"alternateTargetGroupArn": groups[1],
            "productionListenerRule": rule(ListenerRole::Production),
            "testListenerRule": rule(ListenerRole::Test), "roleArn": ROLE}}]);
    let stages = [
        "RECONCILE_SERVICE",
        "PRE_SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRE_PRODUCTION_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    ];
    let mut configuration = strategy;
    if configuration.get("lifecycleHooks").is_none() {
        configuration["lifecycleHooks"] = json!([{"hookTargetArn": HOOK, "roleArn": ROLE, "lifecycleStages": stages,
            "hookDetails": {"plan": "smoke", "kept": true}}]);
    }
    // The SDK's ECS client is exercised in ecs_native.rs; here requests are the wire's JSON.
    let call = async |operation: &str, input: Value| -> Value {
        let response = reqwest::Client::new()
            .post(server.endpoint())
            .header("x-amz-target", format!("AmazonEC2ContainerServiceV20141113.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(input.to_string())
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "{operation}: {status} {body}");
        body
    };
    call(
        "CreateService",
        json!({"cluster": "shop", "serviceName": "web", "taskDefinition": "web:1",
        "loadBalancers": load_balancers, "deploymentConfiguration": configuration}),
    )
    .await;
    let updated = call("UpdateService", json!({"cluster": "shop", "service": "web", "taskDefinition": "web:2"})).await;
    let source = updated["service"]["currentServiceRevisions"][0]["arn"].as_str().expect("a source").to_owned();
    let arn = updated["service"]["currentServiceDeployment"].as_str().expect("a deployment").to_owned();
    during(&server, &arn).await;
    assert!(
        emulator.wait_until_service_deployment_ends(&arn, Duration::from_secs(60)).await,
        "the deployment did not end: {:?}",
        emulator.service_deployment_record(&arn)
    );
    let described = call("DescribeServiceDeployments", json!({"serviceDeploymentArns": [arn]})).await;
    let target =
        described["serviceDeployments"][0]["targetServiceRevision"]["arn"].as_str().expect("target").to_owned();
    let record = emulator.service_deployment_record(&arn);
    Ran { server, arn, source, target, record }
}

impl Ran {
    fn stages(&self) -> Vec<&str> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Stage { stage } => Some(*stage),
                _ => None,
            })
            .collect()
    }

    /// (stage, rollback, outcome, payload) of every hook invocation.
    fn invocations(&self) -> Vec<(&str, bool, &str, &Value)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::HookInvocation { stage, rollback, outcome, payload, .. } => {
                    Some((*stage, *rollback, *outcome, payload))
                }
                _ => None,
            })
            .collect()
    }

    /// (route, percent on the target) of every weight change.
    fn weights(&self) -> Vec<(&str, f64)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Weights { route, target, .. } => Some((*route, *target)),
                _ => None,
            })
            .collect()
    }

    fn status(&self) -> String {
        let state = self.server.emulator.state();
        state.native.deployments[&self.arn].status.as_str().to_owned()
    }

    fn rollback_reason(&self) -> Option<String> {
        let state = self.server.emulator.state();
        state.native.deployments[&self.arn].rollback.as_ref().map(|r| r.reason.clone())
    }

    /// The target weights the rollback's invocations carried, by stage.
    fn rollback_weights(&self) -> Vec<(&str, Value)> {
        self.invocations()
            .into_iter()
            .filter(|(_, rollback, _, _)| *rollback)
            .map(|(stage, _, _, payload)| {
                let details = &payload["executionDetails"];
                let weights = if stage == "TEST_TRAFFIC_SHIFT" {
                    &details["testTrafficWeights"]
                } else {
                    &details["productionTrafficWeights"]
                };
                (stage, json!({"source": weights[&self.source], "target": weights[&self.target]}))
            })
            .collect()
    }

    /// Whether tasks are registered in target groups 1 and 2, as ELBv2 shows them, and which
    /// group the service's current revision is in.
    async fn registered(&self) -> (Vec<bool>, usize) {
        let endpoint = self.server.endpoint();
        let sdk = common::sdk_config(&endpoint).await;
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let groups = elb.describe_target_groups().names("shop-1").names("shop-2").send().await.expect("groups");
        let registered = groups.target_groups().iter().map(|g| g.port().is_some()).collect();
        let current = self.server.emulator.state().native.services["shop/web"].current_group;
        (registered, current)
    }
}

const FORWARD: [&str; 10] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
];

#[tokio::test]
async fn blue_green_walks_every_stage_and_moves_production_at_once() {
    let ran = deploy(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}), json!({}), async |_, _| {}).await;
    let mut expected = FORWARD.to_vec();
    expected.push("CLEAN_UP");
    assert_eq!(ran.stages(), expected);
    assert_eq!(ran.weights(), [("test", 100.0), ("production", 100.0)]);
    let invoked: Vec<&str> = ran.invocations().iter().map(|(stage, ..)| *stage).collect();
    assert_eq!(
        invoked,
        expected.iter().copied().filter(|s| !["SCALE_UP", "BAKE_TIME", "CLEAN_UP"].contains(s)).collect::<Vec<_>>()
    );
    for (stage, _, _, payload) in ran.invocations() {
        assert_eq!(payload["resourceArn"], json!(ran.arn));
        assert_eq!(payload["lifecycleStage"], json!(stage));
        assert_eq!(payload["executionDetails"]["targetServiceRevisionArn"], json!(ran.target));
        assert_eq!(payload["hookDetails"], json!({"plan": "smoke", "kept": true}));
        assert!(payload["executionId"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()), "{payload}");
        let details = &payload["executionDetails"];
        let (test, production) = match stage {
            "TEST_TRAFFIC_SHIFT" => (json!({&ran.source: 0.0, &ran.target: 100.0}), json!({})),
            "PRODUCTION_TRAFFIC_SHIFT" => (json!({}), json!({&ran.source: 0.0, &ran.target: 100.0})),
            _ => (json!({}), json!({})),
        };
        assert_eq!(
            (&details["testTrafficWeights"], &details["productionTrafficWeights"]),
            (&test, &production),
            "{stage}"
        );
    }
    assert_eq!(ran.status(), "SUCCESSFUL");
    assert_eq!(ran.registered().await, (vec![false, true], 1), "the target revision is the service's now");
    ran.server.shutdown().await;
}

#[tokio::test]
async fn linear_shifts_a_step_at_a_time_with_the_pre_production_hooks_at_each() {
    let strategy =
        json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1}});
    let ran = deploy(strategy, json!({}), async |_, _| {}).await;
    let production: Vec<f64> = ran.weights().iter().filter(|(r, _)| *r == "production").map(|(_, w)| *w).collect();
    assert_eq!(production, [25.0, 50.0, 75.0, 100.0]);
    let stages = ran.stages();
    let count = |name: &str| stages.iter().filter(|s| **s == name).count();
    assert_eq!((count("PRE_PRODUCTION_TRAFFIC_SHIFT"), count("PRODUCTION_TRAFFIC_SHIFT")), (4, 4));
    let shifted: Vec<Value> = ran
        .invocations()
        .iter()
        .filter(|(stage, ..)| *stage == "PRODUCTION_TRAFFIC_SHIFT")
        .map(|(_, _, _, p)| p["executionDetails"]["productionTrafficWeights"][&ran.target].clone())
        .collect();
    assert_eq!(shifted, [json!(25.0), json!(50.0), json!(75.0), json!(100.0)]);
    assert_eq!(ran.status(), "SUCCESSFUL");
    ran.server.shutdown().await;
}

#[tokio::test]
async fn canary_moves_its_percent_then_the_rest() {
    let strategy =
        json!({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 2}});
    let ran = deploy(strategy, json!({}), async |_, _| {}).await;
    assert_eq!(ran.weights(), [("test", 100.0), ("production", 10.0), ("production", 100.0)]);
    let stages = ran.stages();
    let from = stages.iter().position(|s| *s == "PRE_PRODUCTION_TRAFFIC_SHIFT").expect("production steps");
    assert_eq!(
        stages[from..],
        [
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
            "CLEAN_UP"
        ]
    );
    assert_eq!(ran.status(), "SUCCESSFUL");
    ran.server.shutdown().await;
}

#[tokio::test]
async fn in_progress_invokes_the_hook_again_with_its_details_merged() {
    let answers = json!({"POST_TEST_TRAFFIC_SHIFT": [
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 60, "hookDetails": {"plan": "contract", "round": 1}},
        {"hookStatus": "IN_PROGRESS", "hookDetails": {"round": 2}},
        {"hookStatus": "SUCCEEDED"}]});
    let ran = deploy(json!({"strategy": "BLUE_GREEN"}), answers, async |_, _| {}).await;
    let rounds: Vec<(&str, &Value)> = ran
        .invocations()
        .into_iter()
        .filter(|(stage, ..)| *stage == "POST_TEST_TRAFFIC_SHIFT")
        .map(|(_, _, outcome, payload)| (outcome, &payload["hookDetails"]))
        .collect();
    assert_eq!(
        rounds,
        [
            ("IN_PROGRESS", &json!({"plan": "smoke", "kept": true})),
            ("IN_PROGRESS", &json!({"plan": "contract", "kept": true, "round": 1})),
            ("SUCCEEDED", &json!({"plan": "contract", "kept": true, "round": 2})),
        ]
    );
    let ids: Vec<&Value> = ran
        .invocations()
        .into_iter()
        .filter(|(stage, ..)| *stage == "POST_TEST_TRAFFIC_SHIFT")
        .map(|(_, _, _, p)| &p["executionId"])
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one execution: {ids:?}");
    let others: Vec<&Value> = ran
        .invocations()
        .into_iter()
        .filter(|(s, ..)| *s == "POST_PRODUCTION_TRAFFIC_SHIFT")
        .map(|(.., p)| &p["hookDetails"])
        .collect();
    assert_eq!(others, [&json!({"plan": "smoke", "kept": true})], "merged details stay with their hook execution");
    assert_eq!(ran.status(), "SUCCESSFUL");
    ran.server.shutdown().await;
}

async fn assert_rolled_back(ran: &Ran, reason: &str) {
    assert_eq!(ran.status(), "ROLLBACK_SUCCESSFUL");
    let why = ran.rollback_reason().expect("a rollback");
    assert!(why.contains(reason), "{why}");
    assert_eq!(
        ran.rollback_weights(),
        [
            ("TEST_TRAFFIC_SHIFT", json!({"source": 100.0, "target": 0.0})),
            ("PRODUCTION_TRAFFIC_SHIFT", json!({"source": 100.0, "target": 0.0})),
        ]
    );
    let back: Vec<(&str, f64)> = ran.weights().into_iter().rev().take(2).collect();
    assert_eq!(back, [("production", 0.0), ("test", 0.0)]);
    assert_eq!(ran.registered().await, (vec![true, false], 0), "the source revision is still the service's");
    assert!(ran.record.iter().any(|e| matches!(&e.what, Happening::Rollback { .. })));
}

#[tokio::test]
async fn a_failed_answer_rolls_back_and_the_rollback_only_records_its_hooks_answers() {
    let answers = json!({"POST_TEST_TRAFFIC_SHIFT": [{"hookStatus": "FAILED"}],
        "ROLLBACK TEST_TRAFFIC_SHIFT": [{"hookStatus": "FAILED"}]});
    let ran = deploy(json!({"strategy": "BLUE_GREEN"}), answers, async |_, _| {}).await;
    assert_rolled_back(&ran, "POST_TEST_TRAFFIC_SHIFT hook").await;
    assert!(!ran.stages().contains(&"PRE_PRODUCTION_TRAFFIC_SHIFT"), "{:?}", ran.stages());
    let rollback_outcomes: Vec<&str> =
        ran.invocations().into_iter().filter(|(_, rollback, ..)| *rollback).map(|(_, _, outcome, _)| outcome).collect();
    assert_eq!(rollback_outcomes, ["FAILED", "SUCCEEDED"]);
    ran.server.shutdown().await;
}

#[tokio::test]
async fn a_function_error_rolls_back() {
    let answers = json!({"PRE_PRODUCTION_TRAFFIC_SHIFT": ["error"]});
    let ran = deploy(json!({"strategy": "BLUE_GREEN"}), answers, async |_, _| {}).await;
    assert_rolled_back(&ran, "function error").await;
    ran.server.shutdown().await;
}

#[tokio::test]
async fn an_invalid_answer_rolls_back() {
    let answers = json!({"PRODUCTION_TRAFFIC_SHIFT": [{"hookStatus": "MAYBE"}]});
    let strategy =
        json!({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1}});
    let ran = deploy(strategy, answers, async |_, _| {}).await;
    assert_rolled_back(&ran, "invalid hookStatus").await;
    assert_eq!(
        ran.weights().iter().filter(|(r, _)| *r == "production").map(|(_, w)| *w).collect::<Vec<_>>(),
        [10.0, 0.0]
    );
    ran.server.shutdown().await;
}

#[tokio::test]
async fn an_alarm_rolls_back_during_the_canary_bake() {
    let strategy = json!({"strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 60},
        "alarms": {"alarmNames": ["web-5xx"], "rollback": true, "enable": true}});
    let ran = deploy(strategy, json!({}), async |server: &Server, arn: &str| {
        let emulator = &server.emulator;
        for _ in 0..500 {
            let record = emulator.service_deployment_record(arn);
            let canary = record.iter().any(|e| matches!(e.what, Happening::Weights { target: 10.0, .. }));
            if canary {
                emulator.set_alarm("web-5xx", true);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the canary never started");
    })
    .await;
    assert_rolled_back(&ran, "web-5xx").await;
    let triggered = ran.server.emulator.state().native.deployments[&ran.arn].triggered_alarms.clone();
    assert_eq!(triggered, ["web-5xx"]);
    ran.server.shutdown().await;
}

#[tokio::test]
async fn a_rollback_invokes_every_hook_at_both_shift_stages_even_one_configured_elsewhere() {
    let answers = json!({"POST_TEST_TRAFFIC_SHIFT": [{"hookStatus": "FAILED"}]});
    let hooks = json!([{"hookTargetArn": HOOK, "roleArn": ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]);
    let ran = deploy(json!({"strategy": "BLUE_GREEN", "lifecycleHooks": hooks}), answers, async |_, _| {}).await;
    assert_rolled_back(&ran, "POST_TEST_TRAFFIC_SHIFT hook").await;
    let forward: Vec<&str> =
        ran.invocations().into_iter().filter(|(_, rollback, ..)| !*rollback).map(|(stage, ..)| stage).collect();
    assert_eq!(forward, ["POST_TEST_TRAFFIC_SHIFT"], "forward, only at its own stage");
    ran.server.shutdown().await;
}

#[tokio::test]
async fn the_load_balancers_metrics_follow_the_target_group_that_answered() {
    let ran = deploy(json!({"strategy": "BLUE_GREEN"}), json!({}), async |_, _| {}).await;
    assert_eq!(ran.status(), "SUCCESSFUL");
    let emulator = &ran.server.emulator;
    let (production, _) = emulator.load_balancer_listeners("shop").await.expect("the listeners");
    for _ in 0..3 {
        let answer = reqwest::get(format!("http://{production}/")).await.expect("the listener answers");
        assert_eq!(answer.status(), 200);
        // After the deployment, the target group that took over is the one the listener calls blue.
        assert_eq!(answer.headers()["x-codedeploy-local-task-set"], "Blue");
    }
    let sdk = common::sdk_config(&ran.server.endpoint()).await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let now = std::time::SystemTime::now();
    let count = async |group: u8| -> f64 {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let dimension = |name: &str, value: String| Dimension::builder().name(name).value(value).build();
        let metric = Metric::builder()
            .namespace("AWS/ApplicationELB")
            .metric_name("RequestCount")
            .dimensions(dimension("TargetGroup", numbered_target_group("shop", group).dimension))
            .dimensions(dimension("LoadBalancer", codedeploy_local::elbv2::load_balancer("shop").dimension))
            .build();
        let query = MetricDataQuery::builder()
            .id("requests")
            .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Sum").build())
            .build();
        let answer = cloudwatch
            .get_metric_data()
            .metric_data_queries(query)
            .start_time((now - Duration::from_secs(600)).into())
            .end_time((now + Duration::from_secs(60)).into())
            .send()
            .await
            .expect("GetMetricData");
        answer.metric_data_results()[0].values().iter().sum()
    };
    assert_eq!(count(2).await, 3.0, "the new revision's target group answered every request");
    assert_eq!(count(1).await, 0.0, "the old one's tasks are gone");
    ran.server.shutdown().await;
}
