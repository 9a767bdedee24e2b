//! Services that ECS deploys itself: what CreateService and UpdateService configure (checked as
//! ECS checks it), their revisions and their service deployments.
//!
//! A service stands behind one of the config's `load_balancers`: its `loadBalancers[0]` names one
//! of the balancer's target groups, and its `advancedConfiguration` the other one and the rules of
//! the production and test listeners. Each revision runs in one of the two target groups; a
//! deployment starts the target revision in the other one.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::elbv2::{ListenerRole, listener_rule_arn, numbered_target_group};
use crate::emulator::{ACCOUNT_ID, REGION};
use crate::protocol::ApiError;

/// `InvalidParameterException`: a request ECS refuses as malformed or inconsistent.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", message)
}

/// `ClientException`: a request that names something ECS does not have, or cannot do now.
pub(crate) fn client_error(message: impl Into<String>) -> ApiError {
    ApiError::client("ClientException", message)
}

/// `arn:aws:ecs:<region>:<account>:<resource>`.
pub fn ecs_arn(resource: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:{resource}")
}

/// The deployment strategies ECS runs with traffic shifting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// All production traffic at once.
    BlueGreen,
    /// `step_percent` more each step, `step_bake_minutes` apart.
    Linear {
        /// Percent per step (3.0..=100.0).
        step_percent: f64,
        /// Minutes between steps.
        step_bake_minutes: u32,
    },
    /// `canary_percent`, then after `canary_bake_minutes` the rest.
    Canary {
        /// Percent of the first step (0.1..=100.0).
        canary_percent: f64,
        /// Minutes before the rest moves.
        canary_bake_minutes: u32,
    },
}

impl Strategy {
    /// ECS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlueGreen => "BLUE_GREEN",
            Self::Linear { .. } => "LINEAR",
            Self::Canary { .. } => "CANARY",
        }
    }

    /// The production steps: the percent on the target revision after each, and the minutes to
    /// bake before the next one (none after 100 %).
    pub fn production_steps(self) -> Vec<(f64, u32)> {
        match self {
            Self::BlueGreen => vec![(100.0, 0)],
            Self::Canary { canary_percent, canary_bake_minutes } if canary_percent < 100.0 => {
                vec![(canary_percent, canary_bake_minutes), (100.0, 0)]
            }
            Self::Canary { .. } => vec![(100.0, 0)],
            Self::Linear { step_percent, step_bake_minutes } => {
                // Tenths, so that 10 steps of 10.0 end exactly at 100.
                let step = (step_percent * 10.0).round() as u32;
                let mut steps: Vec<(f64, u32)> = (1..)
                    .map(|n| n * step)
                    .take_while(|tenths| *tenths < 1000)
                    .map(|t| (f64::from(t) / 10.0, step_bake_minutes))
                    .collect();
                steps.push((100.0, 0));
                steps
            }
        }
    }
}

/// A lifecycle stage a hook can be attached to (`DeploymentLifecycleHookStage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStage {
    /// Before anything changes.
    ReconcileService,
    /// Before the target revision's tasks start.
    PreScaleUp,
    /// After they run.
    PostScaleUp,
    /// While the test listener moves to the target revision (and back, in a rollback).
    TestTrafficShift,
    /// After the test listener moved.
    PostTestTrafficShift,
    /// Before each production step.
    PreProductionTrafficShift,
    /// While each production step moves (and back, in a rollback).
    ProductionTrafficShift,
    /// After production is all on the target revision.
    PostProductionTrafficShift,
}

impl HookStage {
    /// Every stage, in the order a deployment reaches them.
    pub const ALL: [Self; 8] = [
        Self::ReconcileService,
        Self::PreScaleUp,
        Self::PostScaleUp,
        Self::TestTrafficShift,
        Self::PostTestTrafficShift,
        Self::PreProductionTrafficShift,
        Self::ProductionTrafficShift,
        Self::PostProductionTrafficShift,
    ];

    /// ECS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReconcileService => "RECONCILE_SERVICE",
            Self::PreScaleUp => "PRE_SCALE_UP",
            Self::PostScaleUp => "POST_SCALE_UP",
            Self::TestTrafficShift => "TEST_TRAFFIC_SHIFT",
            Self::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            Self::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            Self::ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
            Self::PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == text)
    }
}

