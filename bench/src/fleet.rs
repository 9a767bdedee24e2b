//! The fleet run: many services' deployments through one set of hooks at once, on one local AWS.
//!
//! Seven hook functions (one per hook package) serve every deployment. Each reads its plan from
//! the local Parameter Store by the deployment's application and group
//! (`GREENLIGHT_PLAN_PARAMETER`), and finds what to check through variables: the ECS plan checks
//! `${test_url}` and compares green with blue through both listeners, the Lambda plan invokes
//! `${function_name}` at `${target_version}`. A few releases are broken (an ECS green that renames
//! a field of the cart contract, a Lambda version that fails every invocation) and must fail.
//!
//! Before the fleet, one ECS and one Lambda deployment run alone, each twice: cold, then again
//! within the plan cache's minute. They give the time the fleet is measured against and the calls
//! of each hook invocation, timed by the emulator from arrival to answer, so the round trips the
//! plan lookup and the URL lookups add can be counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use codedeploy_local::config::{AliasConfig, EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{ApiCall, ComputePlatform, Emulator, EventStatus, Happening, TimeScale};
use codedeploy_local::server::Server;
use codedeploy_local::ssm::store::ParameterType;
use serde::Serialize;
use serde_json::{Value, json};

use crate::report::Machine;

mod ecs_native;

/// The hook packages, the lifecycle event each serves, and its platform.
const HOOKS: [(&str, &str, ComputePlatform); 7] = [
    ("before-install", "BeforeInstall", ComputePlatform::Ecs),
    ("after-install", "AfterInstall", ComputePlatform::Ecs),
    ("after-allow-test-traffic", "AfterAllowTestTraffic", ComputePlatform::Ecs),
    ("before-allow-traffic", "BeforeAllowTraffic", ComputePlatform::Ecs),
    ("after-allow-traffic", "AfterAllowTraffic", ComputePlatform::Ecs),
    ("pre-traffic", "BeforeAllowTraffic", ComputePlatform::Lambda),
    ("post-traffic", "AfterAllowTraffic", ComputePlatform::Lambda),
];

/// The parameter every hook's plan comes from, as the platform team would set it.
const PLAN_PARAMETER: &str = "/greenlight/plans/{application}/{deployment_group}";
/// The applications: one per compute platform, as CodeDeploy requires.
const ECS_APPLICATION: &str = "fleet-ecs";
const LAMBDA_APPLICATION: &str = "fleet-lambda";
/// The ECS cluster every service runs in.
const CLUSTER: &str = "fleet";
/// The group of the deployments that run alone.
const SOLO: &str = "solo";
/// How much faster than AWS the emulator's waits run, for the fleet and the deployments alone alike.
const SCALE: TimeScale = TimeScale(60.0);
/// How long the fleet may take before the harness gives up on it.
const FLEET_LIMIT: Duration = Duration::from_secs(300);

/// The ECS task definitions: blue, a compatible green (adds `total_minor_units`, keeps
/// `total_cents`), and a green that renames the field, breaking the contract.
const BLUE: &str = "checkout:1";
const GREEN: &str = "checkout:2";
const BREAKING_GREEN: &str = "checkout:3";

/// How many deployments of each kind the fleet runs at once.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FleetShape {
    /// ECS deployments.
    pub ecs: usize,
    /// Lambda deployments.
    pub lambda: usize,
    /// Of the ECS ones, those whose green breaks the cart contract.
    pub broken_ecs: usize,
    /// Of the Lambda ones, those whose new version fails every invocation.
    pub broken_lambda: usize,
}

impl FleetShape {
    fn validate(&self) -> Result<(), String> {
        if self.ecs == 0 || self.lambda == 0 {
            return Err("the fleet needs at least one ECS and one Lambda deployment".to_owned());
        }
        if self.broken_ecs > self.ecs || self.broken_lambda > self.lambda {
            return Err("the fleet cannot have more broken deployments than deployments".to_owned());
        }
        Ok(())
    }

    fn total(&self) -> usize {
        self.ecs + self.lambda
    }
}

/// One service of the fleet: its deployment group, and what its deployment releases.
#[derive(Debug, Clone)]
struct Service {
    platform: ComputePlatform,
    /// The deployment group, named after the service.
    group: String,
    /// Whether the release is broken, so the deployment must fail.
    broken: bool,
}

impl Service {
    fn application(&self) -> &'static str {
        match self.platform {
            ComputePlatform::Ecs => ECS_APPLICATION,
            ComputePlatform::Lambda => LAMBDA_APPLICATION,
        }
    }

    /// `cluster:service` for ECS, the function name for Lambda.
    fn target(&self) -> String {
        match self.platform {
            ComputePlatform::Ecs => format!("{CLUSTER}:{}", self.group),
            ComputePlatform::Lambda => format!("fleet-{}", self.group),
        }
    }

    fn parameter(&self) -> String {
        format!("/greenlight/plans/{}/{}", self.application(), self.group)
    }

    /// The lifecycle event that fails a broken release: the first where a check sees it.
    fn failing_event(&self) -> Option<&'static str> {
        match (self.broken, self.platform) {
            (false, _) => None,
            (true, ComputePlatform::Ecs) => Some("AfterAllowTestTraffic"),
            (true, ComputePlatform::Lambda) => Some("BeforeAllowTraffic"),
        }
    }
}

