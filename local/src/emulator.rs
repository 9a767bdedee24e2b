//! The emulator's state: CodeDeploy applications, groups and deployments, the hosted Lambda
//! functions and ECS services, raised alarms, Parameter Store's parameters, and the record of
//! everything that happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::codedeploy::appspec::AppSpec;
use crate::codedeploy::deployment_config::DeploymentConfig;
use crate::config::{ConfigError, EcsServiceConfig, FunctionConfig, LoadBalancerConfig, LocalConfig, ProcessConfig};
use crate::ecs::traffic::TaskSetLabel;
use crate::ecs::{EcsError, EcsService};
use crate::lambda::runtime::{ColdStart, RuntimeHost};

/// How much faster than AWS the emulator's clock runs for the waits CodeDeploy and Lambda
/// impose: traffic-shifting intervals, the one-hour hook limit, async retry delays. A scale of 60
/// turns minutes into seconds. Function timeouts are not scaled: hooks are real processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

impl TimeScale {
    /// AWS's own pace.
    pub const REAL: Self = Self(1.0);

    /// How long `aws` takes here.
    pub fn apply(self, aws: Duration) -> Duration {
        aws.div_f64(self.0.max(f64::MIN_POSITIVE))
    }
}

/// The region every ARN the emulator makes names.
pub const REGION: &str = "us-east-1";

/// The account every ARN the emulator makes names.
pub const ACCOUNT_ID: &str = "123456789012";

/// The one-hour limit CodeDeploy gives a hook to report.
pub const HOOK_REPORT_LIMIT: Duration = Duration::from_secs(3600);

/// What a deployment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ComputePlatform {
    /// Lambda alias traffic shifting.
    Lambda,
    /// ECS blue/green.
    #[serde(rename = "ECS")]
    Ecs,
}

impl ComputePlatform {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lambda => "Lambda",
            Self::Ecs => "ECS",
        }
    }

    /// The lifecycle events of a deployment on this platform, in order, and whether each is a
    /// hook event (the others are CodeDeploy's own work).
    pub fn lifecycle(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Lambda => &[("BeforeAllowTraffic", true), ("AllowTraffic", false), ("AfterAllowTraffic", true)],
            Self::Ecs => &[
                ("BeforeInstall", true),
                ("Install", false),
                ("AfterInstall", true),
                ("AllowTestTraffic", false),
                ("AfterAllowTestTraffic", true),
                ("BeforeAllowTraffic", true),
                ("AllowTraffic", false),
                ("AfterAllowTraffic", true),
            ],
        }
    }
}

/// A CodeDeploy application.
#[derive(Debug, Clone)]
pub struct Application {
    /// Its generated id.
    pub id: String,
    /// Lambda or ECS.
    pub platform: ComputePlatform,
    /// When it was created.
    pub created: SystemTime,
}

/// A deployment group, kept as the request described it.
#[derive(Debug, Clone)]
pub struct DeploymentGroup {
    /// Its generated id.
    pub id: String,
    /// The request's members, returned by GetDeploymentGroup.
    pub request: serde_json::Map<String, Value>,
    /// Alarms that stop its deployments.
    pub alarms: Vec<String>,
    /// Whether alarm polling is on.
    pub alarms_enabled: bool,
    /// Which events roll a deployment back (`DEPLOYMENT_FAILURE`, `DEPLOYMENT_STOP_ON_ALARM`,
    /// `DEPLOYMENT_STOP_ON_REQUEST`), when auto rollback is enabled.
    pub auto_rollback_events: Option<Vec<String>>,
    /// The last deployment started for the group.
    pub last_attempted: Option<String>,
    /// The last deployment that succeeded.
    pub last_successful: Option<String>,
}

