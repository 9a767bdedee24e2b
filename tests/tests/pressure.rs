//! A hook under a Lambda's limits still reports exactly once, in time: a CPU-heavy body at 7.2 %
//! of a core, bodies that would not fit in a 256 MB function, and checks still running when the
//! verdict goes out. Each runs the real pre-traffic binary in a Lambda deployment on the local
//! CodeDeploy, inside a cgroup where the machine has one (`codedeploy_local::limits`); a machine
//! without the controller skips the limit and says so, and the test still checks the report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use codedeploy_local::config::{AliasConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{Happening, RecordEntry, TimeScale};
use codedeploy_local::limits::{Cgroup, Limit};
use codedeploy_local::server::Server;
use greenlight_tests::{bin_dir, serve};
use serde_json::{Value, json};

/// The one-hour limit becomes 60 s; every deployment here must end long before it.
const SCALE: TimeScale = TimeScale(60.0);

/// A 128 MB Lambda's share of a core.
const LAMBDA_128MB_CPU: f64 = 7.2;

struct Run {
    status: String,
    record: Vec<RecordEntry>,
    took: Duration,
    /// The hook's output, every invocation.
    logs: String,
}

impl Run {
    /// (status, result, instant) of every report.
    fn reports(&self) -> Vec<(String, String, std::time::Instant)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Report { status, result, .. } => Some((status.clone(), result.clone(), e.instant)),
                _ => None,
            })
            .collect()
    }

    /// Exactly one report, accepted, of `status`; the deployment ended accordingly, in time.
    fn assert_reported_once(&self, status: &str, within: Duration) {
        let reports: Vec<(String, String)> = self.reports().into_iter().map(|(s, r, _)| (s, r)).collect();
        assert_eq!(reports, [(status.to_owned(), "accepted".to_owned())], "logs:\n{}", self.logs);
        let expected = if status == "Succeeded" { "Succeeded" } else { "Failed" };
        assert_eq!(self.status, expected);
        assert!(self.took < within, "the deployment took {:?}", self.took);
    }
}

