//! The CodeDeploy API (awsJson1_1): the operations a deployment's life needs, with the checks
//! and exceptions real CodeDeploy applies.

pub mod appspec;
pub mod deployment_config;
pub mod lifecycle;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::codedeploy::appspec::{AppSpec, Resource};
use crate::codedeploy::deployment_config::DeploymentConfig;
use crate::codedeploy::lifecycle::task_set;
use crate::ecs::traffic::TaskSetLabel;
use crate::emulator::{
    Application, ComputePlatform, Deployment, DeploymentGroup, DeploymentStatus, Emulator, EventStatus, Happening,
    LifecycleEventState, State, TargetState, TaskSetState, TaskSetStatus, new_id,
};
use crate::faults::ReportFault;
use crate::protocol::{ApiError, epoch_seconds};

/// Every operation served, as named in `X-Amz-Target: CodeDeploy_20141006.<Operation>`.
pub const OPERATIONS: &[&str] = &[
    "CreateApplication",
    "CreateDeploymentGroup",
    "GetDeploymentGroup",
    "GetApplicationRevision",
    "CreateDeployment",
    "GetDeployment",
    "ListDeploymentTargets",
    "GetDeploymentTarget",
    "BatchGetDeploymentTargets",
    "PutLifecycleEventHookExecutionStatus",
    "StopDeployment",
];

/// The service of CodeDeploy's `X-Amz-Target`s: `CodeDeploy_20141006.<Operation>`.
pub const TARGET_SERVICE: &str = "CodeDeploy_20141006";

/// Serves one operation as a client called it: noted in the calls, and answered as an injected
/// fault says (a hang, a denial, a failed report) before the operation itself runs.
pub(crate) async fn serve(emulator: &Emulator, operation: &str, input: &Value) -> Result<Value, ApiError> {
    emulator.answer_faults(operation, input.get("deploymentId").and_then(Value::as_str), None).await?;
    if operation == "PutLifecycleEventHookExecutionStatus"
        && let Some(fault) = emulator.next_report_fault()
    {
        return Err(injected(emulator, input, fault));
    }
    emulator.codedeploy(operation, input)
}

/// An injected report error, recorded like any other report.
fn injected(emulator: &Emulator, input: &Value, fault: ReportFault) -> ApiError {
    let error = fault.error();
    let field = |key: &str| input.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    emulator.record(
        Some(&field("deploymentId")),
        Happening::Report {
            event: String::new(),
            execution_id: field("lifecycleEventHookExecutionId"),
            status: field("status"),
            result: format!("{} (injected)", error.code),
        },
    );
    error
}

/// A deployment created with ids chosen beforehand (`POST /_local/deployments`), so that hook
/// events written before it existed, such as the repository's `events/*.json`, belong to it. The
/// hooks of the events given an execution id are not invoked by the emulator: whoever holds the
/// event delivers it (`cargo lambda invoke`, a hook in CLI mode), and the deployment waits for the
/// report as CodeDeploy does.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentWithIds {
    /// The deployment id: `d-` and nine of `[A-Z0-9]`, not used before.
    pub deployment_id: String,
    /// Execution ids by lifecycle event name (`AfterAllowTestTraffic`, ...), not used before.
    #[serde(default)]
    pub execution_ids: BTreeMap<String, String>,
    /// The CreateDeployment input.
    pub request: Map<String, Value>,
}

impl Emulator {
    /// Serves one CodeDeploy operation.
    pub fn codedeploy(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        let input =
            input.as_object().ok_or_else(|| ApiError::client("SerializationException", "expected a JSON object"))?;
        match operation {
            "CreateApplication" => self.create_application(input),
            "CreateDeploymentGroup" => self.create_deployment_group(input),
            "GetDeploymentGroup" => self.get_deployment_group(input),
            "GetApplicationRevision" => self.get_application_revision(input),
            "CreateDeployment" => self.create_deployment(input),
            "GetDeployment" => self.get_deployment(input),
            "ListDeploymentTargets" => self.list_deployment_targets(input),
            "GetDeploymentTarget" => self.get_deployment_target(input),
            "BatchGetDeploymentTargets" => self.batch_get_deployment_targets(input),
            "PutLifecycleEventHookExecutionStatus" => self.put_lifecycle_event_hook_execution_status(input),
            "StopDeployment" => self.stop_deployment(input),
            other => Err(ApiError::client("UnknownOperationException", format!("{other} is not served locally"))),
        }
    }

    fn create_application(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let name = application_name(input)?;
        let platform = match input.get("computePlatform").and_then(Value::as_str) {
            Some("Lambda") => ComputePlatform::Lambda,
            Some("ECS") => ComputePlatform::Ecs,
            Some(other) => {
                return Err(ApiError::client(
                    "InvalidComputePlatformException",
                    format!("computePlatform {other}: only Lambda and ECS are served locally"),
                ));
            }
            None => {
                return Err(ApiError::client(
                    "InvalidComputePlatformException",
                    "computePlatform defaults to Server, which is not served locally; use Lambda or ECS",
                ));
            }
        };
        let mut state = self.state();
        if state.applications.contains_key(&name) {
            return Err(ApiError::client("ApplicationAlreadyExistsException", format!("{name} already exists")));
        }
        let id = uuid::Uuid::new_v4().to_string();
        state.applications.insert(name, Application { id: id.clone(), platform, created: SystemTime::now() });
        Ok(json!({"applicationId": id}))
    }

