//! What is being deployed, learned from the deployment id alone.
//!
//! The hook event carries only two ids. `ListDeploymentTargets` + `GetDeploymentTarget` tell the
//! rest: for Lambda the function, alias and versions; for ECS the blue and green task sets; for
//! both, which lifecycle event is in progress, so a hook wired to the wrong event is caught.

use std::time::{Duration, SystemTime};

use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codedeploy::types::{DeploymentTarget, LifecycleEventStatus, TargetLabel};
use tokio::time::Instant;

use crate::hook::{Hook, Platform};

/// The deployment a hook is judging.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Deployment {
    /// The deployment id.
    pub id: String,
    /// What is being deployed.
    pub target: DeploymentKind,
    /// Each lifecycle event and its status, in the order CodeDeploy lists them.
    pub lifecycle_events: Vec<(String, String)>,
    /// When each lifecycle event that has started began: the windows of metric and alarm checks.
    #[serde(skip)]
    pub event_starts: Vec<(String, SystemTime)>,
    /// For an ECS-native deployment (no CodeDeploy), what ECS says of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_deployment: Option<ServiceDeployment>,
}

/// An Amazon ECS service deployment run by ECS itself (BLUE_GREEN, LINEAR or CANARY), as
/// `DescribeServiceDeployments` describes it ([`crate::ecs_native`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceDeployment {
    /// Its ARN.
    pub arn: String,
    /// Its status, e.g. `IN_PROGRESS` or `ROLLBACK_IN_PROGRESS`.
    pub status: String,
    /// The lifecycle stage ECS says it is at.
    pub stage: Option<String>,
    /// Why it is rolling back, when ECS says it is.
    pub rollback_reason: Option<String>,
}

impl ServiceDeployment {
    /// Whether ECS is rolling the deployment back (or has): a hook must then stand aside.
    pub fn is_rolling_back(&self) -> bool {
        self.status.starts_with("ROLLBACK_") || self.rollback_reason.is_some()
    }
}

/// What kind of thing a deployment moves traffic for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum DeploymentKind {
    /// A Lambda alias shifting from one version to another.
    Lambda(LambdaDeployment),
    /// An ECS service moving from a blue to a green task set.
    Ecs(EcsDeployment),
}

/// A Lambda deployment target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LambdaDeployment {
    /// The function name.
    pub function_name: String,
    /// The alias whose traffic shifts.
    pub alias: String,
    /// The version being replaced.
    pub current_version: String,
    /// The version being deployed.
    pub target_version: String,
    /// Percentage of alias traffic on the target version.
    pub target_version_weight: f64,
}

/// An ECS deployment target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EcsDeployment {
    /// The `<cluster>:<service>` target id.
    pub target_id: String,
    /// The task set serving production before the deployment.
    pub blue: Option<TaskSet>,
    /// The task set being deployed.
    pub green: Option<TaskSet>,
    /// The test and production listeners, when discovery found them (an ECS-native deployment
    /// names them); otherwise the deployment group's are looked up when a check needs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<KnownListeners>,
}

/// Listener ARNs a deployment routes through, and whose they are (for messages).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KnownListeners {
    /// What routes through them and where it names them, e.g. `service checkout (advancedConfiguration)`.
    pub owner: String,
    /// The test listener's ARN.
    pub test: Option<String>,
    /// The production listener's ARN.
    pub production: Option<String>,
}

/// One ECS task set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskSet {
    /// The task set id (the model spells the field `identifer`).
    pub id: String,
    /// Tasks wanted.
    pub desired_count: i64,
    /// Tasks running.
    pub running_count: i64,
    /// Percentage of production traffic.
    pub traffic_weight: f64,
    /// Target group name.
    pub target_group: Option<String>,
}

impl Deployment {
    /// The platform this deployment runs on.
    pub fn platform(&self) -> Platform {
        match self.target {
            DeploymentKind::Lambda(_) => Platform::Lambda,
            DeploymentKind::Ecs(_) => Platform::Ecs,
        }
    }