/// The services: the two that deploy alone, then the fleet's, the broken ones first of each kind.
fn services(shape: FleetShape) -> (Service, Service, Vec<Service>) {
    let solo = |platform| Service { platform, group: SOLO.to_owned(), broken: false };
    let mut fleet = Vec::new();
    for i in 0..shape.ecs {
        fleet.push(Service {
            platform: ComputePlatform::Ecs,
            group: format!("svc-{i:02}"),
            broken: i < shape.broken_ecs,
        });
    }
    for i in 0..shape.lambda {
        fleet.push(Service {
            platform: ComputePlatform::Lambda,
            group: format!("fn-{i:02}"),
            broken: i < shape.broken_lambda,
        });
    }
    (solo(ComputePlatform::Ecs), solo(ComputePlatform::Lambda), fleet)
}

/// The ECS groups' plan, the same for all five hooks: green's health on the test listener, and
/// green's cart compared with blue's (production listener) by shape. Before AllowTestTraffic both
/// listeners lead to blue, so the comparison can fail only from AfterAllowTestTraffic on.
fn ecs_plan() -> Value {
    json!({"checks": [
        {"name": "health", "http": {"url": "${test_url}/health", "headers": {"x-service": "${cluster}/${service}"}},
         "expect": {"status": [200]}},
        {"name": "cart-contract", "compare": {"path": "/v2/cart/42"}}
    ]})
}

/// The Lambda groups' plan, for both hooks: the new version answers the cart route.
fn lambda_plan() -> Value {
    json!({"checks": [
        {"name": "new-version-answers", "invoke": {"function": "${function_name}", "qualifier": "${target_version}",
            "payload": {"httpMethod": "GET", "path": "/v2/cart/42",
                "headers": {"x-greenlight-deployment": "${deployment_id}"}}},
         "expect": {"function_error": false, "status": [200]}}
    ]})
}

fn hook_function(hook: &str) -> String {
    format!("CodeDeployHook_fleet-{hook}")
}

/// The hook binaries and the sample apps the fleet runs.
#[derive(Debug)]
struct Binaries {
    hooks: BTreeMap<&'static str, PathBuf>,
    checkout_service: PathBuf,
    checkout_function: PathBuf,
}

impl Binaries {
    fn find(dir: &Path) -> Result<Self, String> {
        let existing = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                Ok(path)
            } else {
                Err(format!("{} is missing: build it first (scripts/bench.sh does)", path.display()))
            }
        };
        let mut hooks = BTreeMap::new();
        for (hook, _, _) in HOOKS {
            hooks.insert(hook, existing(hook)?);
        }
        Ok(Self {
            hooks,
            checkout_service: existing("checkout-service")?,
            checkout_function: existing("checkout-function")?,
        })
    }
}

/// The functions, task definitions and services: one function per hook package, shared by every
/// deployment; an ECS service or a Lambda function per service.
fn local_config(binaries: &Binaries, services: &[&Service]) -> LocalConfig {
    let path = |p: &Path| p.display().to_string();
    let mut functions = BTreeMap::new();
    for (hook, _, _) in HOOKS {
        let environment = BTreeMap::from([
            ("GREENLIGHT_PLAN_PARAMETER".to_owned(), PLAN_PARAMETER.to_owned()),
            // JSON logs, as Lambda's advanced logging writes them, so the plan choices can be read.
            ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
        ]);
        let process = ProcessConfig { command: vec![path(&binaries.hooks[hook])], environment };
        functions.insert(
            hook_function(hook),
            FunctionConfig {
                timeout_seconds: 60,
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), process)]),
                aliases: BTreeMap::new(),
            },
        );
    }
    let checkout = |behaviour: &str| ProcessConfig {
        command: vec![path(&binaries.checkout_function)],
        environment: BTreeMap::from([("CHECKOUT_BEHAVIOUR".to_owned(), behaviour.to_owned())]),
    };
    let shape = |shape: &str| ProcessConfig {
        command: vec![
            path(&binaries.checkout_service),
            "--port".into(),
            "{port}".into(),
            "--shape".into(),
            shape.into(),
        ],
        environment: BTreeMap::new(),
    };
    let task_definitions = BTreeMap::from([
        (BLUE.to_owned(), shape("cents")),
        (GREEN.to_owned(), shape("both")),
        (BREAKING_GREEN.to_owned(), shape("minor-units")),
    ]);
    let mut ecs_services = BTreeMap::new();
    for service in services {
        match service.platform {
            ComputePlatform::Ecs => {
                let config = EcsServiceConfig {
                    task_definition: BLUE.to_owned(),
                    production_port: 0,
                    test_port: 0,
                    desired_count: 2,
                };
                ecs_services.insert(service.target(), config);
            }
            ComputePlatform::Lambda => {
                // The fleet's functions deploy 1 → 2; the lone one each release after the next.
                let new = if service.broken { "broken" } else { "healthy" };
                let mut versions = BTreeMap::from([("2".to_owned(), checkout(new))]);
                for version in (1..=SOLO_PHASES.len() + 1).filter(|v| *v != 2) {
                    versions.insert(version.to_string(), checkout("healthy"));
                }
                let live = AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() };
                functions.insert(
                    service.target(),
                    FunctionConfig {
                        timeout_seconds: 10,
                        memory_mb: 128,
                        versions,
                        aliases: BTreeMap::from([("live".to_owned(), live)]),
                    },
                );
            }
        }
    }
    LocalConfig { functions, task_definitions, ecs_services }
}

