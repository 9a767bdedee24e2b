//! Running a service deployment as ECS does for BLUE_GREEN, LINEAR and CANARY: RECONCILE_SERVICE,
//! PRE_SCALE_UP, SCALE_UP (the target revision's tasks start in the other target group),
//! POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, then for each production step
//! PRE_PRODUCTION_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT (with the step's bake time after it),
//! POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME and CLEAN_UP (the source revision stops).
//!
//! At each hook stage every lifecycle hook naming it is invoked synchronously through the local
//! Lambda, and its return value decides: `SUCCEEDED` goes on, `IN_PROGRESS` invokes it again after
//! its `callBackDelay` (scaled) with its `hookDetails` merged over the configured ones, and
//! `FAILED`, any other answer or a function error rolls the deployment back, as an alarm of
//! `alarms.alarmNames` in ALARM does when `alarms.rollback` is set. A rollback shifts the test and
//! production listeners back to the source revision, invoking hooks at TEST_TRAFFIC_SHIFT and
//! PRODUCTION_TRAFFIC_SHIFT with the target's weight at 0 (their answers are recorded, not
//! obeyed), and stops the target revision's tasks.
//!
//! AWS says that a rollback runs "the lifecycle hooks for" those two stages, not which hooks: the
//! ones configured at those stages, or every hook of the deployment. The local ECS invokes every
//! hook of the deployment at both, which holds both readings: a hook that does not fight this
//! rollback does not fight either.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::TaskSet;
use super::service::{DeploymentStatus, HookExecution, HookStage, LifecycleHook, Rollback, Stage, Strategy};
use super::service::{RecordEntry, ServiceDeploymentHappening as Happening};
use crate::elbv2::ListenerRole;
use crate::emulator::Emulator;
use crate::lambda::runtime::InvokeOutcome;

/// How often waits look at alarms.
const POLL: Duration = Duration::from_millis(20);

/// ECS's `callBackDelay` when an `IN_PROGRESS` answer gives none.
const DEFAULT_CALLBACK_DELAY_SECONDS: f64 = 30.0;

/// Why a deployment rolls back.
#[derive(Debug)]
struct Failure(String);

/// What a deployment moves, read once at its start.
#[derive(Debug, Clone)]
struct Plan {
    arn: String,
    service: String,
    service_arn: String,
    balancer: String,
    source_group: usize,
    target_group: usize,
    production: ListenerRole,
    test: Option<ListenerRole>,
    task_definition: String,
    source_revision: String,
    target_revision: String,
    strategy: Strategy,
    bake_minutes: u32,
    hooks: Vec<LifecycleHook>,
    /// Alarms that roll the deployment back.
    alarms: Vec<String>,
}

/// One hook's answer, as the engine reads it.
#[derive(Debug)]
enum Answer {
    Succeeded,
    Failed(String),
    InProgress { delay: Duration, details: Option<Map<String, Value>> },
}

impl Emulator {
    /// Runs the service deployment `arn` in the background.
    pub(crate) fn start_service_deployment(&self, arn: &str) {
        let emulator = self.downgrade();
        let arn = arn.to_owned();
        tokio::spawn(async move {
            if let Some(emulator) = emulator.upgrade() {
                emulator.run_service_deployment(&arn).await;
            }
        });
    }

    async fn run_service_deployment(&self, arn: &str) {
        let Some(plan) = self.plan(arn) else { return };
        self.set_status(&plan, DeploymentStatus::InProgress, None);
        let mut scaled_up = false;
        match self.forward(&plan, &mut scaled_up).await {
            Ok(()) => self.clean_up(&plan).await,
            Err(Failure(reason)) => self.roll_back(&plan, reason, scaled_up).await,
        }
    }