    fn create_deployment_group(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let application = application_name(input)?;
        let group = group_name(input)?;
        let role = input.get("serviceRoleArn").and_then(Value::as_str).unwrap_or_default();
        if role.is_empty() {
            return Err(ApiError::client("RoleRequiredException", "serviceRoleArn is required"));
        }
        if !role.starts_with("arn:") {
            return Err(ApiError::client("InvalidRoleException", format!("{role} is not a role ARN")));
        }
        let mut state = self.state();
        let platform = application_platform(&state, &application)?;
        if let Some(name) = input.get("deploymentConfigName").and_then(Value::as_str) {
            config_for(name, platform)?;
        }
        if state.groups.contains_key(&(application.clone(), group.clone())) {
            return Err(ApiError::client("DeploymentGroupAlreadyExistsException", format!("{group} already exists")));
        }
        if platform == ComputePlatform::Ecs {
            let services = input.get("ecsServices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let [service] = services else {
                return Err(ApiError::client(
                    "InvalidECSServiceException",
                    "an ECS group needs exactly one ecsServices entry",
                ));
            };
            let key = ecs_service_key(service)?;
            if !state.ecs_services.contains_key(&key) {
                return Err(ApiError::client("InvalidECSServiceException", format!("ECS service {key} is not hosted")));
            }
            if let Some(given) = input.get("loadBalancerInfo") {
                check_load_balancer_info(&key, given)?;
            }
        }
        let alarm_config = input.get("alarmConfiguration");
        let alarms = alarm_config
            .and_then(|c| c.get("alarms"))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|a| a.get("name")?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let alarms_enabled = alarm_config.and_then(|c| c.get("enabled")).and_then(Value::as_bool).unwrap_or(false);
        let id = uuid::Uuid::new_v4().to_string();
        state.groups.insert(
            (application, group),
            DeploymentGroup {
                id: id.clone(),
                request: input.clone(),
                alarms,
                alarms_enabled,
                auto_rollback_events: auto_rollback_events(input.get("autoRollbackConfiguration")),
                last_attempted: None,
                last_successful: None,
            },
        );
        Ok(json!({"deploymentGroupId": id}))
    }