/// One `deploymentConfiguration.lifecycleHooks[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleHook {
    /// The Lambda function ECS invokes.
    pub hook_target_arn: String,
    /// The role ECS invokes it with.
    pub role_arn: String,
    /// The stages it is invoked at.
    pub stages: Vec<HookStage>,
    /// The configured `hookDetails` object, passed in every invocation.
    pub hook_details: Option<Map<String, Value>>,
}

/// `deploymentConfiguration.alarms`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentAlarms {
    /// CloudWatch alarms watched during a deployment.
    pub names: Vec<String>,
    /// Whether one in ALARM rolls the deployment back.
    pub rollback: bool,
    /// Whether they are watched at all.
    pub enable: bool,
}

/// A checked `deploymentConfiguration`, and the document DescribeServices returns for it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfiguration {
    /// How production traffic moves.
    pub strategy: Strategy,
    /// Minutes both revisions keep running once production is all on the target.
    pub bake_minutes: u32,
    /// The hooks.
    pub hooks: Vec<LifecycleHook>,
    /// The alarms.
    pub alarms: Option<DeploymentAlarms>,
    /// As given, with the defaults ECS fills in.
    pub document: Value,
}

const MAX_MINUTES: i64 = 1440;

fn minutes(object: &Map<String, Value>, member: &str, path: &str, default: u32) -> Result<u32, ApiError> {
    match object.get(member) {
        None => Ok(default),
        Some(value) => value
            .as_i64()
            .filter(|m| (0..=MAX_MINUTES).contains(m))
            .map(|m| m as u32)
            .ok_or_else(|| invalid(format!("{path}.{member} must be an integer from 0 to {MAX_MINUTES}"))),
    }
}

fn percent(
    object: &Map<String, Value>,
    member: &str,
    path: &str,
    range: (f64, f64),
    default: f64,
) -> Result<f64, ApiError> {
    let Some(value) = object.get(member) else { return Ok(default) };
    let number = value.as_f64().ok_or_else(|| invalid(format!("{path}.{member} must be a number")))?;
    let tenths = number * 10.0;
    if !(range.0..=range.1).contains(&number) || (tenths - tenths.round()).abs() > 1e-6 {
        return Err(invalid(format!(
            "{path}.{member} must be a multiple of 0.1 from {:.1} to {:.1}, not {number}",
            range.0, range.1
        )));
    }
    Ok(number)
}

/// A linear or canary configuration's members: its percent (with ECS's range and default) and
/// its bake time (with ECS's default).
struct StepsConfiguration {
    member: &'static str,
    percent: (&'static str, (f64, f64), f64),
    bake_minutes: (&'static str, u32),
}

const LINEAR_STEPS: StepsConfiguration = StepsConfiguration {
    member: "linearConfiguration",
    percent: ("stepPercent", (3.0, 100.0), 10.0),
    bake_minutes: ("stepBakeTimeInMinutes", 6),
};

const CANARY_STEPS: StepsConfiguration = StepsConfiguration {
    member: "canaryConfiguration",
    percent: ("canaryPercent", (0.1, 100.0), 5.0),
    bake_minutes: ("canaryBakeTimeInMinutes", 10),
};

impl StepsConfiguration {
    /// The percent and bake minutes `config` gives (defaults where it gives none), written back
    /// into `document` as DescribeServiceDeployments shows them.
    fn read(
        &self,
        config: &Map<String, Value>,
        document: &mut Map<String, Value>,
        path: &str,
    ) -> Result<(f64, u32), ApiError> {
        let inner_path = format!("{path}.{}", self.member);
        let empty = Map::new();
        let given = config.get(self.member).map(|v| object(v, &inner_path)).transpose()?.unwrap_or(&empty);
        let (percent_member, range, default_percent) = self.percent;
        let (minutes_member, default_minutes) = self.bake_minutes;
        let percent = percent(given, percent_member, &inner_path, range, default_percent)?;
        let bake_minutes = minutes(given, minutes_member, &inner_path, default_minutes)?;
        document.insert(self.member.to_owned(), json!({percent_member: percent, minutes_member: bake_minutes}));
        Ok((percent, bake_minutes))
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value.as_object().ok_or_else(|| invalid(format!("{path} must be an object")))
}

fn string<'a>(object: &'a Map<String, Value>, member: &str, path: &str) -> Result<Option<&'a str>, ApiError> {
    match object.get(member) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("{path}.{member} must be a string"))),
    }
}

