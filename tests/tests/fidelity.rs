//! Fidelity of the local CodeDeploy, Lambda, ELBv2, CloudWatch, SSM and ECS to AWS's own service models.
//!
//! The emulator is only worth testing hooks against if it answers as AWS does. This test starts
//! it in-process and runs `tests/fidelity/check_fidelity.py`, which drives a whole Lambda and
//! ECS deployment through boto3 (an independent client with its own serializers and parsers) and
//! checks every response and every error code against botocore's `codedeploy`, `lambda`, `elbv2`,
//! `ssm`, `ecs` and `cloudwatch` models (CloudWatch both through boto3, which speaks awsJson1_0 to it,
//! and through botocore's own rpcv2Cbor serializer and parser over raw HTTP, as the Rust SDK
//! speaks it): operations, member names and types, enums, required members, modelled errors and
//! their HTTP statuses. The script's output is a table of what it checked.
//!
//! The operation lists come from here, not from the script, so an operation added to the
//! emulator is checked against the model without touching the script.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use codedeploy_local::codedeploy::OPERATIONS;
use codedeploy_local::config::{
    AliasConfig, EcsServiceConfig, FunctionConfig, LoadBalancerConfig, LocalConfig, ProcessConfig,
};
use codedeploy_local::emulator::{Emulator, TimeScale};
use codedeploy_local::server::Server;
use greenlight_tests::python::venv_python;
use greenlight_tests::workspace_root;
use serde_json::{Value, json};

/// Fast enough for async retries not to linger, slow enough that the (scaled) one-hour hook
/// limit — five minutes here — outlasts the script, which keeps hook events in progress while it
/// probes them.
const SCALE: TimeScale = TimeScale(12.0);

/// Bounds the script: a hung emulator must fail the test, not stall it.
const SCRIPT_LIMIT: Duration = Duration::from_secs(600);

/// The Lambda Runtime API fixture the runtime host tests use; `FAKE_MODE` picks its behaviour.
fn fake_function(mode: &str) -> ProcessConfig {
    let script = workspace_root().join("local/tests/fixtures/fake_function.py");
    ProcessConfig {
        command: vec!["python3".to_owned(), script.display().to_string()],
        environment: BTreeMap::from([("FAKE_MODE".to_owned(), mode.to_owned())]),
    }
}

/// A function with published versions 1 and 2 and an alias `live` on 1.
fn aliased_function() -> FunctionConfig {
    FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: BTreeMap::from([("1".to_owned(), fake_function("echo")), ("2".to_owned(), fake_function("echo"))]),
        aliases: BTreeMap::from([(
            "live".to_owned(),
            AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
        )]),
    }
}

/// The scripted ECS lifecycle hook the emulator's own tests use; `answers` maps a stage to what
/// it returns there (SUCCEEDED elsewhere).
fn ecs_hook(answers: &Value) -> FunctionConfig {
    let script = workspace_root().join("local/tests/fixtures/ecs_hook.py");
    latest_only(ProcessConfig {
        command: vec!["python3".to_owned(), script.display().to_string()],
        environment: BTreeMap::from([("ECS_HOOK_ANSWERS".to_owned(), answers.to_string())]),
    })
}

fn latest_only(process: ProcessConfig) -> FunctionConfig {
    FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: BTreeMap::from([("$LATEST".to_owned(), process)]),
        aliases: BTreeMap::new(),
    }
}

/// What the script deploys: `app` (the Lambda deployment's target), `preflight` (the deployment
/// this test starts itself), a hook that answers its invocation but never reports (so each hook
/// event stays in progress until the script reports for it), a function that fails, an ECS
/// service whose tasks are Python's HTTP server, and two ECS lifecycle hooks for the service
/// ECS deploys itself: one that passes every stage and one that fails POST_SCALE_UP.
fn config() -> LocalConfig {
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    LocalConfig {
        functions: BTreeMap::from([
            ("app".to_owned(), aliased_function()),
            ("preflight".to_owned(), aliased_function()),
            ("CodeDeployHook_echo".to_owned(), latest_only(fake_function("echo"))),
            ("broken".to_owned(), latest_only(fake_function("error"))),
            ("ecs-hook".to_owned(), ecs_hook(&json!({}))),
            ("ecs-hook-failing".to_owned(), ecs_hook(&json!({"POST_SCALE_UP": [{"hookStatus": "FAILED"}]}))),
        ]),
        task_definitions: BTreeMap::from([("web:1".to_owned(), web.clone()), ("web:2".to_owned(), web)]),
        ecs_services: BTreeMap::from([(
            "fidelity:web".to_owned(),
            EcsServiceConfig {
                task_definition: "web:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 1,
            },
        )]),
    }
}

