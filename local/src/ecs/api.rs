//! The ECS API (awsJson1_1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`) for
//! services that ECS deploys itself: CreateService, UpdateService, DescribeServices,
//! DescribeServiceDeployments, DescribeServiceRevisions and ListServiceDeployments, with ECS's
//! checks and exceptions (`InvalidParameterException`, `ClientException`,
//! `ServiceNotFoundException`). Shapes are botocore's `ecs` model's.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::TaskSet;
use super::service::{
    DeploymentConfiguration, DeploymentStatus, NativeService, RevisionCounts, ServiceDeployment, ServiceRevision,
    client_error, ecs_arn, invalid, parse_load_balancers,
};
use crate::elbv2::{ListenerRole, listener_rule_arn};
use crate::emulator::Emulator;
use crate::protocol::{ApiError, epoch_seconds};

/// Every operation served, as named in `X-Amz-Target`.
pub const OPERATIONS: &[&str] = &[
    "CreateService",
    "UpdateService",
    "DescribeServices",
    "DescribeServiceDeployments",
    "DescribeServiceRevisions",
    "ListServiceDeployments",
];

/// The service of ECS's `X-Amz-Target`s.
pub const TARGET_SERVICE: &str = "AmazonEC2ContainerServiceV20141113";

/// The most services one DescribeServices names, and deployments or revisions one Describe names.
const DESCRIBE_LIMIT: usize = 10;
const DESCRIBE_ARNS_LIMIT: usize = 20;
const LIST_DEFAULT: usize = 20;
const LIST_LIMIT: i64 = 100;

/// Serves one ECS operation, after noting the call and answering its injected faults.
pub(crate) async fn serve(emulator: &Emulator, operation: &str, input: &Value) -> Result<Value, ApiError> {
    let resource = input.get("service").or_else(|| input.get("serviceName")).and_then(Value::as_str);
    emulator.answer_faults(operation, resource, None).await?;
    let input =
        input.as_object().ok_or_else(|| ApiError::client("SerializationException", "expected a JSON object"))?;
    match operation {
        "CreateService" => emulator.create_service(input).await,
        "UpdateService" => emulator.update_service(input).await,
        "DescribeServices" => emulator.describe_services(input),
        "DescribeServiceDeployments" => emulator.describe_service_deployments(input),
        "DescribeServiceRevisions" => emulator.describe_service_revisions(input),
        "ListServiceDeployments" => emulator.list_service_deployments(input),
        other => Err(ApiError::client("UnknownOperationException", format!("{other} is not served locally"))),
    }
}

fn service_not_found() -> ApiError {
    ApiError::client("ServiceNotFoundException", "Service not found.")
}

fn text<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, ApiError> {
    match input.get(member) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("{member} must be a string"))),
    }
}

/// The cluster a request names (a name or an ARN); `default` when it names none.
fn cluster_name(input: &Map<String, Value>) -> Result<String, ApiError> {
    let cluster = text(input, "cluster")?.unwrap_or("default");
    let name = match cluster.split_once(":cluster/") {
        Some((prefix, name)) if prefix.starts_with("arn:aws:ecs:") => name,
        Some(_) => return Err(invalid(format!("cluster {cluster} is not a cluster ARN"))),
        None => cluster,
    };
    if !valid_name(name) {
        return Err(invalid(format!("cluster {name:?}: use 1 to 255 of [A-Za-z0-9_-]")));
    }
    Ok(name.to_owned())
}

fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

/// `cluster/service` of a service named by name (in `cluster`) or by ARN.
fn service_key(cluster: &str, service: &str) -> Result<String, ApiError> {
    match service.split_once(":service/") {
        Some((prefix, rest)) if prefix.starts_with("arn:aws:ecs:") => match rest.split_once('/') {
            Some((arn_cluster, name)) if valid_name(arn_cluster) && valid_name(name) => {
                Ok(format!("{arn_cluster}/{name}"))
            }
            _ => Err(invalid(format!("{service} is not a service ARN"))),
        },
        Some(_) => Err(invalid(format!("{service} is not a service ARN"))),
        None if valid_name(service) => Ok(format!("{cluster}/{service}")),
        None => Err(invalid(format!("service {service:?}: use 1 to 255 of [A-Za-z0-9_-]"))),
    }
}