fn required<'a>(object: &'a Map<String, Value>, member: &str, path: &str) -> Result<&'a str, ApiError> {
    string(object, member, path)?
        .filter(|text| !text.is_empty())
        .ok_or_else(|| invalid(format!("{path}.{member} is required")))
}

fn boolean(object: &Map<String, Value>, member: &str, path: &str) -> Result<bool, ApiError> {
    object
        .get(member)
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid(format!("{path}.{member} is required (a boolean)")))
}

/// Whether `arn` is a Lambda function ARN (with or without a qualifier).
fn is_function_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(parts.as_slice(), ["arn", _, "lambda", _, _, "function", name] | ["arn", _, "lambda", _, _, "function", name, _] if !name.is_empty())
}

fn is_role_arn(arn: &str) -> bool {
    arn.starts_with("arn:aws:iam::") && arn.contains(":role/")
}

impl DeploymentConfiguration {
    /// Checks `deploymentConfiguration` as ECS does. No strategy means ROLLING, ECS's default,
    /// which is not served here.
    pub fn parse(value: Option<&Value>) -> Result<Self, ApiError> {
        let path = "deploymentConfiguration";
        let empty = Map::new();
        let config = match value {
            Some(value) => object(value, path)?,
            None => &empty,
        };
        for member in ["deploymentCircuitBreaker", "earlySuccessCriteria"] {
            if config.contains_key(member) {
                return Err(invalid(format!(
                    "{path}.{member} applies to ROLLING deployments, which are not served locally"
                )));
            }
        }
        let strategy_name = string(config, "strategy", path)?.unwrap_or("ROLLING");
        if !matches!(strategy_name, "ROLLING" | "BLUE_GREEN" | "LINEAR" | "CANARY") {
            return Err(invalid(format!(
                "{path}.strategy {strategy_name:?} is not a deployment strategy (ROLLING, BLUE_GREEN, LINEAR, CANARY)"
            )));
        }
        if strategy_name == "ROLLING" {
            return Err(invalid(format!(
                "{path}.strategy ROLLING (the default) is not served locally: set BLUE_GREEN, LINEAR or CANARY"
            )));
        }
        if strategy_name != "LINEAR" && config.contains_key("linearConfiguration") {
            return Err(invalid(format!(
                "{path}.linearConfiguration is only valid with strategy LINEAR, not {strategy_name}"
            )));
        }
        if strategy_name != "CANARY" && config.contains_key("canaryConfiguration") {
            return Err(invalid(format!(
                "{path}.canaryConfiguration is only valid with strategy CANARY, not {strategy_name}"
            )));
        }
        let mut document = config.clone();
        let strategy = match strategy_name {
            "LINEAR" => {
                let (step_percent, step_bake_minutes) = LINEAR_STEPS.read(config, &mut document, path)?;
                Strategy::Linear { step_percent, step_bake_minutes }
            }
            "CANARY" => {
                let (canary_percent, canary_bake_minutes) = CANARY_STEPS.read(config, &mut document, path)?;
                Strategy::Canary { canary_percent, canary_bake_minutes }
            }
            _ => Strategy::BlueGreen,
        };
        let bake_minutes = minutes(config, "bakeTimeInMinutes", path, 0)?;
        document.insert("bakeTimeInMinutes".to_owned(), json!(bake_minutes));
        let hooks = match config.get("lifecycleHooks") {
            None => Vec::new(),
            Some(Value::Array(hooks)) => hooks
                .iter()
                .enumerate()
                .map(|(i, hook)| parse_hook(hook, &format!("{path}.lifecycleHooks[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(format!("{path}.lifecycleHooks must be a list"))),
        };
        let alarms = config
            .get("alarms")
            .map(|alarms| {
                let inner_path = format!("{path}.alarms");
                let alarms = object(alarms, &inner_path)?;
                let names = alarms
                    .get("alarmNames")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid(format!("{inner_path}.alarmNames is required (a list)")))?
                    .iter()
                    .map(|name| {
                        name.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| invalid(format!("{inner_path}.alarmNames holds strings")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, ApiError>(DeploymentAlarms {
                    names,
                    rollback: boolean(alarms, "rollback", &inner_path)?,
                    enable: boolean(alarms, "enable", &inner_path)?,
                })
            })
            .transpose()?;
        Ok(Self { strategy, bake_minutes, hooks, alarms, document: Value::Object(document) })
    }
}

fn parse_hook(value: &Value, path: &str) -> Result<LifecycleHook, ApiError> {
    let hook = object(value, path)?;
    if let Some(kind) = string(hook, "targetType", path)?
        && kind != "AWS_LAMBDA"
    {
        return Err(invalid(format!("{path}.targetType {kind:?}: only AWS_LAMBDA hooks are served locally")));
    }
    if hook.contains_key("timeoutConfiguration") {
        return Err(invalid(format!("{path}.timeoutConfiguration is not served locally")));
    }
    let hook_target_arn = required(hook, "hookTargetArn", path)?;
    if !is_function_arn(hook_target_arn) {
        return Err(invalid(format!("{path}.hookTargetArn {hook_target_arn:?} is not a Lambda function ARN")));
    }
    let role_arn = required(hook, "roleArn", path)?;
    if !is_role_arn(role_arn) {
        return Err(invalid(format!("{path}.roleArn {role_arn:?} is not an IAM role ARN")));
    }
    let stages = hook
        .get("lifecycleStages")
        .and_then(Value::as_array)
        .filter(|stages| !stages.is_empty())
        .ok_or_else(|| invalid(format!("{path}.lifecycleStages must list at least one stage")))?
        .iter()
        .map(|stage| {
            let text = stage.as_str().unwrap_or_default();
            HookStage::parse(text).ok_or_else(|| {
                let valid: Vec<&str> = HookStage::ALL.iter().map(|s| s.as_str()).collect();
                invalid(format!("{path}.lifecycleStages: {stage} is not a lifecycle hook stage ({})", valid.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hook_details = match hook.get("hookDetails") {
        None => None,
        Some(Value::Object(details)) => Some(details.clone()),
        Some(other) => return Err(invalid(format!("{path}.hookDetails must be a JSON object, not {other}"))),
    };
    Ok(LifecycleHook {
        hook_target_arn: hook_target_arn.to_owned(),
        role_arn: role_arn.to_owned(),
        stages,
        hook_details,
    })
}

/// A checked `loadBalancers[0]` with its `advancedConfiguration`, resolved to a configured load
/// balancer.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLoadBalancer {
    /// The configured load balancer's name.
    pub balancer: String,
    /// The target group (0 or 1) `targetGroupArn` names.
    pub primary_group: usize,
    /// Which listener the production rule is on (the test rule is on the other one).
    pub production_role: ListenerRole,
    /// Whether a test listener rule is configured.
    pub has_test_rule: bool,
    /// As given.
    pub document: Value,
}

/// Checks `loadBalancers` against the configured load balancers: one entry, whose target groups
/// and rules are those of one load balancer.
pub fn parse_load_balancers(value: &Value, balancers: &[String]) -> Result<ServiceLoadBalancer, ApiError> {
    let list = value.as_array().ok_or_else(|| invalid("loadBalancers must be a list"))?;
    let [entry] = list.as_slice() else {
        return Err(invalid(format!(
            "loadBalancers: a service deployed with BLUE_GREEN, LINEAR or CANARY takes one load balancer here, not {}",
            list.len()
        )));
    };
    let path = "loadBalancers[0]";
    let lb = object(entry, path)?;
    if lb.contains_key("loadBalancerName") {
        return Err(invalid(format!(
            "{path}.loadBalancerName names a Classic Load Balancer, which has no listener rules"
        )));
    }
    let target_group = required(lb, "targetGroupArn", path)?;
    required(lb, "containerName", path)?;
    lb.get("containerPort")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid(format!("{path}.containerPort is required")))?;
    let advanced_path = format!("{path}.advancedConfiguration");
    let advanced = lb
        .get("advancedConfiguration")
        .ok_or_else(|| invalid(format!("{advanced_path} is required for BLUE_GREEN, LINEAR and CANARY deployments")))?;
    let advanced = object(advanced, &advanced_path)?;
    let alternate = required(advanced, "alternateTargetGroupArn", &advanced_path)?;
    let production_rule = required(advanced, "productionListenerRule", &advanced_path)?;
    let test_rule = string(advanced, "testListenerRule", &advanced_path)?;
    let role = required(advanced, "roleArn", &advanced_path)?;
    if !is_role_arn(role) {
        return Err(invalid(format!("{advanced_path}.roleArn {role:?} is not an IAM role ARN")));
    }
    let group_of = |arn: &str| {
        balancers.iter().find_map(|name| {
            (1..=2u8).find(|n| numbered_target_group(name, *n).arn == arn).map(|n| (name.clone(), usize::from(n - 1)))
        })
    };
    let (balancer, primary_group) = group_of(target_group)
        .ok_or_else(|| invalid(format!("{path}.targetGroupArn {target_group} does not exist")))?;
    let (alternate_balancer, alternate_group) = group_of(alternate)
        .ok_or_else(|| invalid(format!("{advanced_path}.alternateTargetGroupArn {alternate} does not exist")))?;
    if alternate_balancer != balancer || alternate_group == primary_group {
        return Err(invalid(format!(
            "{advanced_path}.alternateTargetGroupArn must be the other target group of the load balancer {balancer}"
        )));
    }
    let role_of = |rule: &str| {
        [ListenerRole::Production, ListenerRole::Test]
            .into_iter()
            .find(|role| listener_rule_arn(&balancer, *role) == rule)
    };
    let production_role = role_of(production_rule).ok_or_else(|| {
        invalid(format!(
            "{advanced_path}.productionListenerRule {production_rule} is not a rule of a listener of {balancer}"
        ))
    })?;
    if let Some(test_rule) = test_rule {
        let test_role = role_of(test_rule).ok_or_else(|| {
            invalid(format!("{advanced_path}.testListenerRule {test_rule} is not a rule of a listener of {balancer}"))
        })?;
        if test_role == production_role {
            return Err(invalid(format!("{advanced_path}: the test and production listener rules must differ")));
        }
    }
    Ok(ServiceLoadBalancer {
        balancer,
        primary_group,
        production_role,
        has_test_rule: test_rule.is_some(),
        document: entry.clone(),
    })
}

/// A service deployment's status (`ServiceDeploymentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    /// Created, not started.
    Pending,
    /// Running its stages.
    InProgress,
    /// Done: production on the target revision, the source stopped.
    Successful,
    /// Shifting back after a failure.
    RollbackInProgress,
    /// Shifted back: production on the source revision, the target stopped.
    RollbackSuccessful,
    /// The rollback itself could not complete.
    RollbackFailed,
}

impl DeploymentStatus {
    /// ECS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Successful => "SUCCESSFUL",
            Self::RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            Self::RollbackSuccessful => "ROLLBACK_SUCCESSFUL",
            Self::RollbackFailed => "ROLLBACK_FAILED",
        }
    }

    /// Whether a deployment in this status has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Successful | Self::RollbackSuccessful | Self::RollbackFailed)
    }
}

/// A stage of a service deployment (`ServiceDeploymentLifecycleStage`, plus the pre-production
/// hook stage, which DescribeServiceDeployments shows as PRODUCTION_TRAFFIC_SHIFT: the model's
/// enum has no member for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// A hook stage.
    Hook(HookStage),
    /// The target revision's tasks start.
    ScaleUp,
    /// Both revisions run, production on the target.
    BakeTime,
    /// The source revision stops.
    CleanUp,
}

impl Stage {
    /// The stage's name as hooks and the record see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hook(stage) => stage.as_str(),
            Self::ScaleUp => "SCALE_UP",
            Self::BakeTime => "BAKE_TIME",
            Self::CleanUp => "CLEAN_UP",
        }
    }

    /// The `lifecycleStage` DescribeServiceDeployments shows.
    pub fn described(self) -> &'static str {
        match self {
            Self::Hook(HookStage::PreProductionTrafficShift) => "PRODUCTION_TRAFFIC_SHIFT",
            other => other.as_str(),
        }
    }
}

/// A service that ECS deploys itself.
#[derive(Debug, Clone)]
pub struct NativeService {
    /// Its cluster's name.
    pub cluster: String,
    /// Its name.
    pub name: String,
    /// The task definition as the request named it (a key of the config's `task_definitions`).
    pub task_definition: String,
    /// Tasks it runs.
    pub desired_count: i64,
    /// How it deploys.
    pub deployment_configuration: DeploymentConfiguration,
    /// Its load balancer.
    pub load_balancer: ServiceLoadBalancer,
    /// When it was created.
    pub created: SystemTime,
    /// The revision serving production.
    pub current_revision: String,
    /// The target group (0 or 1) the current revision is registered in.
    pub current_group: usize,
    /// Its service deployments, oldest first.
    pub deployments: Vec<String>,
}

impl NativeService {
    /// `arn:aws:ecs:…:service/<cluster>/<name>`.
    pub fn arn(&self) -> String {
        ecs_arn(&format!("service/{}/{}", self.cluster, self.name))
    }