    fn get_deployment_group(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let application = application_name(input)?;
        let group_name = group_name(input)?;
        let state = self.state();
        let platform = application_platform(&state, &application)?;
        let group = deployment_group(&state, &application, &group_name)?;
        let mut info = group.request.clone();
        // Tags belong to the request only: DeploymentGroupInfo has no such member.
        info.remove("tags");
        info.insert("deploymentGroupId".into(), json!(group.id));
        info.insert("computePlatform".into(), json!(platform.as_str()));
        info.entry("deploymentConfigName").or_insert_with(|| json!(DeploymentConfig::default_for(platform).name));
        // Lambda and ECS deployments are always blue/green with traffic control.
        info.entry("deploymentStyle")
            .or_insert_with(|| json!({"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}));
        if platform == ComputePlatform::Ecs {
            let service = group.request.get("ecsServices").and_then(Value::as_array).and_then(|s| s.first());
            if let Some(service) = service {
                let key = ecs_service_key(service)?;
                let (cluster, name) = key.split_once(':').unwrap_or(("default", key.as_str()));
                info.insert("ecsServices".into(), json!([{"serviceName": name, "clusterName": cluster}]));
                info.insert("loadBalancerInfo".into(), load_balancer_info(&key));
            }
        }
        let summary = |id: &Option<String>| {
            id.as_ref().and_then(|id| state.deployments.get(id)).map(|d| {
                let mut summary =
                    json!({"deploymentId": d.id, "status": d.status, "createTime": epoch_seconds(d.created)});
                // AWS leaves absent members out rather than sending null.
                if let Some(completed) = d.completed {
                    summary["endTime"] = json!(epoch_seconds(completed));
                }
                summary
            })
        };
        if let Some(last) = summary(&group.last_attempted) {
            info.insert("lastAttemptedDeployment".into(), last);
        }
        if let Some(last) = summary(&group.last_successful) {
            info.insert("lastSuccessfulDeployment".into(), last);
        }
        Ok(json!({"deploymentGroupInfo": info}))
    }

    /// The revision a deployment of the application registered, found by its AppSpec content (or
    /// that content's SHA-256): the content itself, which GetDeployment leaves out, and when and by
    /// which groups it was deployed. CreateDeployment registers every revision here, as only
    /// AppSpecContent revisions are served.
    fn get_application_revision(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let application = application_name(input)?;
        let revision = input
            .get("revision")
            .filter(|r| !r.is_null())
            .ok_or_else(|| ApiError::client("RevisionRequiredException", "revision is required"))?;
        let state = self.state();
        application_platform(&state, &application)?;
        let sha256 = match revision.get("revisionType").and_then(Value::as_str) {
            Some("AppSpecContent") => {
                let content = revision.get("appSpecContent");
                let given = content.and_then(|c| c.get("sha256")).and_then(Value::as_str);
                let text = content.and_then(|c| c.get("content")).and_then(Value::as_str);
                match (given, text) {
                    (Some(sha256), Some(text)) if sha256_hex(text.as_bytes()) != sha256 => {
                        return Err(ApiError::client(
                            "InvalidRevisionException",
                            "appSpecContent.sha256 is not the SHA-256 of its content",
                        ));
                    }
                    (Some(sha256), _) => sha256.to_owned(),
                    (None, Some(text)) => sha256_hex(text.as_bytes()),
                    (None, None) => {
                        return Err(ApiError::client(
                            "InvalidRevisionException",
                            "appSpecContent needs its content or its sha256",
                        ));
                    }
                }
            }
            Some(kind @ ("S3" | "GitHub" | "String")) => {
                return Err(ApiError::client(
                    "RevisionDoesNotExistException",
                    format!("no {kind} revision is registered locally: only AppSpecContent revisions are served"),
                ));
            }
            Some(other) => {
                return Err(ApiError::client("InvalidRevisionException", format!("revisionType {other} is not one")));
            }
            None => return Err(ApiError::client("InvalidRevisionException", "revision.revisionType is required")),
        };
        let mut uses: Vec<&Deployment> = state
            .deployments
            .values()
            .filter(|d| d.application == application)
            .filter(|d| d.revision["appSpecContent"]["sha256"].as_str() == Some(sha256.as_str()))
            .collect();
        uses.sort_by_key(|d| d.created);
        let (Some(first), Some(last)) = (uses.first(), uses.last()) else {
            return Err(ApiError::client(
                "RevisionDoesNotExistException",
                format!("{application} has no AppSpecContent revision with SHA-256 {sha256}"),
            ));
        };
        let mut groups: Vec<&str> = Vec::new();
        for deployment in &uses {
            if !groups.contains(&deployment.group.as_str()) {
                groups.push(&deployment.group);
            }
        }
        Ok(json!({
            "applicationName": application,
            "revision": {
                "revisionType": "AppSpecContent",
                "appSpecContent": {"content": first.revision["appSpecContent"]["content"], "sha256": sha256},
            },
            "revisionInfo": {
                "deploymentGroups": groups,
                "registerTime": epoch_seconds(first.created),
                "firstUsedTime": epoch_seconds(first.created),
                "lastUsedTime": epoch_seconds(last.created),
            },
        }))
    }

    /// CreateDeployment with the ids `chosen` names, whose events the caller delivers.
    pub fn create_deployment_with_ids(&self, chosen: &DeploymentWithIds) -> Result<Value, ApiError> {
        self.start_deployment(&chosen.request, Some(chosen))
    }

    fn create_deployment(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        self.start_deployment(input, None)
    }

    fn start_deployment(
        &self,
        input: &Map<String, Value>,
        chosen: Option<&DeploymentWithIds>,
    ) -> Result<Value, ApiError> {
        let application = application_name(input)?;
        let group_name = match input.get("deploymentGroupName").and_then(Value::as_str) {
            Some(name) => checked_name(name, "InvalidDeploymentGroupNameException")?,
            None => {
                return Err(ApiError::client(
                    "DeploymentGroupNameRequiredException",
                    "Lambda and ECS deployments need a deploymentGroupName",
                ));
            }
        };
        if input.get("description").and_then(Value::as_str).is_some_and(|d| d.len() > 512) {
            return Err(ApiError::client("DescriptionTooLongException", "description is longer than 512 characters"));
        }
        let revision = input
            .get("revision")
            .ok_or_else(|| ApiError::client("RevisionRequiredException", "revision is required"))?;
        let content = match revision.get("revisionType").and_then(Value::as_str) {
            Some("AppSpecContent") => revision
                .get("appSpecContent")
                .and_then(|c| c.get("content"))
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::client("InvalidRevisionException", "appSpecContent.content is required"))?,
            Some(other) => {
                return Err(ApiError::client(
                    "InvalidRevisionException",
                    format!("revisionType {other}: only AppSpecContent revisions are served locally"),
                ));
            }
            None => return Err(ApiError::client("InvalidRevisionException", "revision.revisionType is required")),
        };
        let appspec = AppSpec::parse(content).map_err(|e| ApiError::client("InvalidRevisionException", e))?;
        let mut revision = revision.clone();
        revision["appSpecContent"]["sha256"] = json!(sha256_hex(content.as_bytes()));

        let mut state = self.state();
        let platform = application_platform(&state, &application)?;
        let group = deployment_group(&state, &application, &group_name)?;
        if appspec.platform() != platform {
            return Err(ApiError::client(
                "InvalidRevisionException",
                format!(
                    "the AppSpec deploys a {} resource but {application} is a {} application",
                    appspec.platform().as_str(),
                    platform.as_str()
                ),
            ));
        }
        if platform == ComputePlatform::Lambda {
            // The model's exceptions: "For Lambda deployments, false is expected."
            for (member, code) in [
                ("updateOutdatedInstancesOnly", "InvalidUpdateOutdatedInstancesOnlyValueException"),
                ("ignoreApplicationStopFailures", "InvalidIgnoreApplicationStopFailuresValueException"),
            ] {
                if input.get(member).and_then(Value::as_bool) == Some(true) {
                    return Err(ApiError::client(code, format!("{member} must be false for a Lambda deployment")));
                }
            }
        }
        let config_name = input
            .get("deploymentConfigName")
            .or_else(|| group.request.get("deploymentConfigName"))
            .and_then(Value::as_str);
        let config = match config_name {
            Some(name) => config_for(name, platform)?,
            None => DeploymentConfig::default_for(platform),
        };
        if let Some(active) = group.last_attempted.as_ref().and_then(|id| state.deployments.get(id))
            && !active.is_complete()
        {
            return Err(ApiError::client(
                "DeploymentLimitExceededException",
                format!("{} is already in progress for {group_name}", active.id),
            ));
        }
        let auto_rollback_events = match input.get("autoRollbackConfiguration") {
            Some(config) => auto_rollback_events(Some(config)),
            None => group.auto_rollback_events.clone(),
        };
        let target = target_for(&state, &appspec, group)?;
        let id = match chosen {
            Some(chosen) => checked_chosen_ids(&state, chosen, platform, &appspec)?,
            None => new_id(&mut state, "d-"),
        };
        let external_id = |name: &str| chosen.and_then(|c| c.execution_ids.get(name)).cloned();
        let events = platform
            .lifecycle()
            .iter()
            .map(|(name, is_hook)| LifecycleEventState {
                name,
                status: EventStatus::Pending,
                started: None,
                ended: None,
                hook: is_hook.then(|| appspec.hook_for(name).map(str::to_owned)).flatten(),
                execution_id: external_id(name),
                external: external_id(name).is_some(),
                diagnostics: None,
            })
            .collect();
        let deployment = Deployment {
            id: id.clone(),
            application: application.clone(),
            group: group_name.clone(),
            config,
            platform,
            status: DeploymentStatus::Created,
            error: None,
            rollback_message: None,
            created: SystemTime::now(),
            started: None,
            completed: None,
            revision,
            appspec,
            description: input.get("description").and_then(Value::as_str).map(str::to_owned),
            auto_rollback_events,
            events,
            target,
            stop_requested: None,
        };
        state.deployments.insert(id.clone(), deployment);
        if let Some(group) = state.groups.get_mut(&(application, group_name)) {
            group.last_attempted = Some(id.clone());
        }
        drop(state);
        self.record(
            Some(&id),
            Happening::DeploymentStatus { status: DeploymentStatus::Created, error_code: None, message: None },
        );
        let emulator = self.clone();
        let deployment_id = id.clone();
        tokio::spawn(async move { emulator.run_deployment(&deployment_id).await });
        Ok(json!({"deploymentId": id}))
    }

    fn get_deployment(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let state = self.state();
        let deployment = deployment(&state, input)?;
        Ok(json!({"deploymentInfo": deployment_info(deployment)}))
    }

    fn list_deployment_targets(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let state = self.state();
        let deployment = started_deployment(&state, input)?;
        if input.get("nextToken").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::client("InvalidNextTokenException", "this listing has a single page"));
        }
        let mut listed = true;
        let filters = input.get("targetFilters").and_then(Value::as_object).into_iter().flatten();
        for (name, values) in filters {
            let values: Vec<&str> = values.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            listed &= match name.as_str() {
                "TargetStatus" => values.contains(&target_status(deployment)),
                // Only EC2/on-premises instances carry a Blue or Green label; Lambda and ECS
                // targets match no label.
                "ServerInstanceLabel" => false,
                other => {
                    return Err(ApiError::client(
                        "InvalidTargetFilterNameException",
                        format!("{other} is not a target filter: use TargetStatus or ServerInstanceLabel"),
                    ));
                }
            };
        }
        let ids: Vec<String> = listed.then(|| deployment.target.target_id()).into_iter().collect();
        Ok(json!({"targetIds": ids}))
    }

