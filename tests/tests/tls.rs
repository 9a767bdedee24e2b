//! TLS verification is always on. The hooks trust Mozilla's roots compiled in, or the certificates
//! `SSL_CERT_FILE` names instead, for the HTTP checks and the AWS SDK's calls alike; a plan's CA
//! bundle is trusted on top, for its checks.

use std::sync::Arc;
use std::time::Duration;

use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::deployment::{Held, sdk_config};
use greenlight_tests::targets::TlsTarget;
use greenlight_tests::{event_file, hook_binary, workspace_root};
use serde_json::{Value, json};
use tokio::time::Instant;

async fn run(plan: Value, base_dir: &std::path::Path) -> RunOutcome {
    let aws = Held::ecs("AfterAllowTestTraffic").await;
    let plan = greenlight::plan::parse(&plan.to_string(), base_dir);
    let sdk = sdk_config(&aws.endpoint()).await;
    let gate = Arc::new(Gate::new(Hook::AFTER_ALLOW_TEST_TRAFFIC, plan, AwsClients::new(&sdk)));
    gate.run(&aws.event(), Instant::now() + Duration::from_secs(10)).await.expect("reported")
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("greenlight-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_check() {
    let target = TlsTarget::start().await;
    let plan = json!({"checks": [{"name": "tls", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let outcome = run(plan, &scratch_dir("untrusted")).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    let reason = outcome.verdict.checks[0].reason.clone().unwrap_or_default();
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
}

#[tokio::test]
async fn a_plan_ca_bundle_makes_the_certificate_trusted() {
    let target = TlsTarget::start().await;
    let dir = scratch_dir("trusted");
    std::fs::write(dir.join("test-ca.pem"), &target.ca_pem).expect("write CA");
    let plan = json!({"ca_bundle_file": "test-ca.pem", "checks": [{"name": "tls", "http": {"url": format!("{}/v2/cart/healthy", target.url)},
        "expect": {"json_schema": {"required": ["total_minor_units"]}}}]});
    let outcome = run(plan, &dir).await;
    assert_eq!(outcome.verdict.status, Status::Succeeded, "{:?}", outcome.verdict);
}

#[tokio::test]
async fn an_unreadable_ca_bundle_is_a_plan_error() {
    let dir = scratch_dir("missing");
    let outcome = run(json!({"ca_bundle_file": "nope.pem", "checks": []}), &dir).await;
    assert_eq!(outcome.verdict.status, Status::Failed);
    assert!(outcome.verdict.reason.contains("at /ca_bundle_file: cannot read"), "{}", outcome.verdict.reason);
    std::fs::write(dir.join("junk.pem"), "not a certificate").expect("write junk");
    let outcome = run(json!({"ca_bundle_file": "junk.pem", "checks": []}), &dir).await;
    assert!(outcome.verdict.reason.contains("at /ca_bundle_file"), "{}", outcome.verdict.reason);
}

/// The smoke hook in CLI mode with `--format json`, its AWS endpoint at `endpoint`, and only the
/// environment given here (no inherited `SSL_CERT_FILE`).
async fn smoke_hook(endpoint: &str, event: &std::path::Path, plan: &Value, envs: &[(&str, &std::path::Path)]) -> Value {
    let output = tokio::process::Command::new(hook_binary("after-allow-test-traffic"))
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("GREENLIGHT_PLAN", plan.to_string())
        .envs(envs.iter().copied())
        .args(["--format", "json", "--event"])
        .arg(event)
        .current_dir(workspace_root())
        .output()
        .await
        .expect("run the smoke hook");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: stdout {} stderr {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn check_reason(outcome: &Value) -> String {
    outcome["verdict"]["checks"][0]["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_cert_file_replaces_the_compiled_roots_for_checks() {
    let target = TlsTarget::start().await;
    let dir = scratch_dir("ssl-cert-file");
    let ca = dir.join("test-ca.pem");
    std::fs::write(&ca, &target.ca_pem).expect("write CA");
    let plan = json!({"checks": [{"name": "tls", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});

    let aws = Held::ecs("AfterAllowTestTraffic").await;
    let event = aws.event_file("after-allow-test-traffic");
    let compiled = smoke_hook(&aws.endpoint(), &event, &plan, &[]).await;
    assert_eq!(compiled["verdict"]["status"], "Failed", "{compiled:#}");
    assert!(check_reason(&compiled).contains("UnknownIssuer"), "{compiled:#}");
    assert_eq!(compiled["report"], "accepted", "plain HTTP to the local AWS needs no roots");

    let aws = Held::ecs("AfterAllowTestTraffic").await;
    let event = aws.event_file("after-allow-test-traffic");
    let from_file = smoke_hook(&aws.endpoint(), &event, &plan, &[("SSL_CERT_FILE", &ca)]).await;
    assert_eq!(from_file["verdict"]["status"], "Succeeded", "{from_file:#}");
    assert_eq!(from_file["report"], "accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ssl_cert_file_fails_closed_with_its_name_and_still_reports_over_plain_http() {
    let dir = scratch_dir("bad-ssl-cert-file");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write junk");
    let aws = Held::ecs("AfterAllowTestTraffic").await;
    let plan = json!({"checks": [{"name": "plain", "http": {"url": "http://127.0.0.1:1/"}}]});
    let outcome =
        smoke_hook(&aws.endpoint(), &aws.event_file("after-allow-test-traffic"), &plan, &[("SSL_CERT_FILE", &junk)])
            .await;
    assert_eq!(outcome["verdict"]["status"], "Failed", "{outcome:#}");
    let reason = outcome["verdict"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("no trusted roots from SSL_CERT_FILE={}", junk.display())), "{outcome:#}");
    assert_eq!(outcome["report"], "accepted", "{outcome:#}");
}

/// The SDK's calls trust what the checks trust: aimed at the TLS target, a call fails the
/// handshake under the compiled roots and reaches the target under `SSL_CERT_FILE`.
#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_trusts_the_same_roots_as_the_checks() {
    let target = TlsTarget::start().await;
    let dir = scratch_dir("sdk-roots");
    let ca = dir.join("test-ca.pem");
    std::fs::write(&ca, &target.ca_pem).expect("write CA");
    let plan = json!({"checks": []});
    let event = event_file("after-allow-test-traffic");

    let compiled = smoke_hook(&target.url, &event, &plan, &[]).await;
    let text = compiled.to_string();
    assert_eq!(compiled["report"], "not_delivered", "{compiled:#}");
    assert!(text.contains("UnknownIssuer") && !text.contains("answered by the TLS target"), "{compiled:#}");

    let from_file = smoke_hook(&target.url, &event, &plan, &[("SSL_CERT_FILE", &ca)]).await;
    let text = from_file.to_string();
    assert!(text.contains("answered by the TLS target") && !text.contains("UnknownIssuer"), "{from_file:#}");
}