    /// When the lifecycle event `name` started, if it has.
    pub fn event_start(&self, name: &str) -> Option<SystemTime> {
        self.event_starts.iter().find(|(event, _)| event == name).map(|(_, at)| *at)
    }

    /// When the deployment's first lifecycle event started.
    pub fn first_event_start(&self) -> Option<SystemTime> {
        self.event_starts.iter().map(|(_, at)| *at).min()
    }

    /// The lifecycle event CodeDeploy says is in progress.
    pub fn in_progress_event(&self) -> Option<&str> {
        self.lifecycle_events.iter().find(|(_, status)| status == "InProgress").map(|(name, _)| name.as_str())
    }

    /// Why this hook must not judge this deployment, if it must not: wrong platform or wrong event.
    pub fn mismatch(&self, hook: Hook) -> Option<String> {
        if self.platform() != hook.platform {
            return Some(format!(
                "{hook} judges {} deployments but {} is a {} deployment; {}",
                hook.platform,
                self.id,
                self.platform(),
                counterpart(hook, self.platform()),
            ));
        }
        match self.in_progress_event() {
            Some(event) if event == hook.event.as_str() => None,
            Some(event) => Some(format!(
                "{hook} serves {} but {} is in {event}; check the appspec Hooks wiring",
                hook.event, self.id
            )),
            None => {
                let own = self.lifecycle_events.iter().find(|(name, _)| name == hook.event.as_str());
                Some(match own {
                    // CodeDeploy or Lambda delivered the event again after it completed.
                    Some((name, status)) if status == "Succeeded" || status == "Failed" => format!(
                        "{hook} serves {name}, which already completed ({status}) for {}; likely a duplicate delivery",
                        self.id
                    ),
                    _ => format!(
                        "{hook} serves {} but no lifecycle event of {} is InProgress (events: {})",
                        hook.event,
                        self.id,
                        self.lifecycle_events.iter().map(|(n, s)| format!("{n}={s}")).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        }
    }
}

/// Which hook to use instead, for the wrong-platform message.
fn counterpart(hook: Hook, platform: Platform) -> String {
    let same_event = Hook::ALL.iter().find(|other| other.event == hook.event && other.platform == platform);
    match same_event {
        Some(other) => format!("use the {other} hook for it"),
        None => {
            let names: Vec<&str> = Hook::ALL.iter().filter(|h| h.platform == platform).map(|h| h.name).collect();
            format!("{platform} deployments have no {} event; their hooks are {}", hook.event, names.join(", "))
        }
    }
}

/// Why discovery failed. Every variant is reported as `Failed`.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The hook's role lacks an IAM permission.
    #[error(
        "access denied calling codedeploy:{operation}: grant the hook's role codedeploy:{operation} on {} ({message})",
        grant_scope(operation)
    )]
    AccessDenied {
        /// The CodeDeploy operation (and IAM action) refused.
        operation: &'static str,
        /// The service's message.
        message: String,
    },
    /// Any other failed call.
    #[error("codedeploy:{operation} failed: {message}")]
    Call {
        /// The CodeDeploy operation.
        operation: &'static str,
        /// What went wrong, with its causes.
        message: String,
    },
    /// The answers do not describe a deployment a hook can judge.
    #[error("{0}")]
    Unexpected(String),
    /// The green task set never reached its desired count before the deadline.
    #[error("green task set {id} runs {running}/{desired} tasks at the deadline")]
    GreenNotReady {
        /// Task set id.
        id: String,
        /// Tasks running at the last poll.
        running: i64,
        /// Tasks desired.
        desired: i64,
    },
}

/// Where an action must be granted: IAM scopes `GetDeployment` and `GetDeploymentGroup` to a
/// deployment group, and the other CodeDeploy actions a hook calls to nothing.
fn grant_scope(operation: &str) -> &'static str {
    match operation {
        "GetDeployment" | "GetDeploymentGroup" => {
            "the deployment groups it serves (arn:aws:codedeploy:<region>:<account>:deploymentgroup:<application>/<group>; a fleet's hooks: deploymentgroup:*)"
        }
        _ => "\"*\" (IAM cannot scope it to a deployment group)",
    }
}