/// The task definition's ARN: `arn:aws:ecs:…:task-definition/<family>:<revision>`.
fn task_definition_arn(name: &str) -> String {
    if name.starts_with("arn:") { name.to_owned() } else { ecs_arn(&format!("task-definition/{name}")) }
}

/// The config's task definition a request names, by `family:revision` or ARN.
fn task_definition(emulator: &Emulator, named: &str) -> Result<String, ApiError> {
    let state = emulator.state();
    let bare = named.rsplit_once(":task-definition/").map_or(named, |(_, rest)| rest);
    [named, bare]
        .into_iter()
        .find(|candidate| state.task_definitions.contains_key(*candidate))
        .map(str::to_owned)
        .ok_or_else(|| client_error(format!("Unable to describe task definition {named}.")))
}

fn desired_count(input: &Map<String, Value>) -> Result<Option<i64>, ApiError> {
    match input.get("desiredCount") {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .filter(|count| *count >= 0)
            .map(Some)
            .ok_or_else(|| invalid("desiredCount must be an integer, 0 or more")),
    }
}

fn check_controller(input: &Map<String, Value>) -> Result<(), ApiError> {
    match input.get("deploymentController").and_then(|c| c.get("type")).and_then(Value::as_str) {
        None | Some("ECS") => Ok(()),
        Some(other) => Err(invalid(format!(
            "deploymentController type {other} is not served here: ECS deploys these services itself (type ECS)"
        ))),
    }
}

/// A fresh id of letters and digits, as ECS's service deployment ids look.
fn new_deployment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().chars().take(21).collect()
}

/// A fresh numeric id, as ECS's service revision ids look.
fn new_revision_id() -> String {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 1).to_string()
}

impl Emulator {
    async fn create_service(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let cluster = cluster_name(input)?;
        let name = text(input, "serviceName")?.ok_or_else(|| invalid("serviceName is required"))?;
        let key = service_key(&cluster, name)?;
        check_controller(input)?;
        let configuration = DeploymentConfiguration::parse(input.get("deploymentConfiguration"))?;
        let named = text(input, "taskDefinition")?.ok_or_else(|| invalid("taskDefinition is required"))?;
        let task_definition = task_definition(self, named)?;
        let balancers: Vec<String> = self.state().load_balancers.keys().cloned().collect();
        let load_balancers = input
            .get("loadBalancers")
            .ok_or_else(|| invalid("loadBalancers is required for BLUE_GREEN, LINEAR and CANARY deployments"))?;
        let load_balancer = parse_load_balancers(load_balancers, &balancers)?;
        let desired_count = desired_count(input)?.unwrap_or(1);
        // The balancers' lock is held from the checks to the insert, so two creations of one
        // service cannot both start tasks.
        let mut hosted = self.inner.balancers.lock().await;
        {
            let state = self.state();
            if state.native.services.contains_key(&key) {
                return Err(invalid("Creation of service was not idempotent."));
            }
            if let Some(other) =
                state.native.services.values().find(|s| s.load_balancer.balancer == load_balancer.balancer)
            {
                return Err(invalid(format!(
                    "The target groups of load balancer {} are in use by service {}",
                    load_balancer.balancer,
                    other.arn()
                )));
            }
        }
        let process = self.state().task_definitions[&task_definition].clone();
        let tasks = TaskSet::start(&task_definition, &process)
            .await
            .map_err(|err| client_error(format!("The tasks of {task_definition} could not start: {err}")))?;
        let balancer = hosted
            .get_mut(&load_balancer.balancer)
            .ok_or_else(|| client_error(format!("load balancer {} is not running", load_balancer.balancer)))?;
        let group = load_balancer.primary_group;
        balancer.register(group, tasks).await;
        balancer.set_primary(group);
        for role in [ListenerRole::Production, ListenerRole::Test] {
            balancer.shift(role, group, 100.0);
        }
        drop(hosted);

        let now = SystemTime::now();
        let service = NativeService {
            cluster: cluster.clone(),
            name: name.to_owned(),
            task_definition: task_definition.clone(),
            desired_count,
            deployment_configuration: configuration.clone(),
            load_balancer: load_balancer.clone(),
            created: now,
            current_revision: String::new(),
            current_group: group,
            deployments: Vec::new(),
        };
        let revision = self.new_revision(&service, &task_definition, group);
        let deployment_id = new_deployment_id();
        let deployment = ServiceDeployment {
            arn: ecs_arn(&format!("service-deployment/{cluster}/{name}/{deployment_id}")),
            id: deployment_id,
            service: key.clone(),
            service_arn: service.arn(),
            cluster_arn: service.cluster_arn(),
            created: now,
            started: Some(now),
            finished: Some(now),
            updated: now,
            sources: Vec::new(),
            target: RevisionCounts {
                arn: revision.arn.clone(),
                requested: desired_count,
                running: desired_count,
                test_weight: 100.0,
                production_weight: 100.0,
            },
            status: DeploymentStatus::Successful,
            status_reason: Some("The service was created.".to_owned()),
            stage: None,
            hook_executions: Vec::new(),
            configuration,
            rollback: None,
            triggered_alarms: Vec::new(),
        };
        let mut state = self.state();
        let mut service = service;
        service.current_revision.clone_from(&revision.arn);
        service.deployments.push(deployment.arn.clone());
        state.native.revisions.insert(revision.arn.clone(), revision);
        state.native.deployments.insert(deployment.arn.clone(), deployment);
        let output = json!({"service": service_json(&state.native, &service)});
        state.native.services.insert(key, service);
        Ok(output)
    }