    /// `arn:aws:ecs:…:cluster/<cluster>`.
    pub fn cluster_arn(&self) -> String {
        ecs_arn(&format!("cluster/{}", self.cluster))
    }
}

/// An immutable snapshot of a service's configuration, as a deployment moves between them.
#[derive(Debug, Clone)]
pub struct ServiceRevision {
    /// `arn:aws:ecs:…:service-revision/<cluster>/<service>/<id>`.
    pub arn: String,
    /// The service's ARN.
    pub service_arn: String,
    /// The cluster's ARN.
    pub cluster_arn: String,
    /// The task definition.
    pub task_definition: String,
    /// The service's `loadBalancers` entry.
    pub load_balancer: ServiceLoadBalancer,
    /// The target group (0 or 1) it runs in.
    pub group: usize,
    /// When it was created.
    pub created: SystemTime,
}

impl ServiceRevision {
    /// The target group ARN it is registered in.
    pub fn target_group_arn(&self) -> String {
        numbered_target_group(&self.load_balancer.balancer, self.group as u8 + 1).arn
    }
}

/// Task counts and requested weights of a revision within a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionCounts {
    /// The revision's ARN.
    pub arn: String,
    /// Tasks asked for.
    pub requested: i64,
    /// Tasks running.
    pub running: i64,
    /// Percent of test traffic asked for.
    pub test_weight: f64,
    /// Percent of production traffic asked for.
    pub production_weight: f64,
}

