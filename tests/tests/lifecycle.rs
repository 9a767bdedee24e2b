//! The local CodeDeploy's lifecycle rules, with the real ECS hooks: what a BeforeInstall failure
//! and a StopDeployment do to traffic, and the checks CodeDeploy makes before a deployment starts.

use std::collections::BTreeMap;
use std::time::Duration;

use codedeploy_local::config::{EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::ecs::traffic::TaskSetLabel;
use codedeploy_local::emulator::{DeploymentStatus, Emulator, EventStatus, Happening, TimeScale};
use codedeploy_local::server::Server;
use serde_json::{Value, json};

const SERVICE: &str = "prod:checkout";

/// An ECS world: blue and green checkout tasks, and a before-install hook with `plan`.
async fn ecs_world(plan: Value) -> Server {
    let bin = greenlight_tests::bin_dir();
    let service = |shape: &str| ProcessConfig {
        command: vec![
            bin.join("checkout-service").display().to_string(),
            "--port".into(),
            "{port}".into(),
            "--shape".into(),
            shape.into(),
        ],
        environment: BTreeMap::new(),
    };
    let hook = ProcessConfig {
        command: vec![bin.join("before-install").display().to_string()],
        environment: BTreeMap::from([("GREENLIGHT_PLAN".to_owned(), plan.to_string())]),
    };
    let config = LocalConfig {
        functions: BTreeMap::from([(
            "CodeDeployHook_before-install".to_owned(),
            FunctionConfig {
                timeout_seconds: 20,
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), hook)]),
                aliases: BTreeMap::new(),
            },
        )]),
        task_definitions: BTreeMap::from([
            ("checkout:1".to_owned(), service("cents")),
            ("checkout:2".to_owned(), service("both")),
        ]),
        ecs_services: BTreeMap::from([(
            SERVICE.to_owned(),
            EcsServiceConfig {
                task_definition: "checkout:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 1,
            },
        )]),
    };
    Server::start(config, TimeScale(60.0), 0, None).await.expect("emulator starts")
}

fn call(emulator: &Emulator, operation: &str, input: Value) -> Value {
    emulator.codedeploy(operation, &input).unwrap_or_else(|err| panic!("{operation}: {err}"))
}

fn create_group(emulator: &Emulator) {
    call(emulator, "CreateApplication", json!({"applicationName": "shop", "computePlatform": "ECS"}));
    call(
        emulator,
        "CreateDeploymentGroup",
        json!({"applicationName": "shop", "deploymentGroupName": "checkout",
               "serviceRoleArn": "arn:aws:iam::123456789012:role/cd",
               "ecsServices": [{"clusterName": "prod", "serviceName": "checkout"}]}),
    );
}