    fn get_deployment_target(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let mut state = self.state();
        let deployment = started_deployment(&state, input)?;
        let target_id = match input.get("targetId").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id,
            _ => return Err(ApiError::client("DeploymentTargetIdRequiredException", "targetId is required")),
        };
        let answer = json!({"deploymentTarget": deployment_target(deployment, target_id)?});
        let id = deployment.id.clone();
        self.start_green_tasks(&mut state, &id);
        Ok(answer)
    }

    /// A slowly starting green task set (an injected fault) starts more tasks after each read.
    fn start_green_tasks(&self, state: &mut State, deployment_id: &str) {
        let Some(start) = self.faults().green_start else { return };
        if let Some(TargetState::Ecs { task_sets, .. }) =
            state.deployments.get_mut(deployment_id).map(|d| &mut d.target)
        {
            for green in task_sets.iter_mut().filter(|set| set.label == TaskSetLabel::Green) {
                green.running = (green.running + start.started_per_read).min(green.desired);
            }
        }
    }

    fn batch_get_deployment_targets(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let mut state = self.state();
        let deployment = started_deployment(&state, input)?;
        let ids = input.get("targetIds").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if ids.is_empty() {
            return Err(ApiError::client("DeploymentTargetIdRequiredException", "targetIds is required"));
        }
        if ids.len() != 1 {
            return Err(ApiError::client(
                "DeploymentTargetListSizeExceededException",
                "the target list of Lambda and ECS deployments must have exactly one item",
            ));
        }
        let id = ids[0]
            .as_str()
            .ok_or_else(|| ApiError::client("InvalidDeploymentTargetIdException", "target ids are strings"))?;
        let answer = json!({"deploymentTargets": [deployment_target(deployment, id)?]});
        let id = deployment.id.clone();
        self.start_green_tasks(&mut state, &id);
        Ok(answer)
    }

    fn put_lifecycle_event_hook_execution_status(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let execution_id = input.get("lifecycleEventHookExecutionId").and_then(Value::as_str).unwrap_or_default();
        let status = input.get("status").and_then(Value::as_str).unwrap_or_default().to_owned();
        let outcome = self.accept_report(input, execution_id, &status);
        let (deployment_id, event) = match &outcome {
            Ok((deployment_id, event)) => (Some(deployment_id.clone()), event.to_string()),
            Err(_) => (input.get("deploymentId").and_then(Value::as_str).map(str::to_owned), String::new()),
        };
        if deployment_id.is_some() {
            let result = match &outcome {
                Ok(_) => "accepted".to_owned(),
                Err(err) => err.code.to_owned(),
            };
            self.record(
                deployment_id.as_deref(),
                Happening::Report { event, execution_id: execution_id.to_owned(), status, result },
            );
        }
        outcome.map(|_| json!({"lifecycleEventHookExecutionId": execution_id}))
    }

    /// Checks a report in the order CodeDeploy does and, when it is accepted, completes the event.
    fn accept_report(
        &self,
        input: &Map<String, Value>,
        execution_id: &str,
        status: &str,
    ) -> Result<(String, &'static str), ApiError> {
        let mut state = self.state();
        let deployment_id = deployment(&state, input)?.id.clone();
        let Some((owner, index)) = state.executions.get(execution_id).cloned() else {
            return Err(ApiError::client(
                "InvalidLifecycleEventHookExecutionIdException",
                format!("{execution_id:?} is not a lifecycle event hook execution of {deployment_id}"),
            ));
        };
        if owner != deployment_id {
            return Err(ApiError::client(
                "InvalidLifecycleEventHookExecutionIdException",
                format!("{execution_id} belongs to another deployment, not {deployment_id}"),
            ));
        }
        let reported = match status {
            "Succeeded" => EventStatus::Succeeded,
            "Failed" => EventStatus::Failed,
            _ => {
                return Err(ApiError::client(
                    "InvalidLifecycleEventHookExecutionStatusException",
                    format!("status {status:?}: a hook may report only Succeeded or Failed"),
                ));
            }
        };
        let deployment = state.deployments.get_mut(&deployment_id).expect("execution ids point at live deployments");
        let complete = deployment.is_complete();
        let event = &mut deployment.events[index];
        if event.status != EventStatus::InProgress || complete {
            return Err(ApiError::client(
                "LifecycleEventAlreadyCompletedException",
                format!("{} of {deployment_id} has already completed ({})", event.name, event.status.as_str()),
            ));
        }
        event.status = reported;
        event.ended = Some(SystemTime::now());
        if reported == EventStatus::Failed {
            event.diagnostics = Some(format!("the hook {} reported Failed", event.hook.as_deref().unwrap_or("?")));
        }
        Ok((deployment_id, event.name))
    }

    fn stop_deployment(&self, input: &Map<String, Value>) -> Result<Value, ApiError> {
        let mut state = self.state();
        let id = deployment(&state, input)?.id.clone();
        let deployment = state.deployments.get_mut(&id).expect("just found");
        if deployment.is_complete() {
            return Err(ApiError::client(
                "DeploymentAlreadyCompletedException",
                format!("{id} has already completed ({})", deployment.status.as_str()),
            ));
        }
        // The first call starts the stop; later ones find it under way, as the API reference says.
        if deployment.stop_requested.is_some() {
            return Ok(json!({"status": "Succeeded", "statusMessage": "The deployment is stopping"}));
        }
        let auto_rollback = input.get("autoRollbackEnabled").and_then(Value::as_bool).unwrap_or(true);
        deployment.stop_requested = Some(auto_rollback);
        Ok(
            json!({"status": "Pending", "statusMessage": "Stopping the deployment; no further lifecycle events will start"}),
        )
    }
}