impl RevisionCounts {
    /// The `ServiceRevisionSummary`.
    pub fn to_json(&self) -> Value {
        json!({
            "arn": self.arn,
            "requestedTaskCount": self.requested,
            "runningTaskCount": self.running,
            "pendingTaskCount": (self.requested - self.running).max(0),
            "requestedTestTrafficWeight": self.test_weight,
            "requestedProductionTrafficWeight": self.production_weight,
        })
    }
}

/// `rollback` of a service deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// Why.
    pub reason: String,
    /// When it started.
    pub started: SystemTime,
    /// The revision traffic goes back to.
    pub revision_arn: String,
}

/// A hook's latest execution, as `lifecycleHookDetails` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookExecution {
    /// The execution id given to the hook.
    pub hook_id: String,
    /// The function.
    pub target_arn: String,
    /// `IN_PROGRESS`, `SUCCEEDED` or `FAILED`.
    pub status: &'static str,
}

/// A service deployment: a service moving from its source revisions to a target revision.
#[derive(Debug, Clone)]
pub struct ServiceDeployment {
    /// `arn:aws:ecs:…:service-deployment/<cluster>/<service>/<id>`.
    pub arn: String,
    /// The last part of the ARN.
    pub id: String,
    /// The service's key (`cluster/service`).
    pub service: String,
    /// The service's ARN.
    pub service_arn: String,
    /// The cluster's ARN.
    pub cluster_arn: String,
    /// When it was created.
    pub created: SystemTime,
    /// When it started.
    pub started: Option<SystemTime>,
    /// When it ended.
    pub finished: Option<SystemTime>,
    /// When anything of it last changed.
    pub updated: SystemTime,
    /// Where it comes from (none for a service's first deployment).
    pub sources: Vec<RevisionCounts>,
    /// Where it goes.
    pub target: RevisionCounts,
    /// Where it is.
    pub status: DeploymentStatus,
    /// Why it is there.
    pub status_reason: Option<String>,
    /// The stage it is in, or ended in.
    pub stage: Option<Stage>,
    /// The latest execution of each hook.
    pub hook_executions: Vec<HookExecution>,
    /// The configuration it runs by.
    pub configuration: DeploymentConfiguration,
    /// Set once it rolls back.
    pub rollback: Option<Rollback>,
    /// Alarms that went off during it.
    pub triggered_alarms: Vec<String>,
}