    fn new_revision(&self, service: &NativeService, task_definition: &str, group: usize) -> ServiceRevision {
        ServiceRevision {
            arn: ecs_arn(&format!("service-revision/{}/{}/{}", service.cluster, service.name, new_revision_id())),
            service_arn: service.arn(),
            cluster_arn: service.cluster_arn(),
            task_definition: task_definition.to_owned(),
            load_balancer: service.load_balancer.clone(),
            group,
            created: SystemTime::now(),
        }
    }

    async fn update_service(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let cluster = cluster_name(input)?;
        let named = text(input, "service")?.ok_or_else(|| invalid("service is required"))?;
        let key = service_key(&cluster, named)?;
        check_controller(input)?;
        let configuration =
            input.get("deploymentConfiguration").map(|c| DeploymentConfiguration::parse(Some(c))).transpose()?;
        let task_definition = text(input, "taskDefinition")?.map(|named| task_definition(self, named)).transpose()?;
        let balancers: Vec<String> = self.state().load_balancers.keys().cloned().collect();
        let load_balancer = input.get("loadBalancers").map(|lb| parse_load_balancers(lb, &balancers)).transpose()?;
        let desired_count = desired_count(input)?;
        let force = match input.get("forceNewDeployment") {
            None => false,
            Some(value) => value.as_bool().ok_or_else(|| invalid("forceNewDeployment must be a boolean"))?,
        };

        let mut state = self.state();
        let service = state.native.services.get(&key).ok_or_else(service_not_found)?;
        let busy = service
            .deployments
            .last()
            .and_then(|arn| state.native.deployments.get(arn))
            .filter(|d| !d.status.is_final());
        if let Some(busy) = busy {
            return Err(client_error(format!(
                "The service deployment {} is in progress; update the service once it has ended",
                busy.arn
            )));
        }
        if let Some(load_balancer) = &load_balancer
            && load_balancer.balancer != service.load_balancer.balancer
        {
            return Err(invalid(format!(
                "loadBalancers: the service stays behind load balancer {} here",
                service.load_balancer.balancer
            )));
        }
        let changes_revision = force
            || task_definition.as_ref().is_some_and(|td| *td != service.task_definition)
            || load_balancer.as_ref().is_some_and(|lb| *lb != service.load_balancer);
        let service = state.native.services.get_mut(&key).ok_or_else(service_not_found)?;
        if let Some(configuration) = configuration {
            service.deployment_configuration = configuration;
        }
        if let Some(load_balancer) = load_balancer {
            service.load_balancer = load_balancer;
        }
        if let Some(count) = desired_count {
            service.desired_count = count;
        }
        if let Some(task_definition) = task_definition {
            service.task_definition = task_definition;
        }
        if changes_revision {
            let service = service.clone();
            let source = state.native.revisions.get(&service.current_revision).cloned();
            let revision = self.new_revision(&service, &service.task_definition, 1 - service.current_group);
            let now = SystemTime::now();
            let deployment_id = new_deployment_id();
            let deployment = ServiceDeployment {
                arn: ecs_arn(&format!("service-deployment/{}/{}/{deployment_id}", service.cluster, service.name)),
                id: deployment_id,
                service: key.clone(),
                service_arn: service.arn(),
                cluster_arn: service.cluster_arn(),
                created: now,
                started: None,
                finished: None,
                updated: now,
                sources: source
                    .iter()
                    .map(|source| RevisionCounts {
                        arn: source.arn.clone(),
                        requested: service.desired_count,
                        running: service.desired_count,
                        test_weight: 100.0,
                        production_weight: 100.0,
                    })
                    .collect(),
                target: RevisionCounts {
                    arn: revision.arn.clone(),
                    requested: service.desired_count,
                    running: 0,
                    test_weight: 0.0,
                    production_weight: 0.0,
                },
                status: DeploymentStatus::Pending,
                status_reason: None,
                stage: None,
                hook_executions: Vec::new(),
                configuration: service.deployment_configuration.clone(),
                rollback: None,
                triggered_alarms: Vec::new(),
            };
            let arn = deployment.arn.clone();
            state.native.revisions.insert(revision.arn.clone(), revision);
            state.native.deployments.insert(arn.clone(), deployment);
            if let Some(service) = state.native.services.get_mut(&key) {
                service.deployments.push(arn);
            }
        }
        let service = &state.native.services[&key];
        let output = json!({"service": service_json(&state.native, service)});
        let started = changes_revision.then(|| service.deployments.last().cloned()).flatten();
        drop(state);
        if let Some(arn) = started {
            self.start_service_deployment(&arn);
        }
        Ok(output)
    }

