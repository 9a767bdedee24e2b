//! The fleet's ECS hooks on a service that ECS deploys itself, alone: what each hook invocation
//! costs in AWS calls when ECS, not CodeDeploy, calls it.
//!
//! The same hook functions as the fleet's serve `fleet/native`, each at its own lifecycle stage,
//! with `hookDetails.plan_parameter` naming the service's plan. The service is deployed once per
//! [`SOLO_PHASES`] phase (checkout:1 → checkout:2, then forced new deployments of checkout:2),
//! and the calls that arrived during each hook invocation of the service deployment's record
//! are that invocation's: discovery (`DescribeServiceDeployments`, `DescribeServiceRevisions`),
//! the plan (`GetParameter`), the listeners' URLs (ELBv2) and the checks'.

use std::collections::BTreeMap;
use std::time::Duration;

use codedeploy_local::config::LoadBalancerConfig;
use codedeploy_local::ecs::service::ServiceDeploymentHappening;
use codedeploy_local::elbv2::{ListenerRole, listener_rule_arn, numbered_target_group};
use codedeploy_local::emulator::{ApiCall, Emulator};
use codedeploy_local::ssm::store::ParameterType;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    BLUE, CALL_LATENCY, CLUSTER, GREEN, SOLO_PHASES, count_by_part, ecs_plan, hook_function, recycle_hooks,
    relative_times, round_trips,
};

/// The load balancer in front of the service, and the service.
const SERVICE: &str = "native";
/// The service's plan, which its lifecycle hooks name in `hookDetails`.
const PLAN: &str = "/greenlight/plans/ecs-native/native";
/// The hooks the service names, each at its own stage.
const HOOKS: [(&str, &str); 3] = [
    ("after-allow-test-traffic", "POST_TEST_TRAFFIC_SHIFT"),
    ("before-allow-traffic", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
    ("after-allow-traffic", "POST_PRODUCTION_TRAFFIC_SHIFT"),
];
/// How long one service deployment may take.
const LIMIT: Duration = Duration::from_secs(120);

/// One hook invocation by ECS: its calls and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct NativeInvocation {
    /// One of [`SOLO_PHASES`].
    pub phase: &'static str,
    /// The lifecycle stage it was invoked at.
    pub stage: &'static str,
    /// Its answer.
    pub answer: &'static str,
    /// From ECS's invocation to the hook's answer, in milliseconds.
    pub invocation_ms: u64,
    /// The calls in arrival order: (operation, arrived, answered), microseconds since the first.
    pub calls: Vec<(String, u64, u64)>,
    /// Calls by part: discovery, plan, urls, checks.
    pub calls_by_part: BTreeMap<&'static str, usize>,
    /// The longest chain of calls each made after the one before was answered.
    pub round_trips: usize,
}

/// Which part of a hook's work an ECS-native invocation's call belongs to.
fn part_of(operation: &str) -> &'static str {
    match operation {
        "DescribeServiceDeployments" | "DescribeServiceRevisions" => "discovery",
        "GetParameter" => "plan",
        "DescribeRules" | "DescribeListeners" | "DescribeLoadBalancers" => "urls",
        _ => "checks",
    }
}

/// Creates the service and deploys it once per phase: every hook invocation's calls.
pub(super) async fn measure(emulator: &Emulator) -> Result<Vec<NativeInvocation>, String> {
    emulator
        .add_load_balancer(SERVICE, &LoadBalancerConfig::default())
        .await
        .map_err(|e| format!("the load balancer: {e}"))?;
    emulator
        .ssm()
        .put(PLAN, &ecs_plan().to_string(), ParameterType::String)
        .map_err(|e| format!("PutParameter {PLAN}: {e}"))?;
    call(emulator, "CreateService", create_service()).await?;
    let mut invocations = Vec::new();
    for (release, phase) in (1..).zip(SOLO_PHASES) {
        if !phase.ends_with("cached") {
            recycle_hooks(emulator).await;
        }
        emulator.set_answer_latency(if phase.starts_with("timed") { CALL_LATENCY } else { Duration::ZERO });
        let first_call = emulator.calls().len();
        let mut update = json!({"cluster": CLUSTER, "service": SERVICE, "taskDefinition": GREEN});
        if release > 1 {
            update["forceNewDeployment"] = json!(true);
        }
        let updated = call(emulator, "UpdateService", update).await?;
        let arn = updated["service"]["currentServiceDeployment"]
            .as_str()
            .ok_or("UpdateService started no service deployment")?
            .to_owned();
        if !emulator.wait_until_service_deployment_ends(&arn, LIMIT).await {
            return Err(format!("{arn} did not end within {LIMIT:?}"));
        }
        let calls = emulator.calls().split_off(first_call);
        let record = emulator.service_deployment_record(&arn);
        let status = record.iter().rev().find_map(|e| match &e.what {
            ServiceDeploymentHappening::Status { status, .. } => Some(*status),
            _ => None,
        });
        if status != Some("SUCCESSFUL") {
            return Err(format!("{arn} ended {status:?}, not SUCCESSFUL: {record:?}"));
        }
        for entry in &record {
            if let ServiceDeploymentHappening::HookInvocation { stage, outcome, duration_ms, .. } = &entry.what {
                invocations.push(invocation(phase, stage, outcome, *duration_ms, entry.at_ms, &calls));
            }
        }
    }
    emulator.set_answer_latency(Duration::ZERO);
    Ok(invocations)
}

