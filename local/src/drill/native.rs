//! ECS-native scenarios: ECS deploys the service itself, with no CodeDeploy. The drill adds the
//! `checkout` load balancer, creates `shop/checkout` on blue behind it with the greenlight hooks
//! as its lifecycle hooks (each at its own stage, reading its plan from `ecs-native/`), sends
//! production clients to the production listener, updates the service to green, and follows the
//! service deployment's record: every stage, hook invocation and answer, weight and rollback.

use super::*;
use crate::config::LoadBalancerConfig;
use crate::ecs::service::{RecordEntry as NativeEntry, ServiceDeploymentHappening as Native};
use crate::elbv2::{ListenerRole, listener_rule_arn, numbered_target_group};

/// The load balancer in front of the service.
const BALANCER: &str = "checkout";
/// The role ECS assumes to invoke the hooks.
const HOOK_ROLE: &str = "arn:aws:iam::123456789012:role/ecs-lifecycle-hooks";
/// The role ECS assumes to move the load balancer's weights.
const LOAD_BALANCER_ROLE: &str = "arn:aws:iam::123456789012:role/ecs-load-balancers";
/// How often the live timeline looks at the record.
const RECORD_POLL: Duration = Duration::from_millis(50);

/// Runs an ECS-native scenario on `server`: what its one release did.
pub(super) async fn drive(
    setup: &DrillSetup,
    scenario: ScenarioName,
    server: &Server,
    plans_dir: &Path,
    started: Instant,
) -> Result<Vec<ScenarioOutcome>, String> {
    let emulator = &server.emulator;
    let release = scenario.releases()[0];
    write_plans(setup, scenario, plans_dir, None)?;
    emulator
        .add_load_balancer(BALANCER, &LoadBalancerConfig::default())
        .await
        .map_err(|e| format!("the load balancer: {e}"))?;
    let (production, _) =
        emulator.load_balancer_listeners(BALANCER).await.ok_or("the load balancer has no listeners")?;
    call(emulator, "CreateService", create_service_input(scenario, &release)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(std::sync::Mutex::new(BlastRadius::default()));
    let load = tokio::spawn(generate_load(emulator.clone(), release, Some(production), counts.clone(), stop.clone()));
    let (cluster, service) = release.target.split_once('/').unwrap_or((NATIVE_CLUSTER, release.target));
    let updated = call(
        emulator,
        "UpdateService",
        json!({"cluster": cluster, "service": service, "taskDefinition": release.versions.1}),
    )
    .await?;
    let arn = updated["service"]["currentServiceDeployment"]
        .as_str()
        .map(str::to_owned)
        .ok_or("UpdateService started no service deployment")?;
    let weight = {
        let (emulator, arn) = (emulator.clone(), arn.clone());
        move || emulator.state().native.deployments.get(&arn).map_or(0.0, |d| d.target.production_weight)
    };
    let sampler = tokio::spawn(sample(weight, counts.clone(), stop.clone(), started));
    let printer = setup.live.then(|| tokio::spawn(print_record(emulator.clone(), arn.clone(), stop.clone(), started)));
    let breaker = (scenario == ScenarioName::EcsNativeCanaryRegression).then(|| {
        tokio::spawn(fail_green_once_in_production(emulator.clone(), arn.clone(), green_failure_flag(plans_dir)))
    });

    // An hour of AWS time, and a minute more for the bake, which runs in real time.
    let limit = setup.scale.apply(Duration::from_secs(60 * 60)) + Duration::from_secs(60);
    let ended = emulator.wait_until_service_deployment_ends(&arn, limit).await;
    if let Some(breaker) = breaker {
        breaker.abort();
    }
    // A little traffic after the end shows where production settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let samples = sampler.await.unwrap_or_default();
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    if !ended {
        return Err(format!("{arn} did not end within {limit:?}"));
    }
    let blast_radius = *counts.lock().unwrap_or_else(|p| p.into_inner());
    let record = emulator.service_deployment_record(&arn);
    let mut outcome = outcome_of(emulator, scenario, release, &arn, &record, blast_radius, started);
    let logs = setup.out_dir.join(scenario.as_str()).join("logs");
    outcome.verdicts = hook_verdicts(&release, &logs, arn.rsplit('/').next().unwrap_or(&arn));
    let markers = markers(&record, started, emulator);
    let record = serde_json::to_value(&record).unwrap_or_default();
    Ok(vec![finish(setup, outcome, samples, markers, record, started)?])
}

/// One ECS call, served as over the wire.
async fn call(emulator: &Emulator, operation: &str, input: Value) -> Result<Value, String> {
    emulator.ecs(operation, &input).await.map_err(|e| format!("{operation}: {}", e.message))
}

/// CreateService of the release's service on blue, behind the load balancer's first target
/// group, with the scenario's strategy and each hook at its own stage.
fn create_service_input(scenario: ScenarioName, release: &Release) -> Value {
    let (cluster, service) = release.target.split_once('/').unwrap_or((NATIVE_CLUSTER, release.target));
    let hooks: Vec<Value> = release
        .hooks()
        .iter()
        .map(|(hook, stage)| {
            let function = hook_function(true, hook);
            json!({"hookTargetArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
                "roleArn": HOOK_ROLE, "lifecycleStages": [stage]})
        })
        .collect();
    let mut configuration = scenario.ecs_strategy();
    configuration["lifecycleHooks"] = Value::from(hooks);
    json!({
        "cluster": cluster, "serviceName": service, "taskDefinition": release.versions.0, "desiredCount": 2,
        "deploymentConfiguration": configuration,
        "loadBalancers": [{
            "targetGroupArn": numbered_target_group(BALANCER, 1).arn, "containerName": release.service,
            "containerPort": 8080,
            "advancedConfiguration": {
                "alternateTargetGroupArn": numbered_target_group(BALANCER, 2).arn,
                "productionListenerRule": listener_rule_arn(BALANCER, ListenerRole::Production),
                "testListenerRule": listener_rule_arn(BALANCER, ListenerRole::Test),
                "roleArn": LOAD_BALANCER_ROLE
            }
        }]
    })
}

/// What the release did, from the service deployment's record.
fn outcome_of(
    emulator: &Emulator,
    scenario: ScenarioName,
    release: Release,
    arn: &str,
    record: &[NativeEntry],
    blast_radius: BlastRadius,
    started: Instant,
) -> ScenarioOutcome {
    let (status, rollback) = {
        let state = emulator.state();
        let deployment = state.native.deployments.get(arn);
        (
            deployment.map(|d| d.status.as_str().to_owned()).unwrap_or_default(),
            deployment.and_then(|d| d.rollback.as_ref().map(|r| r.reason.clone())),
        )
    };
    let mut outcome = ScenarioOutcome::begun(scenario, release, arn, blast_radius, started);
    outcome.status = status;
    outcome.rollback = rollback;
    for entry in record {
        match &entry.what {
            Native::Weights { route, target, .. } => outcome.weights.push(((*route).to_owned(), *target)),
            Native::HookInvocation { stage, hook, attempt, rollback, outcome: answered, .. } => {
                outcome.ecs_hook_calls.push(EcsHookCall {
                    hook: hook_package(hook).to_owned(),
                    stage: (*stage).to_owned(),
                    attempt: *attempt,
                    rollback: *rollback,
                    outcome: (*answered).to_owned(),
                });
            }
            _ => {}
        }
    }
    outcome
}

/// The hook package a hook's function ARN names: `greenlight-<package>`.
fn hook_package(arn: &str) -> &str {
    let function = arn.rsplit(':').next().unwrap_or(arn);
    function.strip_prefix("greenlight-").unwrap_or(function)
}

/// The picture's markers: each stage where a hook ran or traffic moved, each FAILED answer, the
/// rollback and the end.
fn markers(record: &[NativeEntry], started: Instant, emulator: &Emulator) -> Vec<Marker> {
    // Record times count from the emulator's start, which is a moment after the scenario's.
    let offset = (started.elapsed().as_millis() as u64).saturating_sub(emulator.now_ms());
    let something_happened_at = |next: Option<&NativeEntry>| {
        next.is_some_and(|next| matches!(next.what, Native::HookInvocation { .. } | Native::Weights { .. }))
    };
    record
        .iter()
        .enumerate()
        .filter_map(|(at, entry)| {
            let (label, failed) = match &entry.what {
                Native::Stage { stage } if something_happened_at(record.get(at + 1)) => ((*stage).to_owned(), false),
                Native::HookInvocation { stage, hook, outcome: "FAILED", .. } => {
                    (format!("{} FAILED at {stage}", hook_package(hook)), true)
                }
                Native::Rollback { .. } => ("rollback".to_owned(), true),
                Native::Status { status, .. }
                    if matches!(*status, "SUCCESSFUL" | "STOPPED" | "ROLLBACK_SUCCESSFUL" | "ROLLBACK_FAILED") =>
                {
                    ((*status).to_owned(), *status != "SUCCESSFUL")
                }
                _ => return None,
            };
            Some(Marker { at_ms: entry.at_ms + offset, label, failed })
        })
        .chain(alarm_markers(emulator, offset))
        .collect()
}

/// Prints the service deployment's record as it grows, until `stop`, then what is left.
async fn print_record(emulator: Emulator, arn: String, stop: Arc<AtomicBool>, started: Instant) {
    let mut printed = 0;
    loop {
        let done = stop.load(Ordering::Relaxed);
        let record = emulator.service_deployment_record(&arn);
        for entry in record.iter().skip(printed) {
            println!("{:7.2}s  {}", started.elapsed().as_secs_f64(), line(&entry.what));
        }
        printed = record.len();
        if done {
            return;
        }
        tokio::time::sleep(RECORD_POLL).await;
    }
}

/// One line of the live timeline.
fn line(what: &Native) -> String {
    match what {
        Native::Status { status, reason } => {
            format!("service deployment {status}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())
        }
        Native::Stage { stage } => format!("{stage:<30}"),
        Native::HookInvocation { hook, attempt, rollback, answer, outcome, reason, duration_ms, .. } => {
            let delay = answer.get("callBackDelay").and_then(Value::as_u64).map(|d| format!(", again in {d} s"));
            format!(
                "  invoked {} (attempt {attempt}{}) -> {outcome}{} in {duration_ms} ms{}",
                hook_package(hook),
                if *rollback { ", rollback" } else { "" },
                delay.filter(|_| *outcome == "IN_PROGRESS").unwrap_or_default(),
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
            )
        }
        Native::Weights { route, source, target } => format!("  {route} traffic: old {source}% / new {target}%"),
        Native::Rollback { reason } => format!("  rollback: {reason}"),
    }
}

/// Waits until production first reaches green, then makes green answer 500 (drops its failure
/// flag), as a release that breaks under production traffic would.
async fn fail_green_once_in_production(emulator: Emulator, arn: String, flag: PathBuf) {
    loop {
        let record = emulator.service_deployment_record(&arn);
        let on_green = record
            .iter()
            .any(|e| matches!(e.what, Native::Weights { route: "production", target, .. } if target > 0.0));
        if on_green {
            break;
        }
        tokio::time::sleep(RECORD_POLL / 5).await;
    }
    if let Err(err) = std::fs::write(&flag, b"") {
        tracing::error!(flag = %flag.display(), error = %err, "cannot make green fail");
    }
}
