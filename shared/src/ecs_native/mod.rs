//! ECS-native deployments: Amazon ECS running blue/green, linear and canary deployments itself,
//! without CodeDeploy, and invoking each hook at a lifecycle stage of its own
//! ([`crate::hook::Hook::ecs_stage`]).
//!
//! There is no report call: the hook's return value is its answer ([`HookAnswer`]). What is being
//! deployed comes from ECS: `DescribeServiceDeployments` on the event's `resourceArn` (status,
//! stage, rollback, the target and source revisions), then `DescribeServiceRevisions` on those
//! revisions (their target groups, and the listener rules of their load balancers'
//! `advancedConfiguration`). They fill the same [`Deployment`] a CodeDeploy deployment does, so
//! plans and their `${variables}` work unchanged.
//!
//! ECS calls hooks during a rollback too. A hook never fights one: an invocation whose weights
//! shift traffic back to the old revision, or whose service deployment ECS reports as rolling
//! back, answers `SUCCEEDED` and logs that it stood aside.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{ServiceRevision, ServiceRevisionSummary};
use serde_json::{Map, Value};
use tokio::time::Instant;

pub mod progress;

use crate::discover::{Deployment, DeploymentKind, EcsDeployment, KnownListeners, ServiceDeployment, TaskSet};
use crate::event::EcsHookEvent;
use crate::verdict::{Status, Verdict};

/// What a hook returns to ECS: `{"hookStatus", "callBackDelay", "hookDetails"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookAnswer {
    /// `SUCCEEDED` lets the deployment go on, `FAILED` rolls it back, `IN_PROGRESS` asks ECS to
    /// invoke the hook again after `callBackDelay` seconds.
    pub hook_status: &'static str,
    /// Seconds until ECS invokes the hook again, with `IN_PROGRESS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    /// Handed back to the next invocation of the same hook in the same deployment.
    pub hook_details: Map<String, Value>,
}

impl HookAnswer {
    /// The answer for a verdict: `SUCCEEDED` or `FAILED`.
    pub fn from_verdict(verdict: &Verdict) -> Self {
        Self::from_status(verdict.status)
    }

    /// `SUCCEEDED` or `FAILED`, with nothing to carry to another invocation.
    pub fn from_status(status: Status) -> Self {
        let hook_status = match status {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::InProgress => "IN_PROGRESS",
        };
        Self { hook_status, call_back_delay: None, hook_details: Map::new() }
    }
}

/// The `hookDetails` key naming the Parameter Store parameter that holds the hook's plan for
/// this service.
pub const PLAN_PARAMETER_KEY: &str = "plan_parameter";

/// The cluster and service a service deployment ARN names:
/// `arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>`.
pub fn cluster_and_service(resource_arn: &str) -> Option<(&str, &str)> {
    let (_, path) = resource_arn.split_once(":service-deployment/")?;
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(cluster), Some(service), Some(_id), None) if !cluster.is_empty() && !service.is_empty() => {
            Some((cluster, service))
        }
        _ => None,
    }
}

/// Why an invocation at a stage this hook does not serve stands aside, if it does: the
/// event's weights shift traffic back to the old revision.
pub fn stands_aside_by_weights(event: &EcsHookEvent) -> Option<String> {
    event.shifts_back().then(|| {
        format!(
            "stood aside: {} shifts traffic back from {} (a rollback), which a hook must not fight",
            event.stage,
            event.target_revision_arn.as_deref().unwrap_or("the target revision")
        )
    })
}

/// Why the hook stands aside for this service deployment, if ECS says it is rolling back.
pub fn stands_aside_by_status(deployment: &ServiceDeployment) -> Option<String> {
    deployment.is_rolling_back().then(|| {
        format!(
            "stood aside: ECS is rolling service deployment {} back ({}{}), which a hook must not fight",
            deployment.arn,
            deployment.status,
            deployment.rollback_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        )
    })
}