/// A lifecycle event of one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleEventState {
    /// `BeforeAllowTraffic`, `Install`, ...
    pub name: &'static str,
    /// Where it is.
    pub status: EventStatus,
    /// When it started.
    #[serde(skip)]
    pub started: Option<SystemTime>,
    /// When it ended.
    #[serde(skip)]
    pub ended: Option<SystemTime>,
    /// The hook function the appspec names for it.
    pub hook: Option<String>,
    /// The execution id handed to the hook, when one was invoked.
    pub execution_id: Option<String>,
    /// The hook's event is delivered by someone else (a developer's `cargo lambda invoke`, a
    /// hook run in CLI mode) with an execution id chosen beforehand: the emulator does not invoke
    /// the hook, it only waits for the report.
    pub external: bool,
    /// Why it failed.
    pub diagnostics: Option<String>,
}

/// One ECS task set as CodeDeploy reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSetState {
    /// Its identifier.
    pub id: String,
    /// Blue or green.
    pub label: TaskSetLabel,
    /// The task definition it runs.
    pub task_definition: String,
    /// Tasks desired.
    pub desired: i64,
    /// Tasks running.
    pub running: i64,
    /// ECS's status of it.
    pub status: TaskSetStatus,
    /// Production traffic share, percent.
    pub weight: f64,
}

/// The one target of a Lambda or ECS deployment.
#[derive(Debug, Clone, Serialize)]
pub enum TargetState {
    /// A Lambda alias moving from one version to another.
    Lambda {
        /// Function name.
        function: String,
        /// Alias being shifted.
        alias: String,
        /// Version before the deployment.
        current: String,
        /// Version being deployed.
        target: String,
        /// Share of the alias's traffic on the target version, percent.
        weight: f64,
    },
    /// An ECS service moving from the blue task set to a green one.
    Ecs {
        /// `cluster:service`.
        service: String,
        /// Task definition the green task set runs.
        green_task_definition: String,
        /// Blue first, then green once installed.
        task_sets: Vec<TaskSetState>,
    },
}

impl TargetState {
    /// The target id CodeDeploy gives this target.
    pub fn target_id(&self) -> String {
        match self {
            Self::Lambda { function, alias, .. } => format!("{function}:{alias}"),
            Self::Ecs { service, .. } => service.clone(),
        }
    }
}

/// A deployment and what has happened to it.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `d-` and nine characters.
    pub id: String,
    /// Its application.
    pub application: String,
    /// Its deployment group.
    pub group: String,
    /// How traffic moves.
    pub config: DeploymentConfig,
    /// Lambda or ECS.
    pub platform: ComputePlatform,
    /// Where it is.
    pub status: DeploymentStatus,
    /// The error code and message of a deployment that did not succeed.
    pub error: Option<(&'static str, String)>,
    /// The rollback message, when traffic was put back.
    pub rollback_message: Option<String>,
    /// When it was created.
    pub created: SystemTime,
    /// When it started.
    pub started: Option<SystemTime>,
    /// When it ended.
    pub completed: Option<SystemTime>,
    /// The revision as the request gave it.
    pub revision: Value,
    /// The parsed appspec.
    pub appspec: AppSpec,
    /// The request's description.
    pub description: Option<String>,
    /// The request's (or the group's) auto rollback events.
    pub auto_rollback_events: Option<Vec<String>>,
    /// Lifecycle events in order.
    pub events: Vec<LifecycleEventState>,
    /// What it moves.
    pub target: TargetState,
    /// A StopDeployment request, with its autoRollbackEnabled.
    pub stop_requested: Option<bool>,
}

impl Deployment {
    /// Whether it has finished.
    pub fn is_complete(&self) -> bool {
        self.status.is_complete()
    }
}

/// One thing that happened, in the order it happened.
#[derive(Debug, Clone, Serialize)]
pub struct RecordEntry {
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    /// The same moment on this process's monotonic clock, for measuring against other instants
    /// (a process start, say); not serialized.
    #[serde(skip)]
    pub instant: std::time::Instant,
    /// The deployment it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub what: Happening,
}