    fn describe_services(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let cluster = cluster_name(input)?;
        let names = strings(input, "services")?;
        if names.is_empty() || names.len() > DESCRIBE_LIMIT {
            return Err(invalid(format!("services must name 1 to {DESCRIBE_LIMIT} services")));
        }
        let state = self.state();
        let mut services = Vec::new();
        let mut failures = Vec::new();
        for named in names {
            let key = service_key(&cluster, &named)?;
            match state.native.services.get(&key) {
                Some(service) => services.push(service_json(&state.native, service)),
                None => failures.push(json!({"arn": ecs_arn(&format!("service/{key}")), "reason": "MISSING"})),
            }
        }
        Ok(json!({"services": services, "failures": failures}))
    }

    fn describe_service_deployments(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let arns = arns(input, "serviceDeploymentArns", ":service-deployment/")?;
        let state = self.state();
        let (found, failures) = split_found(&arns, |arn| state.native.deployments.get(arn).map(deployment_json));
        Ok(json!({"serviceDeployments": found, "failures": failures}))
    }

    fn describe_service_revisions(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let arns = arns(input, "serviceRevisionArns", ":service-revision/")?;
        let state = self.state();
        let (found, failures) = split_found(&arns, |arn| state.native.revisions.get(arn).map(revision_json));
        Ok(json!({"serviceRevisions": found, "failures": failures}))
    }