/// The service deployment `arn`, as `DescribeServiceDeployments` gives it.
pub async fn describe(ecs: &aws_sdk_ecs::Client, arn: &str) -> Result<aws_sdk_ecs::types::ServiceDeployment, String> {
    let output = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .map_err(|err| ecs_error("DescribeServiceDeployments", err))?;
    if let Some(deployment) = output.service_deployments().iter().find(|d| d.service_deployment_arn() == Some(arn)) {
        return Ok(deployment.clone());
    }
    let why = output.failures().iter().find_map(|f| f.reason()).unwrap_or("not returned");
    Err(format!("ECS has no service deployment {arn} ({why})"))
}

/// What ECS says of the service deployment: status, stage, rollback.
pub fn service_deployment(described: &aws_sdk_ecs::types::ServiceDeployment) -> ServiceDeployment {
    ServiceDeployment {
        arn: described.service_deployment_arn().unwrap_or_default().to_owned(),
        status: described.status().map_or("UNKNOWN", |s| s.as_str()).to_owned(),
        stage: described.lifecycle_stage().map(|s| s.as_str().to_owned()),
        rollback_reason: described
            .rollback()
            .map(|r| r.reason().filter(|r| !r.is_empty()).unwrap_or("no reason given").to_owned()),
    }
}

/// Learns what the event's service deployment moves: its revisions as the blue and green task
/// sets, their target groups, and the listeners the service routes through.
pub async fn discover(ecs: &aws_sdk_ecs::Client, event: &EcsHookEvent) -> Result<Deployment, String> {
    let described = describe(ecs, &event.resource_arn).await?;
    let (cluster, service) = cluster_and_service(&event.resource_arn)
        .ok_or_else(|| format!("{} is not a service deployment ARN", event.resource_arn))?;
    let service_deployment = service_deployment(&described);
    let target = described.target_service_revision();
    let source = described.source_service_revisions().first();
    let arns: Vec<String> = target.iter().chain(source.iter()).filter_map(|r| r.arn()).map(str::to_owned).collect();
    let revisions = match service_deployment.is_rolling_back() || arns.is_empty() {
        // Standing aside needs no revisions.
        true => Vec::new(),
        false => ecs
            .describe_service_revisions()
            .set_service_revision_arns(Some(arns))
            .send()
            .await
            .map_err(|err| ecs_error("DescribeServiceRevisions", err))?
            .service_revisions()
            .to_vec(),
    };
    let revision = |summary: Option<&ServiceRevisionSummary>| {
        let arn = summary?.arn()?;
        revisions.iter().find(|r| r.service_revision_arn() == Some(arn))
    };
    let task_set = |summary: Option<&ServiceRevisionSummary>| {
        summary.map(|s| TaskSet {
            id: s.arn().unwrap_or_default().to_owned(),
            desired_count: s.requested_task_count().into(),
            running_count: s.running_task_count().into(),
            traffic_weight: s.requested_production_traffic_weight().unwrap_or_default(),
            target_group: revision(summary).and_then(resolved_target_group).and_then(target_group_name),
        })
    };
    let owner = format!("service {service} (its load balancer's advancedConfiguration)");
    let listeners = revision(target).or(revision(source)).map(|revision| listeners_of(revision, owner));
    let started = described.started_at().or(described.created_at()).and_then(|at| SystemTime::try_from(*at).ok());
    Ok(Deployment {
        id: event.deployment_id().to_owned(),
        target: DeploymentKind::Ecs(EcsDeployment {
            target_id: format!("{cluster}:{service}"),
            blue: task_set(source),
            green: task_set(target),
            listeners,
        }),
        lifecycle_events: vec![(
            service_deployment.stage.clone().unwrap_or_else(|| event.stage.clone()),
            service_deployment.status.clone(),
        )],
        event_starts: started.map(|at| ("ServiceDeployment".to_owned(), at)).into_iter().collect(),
        service_deployment: Some(service_deployment),
    })
}