fn call(emulator: &Emulator, operation: &str, input: Value) -> Result<Value, String> {
    emulator.codedeploy(operation, &input).map_err(|e| format!("{operation}: {e}"))
}

/// The two applications, every group, and every group's plan in Parameter Store.
fn set_up(emulator: &Emulator, services: &[&Service]) -> Result<(), String> {
    for (application, platform) in [(ECS_APPLICATION, "ECS"), (LAMBDA_APPLICATION, "Lambda")] {
        call(emulator, "CreateApplication", json!({"applicationName": application, "computePlatform": platform}))?;
    }
    for service in services {
        let mut group = json!({"applicationName": service.application(), "deploymentGroupName": service.group,
            "serviceRoleArn": "arn:aws:iam::123456789012:role/CodeDeployServiceRole",
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE"]}});
        let plan = match service.platform {
            ComputePlatform::Ecs => {
                group["ecsServices"] = json!([{"clusterName": CLUSTER, "serviceName": service.group}]);
                ecs_plan()
            }
            ComputePlatform::Lambda => lambda_plan(),
        };
        call(emulator, "CreateDeploymentGroup", group)?;
        emulator
            .ssm()
            .put(&service.parameter(), &plan.to_string(), ParameterType::String)
            .map_err(|e| format!("PutParameter {}: {e}", service.parameter()))?;
    }
    Ok(())
}

/// Creates the service's deployment; `release` counts the service's deployments from 1.
fn create_deployment(emulator: &Emulator, service: &Service, release: u32) -> Result<String, String> {
    let hooks: Vec<Value> = HOOKS
        .iter()
        .filter(|(_, _, platform)| *platform == service.platform)
        .map(|(hook, event, _)| json!({*event: hook_function(hook)}))
        .collect();
    let (appspec, config) = match service.platform {
        ComputePlatform::Ecs => {
            let green = if service.broken { BREAKING_GREEN } else { GREEN };
            let appspec = json!({"version": 0.0,
                "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": green, "LoadBalancerInfo": {"ContainerName": "checkout", "ContainerPort": 8080}}}}],
                "Hooks": hooks});
            (appspec, "CodeDeployDefault.ECSAllAtOnce")
        }
        ComputePlatform::Lambda => {
            let appspec = json!({"version": 0.0,
                "Resources": [{"checkout": {"Type": "AWS::Lambda::Function", "Properties": {
                    "Name": service.target(), "Alias": "live", "CurrentVersion": release.to_string(),
                    "TargetVersion": (release + 1).to_string()}}}],
                "Hooks": hooks});
            (appspec, "CodeDeployDefault.LambdaAllAtOnce")
        }
    };
    let created = call(
        emulator,
        "CreateDeployment",
        json!({"applicationName": service.application(), "deploymentGroupName": service.group,
               "deploymentConfigName": config,
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    )?;
    created["deploymentId"].as_str().map(str::to_owned).ok_or_else(|| "CreateDeployment returned no id".to_owned())
}

/// One deployment, as the fleet run saw it end.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentOutcome {
    /// One of [`SOLO_PHASES`], or `fleet`.
    pub phase: &'static str,
    /// `ECS` or `Lambda`.
    pub platform: ComputePlatform,
    /// Its application and group.
    pub application: &'static str,
    /// The deployment group.
    pub group: String,
    /// Its id.
    pub deployment_id: String,
    /// Whether its release was broken.
    pub broken: bool,
    /// How it ended.
    pub status: String,
    /// The lifecycle event that failed, if one did.
    pub failed_event: Option<String>,
    /// From CreateDeployment to the record of its end, in milliseconds.
    pub wall_ms: f64,
    /// Hook events that ran (invoked their hook and ended).
    pub hook_events: usize,
    /// Reports CodeDeploy accepted.
    pub accepted_reports: usize,
    /// Reports CodeDeploy turned away (a second report for an event, say).
    pub refused_reports: usize,
}