    fn list_service_deployments(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let cluster = cluster_name(input)?;
        let named = text(input, "service")?.ok_or_else(|| invalid("service is required"))?;
        let key = service_key(&cluster, named)?;
        let statuses = match input.get("status") {
            None => None,
            Some(_) => {
                let wanted = strings(input, "status")?;
                let known = [
                    "PENDING",
                    "SUCCESSFUL",
                    "STOPPED",
                    "STOP_REQUESTED",
                    "IN_PROGRESS",
                    "ROLLBACK_REQUESTED",
                    "ROLLBACK_IN_PROGRESS",
                    "ROLLBACK_SUCCESSFUL",
                    "ROLLBACK_FAILED",
                ];
                if let Some(bad) = wanted.iter().find(|s| !known.contains(&s.as_str())) {
                    return Err(invalid(format!("status {bad:?} is not a service deployment status")));
                }
                Some(wanted)
            }
        };
        let bound = |member: &str| -> Result<Option<f64>, ApiError> {
            match input.get("createdAt").and_then(|c| c.get(member)) {
                None => Ok(None),
                Some(value) => {
                    value.as_f64().map(Some).ok_or_else(|| invalid(format!("createdAt.{member} must be a timestamp")))
                }
            }
        };
        let (before, after) = (bound("before")?, bound("after")?);
        let page = match input.get("maxResults") {
            None => LIST_DEFAULT,
            Some(value) => value
                .as_i64()
                .filter(|n| (1..=LIST_LIMIT).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| invalid(format!("maxResults must be from 1 to {LIST_LIMIT}")))?,
        };
        let state = self.state();
        let service = state.native.services.get(&key).ok_or_else(service_not_found)?;
        let listed: Vec<&ServiceDeployment> = service
            .deployments
            .iter()
            .rev()
            .filter_map(|arn| state.native.deployments.get(arn))
            .filter(|d| statuses.as_ref().is_none_or(|wanted| wanted.iter().any(|s| s == d.status.as_str())))
            .filter(|d| before.is_none_or(|b| epoch_seconds(d.created) < b))
            .filter(|d| after.is_none_or(|a| epoch_seconds(d.created) > a))
            .collect();
        let start = match text(input, "nextToken")? {
            None => 0,
            Some(token) => token
                .parse::<usize>()
                .ok()
                .filter(|start| *start < listed.len())
                .ok_or_else(|| invalid("The nextToken is not one a previous call returned"))?,
        };
        let end = (start + page).min(listed.len());
        let mut output =
            json!({"serviceDeployments": listed[start..end].iter().map(|d| brief_json(d)).collect::<Vec<_>>()});
        if end < listed.len() {
            output["nextToken"] = json!(end.to_string());
        }
        Ok(output)
    }
}

fn strings(input: &Map<String, Value>, member: &str) -> Result<Vec<String>, ApiError> {
    input
        .get(member)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("{member} is required (a list)")))?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| invalid(format!("{member} holds strings"))))
        .collect()
}

/// The ARNs of `member`, each an ECS ARN of the kind `marker` names, 1 to 20 of them.
fn arns(input: &Map<String, Value>, member: &str, marker: &str) -> Result<Vec<String>, ApiError> {
    let arns = strings(input, member)?;
    if arns.is_empty() || arns.len() > DESCRIBE_ARNS_LIMIT {
        return Err(invalid(format!("{member} must hold 1 to {DESCRIBE_ARNS_LIMIT} ARNs")));
    }
    if let Some(bad) = arns.iter().find(|arn| !(arn.starts_with("arn:aws:ecs:") && arn.contains(marker))) {
        return Err(invalid(format!(
            "{member}: {bad} is not a{} ARN",
            marker.trim_matches(|c| c == ':' || c == '/').replace('-', " ")
        )));
    }
    Ok(arns)
}

/// The items found for `arns`, and a `MISSING` failure for each of the others.
fn split_found(arns: &[String], find: impl Fn(&str) -> Option<Value>) -> (Vec<Value>, Vec<Value>) {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in arns {
        match find(arn) {
            Some(item) => found.push(item),
            None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
        }
    }
    (found, failures)
}

fn service_json(native: &super::service::NativeState, service: &NativeService) -> Value {
    let latest = service.deployments.last().and_then(|arn| native.deployments.get(arn));
    let revisions: Vec<Value> = match latest {
        Some(d) if !d.status.is_final() => d.sources.iter().chain([&d.target]).map(current_json).collect(),
        _ => vec![json!({"arn": service.current_revision, "requestedTaskCount": service.desired_count,
                         "runningTaskCount": service.desired_count, "pendingTaskCount": 0})],
    };
    let running: i64 = revisions.iter().filter_map(|r| r["runningTaskCount"].as_i64()).sum();
    let mut json = json!({
        "serviceArn": service.arn(),
        "serviceName": service.name,
        "clusterArn": service.cluster_arn(),
        "loadBalancers": [service.load_balancer.document],
        "status": "ACTIVE",
        "desiredCount": service.desired_count,
        "runningCount": running,
        "pendingCount": 0,
        "launchType": "FARGATE",
        "taskDefinition": task_definition_arn(&service.task_definition),
        "deploymentConfiguration": service.deployment_configuration.document,
        "deploymentController": {"type": "ECS"},
        "createdAt": epoch_seconds(service.created),
        "currentServiceRevisions": revisions,
        "schedulingStrategy": "REPLICA",
    });
    if let Some(latest) = latest {
        json["currentServiceDeployment"] = json!(latest.arn);
    }
    json
}

