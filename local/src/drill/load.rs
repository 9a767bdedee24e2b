//! Production traffic during a scenario: the clients' requests, what they saw, the samples
//! the picture draws, and the failure the alarm scenario brings on green.

use super::*;

/// Production clients: the alias for Lambda, the production listener for ECS. A good answer is a
/// 200 whose cart carries `total_cents`, the field clients read.
pub(super) async fn generate_load(
    emulator: Emulator,
    release: Release,
    production: Option<std::net::SocketAddr>,
    counts: Arc<std::sync::Mutex<BlastRadius>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let (_, new_version) = release.versions;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (is_new, ok) = if release.lambda {
            let request = json!({"httpMethod": "GET", "path": format!("/v2/cart/load-{n}"), "headers": {"accept": "application/json"}});
            match emulator.invoke(release.target, Some("live"), Bytes::from(request.to_string())).await {
                Ok(response) => {
                    let ok = response.invocation.outcome == InvokeOutcome::Response
                        && serde_json::from_slice::<Value>(&response.invocation.payload).is_ok_and(|result| {
                            result["statusCode"] == 200
                                && result["body"]
                                    .as_str()
                                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                                    .is_some_and(cart_is_good)
                        });
                    (response.executed_version == new_version, ok)
                }
                Err(_) => (false, false),
            }
        } else {
            let Some(addr) = production else { return };
            match http.get(format!("http://{addr}/v2/cart/load-{n}")).send().await {
                Ok(response) => {
                    let is_new = response.headers().get(TASK_SET_HEADER).is_some_and(|v| v == "Green");
                    let ok = response.status() == 200 && response.json::<Value>().await.is_ok_and(cart_is_good);
                    (is_new, ok)
                }
                Err(_) => (false, false),
            }
        };
        {
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            match (is_new, ok) {
                (false, true) => c.old_ok += 1,
                (true, true) => c.new_ok += 1,
                (false, false) => c.old_errors += 1,
                (true, false) => c.new_errors += 1,
            }
        }
        tokio::time::sleep(LOAD_INTERVAL).await;
    }
}

pub(super) fn cart_is_good(cart: Value) -> bool {
    cart.get("total_cents").is_some_and(Value::is_i64)
}

/// The production weight on the new version of CodeDeploy's deployment `deployment_id`.
pub(super) fn codedeploy_weight(emulator: &Emulator, deployment_id: &str) -> f64 {
    emulator.state().deployments.get(deployment_id).map_or(0.0, |d| match &d.target {
        TargetState::Lambda { weight, .. } => *weight,
        TargetState::Ecs { task_sets, .. } => {
            task_sets.iter().find(|s| s.label == TaskSetLabel::Green).map_or(0.0, |s| s.weight)
        }
    })
}

/// Samples the production weight on the new version (`new_weight`) and the load generator's
/// counts every [`SAMPLE_INTERVAL`] until `stop`.
pub(super) async fn sample(
    new_weight: impl Fn() -> f64 + Send + 'static,
    counts: Arc<std::sync::Mutex<BlastRadius>>,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut last = BlastRadius::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        let now = *counts.lock().unwrap_or_else(|p| p.into_inner());
        let weight = new_weight();
        samples.push(Sample {
            at_ms: started.elapsed().as_millis() as u64,
            new_weight_percent: weight,
            old_ok: now.old_ok - last.old_ok,
            new_ok: now.new_ok - last.new_ok,
            old_errors: now.old_errors - last.old_errors,
            new_errors: now.new_errors - last.new_errors,
        });
        last = now;
    }
    samples
}

/// Waits for the canary step, then makes green answer 500 (drops its failure flag), as a
/// release that breaks under production load would; the group's CloudWatch alarm, on green's
/// 5xx share, then goes off on the data.
pub(super) async fn fail_green_during_canary(
    emulator: Emulator,
    mut record: tokio::sync::broadcast::Receiver<RecordEntry>,
    deployment_id: String,
    flag: std::path::PathBuf,
) {
    loop {
        match record.recv().await {
            Ok(RecordEntry {
                deployment_id: Some(id),
                what: Happening::Weights { route: "production", new, .. },
                ..
            }) if id == deployment_id && new > 0.0 => {
                break;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
    // A minute and a half into the five-minute canary, so green has served some good answers.
    tokio::time::sleep(emulator.scale().apply(Duration::from_secs(90))).await;
    if let Err(err) = std::fs::write(&flag, b"") {
        tracing::error!(flag = %flag.display(), error = %err, "cannot make green fail");
    }
}