/// Waits for every deployment in `ids` to end and its hook invocations to be recorded, then checks
/// each was reported correctly exactly once: the status its release calls for, the failure (if
/// any) at the event that should catch it, and one accepted report per hook event that ran.
async fn conclude(
    emulator: &Emulator,
    phase: &'static str,
    deployments: &[(&Service, String, Instant)],
) -> Result<Vec<DeploymentOutcome>, String> {
    let until = Instant::now() + FLEET_LIMIT;
    for (_, id, _) in deployments {
        let left = until.saturating_duration_since(Instant::now());
        if !emulator.wait_until_complete(id, left).await {
            return Err(format!("deployment {id} did not finish within {FLEET_LIMIT:?}"));
        }
    }
    let mut outcomes = Vec::new();
    for (service, id, created) in deployments {
        let (status, events) = {
            let state = emulator.state();
            let deployment = state.deployments.get(id).ok_or_else(|| format!("deployment {id} is missing"))?;
            (deployment.status, deployment.events.clone())
        };
        let ran: Vec<_> = events
            .iter()
            .filter(|e| e.hook.is_some() && matches!(e.status, EventStatus::Succeeded | EventStatus::Failed))
            .collect();
        // The deployment can end on a report before the invocation has ended and been recorded.
        let record = wait_for_invocations(emulator, id, ran.len()).await?;
        let ended = record
            .iter()
            .find(|e| matches!(&e.what, Happening::DeploymentStatus { status, .. } if status.is_complete()))
            .ok_or_else(|| format!("deployment {id} has no end in its record"))?;
        let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
        let mut refused = 0;
        for entry in &record {
            if let Happening::Report { execution_id, result, .. } = &entry.what {
                if result == "accepted" {
                    *accepted.entry(execution_id).or_default() += 1;
                } else {
                    refused += 1;
                }
            }
        }
        let failed_event = events.iter().find(|e| e.status == EventStatus::Failed).map(|e| e.name.to_owned());
        let outcome = DeploymentOutcome {
            phase,
            platform: service.platform,
            application: service.application(),
            group: service.group.clone(),
            deployment_id: id.clone(),
            broken: service.broken,
            status: status.as_str().to_owned(),
            failed_event,
            wall_ms: ended.instant.saturating_duration_since(*created).as_secs_f64() * 1000.0,
            hook_events: ran.len(),
            accepted_reports: accepted.values().sum(),
            refused_reports: refused,
        };
        let expected = if service.broken { "Failed" } else { "Succeeded" };
        let wrong =
            |why: String| Err(format!("{phase} deployment {id} ({}/{}): {why}", service.application(), service.group));
        if outcome.status != expected {
            return wrong(format!("ended {}, expected {expected}", outcome.status));
        }
        if outcome.failed_event.as_deref() != service.failing_event() {
            return wrong(format!("failed at {:?}, expected {:?}", outcome.failed_event, service.failing_event()));
        }
        for event in &ran {
            let execution = event.execution_id.as_deref().unwrap_or("");
            let reports = accepted.get(execution).copied().unwrap_or(0);
            if reports != 1 {
                return wrong(format!("{} has {reports} accepted reports, expected exactly one", event.name));
            }
        }
        if outcome.accepted_reports != ran.len() {
            return wrong(format!(
                "{} accepted reports for {} hook events that ran",
                outcome.accepted_reports,
                ran.len()
            ));
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn wait_for_invocations(
    emulator: &Emulator,
    id: &str,
    expected: usize,
) -> Result<Vec<codedeploy_local::emulator::RecordEntry>, String> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let record = emulator.record_of(id);
        let ended = record
            .iter()
            .filter(|e| matches!(&e.what, Happening::Invocation { function, .. } if function.starts_with("CodeDeployHook_")))
            .count();
        if ended >= expected {
            return Ok(record);
        }
        if Instant::now() >= until {
            return Err(format!("deployment {id}: {ended} of its {expected} hook invocations ended"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills the hooks' idle processes, so the next deployments start them cold.
async fn recycle_hooks(emulator: &Emulator) {
    for (hook, _, _) in HOOKS {
        emulator.runtime().recycle(&hook_function(hook)).await;
    }
}

/// The lone deployments' phases, in order: cold, then again within the plan cache's minute; first
/// with the local AWS answering at once (for the wall time), then with [`CALL_LATENCY`] on every
/// answer (for the round trips).
const SOLO_PHASES: [&str; 4] = ["solo-cold", "solo-cached", "timed-cold", "timed-cached"];

/// The answer latency of the timed phases: about what a call to an AWS endpoint in the same region
/// takes, so calls in flight together show as such, whatever the machine's speed.
const CALL_LATENCY: Duration = Duration::from_millis(20);

/// Deploys `service` alone through [`SOLO_PHASES`].
async fn solo(emulator: &Emulator, service: &Service) -> Result<(Vec<DeploymentOutcome>, Vec<Invocation>), String> {
    let mut outcomes = Vec::new();
    let mut invocations = Vec::new();
    for (release, phase) in (1..).zip(SOLO_PHASES) {
        let timed = phase.starts_with("timed");
        if !phase.ends_with("cached") {
            recycle_hooks(emulator).await;
        }
        emulator.set_answer_latency(if timed { CALL_LATENCY } else { Duration::ZERO });
        let first_call = emulator.calls().len();
        let created = Instant::now();
        let id = create_deployment(emulator, service, release)?;
        outcomes.extend(conclude(emulator, phase, &[(service, id.clone(), created)]).await?);
        let calls = emulator.calls().split_off(first_call);
        invocations.extend(split_invocations(phase, service.platform, &calls));
    }
    emulator.set_answer_latency(Duration::ZERO);
    Ok((outcomes, invocations))
}

/// Which part of a hook's work a call belongs to.
fn part_of(operation: &str) -> &'static str {
    match operation {
        "ListDeploymentTargets" | "GetDeploymentTarget" => "discovery",
        "GetDeployment" | "GetParameter" => "plan",
        "GetDeploymentGroup" | "DescribeListeners" | "DescribeLoadBalancers" => "urls",
        "PutLifecycleEventHookExecutionStatus" => "report",
        _ => "checks",
    }
}

/// The calls the harness itself made, which are not a hook's.
fn harness_call(operation: &str) -> bool {
    matches!(operation, "CreateApplication" | "CreateDeploymentGroup" | "CreateDeployment")
}

/// One hook invocation of a deployment that ran alone: its calls and how they overlapped.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    /// One of [`SOLO_PHASES`].
    pub phase: &'static str,
    /// `ECS` or `Lambda`.
    pub platform: ComputePlatform,
    /// The lifecycle event it served.
    pub event: &'static str,
    /// The calls in arrival order: (operation, arrived, answered), microseconds since the first.
    pub calls: Vec<(String, u64, u64)>,
    /// Calls by part: discovery, plan, urls, checks, report.
    pub calls_by_part: BTreeMap<&'static str, usize>,
    /// The longest chain of calls each made after the one before was answered.
    pub round_trips: usize,
    /// The same without the plan and URL lookups: what discovery, the checks and the report take.
    pub round_trips_without_lookups: usize,
    /// Whether GetDeployment was in flight together with discovery's ListDeploymentTargets.
    pub plan_lookup_beside_discovery: bool,
    /// Whether any URL lookup (GetDeploymentGroup, DescribeListeners, DescribeLoadBalancers) was in
    /// flight together with a discovery call. `None` when none was made.
    pub url_lookup_beside_discovery: Option<bool>,
}

/// Splits one lone deployment's calls into its hook invocations: every invocation ends with its
/// report, and the next starts after it.
fn split_invocations(phase: &'static str, platform: ComputePlatform, calls: &[ApiCall]) -> Vec<Invocation> {
    let mut invocations = Vec::new();
    let mut current: Vec<&ApiCall> = Vec::new();
    for call in calls.iter().filter(|c| !harness_call(&c.operation)) {
        current.push(call);
        if call.operation == "PutLifecycleEventHookExecutionStatus" {
            invocations.push(invocation(phase, platform, invocations.len() + 1, &current));
            current.clear();
        }
    }
    invocations
}

fn invocation(phase: &'static str, platform: ComputePlatform, position: usize, calls: &[&ApiCall]) -> Invocation {
    let events: Vec<&'static str> = HOOKS.iter().filter(|(_, _, p)| *p == platform).map(|(_, e, _)| *e).collect();
    let answered = |c: &ApiCall| c.answered_us.unwrap_or(u64::MAX);
    let overlap = |a: &ApiCall, b: &ApiCall| a.arrived_us < answered(b) && b.arrived_us < answered(a);
    let named = |op: &'static str| calls.iter().copied().filter(move |c| c.operation == op);
    let discovery: Vec<&ApiCall> = calls.iter().copied().filter(|c| part_of(&c.operation) == "discovery").collect();
    let plan_beside = named("GetDeployment").any(|g| named("ListDeploymentTargets").any(|l| overlap(g, l)));
    let urls: Vec<&ApiCall> = calls.iter().copied().filter(|c| part_of(&c.operation) == "urls").collect();
    let url_beside = (!urls.is_empty()).then(|| urls.iter().any(|u| discovery.iter().any(|d| overlap(u, d))));
    let without: Vec<&ApiCall> =
        calls.iter().copied().filter(|c| !matches!(part_of(&c.operation), "plan" | "urls")).collect();
    Invocation {
        phase,
        platform,
        event: events.get(position - 1).copied().unwrap_or("?"),
        calls: relative_times(calls),
        calls_by_part: count_by_part(calls, part_of),
        round_trips: round_trips(calls),
        round_trips_without_lookups: round_trips(&without),
        plan_lookup_beside_discovery: plan_beside,
        url_lookup_beside_discovery: url_beside,
    }
}

/// Each call as (operation, arrived, answered), in microseconds since the first call arrived.
fn relative_times(calls: &[&ApiCall]) -> Vec<(String, u64, u64)> {
    let start = calls.iter().map(|c| c.arrived_us).min().unwrap_or(0);
    calls.iter().map(|c| (c.operation.clone(), c.arrived_us - start, c.answered_us.map_or(0, |a| a - start))).collect()
}

/// How many of `calls` belong to each part of a hook's work, as `part_of` tells them apart.
fn count_by_part(calls: &[&ApiCall], part_of: fn(&str) -> &'static str) -> BTreeMap<&'static str, usize> {
    let mut by_part = BTreeMap::new();
    for call in calls {
        *by_part.entry(part_of(&call.operation)).or_default() += 1;
    }
    by_part
}

/// The longest chain of calls in which each arrived after the one before it was answered: the
/// round trips the caller waited for one after another.
fn round_trips(calls: &[&ApiCall]) -> usize {
    let mut sorted: Vec<&ApiCall> = calls.to_vec();
    sorted.sort_by_key(|c| c.arrived_us);
    let mut chain: Vec<usize> = Vec::with_capacity(sorted.len());
    for (i, call) in sorted.iter().enumerate() {
        let before = sorted[..i]
            .iter()
            .zip(&chain)
            .filter(|(earlier, _)| earlier.answered_us.is_some_and(|answered| answered <= call.arrived_us))
            .map(|(_, length)| *length)
            .max()
            .unwrap_or(0);
        chain.push(before + 1);
    }
    chain.into_iter().max().unwrap_or(0)
}

/// The fleet's calls of one platform, per hook invocation.
#[derive(Debug, Clone, Serialize)]
pub struct FleetCalls {
    /// `ECS` or `Lambda`.
    pub platform: ComputePlatform,
    /// Hook invocations of the platform's deployments.
    pub invocations: usize,
    /// Calls by operation, over all of them.
    pub by_operation: BTreeMap<String, usize>,
}

/// The fleet's calls, attributed to a platform by what they name: a CodeDeploy call by its
/// deployment, a parameter by its application, a Lambda call by its function; GetDeploymentGroup
/// and ELBv2's calls only ECS plans make.
fn fleet_calls(calls: &[ApiCall], outcomes: &[DeploymentOutcome]) -> Vec<FleetCalls> {
    let platform_of_deployment: BTreeMap<&str, ComputePlatform> =
        outcomes.iter().map(|o| (o.deployment_id.as_str(), o.platform)).collect();
    let platform_of = |call: &ApiCall| -> Option<ComputePlatform> {
        let resource = call.resource.as_deref().unwrap_or("");
        match call.operation.as_str() {
            "GetParameter" if resource.starts_with(&format!("/greenlight/plans/{ECS_APPLICATION}/")) => {
                Some(ComputePlatform::Ecs)
            }
            "GetParameter" => Some(ComputePlatform::Lambda),
            "GetDeploymentGroup" | "DescribeListeners" | "DescribeLoadBalancers" => Some(ComputePlatform::Ecs),
            "Invoke" => Some(ComputePlatform::Lambda),
            _ => platform_of_deployment.get(resource).copied(),
        }
    };
    [ComputePlatform::Ecs, ComputePlatform::Lambda]
        .into_iter()
        .map(|platform| {
            let mut by_operation = BTreeMap::new();
            for call in calls.iter().filter(|c| !harness_call(&c.operation) && platform_of(c) == Some(platform)) {
                *by_operation.entry(call.operation.clone()).or_default() += 1;
            }
            let invocations = outcomes.iter().filter(|o| o.platform == platform).map(|o| o.hook_events).sum();
            FleetCalls { platform, invocations, by_operation }
        })
        .collect()
}

/// How the hooks chose their plans, from their `plan chosen` log lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanChoices {
    /// Read from Parameter Store.
    pub read: usize,
    /// Taken from the warm function's cache.
    pub cached: usize,
}

/// Counts the hooks' `plan chosen` lines per phase: the lone groups' first deployment, their
/// second, and the fleet's groups.
fn plan_choices(logs: &Path) -> BTreeMap<&'static str, PlanChoices> {
    let mut choices: BTreeMap<&'static str, PlanChoices> = BTreeMap::new();
    for (hook, _, _) in HOOKS {
        let text = std::fs::read_to_string(logs.join(format!("{}.log", hook_function(hook)))).unwrap_or_default();
        let mut solo_seen = 0;
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else { continue };
            let fields = entry.get("fields").unwrap_or(&entry);
            let message = fields.get("message").or_else(|| entry.get("message")).and_then(Value::as_str);
            if message != Some("plan chosen") {
                continue;
            }
            let group = fields.get("deployment_group").and_then(Value::as_str).unwrap_or("");
            let plan = fields.get("plan").and_then(Value::as_str).unwrap_or("");
            let phase = if group == SOLO {
                // Each hook serves its platform's lone group once per phase, in order.
                solo_seen += 1;
                SOLO_PHASES.get(solo_seen - 1).copied().unwrap_or("solo")
            } else {
                "fleet"
            };
            let counts = choices.entry(phase).or_default();
            if plan.ends_with("(cached)") {
                counts.cached += 1;
            } else {
                counts.read += 1;
            }
        }
    }
    choices
}

/// Everything the fleet run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The build measured.
    pub build: String,
    /// The machine.
    #[serde(flatten)]
    pub machine: Machine,
    /// The emulator's time scale.
    pub time_scale: f64,
    /// The answer latency of the timed lone deployments, in milliseconds.
    pub call_latency_ms: u64,
    /// How many deployments of each kind.
    pub shape: FleetShape,
    /// From the first CreateDeployment to the last deployment's end, in milliseconds.
    pub fleet_wall_ms: f64,
    /// The ECS deployment alone, cold, in milliseconds: the fleet's slowest shape.
    pub solo_ecs_wall_ms: f64,
    /// Fleet wall time over the ECS deployment alone.
    pub ratio: f64,
    /// The goal for `ratio`.
    pub ratio_goal: f64,
    /// Every deployment.
    pub deployments: Vec<DeploymentOutcome>,
    /// The lone deployments' hook invocations.
    pub solo_invocations: Vec<Invocation>,
    /// The hook invocations of a service that ECS deploys itself, alone.
    pub ecs_native_invocations: Vec<ecs_native::NativeInvocation>,
    /// The fleet's calls per platform.
    pub fleet_calls: Vec<FleetCalls>,
    /// Plan choices per phase, from the hooks' logs.
    pub plan_choices: BTreeMap<&'static str, PlanChoices>,
}

/// The fleet's wall time may be at most this many times one deployment's alone.
const RATIO_GOAL: f64 = 1.5;

/// Runs the lone deployments, then the fleet, on one local AWS; `logs` receives the hooks' logs.
pub async fn run(hook_dir: &Path, shape: FleetShape, build: &str, logs: &Path) -> Result<FleetReport, String> {
    shape.validate()?;
    let binaries = Binaries::find(hook_dir)?;
    // The logs are counted, so they must be this run's alone.
    let _ = std::fs::remove_dir_all(logs);
    let (solo_ecs, solo_lambda, fleet) = services(shape);
    let all: Vec<&Service> = [&solo_ecs, &solo_lambda].into_iter().chain(&fleet).collect();
    let server = Server::start(local_config(&binaries, &all), SCALE, 0, Some(logs.to_path_buf()))
        .await
        .map_err(|e| e.to_string())?;
    let emulator = server.emulator.clone();
    let measured = async {
        set_up(&emulator, &all)?;
        eprintln!(
            "greenlight-bench: fleet: one ECS and one Lambda deployment alone, cold and then cached, without and with {CALL_LATENCY:?} per call"
        );
        let (mut deployments, mut invocations) = solo(&emulator, &solo_ecs).await?;
        let (lambda_outcomes, lambda_invocations) = solo(&emulator, &solo_lambda).await?;
        deployments.extend(lambda_outcomes);
        invocations.extend(lambda_invocations);
        eprintln!(
            "greenlight-bench: fleet: the ECS hooks on a service that ECS deploys itself, alone, the same phases"
        );
        let native = ecs_native::measure(&emulator).await?;

        eprintln!(
            "greenlight-bench: fleet: {} deployments at once ({} ECS, {} Lambda; {} and {} broken)",
            shape.total(),
            shape.ecs,
            shape.lambda,
            shape.broken_ecs,
            shape.broken_lambda
        );
        recycle_hooks(&emulator).await;
        let first_call = emulator.calls().len();
        let started = Instant::now();
        let mut created = Vec::new();
        for service in &fleet {
            created.push((service, create_deployment(&emulator, service, 1)?, Instant::now()));
        }
        let outcomes = conclude(&emulator, "fleet", &created).await?;
        let fleet_wall_ms = outcomes
            .iter()
            .zip(&created)
            .map(|(o, (_, _, at))| at.saturating_duration_since(started).as_secs_f64() * 1000.0 + o.wall_ms)
            .fold(0.0, f64::max);
        let calls = emulator.calls().split_off(first_call);
        let fleet_calls = fleet_calls(&calls, &outcomes);
        deployments.extend(outcomes);
        Ok::<_, String>((deployments, invocations, native, fleet_wall_ms, fleet_calls))
    };
    let measured = tokio::select! {
        measured = measured => measured,
        signal = crate::interrupted() => Err(format!("stopped by {signal}; nothing written")),
    };
    server.shutdown().await;
    let (deployments, solo_invocations, ecs_native_invocations, fleet_wall_ms, fleet_calls) = measured?;
    let solo_ecs_wall_ms = deployments
        .iter()
        .find(|d| d.phase == "solo-cold" && d.platform == ComputePlatform::Ecs)
        .map_or(f64::NAN, |d| d.wall_ms);
    Ok(FleetReport {
        build: build.to_owned(),
        machine: Machine::read(),
        time_scale: SCALE.0,
        call_latency_ms: CALL_LATENCY.as_millis() as u64,
        shape,
        fleet_wall_ms,
        solo_ecs_wall_ms,
        ratio: fleet_wall_ms / solo_ecs_wall_ms,
        ratio_goal: RATIO_GOAL,
        deployments,
        solo_invocations,
        ecs_native_invocations,
        fleet_calls,
        plan_choices: plan_choices(logs),
    })
}

/// The fleet run's figures as markdown.
pub fn markdown(report: &FleetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let shape = &report.shape;
    let _ = writeln!(out, "# Fleet run: {} deployments through one set of hooks\n", shape.total());
    let _ = writeln!(
        out,
        "{} build; {}, {} cores, Linux {}; the local AWS's waits at {}× AWS's pace. {} ECS and {} Lambda \
         deployments at once ({} and {} of them broken), seven hook functions for all of them, each plan read from \
         Parameter Store by application and group. Written by `greenlight-bench --fleet-only` \
         (`bash scripts/bench.sh --fleet`).\n",
        report.build,
        report.machine.cpu,
        report.machine.cores,
        report.machine.kernel,
        report.time_scale,
        shape.ecs,
        shape.lambda,
        shape.broken_ecs,
        shape.broken_lambda
    );

    let _ = writeln!(out, "## Wall time\n");
    let _ = writeln!(out, "| Figure | Value | Goal | |\n|---|---:|---:|---|");
    let met = if report.ratio <= report.ratio_goal { "met" } else { "**missed**" };
    let _ = writeln!(
        out,
        "| All {} at once: first CreateDeployment → last deployment's end | {:.0} ms | | |",
        shape.total(),
        report.fleet_wall_ms
    );
    let _ = writeln!(out, "| One ECS deployment alone, hooks cold | {:.0} ms | | |", report.solo_ecs_wall_ms);
    let _ = writeln!(out, "| The fleet over one alone | {:.2}× | ≤ {:.1}× | {met} |", report.ratio, report.ratio_goal);
    let latency = format!("{} ms per AWS call", report.call_latency_ms);
    let phases = [
        ("solo-cold", "hooks cold".to_owned()),
        ("solo-cached", "again, hooks warm, plan cached".to_owned()),
        ("timed-cold", format!("hooks cold, {latency}")),
        ("timed-cached", format!("again, hooks warm, plan cached, {latency}")),
    ];
    for (phase, label) in phases {
        for platform in [ComputePlatform::Ecs, ComputePlatform::Lambda] {
            if phase == "solo-cold" && platform == ComputePlatform::Ecs {
                continue;
            }
            if let Some(d) = report.deployments.iter().find(|d| d.phase == phase && d.platform == platform) {
                let _ =
                    writeln!(out, "| One {} deployment alone, {label} | {:.0} ms | | |", platform.as_str(), d.wall_ms);
            }
        }
    }
    for platform in [ComputePlatform::Ecs, ComputePlatform::Lambda] {
        let mut walls: Vec<f64> = report
            .deployments
            .iter()
            .filter(|d| d.phase == "fleet" && d.platform == platform && !d.broken)
            .map(|d| d.wall_ms)
            .collect();
        walls.sort_by(f64::total_cmp);
        if let (Some(median), Some(max)) = (walls.get(walls.len() / 2), walls.last()) {
            let _ = writeln!(
                out,
                "| A healthy {} deployment in the fleet: median (slowest) | {median:.0} ms ({max:.0} ms) | | |",
                platform.as_str()
            );
        }
    }

    let _ = writeln!(out, "\n## Every deployment reported correctly, exactly once\n");
    let _ = writeln!(
        out,
        "The harness fails unless each deployment ends as its release calls for (a broken one `Failed` at the \
         event that should catch it) and CodeDeploy accepted exactly one report for each hook event that ran.\n"
    );
    let _ = writeln!(
        out,
        "| Phase | Platform | Release | Deployments | Ended | Failed at | Hook events run | Reports accepted | Reports refused |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|---|---:|---:|---:|");
    let mut groups: BTreeMap<(&str, &str, bool), Vec<&DeploymentOutcome>> = BTreeMap::new();
    for d in &report.deployments {
        groups.entry((d.phase, d.platform.as_str(), d.broken)).or_default().push(d);
    }
    for ((phase, platform, broken), list) in &groups {
        let sum = |f: fn(&DeploymentOutcome) -> usize| list.iter().map(|d| f(d)).sum::<usize>();
        let _ = writeln!(
            out,
            "| {phase} | {platform} | {} | {} | {} | {} | {} | {} | {} |",
            if *broken { "broken" } else { "healthy" },
            list.len(),
            list[0].status,
            list[0].failed_event.as_deref().unwrap_or("–"),
            sum(|d| d.hook_events),
            sum(|d| d.accepted_reports),
            sum(|d| d.refused_reports)
        );
    }

    let _ = writeln!(out, "\n## AWS calls per hook invocation\n");
    let _ = writeln!(
        out,
        "The lone deployments again, with every answer of the local AWS held {} ms, as a call to AWS in the same \
         region takes about that long: cold, then within the plan cache's minute. Each deployment's calls are split \
         at each hook's report. *Plan* is GetDeployment and GetParameter, *URLs* GetDeploymentGroup, \
         DescribeListeners and DescribeLoadBalancers, *discovery* ListDeploymentTargets and GetDeploymentTarget. \
         *Round trips* is the longest chain of calls each sent after the one before it was answered (the local AWS \
         times each from arrival to answer); *without lookups* leaves out the plan and URL calls. *Beside \
         discovery* says whether a GetDeployment (or a URL call) was in flight together with a discovery call.\n",
        report.call_latency_ms
    );
    let _ = writeln!(
        out,
        "| Deployment | Event | Discovery | Plan | URLs | Checks | Report | Calls | Round trips | Without lookups | Plan read beside discovery | URLs beside discovery |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for inv in report.solo_invocations.iter().filter(|i| i.phase.starts_with("timed")) {
        let part = |name: &str| inv.calls_by_part.get(name).copied().unwrap_or(0);
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            inv.platform.as_str(),
            inv.phase,
            inv.event,
            part("discovery"),
            part("plan"),
            part("urls"),
            part("checks"),
            part("report"),
            inv.calls.len(),
            inv.round_trips,
            inv.round_trips_without_lookups,
            yes_no(inv.plan_lookup_beside_discovery),
            inv.url_lookup_beside_discovery.map_or("–", yes_no)
        );
    }

    let _ = writeln!(out, "\nThe fleet's calls, per hook invocation of each platform:\n");
    let operations: std::collections::BTreeSet<&String> =
        report.fleet_calls.iter().flat_map(|f| f.by_operation.keys()).collect();
    let _ = write!(out, "| Operation |");
    for f in &report.fleet_calls {
        let _ = write!(out, " {} ({} invocations) |", f.platform.as_str(), f.invocations);
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(report.fleet_calls.len()));
    let rows = operations.iter().map(|op| Some(op.as_str())).chain([None]);
    for op in rows {
        let _ = write!(out, "| {} |", op.unwrap_or("all"));
        for f in &report.fleet_calls {
            let count: usize = match op {
                Some(op) => f.by_operation.get(op).copied().unwrap_or(0),
                None => f.by_operation.values().sum(),
            };
            let _ = write!(out, " {:.2} |", count as f64 / f.invocations.max(1) as f64);
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "\nPlans chosen, from the hooks' `plan chosen` log lines:\n");
    let _ = writeln!(out, "| Phase | Read from Parameter Store | From the warm function's cache |\n|---|---:|---:|");
    for (phase, choices) in &report.plan_choices {
        let _ = writeln!(out, "| {phase} | {} | {} |", choices.read, choices.cached);
    }
    ecs_native::markdown(&mut out, &report.ecs_native_invocations, report.call_latency_ms);
    out
}