    fn plan(&self, arn: &str) -> Option<Plan> {
        let state = self.state();
        let deployment = state.native.deployments.get(arn)?;
        let service = state.native.services.get(&deployment.service)?;
        let target = state.native.revisions.get(&deployment.target.arn)?;
        let lb = &target.load_balancer;
        let configuration = &deployment.configuration;
        let production = lb.production_role;
        let other = match production {
            ListenerRole::Production => ListenerRole::Test,
            ListenerRole::Test => ListenerRole::Production,
        };
        Some(Plan {
            arn: arn.to_owned(),
            service: deployment.service.clone(),
            service_arn: deployment.service_arn.clone(),
            balancer: lb.balancer.clone(),
            source_group: service.current_group,
            target_group: target.group,
            production,
            test: lb.has_test_rule.then_some(other),
            task_definition: target.task_definition.clone(),
            source_revision: deployment.sources.first().map(|s| s.arn.clone()).unwrap_or_default(),
            target_revision: target.arn.clone(),
            strategy: configuration.strategy,
            bake_minutes: configuration.bake_minutes,
            hooks: configuration.hooks.clone(),
            alarms: configuration
                .alarms
                .as_ref()
                .filter(|a| a.enable && a.rollback)
                .map(|a| a.names.clone())
                .unwrap_or_default(),
        })
    }

    async fn forward(&self, plan: &Plan, scaled_up: &mut bool) -> Result<(), Failure> {
        let none = json!({});
        for stage in [HookStage::ReconcileService, HookStage::PreScaleUp] {
            self.enter(plan, Stage::Hook(stage))?;
            self.run_hooks(plan, stage, &none, &none, false).await?;
        }
        self.enter(plan, Stage::ScaleUp)?;
        self.scale_up(plan).await?;
        *scaled_up = true;
        self.enter(plan, Stage::Hook(HookStage::PostScaleUp))?;
        self.run_hooks(plan, HookStage::PostScaleUp, &none, &none, false).await?;

        self.enter(plan, Stage::Hook(HookStage::TestTrafficShift))?;
        if let Some(test) = plan.test {
            self.shift_listener(plan, test, 100.0).await?;
        }
        let test_weights = self.weights_at(plan, 100.0);
        self.run_hooks(plan, HookStage::TestTrafficShift, &test_weights, &none, false).await?;
        self.enter(plan, Stage::Hook(HookStage::PostTestTrafficShift))?;
        self.run_hooks(plan, HookStage::PostTestTrafficShift, &none, &none, false).await?;

        for (percent, bake_minutes) in plan.strategy.production_steps() {
            self.enter(plan, Stage::Hook(HookStage::PreProductionTrafficShift))?;
            self.run_hooks(plan, HookStage::PreProductionTrafficShift, &none, &none, false).await?;
            self.enter(plan, Stage::Hook(HookStage::ProductionTrafficShift))?;
            self.shift_listener(plan, plan.production, percent).await?;
            let production_weights = self.weights_at(plan, percent);
            self.run_hooks(plan, HookStage::ProductionTrafficShift, &none, &production_weights, false).await?;
            self.bake(plan, Duration::from_secs(u64::from(bake_minutes) * 60)).await?;
        }
        self.enter(plan, Stage::Hook(HookStage::PostProductionTrafficShift))?;
        self.run_hooks(plan, HookStage::PostProductionTrafficShift, &none, &none, false).await?;
        self.enter(plan, Stage::BakeTime)?;
        self.bake(plan, Duration::from_secs(u64::from(plan.bake_minutes) * 60)).await
    }

    /// SCALE_UP: the target revision's tasks start and register in the target group.
    async fn scale_up(&self, plan: &Plan) -> Result<(), Failure> {
        let process = self.state().task_definitions.get(&plan.task_definition).cloned();
        let process = process.ok_or_else(|| Failure(format!("no task definition {}", plan.task_definition)))?;
        let tasks = TaskSet::start(&plan.task_definition, &process)
            .await
            .map_err(|err| Failure(format!("the tasks of {} did not start: {err}", plan.task_definition)))?;
        let mut balancers = self.inner.balancers.lock().await;
        let balancer =
            balancers.get_mut(&plan.balancer).ok_or_else(|| Failure(format!("no load balancer {}", plan.balancer)))?;
        balancer.register(plan.target_group, tasks).await;
        drop(balancers);
        self.update_deployment(&plan.arn, |d| d.target.running = d.target.requested);
        Ok(())
    }

    /// `{source: 100 - percent, target: percent}`, by revision ARN.
    fn weights_at(&self, plan: &Plan, percent: f64) -> Value {
        let mut weights = Map::new();
        if !plan.source_revision.is_empty() {
            weights.insert(plan.source_revision.clone(), json!(100.0 - percent));
        }
        weights.insert(plan.target_revision.clone(), json!(percent));
        Value::Object(weights)
    }