/// The ECS-native part of the emulator's state.
#[derive(Debug, Default)]
pub struct NativeState {
    /// Services by `cluster/service`.
    pub services: std::collections::BTreeMap<String, NativeService>,
    /// Revisions by ARN.
    pub revisions: std::collections::BTreeMap<String, ServiceRevision>,
    /// Service deployments by ARN.
    pub deployments: std::collections::BTreeMap<String, ServiceDeployment>,
    /// Everything that happened to them, in order.
    pub record: Vec<RecordEntry>,
}

/// One thing that happened to a service deployment. Kept beside the emulator's record of
/// CodeDeploy deployments ([`crate::emulator::RecordEntry`]), whose readers know CodeDeploy's
/// kinds of happening only; the hooks' Lambda invocations are in that record too, under the
/// service deployment's ARN.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordEntry {
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    /// The service deployment.
    pub service_deployment_arn: String,
    /// What happened.
    #[serde(flatten)]
    pub what: ServiceDeploymentHappening,
}

/// The kinds of things a service deployment's record keeps.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceDeploymentHappening {
    /// Its status changed.
    Status {
        /// ECS's `ServiceDeploymentStatus`.
        status: &'static str,
        /// Its `statusReason`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// It entered a lifecycle stage.
    Stage {
        /// The stage, as hooks name it (`PRE_PRODUCTION_TRAFFIC_SHIFT` included).
        stage: &'static str,
    },
    /// A lifecycle hook was invoked and its answer read.
    HookInvocation {
        /// The lifecycle stage.
        stage: &'static str,
        /// The hook's `hookTargetArn`.
        hook: String,
        /// The `executionId`, the same for every invocation of one hook execution.
        execution_id: String,
        /// 1, then 2, 3, … after each `IN_PROGRESS`.
        attempt: u32,
        /// Invoked while rolling back: the answer is recorded, not obeyed.
        rollback: bool,
        /// The event the hook got.
        payload: Value,
        /// What it returned (its JSON, or its text), or null when it could not be invoked.
        answer: Value,
        /// How it was read: `SUCCEEDED`, `IN_PROGRESS` or `FAILED`.
        outcome: &'static str,
        /// Why it counts as `FAILED`, when it does.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// How long the invocation took, in milliseconds.
        duration_ms: u64,
    },
    /// A listener's weights moved.
    Weights {
        /// `production` or `test`.
        route: &'static str,
        /// Percent on the source revision.
        source: f64,
        /// Percent on the target revision.
        target: f64,
    },
    /// It started rolling back.
    Rollback {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(config: Value) -> Result<Strategy, &'static str> {
        DeploymentConfiguration::parse(Some(&config)).map(|c| c.strategy).map_err(|e| e.code)
    }

    #[test]
    fn strategies_step_as_ecs_documents() {
        assert_eq!(Strategy::BlueGreen.production_steps(), [(100.0, 0)]);
        let canary =
            strategy(json!({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20.0}})).expect("ok");
        assert_eq!(canary.production_steps(), [(20.0, 10), (100.0, 0)]);
        let linear = strategy(
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1}}),
        )
        .expect("ok");
        assert_eq!(linear.production_steps(), [(25.0, 1), (50.0, 1), (75.0, 1), (100.0, 0)]);
        let uneven = strategy(json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 30.0}})).expect("ok");
        assert_eq!(uneven.production_steps(), [(30.0, 6), (60.0, 6), (90.0, 6), (100.0, 0)]);
    }

    #[test]
    fn configurations_ecs_refuses_are_refused() {
        for bad in [
            json!({"strategy": "PURPLE"}),
            json!({}),
            json!({"strategy": "CANARY", "linearConfiguration": {"stepPercent": 10.0}}),
            json!({"strategy": "LINEAR", "canaryConfiguration": {}}),
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.9}}),
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 100.5}}),
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.05}}),
            json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1441}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"hookTargetArn": "arn:aws:lambda:us-east-1:1:function:h",
                "roleArn": "arn:aws:iam::1:role/r", "lifecycleStages": ["SCALE_UP"]}]}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"hookTargetArn": "arn:aws:lambda:us-east-1:1:function:h",
                "roleArn": "arn:aws:iam::1:role/r", "lifecycleStages": ["POST_SCALE_UP"], "hookDetails": [1]}]}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"hookTargetArn": "h",
                "roleArn": "arn:aws:iam::1:role/r", "lifecycleStages": ["POST_SCALE_UP"]}]}),
            json!({"strategy": "BLUE_GREEN", "alarms": {"alarmNames": ["a"], "rollback": true}}),
        ] {
            assert_eq!(strategy(bad.clone()), Err("InvalidParameterException"), "{bad}");
        }
    }
}