fn deploy(emulator: &Emulator, config: &str, hooks: Value) -> Result<String, String> {
    let appspec = json!({"version": 0.0, "Resources": [{"svc": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": "checkout:2", "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}],
        "Hooks": hooks});
    emulator
        .codedeploy(
            "CreateDeployment",
            &json!({"applicationName": "shop", "deploymentGroupName": "checkout", "deploymentConfigName": config,
                    "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
        )
        .map(|out| out["deploymentId"].as_str().expect("id").to_owned())
        .map_err(|err| err.code.to_owned())
}

async fn wait_until(emulator: &Emulator, id: &str, done: impl Fn(&codedeploy_local::emulator::Deployment) -> bool) {
    for _ in 0..1500 {
        if done(&emulator.state().deployments[id]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never reached the awaited state: {:?}", emulator.state().deployments[id].events);
}

fn weight_changes(emulator: &Emulator, id: &str) -> Vec<(&'static str, f64)> {
    emulator
        .record_of(id)
        .into_iter()
        .filter_map(|e| match e.what {
            Happening::Weights { route, new, .. } => Some((route, new)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_before_install_failure_fails_without_a_rollback_or_a_green_task_set() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let plan = json!({"checks": [{"name": "dependency", "http": {"url": format!("http://{closed}/")}}]});
    let server = ecs_world(plan).await;
    let emulator = &server.emulator;
    create_group(emulator);
    let id =
        deploy(emulator, "CodeDeployDefault.ECSAllAtOnce", json!([{"BeforeInstall": "CodeDeployHook_before-install"}]))
            .expect("created");
    wait_until(emulator, &id, |d| d.is_complete()).await;
    let d = emulator.state().deployments[&id].clone();
    assert_eq!((d.status, d.error.as_ref().map(|e| e.0)), (DeploymentStatus::Failed, Some("HOOK_EXECUTION_FAILURE")));
    assert_eq!(d.events[0].status, EventStatus::Failed);
    assert!(d.events[1..].iter().all(|e| e.status == EventStatus::Skipped), "{:?}", d.events);
    assert!(d.rollback_message.is_none(), "nothing to roll back: {:?}", d.rollback_message);
    assert!(weight_changes(emulator, &id).is_empty());
    let codedeploy_local::emulator::TargetState::Ecs { task_sets, .. } = &d.target else { panic!("an ECS target") };
    let labels: Vec<_> = task_sets.iter().map(|set| (set.label, set.task_definition.as_str(), set.weight)).collect();
    assert_eq!(
        labels,
        [(TaskSetLabel::Blue, "checkout:1", 100.0)],
        "blue is there from the start; no green was created"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_deployment_during_the_canary_puts_production_back_on_blue() {
    let server = ecs_world(json!({"checks": []})).await;
    let emulator = &server.emulator;
    create_group(emulator);
    // No hooks: the deployment goes straight to the canary, which lasts five scaled minutes.
    let id = deploy(emulator, "CodeDeployDefault.ECSCanary10Percent5Minutes", json!([])).expect("created");
    wait_until(emulator, &id, |d| d.events[6].status == EventStatus::InProgress).await;

    let second = deploy(emulator, "CodeDeployDefault.ECSAllAtOnce", json!([]));
    assert_eq!(second.unwrap_err(), "DeploymentLimitExceededException", "one deployment at a time per group");

    let stopped = call(emulator, "StopDeployment", json!({"deploymentId": id, "autoRollbackEnabled": true}));
    assert_eq!(stopped["status"], "Pending");
    wait_until(emulator, &id, |d| d.is_complete()).await;
    let d = emulator.state().deployments[&id].clone();
    assert_eq!((d.status, d.error.as_ref().map(|e| e.0)), (DeploymentStatus::Stopped, Some("MANUAL_STOP")));
    assert_eq!(
        weight_changes(emulator, &id),
        [("test", 100.0), ("production", 10.0), ("production", 0.0), ("test", 0.0)]
    );

    let (production, _) = emulator.listeners(SERVICE).await.expect("listeners");
    let answer = reqwest::get(format!("http://{production}/v2/cart/after-stop")).await.expect("production answers");
    assert_eq!(answer.headers()["x-codedeploy-local-task-set"], "Blue");

    let again = emulator.codedeploy("StopDeployment", &json!({"deploymentId": id})).unwrap_err();
    assert_eq!(again.code, "DeploymentAlreadyCompletedException");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_is_checked_before_it_starts() {
    let server = ecs_world(json!({"checks": []})).await;
    let emulator = &server.emulator;
    create_group(emulator);
    let refused = |input: Value| emulator.codedeploy("CreateDeployment", &input).unwrap_err().code;
    let base = json!({"applicationName": "shop", "deploymentGroupName": "checkout"});
    let with = |key: &str, value: Value| {
        let mut input = base.clone();
        input[key] = value;
        input
    };
    assert_eq!(refused(base.clone()), "RevisionRequiredException");
    let s3 = json!({"revisionType": "S3", "s3Location": {"bucket": "b", "key": "k"}});
    assert_eq!(refused(with("revision", s3)), "InvalidRevisionException");
    let bad_appspec = json!({"revisionType": "AppSpecContent", "appSpecContent": {"content": "Resources: {"}});
    assert_eq!(refused(with("revision", bad_appspec)), "InvalidRevisionException");
    let lambda_config = with("deploymentConfigName", json!("CodeDeployDefault.LambdaAllAtOnce"));
    let mut lambda_config = lambda_config;
    lambda_config["revision"] = json!({"revisionType": "AppSpecContent", "appSpecContent": {"content":
        r#"{"Resources":[{"s":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"checkout:2","LoadBalancerInfo":{"ContainerName":"a","ContainerPort":1}}}}]}"#}});
    assert_eq!(refused(lambda_config.clone()), "InvalidDeploymentConfigNameException");
    lambda_config["deploymentConfigName"] = json!("CodeDeployDefault.ECSCanary50Percent1Minute");
    assert_eq!(refused(lambda_config), "DeploymentConfigDoesNotExistException");
    server.shutdown().await;
}