    /// Moves `percent` of `role`'s requests to the target revision, and records it.
    async fn shift_listener(&self, plan: &Plan, role: ListenerRole, percent: f64) -> Result<(), Failure> {
        let mut balancers = self.inner.balancers.lock().await;
        let balancer =
            balancers.get_mut(&plan.balancer).ok_or_else(|| Failure(format!("no load balancer {}", plan.balancer)))?;
        balancer.shift(role, plan.target_group, percent);
        drop(balancers);
        let production = role == plan.production;
        self.update_deployment(&plan.arn, |d| {
            for source in &mut d.sources {
                if production {
                    source.production_weight = 100.0 - percent
                } else {
                    source.test_weight = 100.0 - percent
                }
            }
            if production { d.target.production_weight = percent } else { d.target.test_weight = percent }
        });
        let route = if production { "production" } else { "test" };
        self.record_service_deployment(
            &plan.arn,
            Happening::Weights { route, source: 100.0 - percent, target: percent },
        );
        Ok(())
    }

    /// Waits `minutes` of AWS time, scaled, rolling back if an alarm goes off.
    async fn bake(&self, plan: &Plan, wait: Duration) -> Result<(), Failure> {
        let until = Instant::now() + self.scale().apply(wait);
        loop {
            self.check_alarms(plan)?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(until - now)).await;
        }
    }

    /// An alarm of the deployment in ALARM, as a failure.
    fn check_alarms(&self, plan: &Plan) -> Result<(), Failure> {
        let raised = {
            let state = self.state();
            plan.alarms.iter().find(|alarm| {
                state.alarms_raised.contains(*alarm)
                    || self.alarm_state(alarm) == Some(crate::cloudwatch::alarms::AlarmState::Alarm)
            })
        }
        .cloned();
        let Some(alarm) = raised else { return Ok(()) };
        self.update_deployment(&plan.arn, |d| {
            if !d.triggered_alarms.contains(&alarm) {
                d.triggered_alarms.push(alarm.clone());
            }
        });
        Err(Failure(format!("CloudWatch alarm {alarm} went into ALARM")))
    }

    /// Enters `stage`, unless an alarm has gone off.
    fn enter(&self, plan: &Plan, stage: Stage) -> Result<(), Failure> {
        self.check_alarms(plan)?;
        self.update_deployment(&plan.arn, |d| d.stage = Some(stage));
        self.record_service_deployment(&plan.arn, Happening::Stage { stage: stage.as_str() });
        Ok(())
    }

    /// Invokes every hook of `stage`, each until it answers other than `IN_PROGRESS`. In a
    /// rollback, every hook of the deployment is invoked, and answers are recorded only.
    async fn run_hooks(
        &self,
        plan: &Plan,
        stage: HookStage,
        test_weights: &Value,
        production_weights: &Value,
        rollback: bool,
    ) -> Result<(), Failure> {
        for hook in plan.hooks.iter().filter(|hook| rollback || hook.stages.contains(&stage)) {
            let execution_id = uuid::Uuid::new_v4().to_string();
            self.set_hook_execution(plan, hook, &execution_id, "IN_PROGRESS");
            let mut details = hook.hook_details.clone().unwrap_or_default();
            for attempt in 1.. {
                let payload = json!({
                    "executionId": execution_id,
                    "lifecycleStage": stage.as_str(),
                    "resourceArn": plan.arn,
                    "executionDetails": {
                        "serviceArn": plan.service_arn,
                        "targetServiceRevisionArn": plan.target_revision,
                        "testTrafficWeights": test_weights,
                        "productionTrafficWeights": production_weights,
                    },
                    "hookDetails": details,
                });
                let started = Instant::now();
                let (answer, answered) = self.invoke_hook(hook, &payload).await;
                let outcome = match &answer {
                    Answer::Succeeded => "SUCCEEDED",
                    Answer::InProgress { .. } => "IN_PROGRESS",
                    Answer::Failed(_) => "FAILED",
                };
                self.record_service_deployment(
                    &plan.arn,
                    Happening::HookInvocation {
                        stage: stage.as_str(),
                        hook: hook.hook_target_arn.clone(),
                        execution_id: execution_id.clone(),
                        attempt,
                        rollback,
                        payload,
                        answer: answered,
                        outcome,
                        reason: match &answer {
                            Answer::Failed(reason) => Some(reason.clone()),
                            _ => None,
                        },
                        duration_ms: started.elapsed().as_millis() as u64,
                    },
                );
                match answer {
                    Answer::Succeeded => {
                        self.set_hook_execution(plan, hook, &execution_id, "SUCCEEDED");
                        break;
                    }
                    Answer::Failed(reason) => {
                        self.set_hook_execution(plan, hook, &execution_id, "FAILED");
                        if rollback {
                            break;
                        }
                        return Err(Failure(format!("the {} hook {} {reason}", stage.as_str(), hook.hook_target_arn)));
                    }
                    Answer::InProgress { delay, details: returned } => {
                        details.extend(returned.unwrap_or_default());
                        if rollback {
                            tokio::time::sleep(self.scale().apply(delay)).await;
                        } else {
                            self.bake(plan, delay).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One synchronous invocation of `hook`: its answer as the engine reads it, and as it came.
    async fn invoke_hook(&self, hook: &LifecycleHook, payload: &Value) -> (Answer, Value) {
        let response = match self.invoke(&hook.hook_target_arn, None, Bytes::from(payload.to_string())).await {
            Ok(response) => response,
            Err(err) => return (Answer::Failed(format!("could not be invoked: {}", err.message)), Value::Null),
        };
        let text = String::from_utf8_lossy(&response.invocation.payload).into_owned();
        let answered = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if response.invocation.outcome != InvokeOutcome::Response {
            let kind = match &response.invocation.outcome {
                InvokeOutcome::FunctionError { error_type } => format!("a function error ({error_type})"),
                InvokeOutcome::Timeout => "a timeout".to_owned(),
                other => format!("{other:?}"),
            };
            return (Answer::Failed(format!("ended in {kind}")), answered);
        }
        let answer = match answered.get("hookStatus").and_then(Value::as_str) {
            Some("SUCCEEDED") => Answer::Succeeded,
            Some("FAILED") => Answer::Failed("answered FAILED".to_owned()),
            Some("IN_PROGRESS") => {
                let delay = match answered.get("callBackDelay") {
                    None => Some(DEFAULT_CALLBACK_DELAY_SECONDS),
                    Some(value) => value.as_f64().filter(|seconds| *seconds >= 0.0),
                };
                let details = match answered.get("hookDetails") {
                    None => Some(None),
                    Some(Value::Object(details)) => Some(Some(details.clone())),
                    Some(_) => None,
                };
                match (delay, details) {
                    (Some(delay), Some(details)) => {
                        Answer::InProgress { delay: Duration::from_secs_f64(delay), details }
                    }
                    (None, _) => Answer::Failed("answered IN_PROGRESS with an invalid callBackDelay".to_owned()),
                    (_, None) => {
                        Answer::Failed("answered IN_PROGRESS with hookDetails that are not an object".to_owned())
                    }
                }
            }
            Some(other) => Answer::Failed(format!("answered the invalid hookStatus {other:?}")),
            None => Answer::Failed("answered without a hookStatus".to_owned()),
        };
        (answer, answered)
    }

    fn set_hook_execution(&self, plan: &Plan, hook: &LifecycleHook, execution_id: &str, status: &'static str) {
        self.update_deployment(&plan.arn, |d| {
            d.hook_executions.retain(|e| e.target_arn != hook.hook_target_arn);
            d.hook_executions.push(HookExecution {
                hook_id: execution_id.to_owned(),
                target_arn: hook.hook_target_arn.clone(),
                status,
            });
        });
    }

    /// CLEAN_UP: the source revision's tasks stop; the target revision is the service's now.
    async fn clean_up(&self, plan: &Plan) {
        if self.enter(plan, Stage::CleanUp).is_err() {
            // An alarm between BAKE_TIME and CLEAN_UP still rolls back: nothing has stopped yet.
            let reason =
                self.state().native.deployments.get(&plan.arn).and_then(|d| d.triggered_alarms.last().cloned());
            let reason = format!("CloudWatch alarm {} went into ALARM", reason.unwrap_or_default());
            return self.roll_back(plan, reason, true).await;
        }
        if let Some(balancer) = self.inner.balancers.lock().await.get_mut(&plan.balancer) {
            balancer.deregister(plan.source_group).await;
            balancer.set_primary(plan.target_group);
        }
        {
            let mut state = self.state();
            if let Some(service) = state.native.services.get_mut(&plan.service) {
                service.current_revision.clone_from(&plan.target_revision);
                service.current_group = plan.target_group;
            }
            if let Some(d) = state.native.deployments.get_mut(&plan.arn) {
                for source in &mut d.sources {
                    source.running = 0;
                }
            }
        }
        self.set_status(plan, DeploymentStatus::Successful, Some("The service deployment succeeded.".to_owned()));
    }

    /// Shifts both listeners back to the source revision (invoking every hook at each traffic
    /// shift stage, with the target at 0) and stops the target revision's tasks.
    async fn roll_back(&self, plan: &Plan, reason: String, scaled_up: bool) {
        self.update_deployment(&plan.arn, |d| {
            d.rollback = Some(Rollback {
                reason: reason.clone(),
                started: SystemTime::now(),
                revision_arn: plan.source_revision.clone(),
            });
        });
        self.set_status(plan, DeploymentStatus::RollbackInProgress, Some(reason.clone()));
        self.record_service_deployment(&plan.arn, Happening::Rollback { reason: reason.clone() });
        let none = json!({});
        let back = self.weights_at(plan, 0.0);
        let mut result = Ok(());
        if scaled_up {
            let shifts = [
                (plan.test, HookStage::TestTrafficShift, &back, &none),
                (Some(plan.production), HookStage::ProductionTrafficShift, &none, &back),
            ];
            for (role, stage, test_weights, production_weights) in shifts {
                self.update_deployment(&plan.arn, |d| d.stage = Some(Stage::Hook(stage)));
                self.record_service_deployment(&plan.arn, Happening::Stage { stage: stage.as_str() });
                if let Some(role) = role {
                    result = result.and(self.shift_listener(plan, role, 0.0).await);
                }
                // Answers are recorded, not obeyed: a rollback does not stop for a hook.
                let _ = self.run_hooks(plan, stage, test_weights, production_weights, true).await;
            }
        }
        if let Some(balancer) = self.inner.balancers.lock().await.get_mut(&plan.balancer) {
            balancer.deregister(plan.target_group).await;
        }
        self.update_deployment(&plan.arn, |d| d.target.running = 0);
        match result {
            Ok(()) => self.set_status(plan, DeploymentStatus::RollbackSuccessful, Some(reason)),
            Err(Failure(why)) => {
                self.set_status(plan, DeploymentStatus::RollbackFailed, Some(format!("{reason}; rolling back: {why}")));
            }
        }
    }

    fn set_status(&self, plan: &Plan, status: DeploymentStatus, reason: Option<String>) {
        self.update_deployment(&plan.arn, |d| {
            d.status = status;
            let now = SystemTime::now();
            if status == DeploymentStatus::InProgress {
                d.started = Some(now);
            }
            if status.is_final() {
                d.finished = Some(now);
            }
            if reason.is_some() {
                d.status_reason.clone_from(&reason);
            }
        });
        self.record_service_deployment(&plan.arn, Happening::Status { status: status.as_str(), reason });
    }

    fn update_deployment(&self, arn: &str, change: impl FnOnce(&mut super::service::ServiceDeployment)) {
        if let Some(deployment) = self.state().native.deployments.get_mut(arn) {
            change(deployment);
            deployment.updated = SystemTime::now();
        }
    }

    fn record_service_deployment(&self, arn: &str, what: Happening) {
        let entry = RecordEntry { at_ms: self.now_ms(), service_deployment_arn: arn.to_owned(), what };
        self.state().native.record.push(entry);
    }

    /// Everything that happened to service deployment `arn`, in order.
    pub fn service_deployment_record(&self, arn: &str) -> Vec<RecordEntry> {
        let state = self.state();
        state.native.record.iter().filter(|e| e.service_deployment_arn == arn).cloned().collect()
    }

    /// Waits until service deployment `arn` has ended, for at most `limit`; says whether it did.
    pub async fn wait_until_service_deployment_ends(&self, arn: &str, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.state().native.deployments.get(arn).is_some_and(|d| d.status.is_final()) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
