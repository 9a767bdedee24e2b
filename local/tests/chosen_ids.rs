//! Deployments created with ids chosen beforehand (`POST /_local/deployments`): their hooks are
//! delivered by someone else, and the ids are checked as strictly as CodeDeploy's own.

use std::collections::BTreeMap;
use std::time::Duration;

use codedeploy_local::codedeploy::DeploymentWithIds;
use codedeploy_local::config::{AliasConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{DeploymentStatus, Emulator, TimeScale};
use codedeploy_local::lambda::runtime::RuntimeHost;
use serde_json::{Value, json};

async fn emulator() -> Emulator {
    // Never started: a Lambda deployment only moves the alias, and its hooks here are external.
    let version = ProcessConfig { command: vec!["false".to_owned()], environment: BTreeMap::new() };
    let function = FunctionConfig {
        timeout_seconds: 3,
        memory_mb: 128,
        versions: BTreeMap::from([("1".to_owned(), version.clone()), ("2".to_owned(), version)]),
        aliases: BTreeMap::from([(
            "live".to_owned(),
            AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
        )]),
    };
    let config =
        LocalConfig { functions: BTreeMap::from([("checkout".to_owned(), function)]), ..LocalConfig::default() };
    let emulator =
        Emulator::start(config, RuntimeHost::new(BTreeMap::new(), None), TimeScale::REAL).await.expect("starts");
    let call = |operation: &str, input: Value| emulator.codedeploy(operation, &input).expect(operation);
    call("CreateApplication", json!({"applicationName": "app", "computePlatform": "Lambda"}));
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "app", "deploymentGroupName": "g", "serviceRoleArn": "arn:aws:iam::1:role/cd"}),
    );
    emulator
}

fn chosen(deployment_id: &str, execution_ids: Value) -> DeploymentWithIds {
    let appspec = json!({"version": 0.0,
        "Resources": [{"f": {"Type": "AWS::Lambda::Function", "Properties": {"Name": "checkout", "Alias": "live",
            "CurrentVersion": "1", "TargetVersion": "2"}}}],
        "Hooks": [{"BeforeAllowTraffic": "pre-traffic"}]});
    serde_json::from_value(json!({
        "deployment_id": deployment_id,
        "execution_ids": execution_ids,
        "request": {"applicationName": "app", "deploymentGroupName": "g",
            "deploymentConfigName": "CodeDeployDefault.LambdaAllAtOnce",
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}},
    }))
    .expect("a DeploymentWithIds")
}

fn event_status(emulator: &Emulator, id: &str, event: &str) -> &'static str {
    let state = emulator.state();
    state.deployments[id].events.iter().find(|e| e.name == event).map_or("missing", |e| e.status.as_str())
}

#[tokio::test]
async fn the_chosen_execution_is_awaited_not_invoked_and_its_report_moves_the_deployment_on() {
    let emulator = emulator().await;
    let created = emulator
        .create_deployment_with_ids(&chosen("d-CHOSEN001", json!({"BeforeAllowTraffic": "exec-1"})))
        .expect("created");
    assert_eq!(created["deploymentId"], "d-CHOSEN001");
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while event_status(&emulator, "d-CHOSEN001", "BeforeAllowTraffic") != "InProgress" {
        assert!(tokio::time::Instant::now() < until, "BeforeAllowTraffic never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing invoked pre-traffic (it is not even hosted) and the event waits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(event_status(&emulator, "d-CHOSEN001", "BeforeAllowTraffic"), "InProgress");
    let record = serde_json::to_value(emulator.record_of("d-CHOSEN001")).expect("record JSON");
    assert!(!record.to_string().contains("\"invocation\""), "{record:#}");

    let report =
        json!({"deploymentId": "d-CHOSEN001", "lifecycleEventHookExecutionId": "exec-1", "status": "Succeeded"});
    emulator.codedeploy("PutLifecycleEventHookExecutionStatus", &report).expect("the report is accepted");
    assert!(emulator.wait_until_complete("d-CHOSEN001", Duration::from_secs(5)).await);
    assert_eq!(emulator.state().deployments["d-CHOSEN001"].status, DeploymentStatus::Succeeded);
}

#[tokio::test]
async fn ids_that_are_malformed_taken_or_not_wired_are_refused() {
    let emulator = emulator().await;
    emulator.create_deployment_with_ids(&chosen("d-CHOSEN001", json!({"BeforeAllowTraffic": "exec-1"}))).unwrap();
    // The group allows one deployment at a time: finish this one before trying others.
    let report = json!({"deploymentId": "d-CHOSEN001", "lifecycleEventHookExecutionId": "exec-1", "status": "Failed"});
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while emulator.codedeploy("PutLifecycleEventHookExecutionStatus", &report).is_err() {
        assert!(tokio::time::Instant::now() < until, "the report was never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(emulator.wait_until_complete("d-CHOSEN001", Duration::from_secs(5)).await);
    let refused = |deployment_id: &str, execution_ids: Value| {
        emulator.create_deployment_with_ids(&chosen(deployment_id, execution_ids)).expect_err("refused").to_string()
    };
    let message = refused("d-LAMBDA0001", json!({}));
    assert!(message.contains("InvalidDeploymentIdException") && message.contains("not a deployment id"), "{message}");
    let message = refused("d-CHOSEN001", json!({}));
    assert!(message.contains("already exists"), "{message}");
    let message = refused("d-CHOSEN002", json!({"BeforeAllowTraffic": "exec-1"}));
    assert!(message.contains("\"exec-1\" of BeforeAllowTraffic is empty or already used"), "{message}");
    let message = refused("d-CHOSEN002", json!({"AfterAllowTraffic": "exec-2"}));
    assert!(message.contains("the AppSpec names no hook for AfterAllowTraffic"), "{message}");
    let message = refused("d-CHOSEN002", json!({"AfterAllowTestTraffic": "exec-2"}));
    assert!(message.contains("AfterAllowTestTraffic is not a hook event of a Lambda deployment"), "{message}");
}