/// A name as CodeDeploy constrains it: 1..100 of `[A-Za-z0-9+=,.@_-]`.
fn checked_name(name: &str, invalid: &'static str) -> Result<String, ApiError> {
    let valid =
        (1..=100).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if valid { Ok(name.to_owned()) } else { Err(ApiError::client(invalid, format!("{name:?} is not a valid name"))) }
}

fn application_name(input: &Map<String, Value>) -> Result<String, ApiError> {
    match input.get("applicationName").and_then(Value::as_str) {
        Some(name) => checked_name(name, "InvalidApplicationNameException"),
        None => Err(ApiError::client("ApplicationNameRequiredException", "applicationName is required")),
    }
}

fn group_name(input: &Map<String, Value>) -> Result<String, ApiError> {
    match input.get("deploymentGroupName").and_then(Value::as_str) {
        Some(name) => checked_name(name, "InvalidDeploymentGroupNameException"),
        None => Err(ApiError::client("DeploymentGroupNameRequiredException", "deploymentGroupName is required")),
    }
}

fn application_platform(state: &State, application: &str) -> Result<ComputePlatform, ApiError> {
    state
        .applications
        .get(application)
        .map(|a| a.platform)
        .ok_or_else(|| ApiError::client("ApplicationDoesNotExistException", format!("No application {application}")))
}

