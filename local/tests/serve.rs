//! `codedeploy-local serve` as users run it: the binary on a free port, driven by the real AWS
//! SDK for Rust, and its refusal of a bad config.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use aws_sdk_codedeploy::types::ComputePlatform;

struct Serving {
    child: Child,
    endpoint: String,
    /// Kept open: the server prints more after its first line, and a closed pipe would kill it.
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codedeploy-local"))
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start codedeploy-local");
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut first).expect("read the banner");
    let endpoint = first.split_whitespace().last().expect("the banner ends with the endpoint").to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "banner: {first}");
    Serving { child, endpoint, _stdout: stdout }
}

async fn client(endpoint: &str) -> aws_sdk_codedeploy::Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    // The workspace builds the SDK without its default client; this is the one the hooks use.
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_codedeploy::config::Credentials::new("x", "x", None, None, "test"))
        .load()
        .await;
    aws_sdk_codedeploy::Client::new(&config)
}

#[tokio::test]
async fn the_sdk_creates_and_reads_back_a_deployment_group() {
    let serving = serve(&["--time-scale", "60"]);
    let codedeploy = client(&serving.endpoint).await;
    codedeploy
        .create_application()
        .application_name("shop")
        .compute_platform(ComputePlatform::Lambda)
        .send()
        .await
        .expect("CreateApplication");
    codedeploy
        .create_deployment_group()
        .application_name("shop")
        .deployment_group_name("checkout")
        .service_role_arn("arn:aws:iam::123456789012:role/cd")
        .deployment_config_name("CodeDeployDefault.LambdaCanary10Percent5Minutes")
        .send()
        .await
        .expect("CreateDeploymentGroup");
    let group = codedeploy
        .get_deployment_group()
        .application_name("shop")
        .deployment_group_name("checkout")
        .send()
        .await
        .expect("GetDeploymentGroup");
    let info = group.deployment_group_info().expect("group info");
    assert_eq!(info.deployment_config_name(), Some("CodeDeployDefault.LambdaCanary10Percent5Minutes"));
    assert_eq!(info.compute_platform(), Some(&ComputePlatform::Lambda));

    let err = codedeploy.get_deployment().deployment_id("d-AAAAAAAAA").send().await.expect_err("no such deployment");
    assert!(err.into_service_error().is_deployment_does_not_exist_exception());
}

#[test]
fn a_bad_config_is_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("codedeploy-local-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("local.json");
    std::fs::write(&config, r#"{"functions": {"f": {"versions": {"1": {"command": []}}}}}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_codedeploy-local"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .output()
        .expect("run codedeploy-local");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("function f version 1: empty command"), "{stderr}");
}