pub(crate) fn call_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> DiscoveryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.as_service_error().and_then(|e| e.code());
    if crate::is_access_denied(code) {
        let message = err.as_service_error().and_then(|e| e.message()).or(code).unwrap_or_default().to_owned();
        return DiscoveryError::AccessDenied { operation, message };
    }
    DiscoveryError::Call { operation, message: crate::aws_http::call_failure(&err) }
}

/// Learns what deployment `deployment_id` moves, with its lifecycle-event statuses.
pub async fn discover(client: &Client, deployment_id: &str) -> Result<Deployment, DiscoveryError> {
    let mut target_ids = Vec::new();
    let mut next_token = None;
    loop {
        let page = client
            .list_deployment_targets()
            .deployment_id(deployment_id)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| call_error("ListDeploymentTargets", e))?;
        target_ids.extend(page.target_ids().iter().cloned());
        next_token = page.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    let [target_id] = target_ids.as_slice() else {
        return Err(DiscoveryError::Unexpected(format!(
            "deployment {deployment_id} has {} targets; an ECS or Lambda deployment has exactly one",
            target_ids.len()
        )));
    };
    get_target(client, deployment_id, target_id).await
}

async fn get_target(client: &Client, deployment_id: &str, target_id: &str) -> Result<Deployment, DiscoveryError> {
    let output = client
        .get_deployment_target()
        .deployment_id(deployment_id)
        .target_id(target_id)
        .send()
        .await
        .map_err(|e| call_error("GetDeploymentTarget", e))?;
    let target = output
        .deployment_target()
        .ok_or_else(|| DiscoveryError::Unexpected(format!("GetDeploymentTarget returned no target for {target_id}")))?;
    from_target(deployment_id, target_id, target)
}

/// The start time of every event that has one.
fn starts(list: &[aws_sdk_codedeploy::types::LifecycleEvent]) -> Vec<(String, SystemTime)> {
    list.iter()
        .filter_map(|e| {
            let started = SystemTime::try_from(*e.start_time()?).ok()?;
            Some((e.lifecycle_event_name()?.to_owned(), started))
        })
        .collect()
}

fn from_target(deployment_id: &str, target_id: &str, target: &DeploymentTarget) -> Result<Deployment, DiscoveryError> {
    let events = |list: &[aws_sdk_codedeploy::types::LifecycleEvent]| {
        list.iter()
            .map(|e| {
                let status = match e.status() {
                    Some(LifecycleEventStatus::UnknownValue) | None => "Unknown".to_owned(),
                    Some(status) => status.as_str().to_owned(),
                };
                (e.lifecycle_event_name().unwrap_or_default().to_owned(), status)
            })
            .collect::<Vec<_>>()
    };
    if let Some(lambda) = target.lambda_target() {
        let info = lambda.lambda_function_info().ok_or_else(|| {
            DiscoveryError::Unexpected(format!("Lambda target {target_id} has no lambdaFunctionInfo"))
        })?;
        let field = |value: Option<&str>, name: &str| {
            value
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| DiscoveryError::Unexpected(format!("Lambda target {target_id} has no {name}")))
        };
        return Ok(Deployment {
            id: deployment_id.to_owned(),
            target: DeploymentKind::Lambda(LambdaDeployment {
                function_name: field(info.function_name(), "functionName")?,
                alias: field(info.function_alias(), "functionAlias")?,
                current_version: field(info.current_version(), "currentVersion")?,
                target_version: field(info.target_version(), "targetVersion")?,
                target_version_weight: info.target_version_weight(),
            }),
            lifecycle_events: events(lambda.lifecycle_events()),
            event_starts: starts(lambda.lifecycle_events()),
            service_deployment: None,
        });
    }
    if let Some(ecs) = target.ecs_target() {
        let task_set = |label: TargetLabel| {
            ecs.task_sets_info().iter().find(|t| t.task_set_label() == Some(&label)).map(|t| TaskSet {
                id: t.identifer().unwrap_or_default().to_owned(),
                desired_count: t.desired_count(),
                running_count: t.running_count(),
                traffic_weight: t.traffic_weight(),
                target_group: t.target_group().and_then(|g| g.name()).map(str::to_owned),
            })
        };
        return Ok(Deployment {
            id: deployment_id.to_owned(),
            target: DeploymentKind::Ecs(EcsDeployment {
                target_id: target_id.to_owned(),
                blue: task_set(TargetLabel::Blue),
                green: task_set(TargetLabel::Green),
                listeners: None,
            }),
            lifecycle_events: events(ecs.lifecycle_events()),
            event_starts: starts(ecs.lifecycle_events()),
            service_deployment: None,
        });
    }
    Err(DiscoveryError::Unexpected(format!(
        "deployment {deployment_id} target {target_id} is {}; greenlight judges ECS and Lambda deployments",
        target.deployment_target_type().map_or("of no type", |t| t.as_str())
    )))
}