async fn call(emulator: &Emulator, operation: &str, input: Value) -> Result<Value, String> {
    emulator.ecs(operation, &input).await.map_err(|e| format!("{operation}: {}", e.message))
}

/// `fleet/native` on checkout:1 behind its load balancer, the hooks at their stages.
fn create_service() -> Value {
    let role = "arn:aws:iam::123456789012:role/ecs-lifecycle-hooks";
    let hooks: Vec<Value> = HOOKS
        .iter()
        .map(|(hook, stage)| {
            json!({"hookTargetArn": format!("arn:aws:lambda:us-east-1:123456789012:function:{}", hook_function(hook)),
                "roleArn": role, "lifecycleStages": [stage], "hookDetails": {"plan_parameter": PLAN}})
        })
        .collect();
    json!({"cluster": CLUSTER, "serviceName": SERVICE, "taskDefinition": BLUE, "desiredCount": 1,
        "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": hooks},
        "loadBalancers": [{"targetGroupArn": numbered_target_group(SERVICE, 1).arn, "containerName": "checkout",
            "containerPort": 8080, "advancedConfiguration": {
                "alternateTargetGroupArn": numbered_target_group(SERVICE, 2).arn,
                "productionListenerRule": listener_rule_arn(SERVICE, ListenerRole::Production),
                "testListenerRule": listener_rule_arn(SERVICE, ListenerRole::Test),
                "roleArn": "arn:aws:iam::123456789012:role/ecs-load-balancers"}}]})
}

/// The invocation the record logged at `answered_ms` after `duration_ms`: the calls that
/// arrived while it ran (the harness's own ECS calls aside).
fn invocation(
    phase: &'static str,
    stage: &'static str,
    answer: &'static str,
    duration_ms: u64,
    answered_ms: u64,
    calls: &[ApiCall],
) -> NativeInvocation {
    let (from_us, to_us) = ((answered_ms.saturating_sub(duration_ms + 1)) * 1000, (answered_ms + 1) * 1000);
    let mine: Vec<&ApiCall> = calls
        .iter()
        .filter(|c| (from_us..=to_us).contains(&c.arrived_us))
        .filter(|c| !matches!(c.operation.as_str(), "CreateService" | "UpdateService"))
        .collect();
    NativeInvocation {
        phase,
        stage,
        answer,
        invocation_ms: duration_ms,
        calls: relative_times(&mine),
        calls_by_part: count_by_part(&mine, part_of),
        round_trips: round_trips(&mine),
    }
}

/// The ECS-native invocations' figures as a markdown section.
pub(super) fn markdown(out: &mut String, invocations: &[NativeInvocation], call_latency_ms: u64) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n## ECS-native: AWS calls per hook invocation\n");
    let _ = writeln!(
        out,
        "The same ECS hook functions as ECS's own lifecycle hooks on a service that ECS deploys itself, alone, \
         blue/green, each hook at its stage with `hookDetails.plan_parameter` naming the plan: the fleet's ECS plan. \
         The phases are the lone deployments' (the timed ones hold every answer {call_latency_ms} ms). An \
         invocation's calls are those that arrived while ECS waited for its answer. *Discovery* is \
         DescribeServiceDeployments and DescribeServiceRevisions, *plan* GetParameter, *URLs* ELBv2's DescribeRules, \
         DescribeListeners and DescribeLoadBalancers; *round trips* as above. There is no report: the answer is the \
         function's return value.\n"
    );
    let _ = writeln!(
        out,
        "| Phase | Stage | Answer | Discovery | Plan | URLs | Checks | Calls | Round trips | Invocation |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for inv in invocations {
        let part = |name: &str| inv.calls_by_part.get(name).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms |",
            inv.phase,
            inv.stage,
            inv.answer,
            part("discovery"),
            part("plan"),
            part("urls"),
            part("checks"),
            inv.calls.len(),
            inv.round_trips,
            inv.invocation_ms
        );
    }
}
