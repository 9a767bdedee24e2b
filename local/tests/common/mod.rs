//! Fixtures the emulator's integration tests share.

use std::collections::BTreeMap;
use std::path::PathBuf;

use codedeploy_local::config::ProcessConfig;
use codedeploy_local::emulator::Emulator;
use serde_json::{Value, json};

/// An SDK configuration for the emulator at `endpoint`: the TLS client the hooks use (the
/// workspace builds the SDK without its default one), test credentials, and no retries, so a
/// test sees each answer as the emulator gave it.
#[allow(dead_code, reason = "each test binary uses some of the fixtures")]
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_codedeploy::config::Credentials::new("x", "x", None, None, "test"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// The Runtime API fixture the runtime host tests use; `FAKE_MODE` (`echo`, `error`, …) picks
/// its behaviour.
#[allow(dead_code, reason = "each test binary uses some of the fixtures")]
pub fn fake_function(mode: &str) -> ProcessConfig {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_function.py");
    ProcessConfig {
        command: vec!["python3".to_owned(), script.display().to_string()],
        environment: BTreeMap::from([("FAKE_MODE".to_owned(), mode.to_owned())]),
    }
}

/// Creates the application `shop`, its ECS group `web` for the service `shop:web`, and a
/// deployment to `web:2` whose AfterInstall hook is `silent-hook`; returns the deployment id.
#[allow(dead_code, reason = "each test binary uses some of the fixtures")]
pub fn ecs_deployment(emulator: &Emulator) -> String {
    let call = |operation: &str, input: Value| {
        emulator.codedeploy(operation, &input).unwrap_or_else(|e| panic!("{operation}: {e}"))
    };
    call("CreateApplication", json!({"applicationName": "shop", "computePlatform": "ECS"}));
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "shop", "deploymentGroupName": "web",
               "serviceRoleArn": "arn:aws:iam::123456789012:role/cd",
               "ecsServices": [{"clusterName": "shop", "serviceName": "web"}]}),
    );
    let appspec = json!({"Resources": [{"web": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": "web:2", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}],
        "Hooks": [{"AfterInstall": "silent-hook"}]});
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "shop", "deploymentGroupName": "web",
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    );
    created["deploymentId"].as_str().expect("a deployment id").to_owned()
}