/// Why the local AWS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An ECS service's blue task set or listeners, or a load balancer's listeners, did not start.
    #[error("ECS service or load balancer {name}: {source}")]
    Ecs {
        /// The service.
        name: String,
        /// Why.
        source: EcsError,
    },
    /// The port to serve on could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port asked for (0: any).
        port: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// A deployment's status, spelled as CodeDeploy's `DeploymentStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeploymentStatus {
    /// Created, not started.
    Created,
    /// Running its lifecycle events.
    InProgress,
    /// Every event succeeded.
    Succeeded,
    /// An event failed, or an alarm went off.
    Failed,
    /// Stopped on request.
    Stopped,
}

impl DeploymentStatus {
    /// Whether a deployment in this status has ended.
    pub fn is_complete(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }

    /// CodeDeploy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Stopped => "Stopped",
        }
    }
}

/// A lifecycle event's status, spelled as CodeDeploy's `LifecycleEventStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventStatus {
    /// Not reached yet.
    Pending,
    /// Running, or waiting for its hook's report.
    InProgress,
    /// Done, or reported `Succeeded`.
    Succeeded,
    /// Reported `Failed`, or its hook did not report in time.
    Failed,
    /// Not run: the deployment ended before it.
    Skipped,
}

impl EventStatus {
    /// CodeDeploy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }
}

/// An ECS task set's status, as ECS spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskSetStatus {
    /// Serving production.
    Primary,
    /// Started by the deployment, not (yet) primary.
    Active,
    /// Being drained of traffic.
    Draining,
}

impl TaskSetStatus {
    /// ECS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
        }
    }
}