/// Polls until the target revision runs its requested task count, or `deadline` passes.
pub async fn wait_for_green(
    ecs: &aws_sdk_ecs::Client,
    mut deployment: Deployment,
    interval: Duration,
    deadline: Instant,
) -> Result<Deployment, String> {
    let arn = deployment.service_deployment.as_ref().map(|d| d.arn.clone()).unwrap_or_default();
    loop {
        let DeploymentKind::Ecs(ecs_deployment) = &mut deployment.target else {
            return Err(format!("{} is not an ECS deployment: no green task set", deployment.id));
        };
        let (id, running, desired) = match &ecs_deployment.green {
            Some(green) => (green.id.clone(), green.running_count, green.desired_count),
            None => ("(none yet)".to_owned(), 0, 0),
        };
        if desired > 0 && running >= desired {
            return Ok(deployment);
        }
        let not_ready = || format!("the target revision {id} runs {running}/{desired} tasks at the deadline");
        if Instant::now() + interval >= deadline {
            return Err(not_ready());
        }
        tokio::time::sleep(interval).await;
        let described = tokio::time::timeout_at(deadline, describe(ecs, &arn)).await.map_err(|_| not_ready())??;
        if let (Some(green), Some(target)) = (&mut ecs_deployment.green, described.target_service_revision()) {
            green.running_count = target.running_task_count().into();
            green.desired_count = target.requested_task_count().into();
        }
    }
}

/// The target group a revision serves from, as ECS resolved it.
fn resolved_target_group(revision: &ServiceRevision) -> Option<&str> {
    let resolved = revision.resolved_configuration()?.load_balancers().first()?.target_group_arn();
    resolved.or_else(|| revision.load_balancers().first()?.target_group_arn())
}

/// A target group's name from its ARN: `…:targetgroup/<name>/<id>`.
fn target_group_name(arn: &str) -> Option<String> {
    let (_, path) = arn.split_once(":targetgroup/")?;
    path.split('/').next().filter(|name| !name.is_empty()).map(str::to_owned)
}

fn listeners_of(revision: &ServiceRevision, owner: String) -> KnownListeners {
    let advanced = revision.load_balancers().iter().find_map(|lb| lb.advanced_configuration());
    KnownListeners {
        owner,
        test: advanced.and_then(|a| a.test_listener_rule()).and_then(listener_of),
        production: advanced.and_then(|a| a.production_listener_rule()).and_then(listener_of),
    }
}

/// The listener a listener rule belongs to, read from the rule's ARN as ELBv2 builds it:
/// `…:listener-rule/app/<name>/<balancer id>/<listener id>/<rule id>` is a rule of
/// `…:listener/app/<name>/<balancer id>/<listener id>`. A Network Load Balancer's services name
/// the listener itself.
fn listener_of(rule_or_listener: &str) -> Option<String> {
    if rule_or_listener.contains(":listener/") {
        return Some(rule_or_listener.to_owned());
    }
    let (head, path) = rule_or_listener.split_once(":listener-rule/")?;
    let (listener, _rule) = path.rsplit_once('/')?;
    (listener.split('/').count() == 4).then(|| format!("{head}:listener/{listener}"))
}

fn ecs_error<E, R>(operation: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::aws_http::call_error("ecs", operation, "the services it serves", err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_deployment_arn_names_its_cluster_and_service() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/r9Ukd6sTXh4hQZ";
        assert_eq!(cluster_and_service(arn), Some(("shop", "checkout")));
        assert_eq!(cluster_and_service("arn:aws:ecs:us-east-1:1:service/shop/checkout"), None);
        assert_eq!(cluster_and_service("arn:aws:ecs:us-east-1:1:service-deployment/shop/checkout"), None);
    }

    #[test]
    fn a_listener_rule_names_its_listener() {
        let rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        assert_eq!(
            listener_of(rule).as_deref(),
            Some("arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2")
        );
        let listener = "arn:aws:elasticloadbalancing:us-east-1:1:listener/net/edge/0123456789abcdef/fedcba9876543210";
        assert_eq!(listener_of(listener).as_deref(), Some(listener));
        assert_eq!(listener_of("arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/x"), None);
    }

    #[test]
    fn a_target_groups_name_is_in_its_arn() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/checkout-green/73e2d6bc24d8a067";
        assert_eq!(target_group_name(arn).as_deref(), Some("checkout-green"));
        assert_eq!(target_group_name("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/y"), None);
    }

    #[test]
    fn the_answer_is_spelled_as_ecs_reads_it() {
        let answer = HookAnswer { hook_status: "IN_PROGRESS", call_back_delay: Some(60), hook_details: Map::new() };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 60, "hookDetails": {}})
        );
    }
}