/// Deploys a Lambda function whose pre-traffic hook runs `plan` with `timeout_seconds` and
/// `memory_mb`, inside `limits`.
async fn deploy(plan: Value, timeout_seconds: u64, memory_mb: u32, limits: &[Limit]) -> Run {
    let cgroup = match Cgroup::create(limits) {
        Ok(cgroup) => cgroup,
        Err(why) => {
            eprintln!("running without {limits:?}: {why}");
            None
        }
    };
    let app = ProcessConfig {
        command: vec![bin_dir().join("checkout-function").display().to_string()],
        environment: BTreeMap::new(),
    };
    let mut hook = ProcessConfig {
        command: vec![bin_dir().join("pre-traffic").display().to_string()],
        environment: BTreeMap::from([("GREENLIGHT_PLAN".to_owned(), plan.to_string())]),
    };
    if let Some(cgroup) = &cgroup {
        eprintln!("the hook runs under {}", cgroup.describe());
        hook = cgroup.wrap(hook);
    }
    let config = LocalConfig {
        functions: BTreeMap::from([
            (
                "app".to_owned(),
                FunctionConfig {
                    timeout_seconds: 5,
                    memory_mb: 128,
                    versions: BTreeMap::from([("1".to_owned(), app.clone()), ("2".to_owned(), app)]),
                    aliases: BTreeMap::from([(
                        "live".to_owned(),
                        AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
                    )]),
                },
            ),
            (
                "CodeDeployHook_pre-traffic".to_owned(),
                FunctionConfig {
                    timeout_seconds,
                    memory_mb,
                    versions: BTreeMap::from([("$LATEST".to_owned(), hook)]),
                    aliases: BTreeMap::new(),
                },
            ),
        ]),
        ..LocalConfig::default()
    };
    let log_dir = std::env::temp_dir().join(format!("greenlight-pressure-{}-{}", std::process::id(), unique()));
    let server = Server::start(config, SCALE, 0, Some(log_dir.clone())).await.expect("emulator starts");
    let emulator = server.emulator.clone();
    let call = |operation: &str, input: Value| emulator.codedeploy(operation, &input).expect(operation);
    call("CreateApplication", json!({"applicationName": "app", "computePlatform": "Lambda"}));
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "app", "deploymentGroupName": "live", "serviceRoleArn": "arn:aws:iam::123456789012:role/cd"}),
    );
    let appspec = json!({"Resources": [{"app": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": "app", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}}],
        "Hooks": [{"BeforeAllowTraffic": "CodeDeployHook_pre-traffic"}]});
    let started = std::time::Instant::now();
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "app", "deploymentGroupName": "live",
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    );
    let id = created["deploymentId"].as_str().expect("deployment id").to_owned();
    emulator.wait_until_complete(&id, SCALE.apply(Duration::from_secs(3600)) + Duration::from_secs(30)).await;
    let took = started.elapsed();
    // A late answer (a retry after a killed process, a duplicate) gets its moment to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = emulator.state().deployments[&id].status.to_owned();
    let record = emulator.record_of(&id);
    server.shutdown().await;
    drop(cgroup);
    let logs = std::fs::read_to_string(log_dir.join("CodeDeployHook_pre-traffic.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&log_dir);
    Run { status, record, took, logs }
}

/// A number no other deployment of this test process has had.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `count` cart-like records in one JSON array: about 100 bytes each.
fn carts(count: usize) -> String {
    let cart = json!({"cart_id": "c-1842", "currency": "EUR", "total_minor_units": 1299,
        "items": [{"sku": "tea-earl-grey", "quantity": 1}]});
    format!("[{}]", vec![cart.to_string(); count].join(","))
}

/// Serves `body` as JSON at `/body`, and counts every request with its instant.
async fn body_server(body: String) -> (String, Arc<Mutex<Vec<std::time::Instant>>>) {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let counted = hits.clone();
    let body = Arc::new(body);
    let router = Router::new()
        .route(
            "/body",
            get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], (*body).clone()) }
            }),
        )
        .route("/hang", get(std::future::pending::<()>))
        .route(
            "/counted",
            get(move || {
                counted.lock().expect("hits").push(std::time::Instant::now());
                async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
    (format!("http://{}", serve(router).await), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_heavy_body_at_a_128mb_share_of_cpu_fails_at_its_timeout_and_reports_in_time() {
    // 6 MiB of carts, each field checked against a pattern: seconds of CPU at 7.2 % of a core.
    let (url, _) = body_server(carts(60_000)).await;
    let schema = json!({"type": "array", "items": {"type": "object", "required": ["cart_id"], "properties": {
        "cart_id": {"type": "string", "pattern": "^c-[0-9]+$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "items": {"type": "array", "items": {"properties": {"sku": {"pattern": "^[a-z-]+$"}}}}}}});
    let plan = json!({"report_reserve_ms": 1000, "checks": [{"name": "big cart list",
        "http": {"url": format!("{url}/body"), "max_body_bytes": 8 << 20},
        "expect": {"json_schema": schema}, "timeout_ms": 3000}]});
    // 6 s, as the issue measured it; the budget of a 1 GB function, so only the CPU is short.
    let run = deploy(plan, 6, 1024, &[Limit::CpuPercent(LAMBDA_128MB_CPU)]).await;
    run.assert_reported_once("Failed", Duration::from_secs(20));
    assert!(run.logs.contains("timed out after 3000 ms") || run.logs.contains("deadline:"), "logs:\n{}", run.logs);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_cannot_fit_in_a_256mb_function_are_refused_at_load_and_reported() {
    let (url, _) = body_server(carts(10)).await;
    let checks: Vec<Value> = (0..4)
        .map(|i| {
            json!({"name": format!("body {i}"), "http": {"url": format!("{url}/body"), "max_body_bytes": 60 << 20},
                   "expect": {"json_schema": {"type": "array"}}})
        })
        .collect();
    let run = deploy(json!({"checks": checks}), 10, 256, &[Limit::MemoryMib(256)]).await;
    run.assert_reported_once("Failed", Duration::from_secs(20));
    assert!(run.logs.contains("plan needs too much memory"), "logs:\n{}", run.logs);
    assert!(run.logs.contains("at least"), "the reason says what to change:\n{}", run.logs);
}

#[tokio::test(flavor = "multi_thread")]
async fn dense_bodies_within_their_caps_fail_without_exhausting_a_256mb_function() {
    // Four checks of 2 MiB caps fit the plan's budget; the bodies are single-key objects, which
    // parse to 80× their size: 670 MiB at once without the parse budget, far past the cgroup.
    let dense = format!("[{}]", vec![r#"{"a":0}"#; (2 << 20) / 8 - 1].join(","));
    let (url, _) = body_server(dense).await;
    let checks: Vec<Value> = (0..4)
        .map(|i| {
            json!({"name": format!("dense {i}"), "http": {"url": format!("{url}/body"), "max_body_bytes": 2 << 20},
                   "expect": {"json_schema": {"type": "array"}}})
        })
        .collect();
    let run = deploy(json!({"checks": checks}), 10, 256, &[Limit::MemoryMib(256)]).await;
    run.assert_reported_once("Failed", Duration::from_secs(20));
    assert!(run.logs.contains("too dense to judge"), "logs:\n{}", run.logs);
    let attempts: Vec<u32> = run
        .record
        .iter()
        .filter_map(|e| match &e.what {
            Happening::Invocation { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert!(!attempts.contains(&2), "no invocation died and was retried: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_check_sends_a_request_after_the_report() {
    // One check hangs until the deadline; the other keeps measuring a failing target until then.
    let (url, hits) = body_server(String::new()).await;
    let plan = json!({"report_reserve_ms": 1000, "checks": [
        {"name": "hangs", "http": {"url": format!("{url}/hang")}, "timeout_ms": 600000},
        {"name": "keeps trying", "http": {"url": format!("{url}/counted")}, "attempts": 1000, "interval_ms": 20}
    ]});
    let run = deploy(plan, 4, 128, &[]).await;
    run.assert_reported_once("Failed", Duration::from_secs(20));
    let reported_at = run.reports()[0].2;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hits = hits.lock().expect("hits").clone();
    assert!(hits.len() > 10, "the check kept measuring until the deadline: {} requests", hits.len());
    let late = hits.iter().filter(|at| **at > reported_at).count();
    assert_eq!(late, 0, "{late} of {} requests reached the target after the report", hits.len());
}