/// Polls until the green task set runs its desired count, or `deadline` passes.
/// Only an ECS deployment has a green task set; any other is an error, never a pass.
pub async fn wait_for_green(
    client: &Client,
    mut deployment: Deployment,
    interval: Duration,
    deadline: Instant,
) -> Result<Deployment, DiscoveryError> {
    loop {
        let DeploymentKind::Ecs(ecs) = &deployment.target else {
            return Err(DiscoveryError::Unexpected(format!(
                "{} is not an ECS deployment: no green task set",
                deployment.id
            )));
        };
        let (id, running, desired) = match &ecs.green {
            Some(green) => (green.id.clone(), green.running_count, green.desired_count),
            None => ("(none yet)".to_owned(), 0, 0),
        };
        if desired > 0 && running >= desired {
            return Ok(deployment);
        }
        if Instant::now() + interval >= deadline {
            return Err(DiscoveryError::GreenNotReady { id, running, desired });
        }
        tokio::time::sleep(interval).await;
        deployment = tokio::time::timeout_at(deadline, get_target(client, &deployment.id, &ecs.target_id))
            .await
            .map_err(|_| DiscoveryError::GreenNotReady { id, running, desired })??;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::Hook;

    fn lambda(events: &[(&str, &str)]) -> Deployment {
        Deployment {
            id: "d-TEST".into(),
            target: DeploymentKind::Lambda(LambdaDeployment {
                function_name: "checkout".into(),
                alias: "live".into(),
                current_version: "4".into(),
                target_version: "5".into(),
                target_version_weight: 0.0,
            }),
            lifecycle_events: events.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect(),
            event_starts: Vec::new(),
            service_deployment: None,
        }
    }

    #[test]
    fn matching_event_and_platform_pass() {
        let d = lambda(&[("BeforeAllowTraffic", "InProgress"), ("AllowTraffic", "Pending")]);
        assert_eq!(d.mismatch(Hook::PRE_TRAFFIC), None);
    }

    #[test]
    fn wrong_event_names_both() {
        let d = lambda(&[("BeforeAllowTraffic", "Succeeded"), ("AfterAllowTraffic", "InProgress")]);
        let why = d.mismatch(Hook::PRE_TRAFFIC).unwrap();
        assert!(why.contains("BeforeAllowTraffic") && why.contains("AfterAllowTraffic"), "{why}");
    }

    #[test]
    fn wrong_platform_points_at_the_right_hook() {
        let d = lambda(&[("BeforeAllowTraffic", "InProgress")]);
        let why = d.mismatch(Hook::BEFORE_ALLOW_TRAFFIC).unwrap();
        assert!(why.contains("use the pre-traffic hook"), "{why}");
    }

    #[test]
    fn nothing_in_progress_fails_closed() {
        let d = lambda(&[("BeforeAllowTraffic", "Pending")]);
        assert!(d.mismatch(Hook::PRE_TRAFFIC).unwrap().contains("no lifecycle event"));
    }

    #[test]
    fn a_completed_own_event_reads_as_a_duplicate_delivery() {
        let d = lambda(&[("BeforeAllowTraffic", "Succeeded"), ("AllowTraffic", "Pending")]);
        let why = d.mismatch(Hook::PRE_TRAFFIC).unwrap();
        assert!(why.contains("already completed (Succeeded)") && why.contains("duplicate delivery"), "{why}");
    }
}