macro_rules! display_as_str {
    ($($kind:ty),*) => {$(
        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(DeploymentStatus, EventStatus, TaskSetStatus, TaskSetLabel);

/// The kinds of things the record keeps.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Happening {
    /// The deployment's status changed.
    DeploymentStatus {
        /// The new status.
        status: DeploymentStatus,
        /// The error code, when it did not succeed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<&'static str>,
        /// Detail.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A lifecycle event's status changed.
    EventStatus {
        /// The event.
        event: &'static str,
        /// The new status.
        status: EventStatus,
    },
    /// A function was invoked.
    Invocation {
        /// Function name.
        function: String,
        /// The version that ran.
        version: String,
        /// `RequestResponse` or `Event`.
        invocation_type: &'static str,
        /// 1 for the first delivery, 2 and 3 for Lambda's async retries.
        attempt: u32,
        /// `response`, `function_error`, `timeout`, `crashed`, `init_error`.
        outcome: &'static str,
        /// How long it ran, in milliseconds.
        duration_ms: u64,
        /// Set when it started a new process.
        #[serde(skip_serializing_if = "Option::is_none")]
        cold_start: Option<ColdStart>,
        /// The process's peak resident memory in KiB, Lambda's `Max Memory Used`.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_memory_kb: Option<u64>,
    },
    /// A hook reported.
    Report {
        /// The lifecycle event.
        event: String,
        /// The execution id.
        execution_id: String,
        /// The reported status.
        status: String,
        /// Whether it was accepted, or the exception it got.
        result: String,
    },
    /// Traffic weights changed.
    Weights {
        /// Percent on the old version (current / blue).
        old: f64,
        /// Percent on the new version (target / green).
        new: f64,
        /// Which route: `alias`, `production` or `test`.
        route: &'static str,
    },
    /// An alarm changed state.
    Alarm {
        /// Alarm name.
        name: String,
        /// `ALARM` or `OK`.
        state: &'static str,
    },
    /// Traffic was put back on the old version.
    Rollback {
        /// Why.
        message: String,
    },
}

/// One call that reached the emulator's AWS endpoints, in the order they arrived, as CloudTrail
/// would list it. Calls the emulator makes of itself (traffic shifting, say) are not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    /// The operation, as the service's API names it (`GetDeploymentTarget`, `Invoke`).
    pub operation: String,
    /// What it names: the `deploymentId` of a CodeDeploy call, the function of a Lambda call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// A Lambda call's `Qualifier` parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// Microseconds since the emulator started, when it arrived.
    pub arrived_us: u64,
    /// Microseconds since the emulator started, when its answer was ready: with `arrived_us`, how
    /// long the caller waited and which calls were in flight together. Unset while it runs, and
    /// for calls that never get an answer (a hanging fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_us: Option<u64>,
}

tokio::task_local! {
    /// The index in [`State::calls`] of the call the current request made, set by
    /// [`Emulator::note_call`] inside [`Emulator::timing_answer`].
    static ANSWERING: std::cell::Cell<Option<usize>>;
}

/// Everything behind the emulator's lock.
#[derive(Debug, Default)]
pub struct State {
    /// Applications by name.
    pub applications: BTreeMap<String, Application>,
    /// Deployment groups by (application, group).
    pub groups: BTreeMap<(String, String), DeploymentGroup>,
    /// Deployments by id.
    pub deployments: BTreeMap<String, Deployment>,
    /// Hook execution id → (deployment id, event index).
    pub executions: HashMap<String, (String, usize)>,
    /// Lambda functions (aliases move during deployments).
    pub functions: BTreeMap<String, FunctionConfig>,
    /// ECS task definitions.
    pub task_definitions: BTreeMap<String, ProcessConfig>,
    /// Hosted ECS services (`cluster:service`); `task_definition` is the one each runs now.
    pub ecs_services: BTreeMap<String, EcsServiceConfig>,
    /// The configured load balancers, for services that ECS deploys itself.
    pub load_balancers: BTreeMap<String, LoadBalancerConfig>,
    /// Services that ECS deploys itself, their revisions and service deployments.
    pub native: crate::ecs::service::NativeState,
    /// Alarms raised by the control API's override (`/_local/alarms/{name}`) that CloudWatch has
    /// no alarm of; CloudWatch's own alarms keep their state in [`crate::cloudwatch`].
    pub alarms_raised: BTreeSet<String>,
    /// Everything that happened.
    pub record: Vec<RecordEntry>,
    /// Every call of the AWS endpoints.
    pub calls: Vec<ApiCall>,
    /// Counter behind generated ids.
    pub next_id: u64,
}

/// A running emulator: cheap to clone, shared by the API server, the lifecycle tasks and the drill.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: Mutex<State>,
    pub(crate) runtime: RuntimeHost,
    pub(crate) ecs: tokio::sync::Mutex<BTreeMap<String, EcsService>>,
    /// The configured load balancers' listeners and registered tasks.
    pub(crate) balancers: tokio::sync::Mutex<BTreeMap<String, crate::elbv2::balancer::Balancer>>,
    pub(crate) scale: TimeScale,
    pub(crate) epoch: Instant,
    pub(crate) record_tx: broadcast::Sender<RecordEntry>,
    /// Alias routing state for weighted invocations: alias key → invocations so far per version.
    pub(crate) alias_rotation: Mutex<HashMap<String, BTreeMap<String, f64>>>,
    pub(crate) faults: Mutex<crate::faults::Faults>,
    pub(crate) cloudwatch: crate::cloudwatch::CloudWatch,
    pub(crate) ssm: crate::ssm::store::Parameters,
    /// How long each call of the AWS endpoints waits before its answer goes out.
    pub(crate) answer_latency: Mutex<Duration>,
}

/// An emulator handle that does not keep it alive (for its own background tasks).
#[derive(Debug, Clone)]
pub(crate) struct WeakEmulator(std::sync::Weak<Inner>);

impl WeakEmulator {
    /// The emulator, while it exists.
    pub(crate) fn upgrade(&self) -> Option<Emulator> {
        self.0.upgrade().map(|inner| Emulator { inner })
    }
}

impl Emulator {
    /// An emulator hosting `config`'s functions and services. ECS services start their blue
    /// task set and listeners here.
    pub async fn start(config: LocalConfig, runtime: RuntimeHost, scale: TimeScale) -> Result<Self, StartError> {
        config.validate()?;
        let (record_tx, _) = broadcast::channel(1024);
        let state = State {
            functions: config.functions.clone(),
            task_definitions: config.task_definitions.clone(),
            ecs_services: config.ecs_services.clone(),
            ..State::default()
        };
        let emulator = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                runtime,
                ecs: tokio::sync::Mutex::new(BTreeMap::new()),
                balancers: tokio::sync::Mutex::new(BTreeMap::new()),
                scale,
                epoch: Instant::now(),
                record_tx,
                alias_rotation: Mutex::new(HashMap::new()),
                faults: Mutex::new(crate::faults::Faults::default()),
                cloudwatch: crate::cloudwatch::CloudWatch::default(),
                ssm: crate::ssm::store::Parameters::default(),
                answer_latency: Mutex::new(Duration::ZERO),
            }),
        };
        emulator.spawn_alarm_evaluation();
        for (name, service) in &config.ecs_services {
            let blue = config.task_definitions[&service.task_definition].clone();
            let started = EcsService::start(name, service, &blue, emulator.metrics())
                .await
                .map_err(|source| StartError::Ecs { name: name.clone(), source })?;
            emulator.inner.ecs.lock().await.insert(name.clone(), started);
        }
        Ok(emulator)
    }

    /// The state, locked. Poisoning is ignored: every writer leaves the state consistent
    /// between statements, and an emulator that stops answering helps nobody.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The time scale.
    pub fn scale(&self) -> TimeScale {
        self.inner.scale
    }

    /// The runtime host running the functions.
    pub fn runtime(&self) -> &RuntimeHost {
        &self.inner.runtime
    }

    /// Milliseconds since the emulator started.
    pub fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Follows the record as it grows.
    pub fn subscribe(&self) -> broadcast::Receiver<RecordEntry> {
        self.inner.record_tx.subscribe()
    }

    /// Appends to the record (the lock must not be held by the caller).
    pub fn record(&self, deployment_id: Option<&str>, what: Happening) {
        let entry = RecordEntry {
            at_ms: self.now_ms(),
            instant: std::time::Instant::now(),
            deployment_id: deployment_id.map(str::to_owned),
            what,
        };
        self.state().record.push(entry.clone());
        // Nobody listening is fine.
        let _ = self.inner.record_tx.send(entry);
    }

    /// Notes a call of the AWS endpoints.
    pub fn note_call(&self, operation: &str, resource: Option<&str>, qualifier: Option<&str>) {
        let call = ApiCall {
            at_ms: self.now_ms(),
            operation: operation.to_owned(),
            resource: resource.map(str::to_owned),
            qualifier: qualifier.map(str::to_owned),
            arrived_us: self.now_us(),
            answered_us: None,
        };
        let index = {
            let mut state = self.state();
            state.calls.push(call);
            state.calls.len() - 1
        };
        // Outside a request (a test calling a handler directly) there is no answer to time.
        let _ = ANSWERING.try_with(|answering| answering.set(Some(index)));
    }

    /// Holds every later answer of the AWS endpoints for `latency` (none by default), as the
    /// network and the service would in AWS: it makes the round trips a caller waits for, one
    /// after another, visible in the calls' timing.
    pub fn set_answer_latency(&self, latency: Duration) {
        *self.inner.answer_latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }

    /// Runs `answer`, one request to the endpoints, holds its answer for the answer latency if it
    /// was a call of the AWS endpoints, and notes when that answer was ready.
    pub async fn timing_answer<T>(&self, answer: impl std::future::Future<Output = T>) -> T {
        let (answered, index) = ANSWERING
            .scope(std::cell::Cell::new(None), async {
                let answered = answer.await;
                (answered, ANSWERING.with(std::cell::Cell::get))
            })
            .await;
        if let Some(index) = index {
            let latency = *self.inner.answer_latency.lock().unwrap_or_else(|p| p.into_inner());
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let now = self.now_us();
            if let Some(call) = self.state().calls.get_mut(index) {
                call.answered_us = Some(now);
            }
        }
        answered
    }

    /// Microseconds since the emulator started.
    fn now_us(&self) -> u64 {
        self.inner.epoch.elapsed().as_micros() as u64
    }

    /// Every call of the AWS endpoints so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.state().calls.clone()
    }

    /// The record of one deployment.
    pub fn record_of(&self, deployment_id: &str) -> Vec<RecordEntry> {
        self.state().record.iter().filter(|e| e.deployment_id.as_deref() == Some(deployment_id)).cloned().collect()
    }

    /// Waits until deployment `id` has ended, for at most `limit`; says whether it did.
    pub async fn wait_until_complete(&self, id: &str, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if self.state().deployments.get(id).is_some_and(Deployment::is_complete) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A handle that does not keep the emulator alive.
    pub(crate) fn downgrade(&self) -> WeakEmulator {
        WeakEmulator(Arc::downgrade(&self.inner))
    }

    /// Raises (`true`) or clears an alarm by hand: a CloudWatch alarm of that name moves to ALARM
    /// or OK as SetAlarmState would (until its next evaluation); a name CloudWatch has no alarm of
    /// is kept raised until cleared.
    pub fn set_alarm(&self, name: &str, raised: bool) {
        let state = if raised {
            crate::cloudwatch::alarms::AlarmState::Alarm
        } else {
            crate::cloudwatch::alarms::AlarmState::Ok
        };
        if self.set_alarm_state(name, state, "Set by hand through codedeploy-local's control API".to_owned()) {
            return;
        }
        {
            let mut state = self.state();
            if raised {
                state.alarms_raised.insert(name.to_owned());
            } else {
                state.alarms_raised.remove(name);
            }
        }
        self.record(None, Happening::Alarm { name: name.to_owned(), state: if raised { "ALARM" } else { "OK" } });
    }

    /// Adds a load balancer for services that ECS deploys itself, its listeners bound and
    /// forwarding nowhere until a service registers in one of its target groups.
    pub async fn add_load_balancer(&self, name: &str, config: &LoadBalancerConfig) -> Result<(), StartError> {
        let local = LocalConfig { ecs_services: self.state().ecs_services.clone(), ..LocalConfig::default() };
        local.check_load_balancer_name(name)?;
        let mut balancers = self.inner.balancers.lock().await;
        if balancers.contains_key(name) {
            return Err(ConfigError::Invalid(format!("load balancer {name} exists already")).into());
        }
        let started = crate::elbv2::balancer::Balancer::start(name, config, self.metrics())
            .await
            .map_err(|source| StartError::Ecs { name: name.to_owned(), source })?;
        balancers.insert(name.to_owned(), started);
        self.state().load_balancers.insert(name.to_owned(), config.clone());
        Ok(())
    }

    /// The (production, test) listener addresses of a load balancer added with
    /// [`Emulator::add_load_balancer`].
    pub async fn load_balancer_listeners(&self, name: &str) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.inner.balancers.lock().await.get(name).map(|b| (b.production.addr(), b.test.addr()))
    }

    /// The production and test listener addresses of an ECS service.
    pub async fn listeners(&self, service: &str) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.inner.ecs.lock().await.get(service).map(EcsService::listener_addrs)
    }

    /// Stops every process the emulator started.
    pub async fn shutdown(&self) {
        for service in self.inner.ecs.lock().await.values_mut() {
            service.shutdown().await;
        }
        for balancer in self.inner.balancers.lock().await.values_mut() {
            balancer.shutdown().await;
        }
        self.inner.runtime.shutdown().await;
    }
}

/// A fresh id: `prefix` and nine characters of [A-Z0-9], as CodeDeploy's deployment ids look.
/// The last four count up, so ids never repeat within one emulator.
pub(crate) fn new_id(state: &mut State, prefix: &str) -> String {
    state.next_id += 1;
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut n = u64::from(nanos) % 36u64.pow(5) * 36u64.pow(4) + state.next_id % 36u64.pow(4);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut digits = [0u8; 9];
    for digit in digits.iter_mut().rev() {
        *digit = alphabet[(n % 36) as usize];
        n /= 36;
    }
    format!("{prefix}{}", String::from_utf8_lossy(&digits))
}
