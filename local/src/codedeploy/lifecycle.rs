//! Running a deployment: lifecycle events in order, hooks invoked asynchronously and awaited up
//! to the (scaled) one-hour limit, traffic shifted by the deployment configuration, and traffic
//! put back when a later event fails, the deployment is stopped, or an alarm goes off.
//!
//! Rules, as AWS documents them: a BeforeInstall failure fails the deployment without a rollback
//! (nothing has moved yet); any later failure, an alarm, or a stop with auto rollback puts traffic
//! back on the current version (Lambda) or blue (ECS). Whether the group enables auto rollback
//! only decides how the rollback is described; no separate rollback deployment is created.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;

use crate::ecs::TaskSet;
use crate::ecs::traffic::TaskSetLabel;
use crate::emulator::{
    DeploymentStatus, Emulator, EventStatus, HOOK_REPORT_LIMIT, Happening, TargetState, TaskSetState, TaskSetStatus,
};

/// How often waits look at reports, stops and alarms.
const POLL: Duration = Duration::from_millis(20);

/// Why a deployment ended early.
#[derive(Debug)]
enum Interruption {
    /// A lifecycle event failed.
    Failed { code: &'static str, message: String },
    /// StopDeployment was called.
    Stopped { auto_rollback: bool },
    /// An alarm of the group went off.
    Alarm(String),
    /// An alarm of the group has no state to read: CloudWatch has no alarm of that name, and the
    /// group does not set `ignorePollAlarmFailure`.
    AlarmUnavailable(String),
}

impl Emulator {
    /// Runs deployment `id` to its end.
    pub(crate) async fn run_deployment(&self, id: &str) {
        self.update(id, |d| {
            d.status = DeploymentStatus::InProgress;
            d.started = Some(SystemTime::now());
        });
        self.record(
            Some(id),
            Happening::DeploymentStatus { status: DeploymentStatus::InProgress, error_code: None, message: None },
        );
        let event_count = self.read(id, |d| d.events.len());
        for index in 0..event_count {
            if let Some(interruption) = self.interruption(id) {
                return self.end_early(id, index, interruption).await;
            }
            let (name, hook, is_hook) = self.read(id, |d| {
                let event = &d.events[index];
                let is_hook = d.platform.lifecycle()[index].1;
                (event.name, event.hook.clone(), is_hook)
            });
            if is_hook && hook.is_none() {
                self.set_event(id, index, EventStatus::Skipped, None);
                continue;
            }
            self.set_event(id, index, EventStatus::InProgress, None);
            let result = match hook {
                Some(function) => self.run_hook(id, index, &function).await,
                None => self.system_event(id, index, name).await,
            };
            if let Err(interruption) = result {
                return self.end_early(id, index, interruption).await;
            }
        }
        self.succeed(id).await;
    }

    /// Invokes the hook asynchronously (unless its event is delivered externally) and waits for
    /// its report.
    async fn run_hook(&self, id: &str, index: usize, function: &str) -> Result<(), Interruption> {
        let (execution_id, external) = {
            let mut state = self.state();
            let event = state.deployments.get(id).map(|d| &d.events[index]);
            let chosen = event.and_then(|e| e.execution_id.clone());
            let external = event.is_some_and(|e| e.external);
            let execution_id = chosen.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            state.executions.insert(execution_id.clone(), (id.to_owned(), index));
            if let Some(d) = state.deployments.get_mut(id) {
                d.events[index].execution_id = Some(execution_id.clone());
            }
            (execution_id, external)
        };
        if !external {
            self.deliver(id, function, &execution_id)?;
        }
        self.await_report(id, index, function).await
    }

    /// Invokes the hook as CodeDeploy does, asynchronously, with the injected delivery faults.
    fn deliver(&self, id: &str, function: &str, execution_id: &str) -> Result<(), Interruption> {
        let faults = self.faults();
        let event = json!({"DeploymentId": id, "LifecycleEventHookExecutionId": execution_id});
        let mut payloads = Vec::new();
        if faults.malformed_delivery {
            payloads.push(json!({"DeploymentId": id}));
        }
        payloads.extend(std::iter::repeat_n(event, faults.deliveries.unwrap_or(1).max(1) as usize));
        for payload in payloads {
            if let Err(err) = self.invoke_async(function, None, Bytes::from(payload.to_string())) {
                return Err(Interruption::Failed {
                    code: "INVALID_LAMBDA_FUNCTION",
                    message: format!("the hook {function} could not be invoked: {}", err.message),
                });
            }
        }
        Ok(())
    }

