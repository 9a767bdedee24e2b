//! TLS verification is always on; an extra CA bundle from the plan is trusted on top of the system
//! roots.

use std::sync::Arc;
use std::time::Duration;

use greenlight::verdict::Status;
use greenlight::{AwsClients, Gate, Hook, RunOutcome};
use greenlight_tests::deployment::{Held, sdk_config};
use greenlight_tests::targets::TlsTarget;
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