fn deployment_group<'a>(state: &'a State, application: &str, group: &str) -> Result<&'a DeploymentGroup, ApiError> {
    state
        .groups
        .get(&(application.to_owned(), group.to_owned()))
        .ok_or_else(|| ApiError::client("DeploymentGroupDoesNotExistException", format!("No deployment group {group}")))
}

fn config_for(name: &str, platform: ComputePlatform) -> Result<DeploymentConfig, ApiError> {
    let config = DeploymentConfig::predefined(name).ok_or_else(|| {
        ApiError::client("DeploymentConfigDoesNotExistException", format!("No deployment configuration {name}"))
    })?;
    if config.platform != platform {
        return Err(ApiError::client(
            "InvalidDeploymentConfigNameException",
            format!("{name} is not for {} deployments", platform.as_str()),
        ));
    }
    Ok(config)
}

fn ecs_service_key(service: &Value) -> Result<String, ApiError> {
    let field = |key: &str| service.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (field("clusterName"), field("serviceName")) {
        (Some(cluster), Some(service)) => Ok(format!("{cluster}:{service}")),
        _ => {
            Err(ApiError::client("InvalidECSServiceException", "ecsServices entries need clusterName and serviceName"))
        }
    }
}

/// The load balancer CodeDeploy shifts the ECS service `cluster:service`'s traffic on: its blue
/// and green target groups and its production and test listeners, as ELBv2 serves them.
fn load_balancer_info(service: &str) -> Value {
    use crate::elbv2::{ListenerRole, listener_arn, target_group};
    json!({"targetGroupPairInfoList": [{
        "targetGroups": [
            {"name": target_group(service, TaskSetLabel::Blue).name},
            {"name": target_group(service, TaskSetLabel::Green).name},
        ],
        "prodTrafficRoute": {"listenerArns": [listener_arn(service, ListenerRole::Production)]},
        "testTrafficRoute": {"listenerArns": [listener_arn(service, ListenerRole::Test)]},
    }]})
}