fn current_json(counts: &RevisionCounts) -> Value {
    json!({"arn": counts.arn, "requestedTaskCount": counts.requested, "runningTaskCount": counts.running,
           "pendingTaskCount": (counts.requested - counts.running).max(0)})
}

/// The `ServiceDeployment` DescribeServiceDeployments returns.
pub(crate) fn deployment_json(deployment: &ServiceDeployment) -> Value {
    let mut json = json!({
        "serviceDeploymentArn": deployment.arn,
        "serviceArn": deployment.service_arn,
        "clusterArn": deployment.cluster_arn,
        "createdAt": epoch_seconds(deployment.created),
        "updatedAt": epoch_seconds(deployment.updated),
        "sourceServiceRevisions": deployment.sources.iter().map(RevisionCounts::to_json).collect::<Vec<_>>(),
        "targetServiceRevision": deployment.target.to_json(),
        "status": deployment.status.as_str(),
        "deploymentConfiguration": deployment.configuration.document,
        "lifecycleHookDetails": deployment.hook_executions.iter().map(|hook| json!({
            "hookId": hook.hook_id, "targetType": "AWS_LAMBDA", "targetArn": hook.target_arn, "status": hook.status,
        })).collect::<Vec<_>>(),
    });
    add_progress(&mut json, deployment);
    if let Some(stage) = deployment.stage {
        json["lifecycleStage"] = json!(stage.described());
    }
    if let Some(rollback) = &deployment.rollback {
        json["rollback"] = json!({"reason": rollback.reason, "startedAt": epoch_seconds(rollback.started),
                                  "serviceRevisionArn": rollback.revision_arn});
    }
    if let Some(alarms) = deployment.configuration.alarms.as_ref().filter(|a| a.enable) {
        let status = if !deployment.triggered_alarms.is_empty() {
            "TRIGGERED"
        } else if deployment.status.is_final() {
            "MONITORING_COMPLETE"
        } else {
            "MONITORING"
        };
        json["alarms"] =
            json!({"status": status, "alarmNames": alarms.names, "triggeredAlarmNames": deployment.triggered_alarms});
    }
    json
}

/// The members both descriptions of a deployment carry once it has them: when it started and
/// finished, and why it has its status.
fn add_progress(json: &mut Value, deployment: &ServiceDeployment) {
    if let Some(started) = deployment.started {
        json["startedAt"] = json!(epoch_seconds(started));
    }
    if let Some(finished) = deployment.finished {
        json["finishedAt"] = json!(epoch_seconds(finished));
    }
    if let Some(reason) = &deployment.status_reason {
        json["statusReason"] = json!(reason);
    }
}

fn brief_json(deployment: &ServiceDeployment) -> Value {
    let mut json = json!({
        "serviceDeploymentArn": deployment.arn,
        "serviceArn": deployment.service_arn,
        "clusterArn": deployment.cluster_arn,
        "createdAt": epoch_seconds(deployment.created),
        "targetServiceRevisionArn": deployment.target.arn,
        "status": deployment.status.as_str(),
    });
    add_progress(&mut json, deployment);
    json
}

fn revision_json(revision: &ServiceRevision) -> Value {
    let production_rule = listener_rule_arn(&revision.load_balancer.balancer, revision.load_balancer.production_role);
    json!({
        "serviceRevisionArn": revision.arn,
        "serviceArn": revision.service_arn,
        "clusterArn": revision.cluster_arn,
        "taskDefinition": task_definition_arn(&revision.task_definition),
        "launchType": "FARGATE",
        "loadBalancers": [revision.load_balancer.document],
        "createdAt": epoch_seconds(revision.created),
        "resolvedConfiguration": {"loadBalancers": [{
            "targetGroupArn": revision.target_group_arn(),
            "productionListenerRule": production_rule,
        }]},
    })
}