    /// Waits for the hook's report, a stop or an alarm, up to the (scaled) one-hour limit.
    async fn await_report(&self, id: &str, index: usize, function: &str) -> Result<(), Interruption> {
        let limit = Instant::now() + self.scale().apply(HOOK_REPORT_LIMIT);
        loop {
            let status = self.read(id, |d| d.events[index].status);
            match status {
                EventStatus::Succeeded => {
                    self.record(Some(id), Happening::EventStatus { event: self.event_name(id, index), status });
                    return Ok(());
                }
                EventStatus::Failed => {
                    return Err(Interruption::Failed {
                        code: "HOOK_EXECUTION_FAILURE",
                        message: format!("the {} hook {function} reported Failed", self.event_name(id, index)),
                    });
                }
                _ => {}
            }
            if let Some(interruption) = self.interruption(id) {
                return Err(interruption);
            }
            if Instant::now() >= limit {
                return Err(Interruption::Failed {
                    code: "TIMEOUT",
                    message: format!(
                        "the {} hook {function} did not report within the one-hour limit",
                        self.event_name(id, index)
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// CodeDeploy's own events: Install, AllowTestTraffic, AllowTraffic.
    async fn system_event(&self, id: &str, index: usize, name: &'static str) -> Result<(), Interruption> {
        let target = self.read(id, |d| d.target.clone());
        let failed = |message: String| Interruption::Failed { code: "INTERNAL_ERROR", message };
        match (name, &target) {
            ("Install", TargetState::Ecs { service, green_task_definition, .. }) => {
                let process = self.state().task_definitions.get(green_task_definition).cloned();
                let process = process.ok_or_else(|| failed(format!("no task definition {green_task_definition}")))?;
                // Started before taking the services' lock: a slow task must not hold up the
                // listeners of every service.
                let green = TaskSet::start(green_task_definition, &process).await.map_err(|e| failed(e.to_string()))?;
                let desired = {
                    let mut ecs = self.inner.ecs.lock().await;
                    let ecs = ecs.get_mut(service).ok_or_else(|| failed(format!("no ECS service {service}")))?;
                    ecs.install_green(green).await;
                    ecs.desired_count
                };
                let slow_start = self.faults().green_start;
                self.update(id, |d| {
                    if let TargetState::Ecs { task_sets, green_task_definition, .. } = &mut d.target {
                        let mut green = task_set(
                            "ecs-svc/green",
                            TaskSetLabel::Green,
                            green_task_definition,
                            desired,
                            TaskSetStatus::Active,
                            0.0,
                        );
                        if let Some(start) = slow_start {
                            green.running = start.running_at_install.min(desired);
                        }
                        task_sets.push(green);
                    }
                });
            }
            ("AllowTestTraffic", TargetState::Ecs { service, .. }) => {
                let ecs = self.inner.ecs.lock().await;
                let ecs = ecs.get(service).ok_or_else(|| failed(format!("no ECS service {service}")))?;
                ecs.allow_test_traffic().map_err(|e| failed(e.to_string()))?;
                self.record(Some(id), Happening::Weights { old: 0.0, new: 100.0, route: "test" });
            }
            ("AllowTraffic", _) => {
                let steps = self.read(id, |d| d.config.steps());
                for (percent, wait) in steps {
                    self.shift(id, percent).await.map_err(failed)?;
                    let until = Instant::now() + self.scale().apply(wait);
                    while Instant::now() < until {
                        if let Some(interruption) = self.interruption(id) {
                            return Err(interruption);
                        }
                        tokio::time::sleep(POLL.min(until - Instant::now())).await;
                    }
                }
            }
            (other, _) => return Err(failed(format!("{other} is not a step of this deployment"))),
        }
        self.set_event(id, index, EventStatus::Succeeded, None);
        Ok(())
    }

    /// Moves `percent` of production traffic to the new version.
    async fn shift(&self, id: &str, percent: f64) -> Result<(), String> {
        let target = self.read(id, |d| d.target.clone());
        match &target {
            TargetState::Lambda { function, alias, current, target, .. } => {
                let input = if percent >= 100.0 {
                    json!({"FunctionVersion": target, "RoutingConfig": {"AdditionalVersionWeights": {}}})
                } else if percent <= 0.0 {
                    json!({"FunctionVersion": current, "RoutingConfig": {"AdditionalVersionWeights": {}}})
                } else {
                    json!({"FunctionVersion": current, "RoutingConfig": {"AdditionalVersionWeights": {target: percent / 100.0}}})
                };
                self.update_alias(function, alias, &input).map_err(|e| e.to_string())?;
            }
            TargetState::Ecs { service, .. } => {
                let ecs = self.inner.ecs.lock().await;
                let ecs = ecs.get(service).ok_or_else(|| format!("no ECS service {service}"))?;
                ecs.shift_production(percent).map_err(|e| e.to_string())?;
            }
        }
        self.set_weight(id, percent);
        self.record(Some(id), Happening::Weights { old: 100.0 - percent, new: percent, route: route_of(&target) });
        Ok(())
    }

    fn set_weight(&self, id: &str, percent: f64) {
        self.update(id, |d| match &mut d.target {
            TargetState::Lambda { weight, .. } => *weight = percent,
            TargetState::Ecs { task_sets, .. } => {
                for set in task_sets.iter_mut() {
                    set.weight = if set.label == TaskSetLabel::Green { percent } else { 100.0 - percent };
                }
            }
        });
    }

    /// A stop or an alarm, if one should end the deployment now.
    fn interruption(&self, id: &str) -> Option<Interruption> {
        let state = self.state();
        let deployment = state.deployments.get(id)?;
        if let Some(auto_rollback) = deployment.stop_requested {
            return Some(Interruption::Stopped { auto_rollback });
        }
        let group = state.groups.get(&(deployment.application.clone(), deployment.group.clone()))?;
        if !group.alarms_enabled {
            return None;
        }
        let ignore_unavailable = group
            .request
            .get("alarmConfiguration")
            .and_then(|c| c.get("ignorePollAlarmFailure"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        // CodeDeploy polls CloudWatch for each alarm: ALARM stops the deployment; an alarm whose
        // state cannot be read stops it too unless ignorePollAlarmFailure says to go on. A name
        // raised by the control API's override counts as in ALARM.
        group.alarms.iter().find_map(|alarm| {
            if state.alarms_raised.contains(alarm) {
                return Some(Interruption::Alarm(alarm.clone()));
            }
            match self.alarm_state(alarm) {
                Some(crate::cloudwatch::alarms::AlarmState::Alarm) => Some(Interruption::Alarm(alarm.clone())),
                Some(_) => None,
                None if ignore_unavailable => None,
                None => Some(Interruption::AlarmUnavailable(alarm.clone())),
            }
        })
    }

    async fn end_early(&self, id: &str, index: usize, interruption: Interruption) {
        let event = self.event_name(id, index);
        let (status, code, message, rollback_event) = match interruption {
            Interruption::Failed { code, message } => (DeploymentStatus::Failed, code, message, "DEPLOYMENT_FAILURE"),
            Interruption::Stopped { auto_rollback } => {
                let message = "the deployment was stopped (StopDeployment)".to_owned();
                let event = if auto_rollback { "DEPLOYMENT_STOP_ON_REQUEST" } else { "" };
                (DeploymentStatus::Stopped, "MANUAL_STOP", message, event)
            }
            Interruption::Alarm(alarm) => (
                DeploymentStatus::Stopped,
                "ALARM_ACTIVE",
                format!("alarm {alarm} went off during {event}"),
                "DEPLOYMENT_STOP_ON_ALARM",
            ),
            Interruption::AlarmUnavailable(alarm) => (
                DeploymentStatus::Stopped,
                "ALARM_ACTIVE",
                format!(
                    "the state of alarm {alarm} could not be retrieved from CloudWatch (no such alarm) during {event}; \
                     set alarmConfiguration.ignorePollAlarmFailure to go on without it"
                ),
                "DEPLOYMENT_STOP_ON_ALARM",
            ),
        };
        self.update(id, |d| {
            for e in d.events.iter_mut().skip(index) {
                e.status = match e.status {
                    EventStatus::InProgress => EventStatus::Failed,
                    EventStatus::Pending => EventStatus::Skipped,
                    other => other,
                };
            }
            if d.events[index].status == EventStatus::Failed && d.events[index].diagnostics.is_none() {
                d.events[index].diagnostics = Some(message.clone());
            }
        });
        if self.read(id, |d| d.events[index].status) == EventStatus::Failed {
            self.record(Some(id), Happening::EventStatus { event, status: EventStatus::Failed });
        }
        // Nothing has moved at BeforeInstall, and a stop without auto rollback leaves traffic
        // where it is; everything else puts traffic back.
        let nothing_moved = event == "BeforeInstall";
        let keep_traffic = rollback_event.is_empty();
        if !nothing_moved && !keep_traffic {
            let rollback = self.put_traffic_back(id).await;
            let auto = self
                .read(id, |d| d.auto_rollback_events.as_ref().is_some_and(|e| e.iter().any(|e| e == rollback_event)));
            let message = match rollback {
                Ok(old) => format!(
                    "traffic was put back on {old} ({}): {message}",
                    if auto { "automatic rollback" } else { "the deployment did not complete" }
                ),
                Err(err) => format!("traffic could not be put back: {err}"),
            };
            self.update(id, |d| d.rollback_message = Some(message.clone()));
            self.record(Some(id), Happening::Rollback { message });
        }
        self.complete(id, status, Some((code, message)));
    }

    /// Restores the old version's traffic; names it.
    async fn put_traffic_back(&self, id: &str) -> Result<String, String> {
        let target = self.read(id, |d| d.target.clone());
        match &target {
            TargetState::Lambda { current, .. } => {
                self.shift(id, 0.0).await?;
                Ok(format!("version {current}"))
            }
            TargetState::Ecs { service, .. } => {
                let mut ecs = self.inner.ecs.lock().await;
                let ecs = ecs.get_mut(service).ok_or_else(|| format!("no ECS service {service}"))?;
                ecs.roll_back().await.map_err(|e| e.to_string())?;
                self.set_weight(id, 0.0);
                self.record(Some(id), Happening::Weights { old: 100.0, new: 0.0, route: "production" });
                self.record(Some(id), Happening::Weights { old: 100.0, new: 0.0, route: "test" });
                Ok("the blue task set".to_owned())
            }
        }
    }

    async fn succeed(&self, id: &str) {
        let target = self.read(id, |d| d.target.clone());
        if let TargetState::Ecs { service, .. } = &target {
            let promoted = match self.inner.ecs.lock().await.get_mut(service) {
                Some(ecs) => ecs.promote_green().await.map_err(|e| e.to_string()),
                None => Err(format!("no ECS service {service}")),
            };
            if let Err(err) = promoted {
                self.complete(id, DeploymentStatus::Failed, Some(("INTERNAL_ERROR", err)));
                return;
            }
            let green = self.read(id, |d| match &d.target {
                TargetState::Ecs { green_task_definition, .. } => Some(green_task_definition.clone()),
                TargetState::Lambda { .. } => None,
            });
            if let (Some(green), Some(running)) = (green, self.state().ecs_services.get_mut(service)) {
                running.task_definition = green;
            }
        }
        let (application, group) = self.read(id, |d| (d.application.clone(), d.group.clone()));
        if let Some(group) = self.state().groups.get_mut(&(application, group)) {
            group.last_successful = Some(id.to_owned());
        }
        self.complete(id, DeploymentStatus::Succeeded, None);
    }

    fn complete(&self, id: &str, status: DeploymentStatus, error: Option<(&'static str, String)>) {
        self.update(id, |d| {
            d.status = status;
            d.completed = Some(SystemTime::now());
            d.error = error.clone();
        });
        let (error_code, message) = error.map_or((None, None), |(code, message)| (Some(code), Some(message)));
        self.record(Some(id), Happening::DeploymentStatus { status, error_code, message });
    }

    fn set_event(&self, id: &str, index: usize, status: EventStatus, diagnostics: Option<String>) {
        let name = self.update(id, |d| {
            let event = &mut d.events[index];
            event.status = status;
            let now = Some(SystemTime::now());
            if status == EventStatus::InProgress {
                event.started = now;
            } else {
                event.ended = now;
                event.started.get_or_insert(SystemTime::now());
            }
            if diagnostics.is_some() {
                event.diagnostics = diagnostics.clone();
            }
            event.name
        });
        if let Some(event) = name {
            self.record(Some(id), Happening::EventStatus { event, status });
        }
    }

    fn event_name(&self, id: &str, index: usize) -> &'static str {
        self.read(id, |d| d.events[index].name)
    }

    fn read<T>(&self, id: &str, f: impl FnOnce(&crate::emulator::Deployment) -> T) -> T {
        f(self.state().deployments.get(id).expect("deployments are never removed"))
    }

    fn update<T>(&self, id: &str, f: impl FnOnce(&mut crate::emulator::Deployment) -> T) -> Option<T> {
        self.state().deployments.get_mut(id).map(f)
    }
}

fn route_of(target: &TargetState) -> &'static str {
    match target {
        TargetState::Lambda { .. } => "alias",
        TargetState::Ecs { .. } => "production",
    }
}

pub(crate) fn task_set(
    id: &str,
    label: TaskSetLabel,
    task_definition: &str,
    desired: i64,
    status: TaskSetStatus,
    weight: f64,
) -> TaskSetState {
    TaskSetState {
        id: id.to_owned(),
        label,
        task_definition: task_definition.to_owned(),
        desired,
        running: desired,
        status,
        weight,
    }
}