/// A CreateDeploymentGroup `loadBalancerInfo` for an ECS group must name what stands in front of
/// the service here; what it leaves out is taken from there.
fn check_load_balancer_info(service: &str, given: &Value) -> Result<(), ApiError> {
    let hosted = load_balancer_info(service);
    let hosted_pair = &hosted["targetGroupPairInfoList"][0];
    let listed =
        |value: &Value, member: &str| value.get(member).and_then(Value::as_array).is_some_and(|l| !l.is_empty());
    if listed(given, "elbInfoList") || listed(given, "targetGroupInfoList") {
        return Err(ApiError::client(
            "InvalidLoadBalancerInfoException",
            "an ECS deployment group names its load balancer in targetGroupPairInfoList",
        ));
    }
    let Some(pairs) = given.get("targetGroupPairInfoList").and_then(Value::as_array) else { return Ok(()) };
    let mismatch = || {
        ApiError::client(
            "InvalidTargetGroupPairException",
            format!("the ECS service {service} is served here behind exactly this target group pair: {hosted_pair}"),
        )
    };
    let [pair] = pairs.as_slice() else { return Err(mismatch()) };
    let names = |pair: &Value| {
        let mut names: Vec<String> = pair["targetGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|group| group["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    };
    if pair.get("targetGroups").is_some() && names(pair) != names(hosted_pair) {
        return Err(mismatch());
    }
    for route in ["prodTrafficRoute", "testTrafficRoute"] {
        if let Some(arns) = pair.get(route).and_then(|r| r.get("listenerArns"))
            && arns != &hosted_pair[route]["listenerArns"]
        {
            return Err(mismatch());
        }
    }
    Ok(())
}

fn auto_rollback_events(config: Option<&Value>) -> Option<Vec<String>> {
    let config = config?;
    if !config.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return None;
    }
    let events = config.get("events").and_then(Value::as_array)?;
    Some(events.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

/// The target a new deployment moves, checked against what the emulator hosts.
fn target_for(state: &State, appspec: &AppSpec, group: &DeploymentGroup) -> Result<TargetState, ApiError> {
    match &appspec.resource {
        Resource::Lambda { name, alias, current_version, target_version } => {
            let function = state.functions.get(name).ok_or_else(|| {
                ApiError::client(
                    "InvalidRevisionException",
                    format!("the AppSpec names function {name}, which is not hosted"),
                )
            })?;
            for version in [current_version, target_version] {
                if !function.versions.contains_key(version) {
                    return Err(ApiError::client(
                        "InvalidRevisionException",
                        format!("function {name} has no version {version}"),
                    ));
                }
            }
            let Some(alias_config) = function.aliases.get(alias) else {
                return Err(ApiError::client(
                    "InvalidRevisionException",
                    format!("function {name} has no alias {alias}"),
                ));
            };
            if &alias_config.version != current_version {
                return Err(ApiError::client(
                    "InvalidRevisionException",
                    format!(
                        "CurrentVersion {current_version} does not match alias {alias}, which points at {}",
                        alias_config.version
                    ),
                ));
            }
            Ok(TargetState::Lambda {
                function: name.clone(),
                alias: alias.clone(),
                current: current_version.clone(),
                target: target_version.clone(),
                weight: 0.0,
            })
        }
        Resource::Ecs { task_definition, .. } => {
            if !state.task_definitions.contains_key(task_definition) {
                return Err(ApiError::client(
                    "InvalidRevisionException",
                    format!("the AppSpec names task definition {task_definition}, which is not hosted"),
                ));
            }
            let services = group.request.get("ecsServices").and_then(Value::as_array);
            let service = services.and_then(|s| s.first()).ok_or_else(|| {
                ApiError::client("InvalidECSServiceException", "the deployment group names no ECS service")
            })?;
            let service = ecs_service_key(service)?;
            let blue = state.ecs_services.get(&service).ok_or_else(|| {
                ApiError::client("InvalidECSServiceException", format!("ECS service {service} is not hosted"))
            })?;
            // The original task set is there from the start, so BeforeInstall hooks see it.
            let blue = task_set(
                "ecs-svc/blue",
                TaskSetLabel::Blue,
                &blue.task_definition,
                blue.desired_count,
                TaskSetStatus::Primary,
                100.0,
            );
            Ok(TargetState::Ecs { task_sets: vec![blue], service, green_task_definition: task_definition.clone() })
        }
    }
}

/// The deployment an input's `deploymentId` names, checked as CodeDeploy checks it.
fn deployment<'a>(state: &'a State, input: &Map<String, Value>) -> Result<&'a Deployment, ApiError> {
    let id = match input.get("deploymentId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id,
        _ => return Err(ApiError::client("DeploymentIdRequiredException", "deploymentId is required")),
    };
    if !is_deployment_id(id) {
        return Err(ApiError::client("InvalidDeploymentIdException", format!("{id:?} is not a deployment id")));
    }
    state
        .deployments
        .get(id)
        .ok_or_else(|| ApiError::client("DeploymentDoesNotExistException", format!("Deployment {id} does not exist")))
}

/// Whether `id` looks like CodeDeploy's deployment ids: `d-` and nine of `[A-Z0-9]`.
fn is_deployment_id(id: &str) -> bool {
    id.len() == 11 && id.starts_with("d-") && id[2..].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The chosen deployment id, once it and the execution ids are known to be well formed, unused,
/// and the execution ids name hook events this deployment's appspec wires.
fn checked_chosen_ids(
    state: &State,
    chosen: &DeploymentWithIds,
    platform: ComputePlatform,
    appspec: &AppSpec,
) -> Result<String, ApiError> {
    let id = &chosen.deployment_id;
    if !is_deployment_id(id) {
        return Err(ApiError::client("InvalidDeploymentIdException", format!("{id:?} is not a deployment id")));
    }
    if state.deployments.contains_key(id) {
        return Err(ApiError::client("InvalidDeploymentIdException", format!("{id} already exists")));
    }
    let used: Vec<&String> = state
        .executions
        .keys()
        .chain(state.deployments.values().flat_map(|d| d.events.iter().filter_map(|e| e.execution_id.as_ref())))
        .collect();
    let mut seen = Vec::new();
    for (event, execution_id) in &chosen.execution_ids {
        let invalid = |message: String| ApiError::client("InvalidLifecycleEventHookExecutionIdException", message);
        if !platform.lifecycle().iter().any(|(name, is_hook)| *is_hook && name == event) {
            return Err(invalid(format!("{event} is not a hook event of a {} deployment", platform.as_str())));
        }
        if appspec.hook_for(event).is_none() {
            return Err(invalid(format!("the AppSpec names no hook for {event}")));
        }
        if execution_id.is_empty() || used.contains(&execution_id) || seen.contains(&execution_id) {
            return Err(invalid(format!("execution id {execution_id:?} of {event} is empty or already used")));
        }
        seen.push(execution_id);
    }
    Ok(id.clone())
}

fn started_deployment<'a>(state: &'a State, input: &Map<String, Value>) -> Result<&'a Deployment, ApiError> {
    let deployment = deployment(state, input)?;
    if deployment.started.is_none() {
        return Err(ApiError::client("DeploymentNotStartedException", format!("{} has not started", deployment.id)));
    }
    Ok(deployment)
}