/// The responses to target queries on a deployment that has not started yet, exactly as the
/// server would send them. Over HTTP that window is too short to hit reliably; in-process, on this
/// single-threaded runtime, the task that starts a deployment cannot run before the next await.
async fn not_started_responses(emulator: &Emulator) -> Vec<Value> {
    let call = |operation: &str, input: Value| emulator.codedeploy(operation, &input);
    call("CreateApplication", json!({"applicationName": "fidelity-preflight", "computePlatform": "Lambda"}))
        .expect("CreateApplication");
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "fidelity-preflight", "deploymentGroupName": "live",
               "serviceRoleArn": "arn:aws:iam::123456789012:role/codedeploy"}),
    )
    .expect("CreateDeploymentGroup");
    let appspec = json!({"version": 0.0, "Resources": [{"preflight": {"Type": "AWS::Lambda::Function",
        "Properties": {"Name": "preflight", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}]});
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "fidelity-preflight", "deploymentGroupName": "live",
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    )
    .expect("CreateDeployment");
    let id = created["deploymentId"].clone();
    let errors: Vec<_> = [
        ("ListDeploymentTargets", json!({"deploymentId": id})),
        ("GetDeploymentTarget", json!({"deploymentId": id, "targetId": "preflight:live"})),
        ("BatchGetDeploymentTargets", json!({"deploymentId": id, "targetIds": ["preflight:live"]})),
    ]
    .into_iter()
    .map(|(operation, input)| {
        let error = call(operation, input).expect_err("the deployment has not started");
        (operation, error)
    })
    .collect();

    let mut responses = Vec::new();
    for (operation, error) in errors {
        let response = error.into_aws_json();
        let status = response.status().as_u16();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("error body");
        let body = String::from_utf8(body.to_vec()).expect("UTF-8 error body");
        responses.push(json!({"operation": operation, "status": status, "headers": headers, "body": body}));
    }
    responses
}

/// ELBv2 (awsQuery) joins the check: its operations, checked against botocore's `elbv2` model.
fn add_elbv2(operations: &mut Value) {
    operations["elbv2"] = json!(codedeploy_local::elbv2::OPERATIONS);
}

#[tokio::test]
async fn every_operation_and_error_matches_the_aws_models() {
    let python = venv_python();
    let script: PathBuf = workspace_root().join("tests/fidelity/check_fidelity.py");
    let server = Server::start(config(), SCALE, 0, None).await.expect("the emulator starts");
    // The load balancer of the service the script has ECS deploy itself.
    server.emulator.add_load_balancer("native", &LoadBalancerConfig::default()).await.expect("native");
    let in_process = not_started_responses(&server.emulator).await;
    let mut operations = json!({"codedeploy": OPERATIONS, "lambda": codedeploy_local::lambda::OPERATIONS,
        "cloudwatch": codedeploy_local::cloudwatch::OPERATIONS, "ssm": codedeploy_local::ssm::OPERATIONS,
        "ecs": codedeploy_local::ecs::OPERATIONS});
    add_elbv2(&mut operations);

    let started = Instant::now();
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(server.endpoint())
        .env("FIDELITY_OPERATIONS", operations.to_string())
        .env("FIDELITY_RESPONSES", Value::Array(in_process).to_string())
        .env("PYTHONUNBUFFERED", "1")
        // The script passes its own region and dummy keys; a developer's profile must not matter.
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    let output = tokio::time::timeout(SCRIPT_LIMIT, child.wait_with_output()).await;
    server.shutdown().await;
    let output = output
        .unwrap_or_else(|_| panic!("check_fidelity.py did not finish within {SCRIPT_LIMIT:?}"))
        .expect("wait for check_fidelity.py");

    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("check_fidelity.py took {:.1?}", started.elapsed());
    assert!(
        output.status.success(),
        "the emulator departs from the AWS models ({}); see the output above",
        output.status
    );
}