fn deployment_info(d: &Deployment) -> Value {
    let count = |status: EventStatus| d.events.iter().filter(|e| e.status == status).count();
    let mut info = json!({
        "applicationName": d.application,
        "deploymentGroupName": d.group,
        "deploymentConfigName": d.config.name,
        "deploymentId": d.id,
        "status": d.status,
        "createTime": epoch_seconds(d.created),
        "creator": "user",
        "computePlatform": d.platform.as_str(),
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "ignoreApplicationStopFailures": false,
        "updateOutdatedInstancesOnly": false,
        "deploymentOverview": {
            "Pending": count(EventStatus::Pending), "InProgress": count(EventStatus::InProgress),
            "Succeeded": count(EventStatus::Succeeded), "Failed": count(EventStatus::Failed),
            "Skipped": count(EventStatus::Skipped), "Ready": 0,
        },
    });
    let mut revision = d.revision.clone();
    // GetDeployment never returns the AppSpec content (the API reference says it is always null).
    if let Some(content) = revision.get_mut("appSpecContent").and_then(Value::as_object_mut) {
        content.remove("content");
    }
    info["revision"] = revision;
    if let Some(description) = &d.description {
        info["description"] = json!(description);
    }
    if let Some(started) = d.started {
        info["startTime"] = json!(epoch_seconds(started));
    }
    if let Some(completed) = d.completed {
        info["completeTime"] = json!(epoch_seconds(completed));
    }
    if let Some((code, message)) = &d.error {
        info["errorInformation"] = json!({"code": code, "message": message});
    }
    match &d.auto_rollback_events {
        Some(events) => info["autoRollbackConfiguration"] = json!({"enabled": true, "events": events}),
        None => info["autoRollbackConfiguration"] = json!({"enabled": false}),
    }
    if let Some(message) = &d.rollback_message {
        info["rollbackInfo"] = json!({"rollbackMessage": message});
    }
    info
}

/// The status of a deployment's one target.
fn target_status(d: &Deployment) -> &'static str {
    match d.status {
        DeploymentStatus::Succeeded => "Succeeded",
        DeploymentStatus::Failed | DeploymentStatus::Stopped => "Failed",
        DeploymentStatus::Created | DeploymentStatus::InProgress => "InProgress",
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn deployment_target(d: &Deployment, target_id: &str) -> Result<Value, ApiError> {
    if target_id != d.target.target_id() {
        return Err(ApiError::client(
            "DeploymentTargetDoesNotExistException",
            format!("target {target_id} does not belong to {}", d.id),
        ));
    }
    let target_status = target_status(d);
    let events: Vec<Value> = d
        .events
        .iter()
        .map(|e| {
            let mut event = json!({"lifecycleEventName": e.name, "status": e.status});
            if let Some(started) = e.started {
                event["startTime"] = json!(epoch_seconds(started));
            }
            if let Some(ended) = e.ended {
                event["endTime"] = json!(epoch_seconds(ended));
            }
            if let Some(message) = &e.diagnostics {
                event["diagnostics"] = json!({"errorCode": "ScriptFailed", "message": message});
            }
            event
        })
        .collect();
    let updated = epoch_seconds(d.completed.unwrap_or_else(SystemTime::now));
    let arn_base = "arn:aws:lambda:us-east-1:123456789012";
    Ok(match &d.target {
        TargetState::Lambda { function, alias, current, target, weight } => json!({
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {
                "deploymentId": d.id, "targetId": target_id, "targetArn": format!("{arn_base}:function:{function}:{alias}"),
                "status": target_status, "lastUpdatedAt": updated, "lifecycleEvents": events,
                "lambdaFunctionInfo": {"functionName": function, "functionAlias": alias, "currentVersion": current,
                    "targetVersion": target, "targetVersionWeight": weight},
            }
        }),
        TargetState::Ecs { service, task_sets, .. } => {
            let (cluster, name) = service.split_once(':').unwrap_or(("default", service));
            json!({
                "deploymentTargetType": "ECSTarget",
                "ecsTarget": {
                    "deploymentId": d.id, "targetId": target_id,
                    "targetArn": format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{name}"),
                    "status": target_status, "lastUpdatedAt": updated, "lifecycleEvents": events,
                    "taskSetsInfo": task_sets.iter().map(|set| task_set_info(service, set)).collect::<Vec<_>>(),
                }
            })
        }
    })
}

fn task_set_info(service: &str, set: &TaskSetState) -> Value {
    // `identifer` is the model's spelling.
    json!({
        "identifer": set.id, "desiredCount": set.desired, "pendingCount": set.desired - set.running,
        "runningCount": set.running, "status": set.status, "trafficWeight": set.weight,
        "targetGroup": {"name": crate::elbv2::target_group(service, set.label).name}, "taskSetLabel": set.label,
    })
}
