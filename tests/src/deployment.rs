//! Deployments on the local CodeDeploy (`codedeploy-local`, in process), the one local AWS every
//! end-to-end test uses:
//!
//! - [`deploy`]: a whole Lambda deployment whose pre-traffic hook is a real process, run to its
//!   end and read back as a [`Run`] (record, status, the hook's log);
//! - [`Held`]: a deployment held in one lifecycle event, for tests that act as the hook themselves
//!   (the gate in process, a hook binary in CLI or Lambda mode).
//!
//! Faults are the emulator's own ([`Faults`]), set from Rust or over its control API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codedeploy_local::config::{AliasConfig, EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{Emulator, Happening, RecordEntry, TimeScale};
use codedeploy_local::faults::Faults;
use codedeploy_local::server::Server;
use greenlight::event::HookEvent;
use serde_json::{Value, json};

use crate::binaries::bin_dir;

/// The one-hour hook limit becomes 60 s: every deployment here ends long before it.
pub const SCALE: TimeScale = TimeScale(60.0);

/// The name of the hook function a [`deploy`] runs.
pub const PRE_TRAFFIC_HOOK: &str = "CodeDeployHook_pre-traffic";

/// A function with versions and no alias.
pub fn function(versions: impl IntoIterator<Item = (&'static str, ProcessConfig)>) -> FunctionConfig {
    FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: versions.into_iter().map(|(v, process)| (v.to_owned(), process)).collect(),
        aliases: BTreeMap::new(),
    }
}

fn alias(version: &str) -> AliasConfig {
    AliasConfig { version: version.to_owned(), additional_version_weights: BTreeMap::new() }
}

/// A program with its environment.
pub fn process(command: Vec<String>, environment: &[(&str, &str)]) -> ProcessConfig {
    let environment = environment.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    ProcessConfig { command, environment }
}

/// How a `scripted-function` version answers (see `src/bin/scripted-function.rs`).
#[derive(Debug, Clone)]
pub enum Answer {
    /// Responds with this payload.
    Payload(Value),
    /// Fails with a function error of this type and message.
    Error {
        /// `errorType`.
        error_type: &'static str,
        /// `errorMessage`.
        message: &'static str,
    },
    /// Responds `{}` and calls nothing: a hook that never reports.
    Silent,
}

/// A `scripted-function` version answering `answer`.
pub fn scripted(answer: Answer) -> ProcessConfig {
    let command = vec![bin_dir().join("scripted-function").display().to_string()];
    match answer {
        Answer::Payload(payload) => process(command, &[("SCRIPTED_ANSWER", &payload.to_string())]),
        Answer::Error { error_type, message } => {
            let error = json!({"errorType": error_type, "errorMessage": message}).to_string();
            process(command, &[("SCRIPTED_ERROR", &error)])
        }
        Answer::Silent => process(command, &[]),
    }
}

/// An API Gateway proxy result, as a function behind API Gateway answers.
pub fn api_gateway(status: u16, body: &Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"}, "body": body.to_string()})
}

fn create(emulator: &Emulator, operation: &str, input: Value) -> Value {
    emulator.codedeploy(operation, &input).unwrap_or_else(|err| panic!("{operation}: {err}"))
}

fn appspec_revision(appspec: &Value) -> Value {
    json!({"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}})
}

/// Creates the application and group of `platform` and a deployment of `appspec`; its id.
fn create_deployment(emulator: &Emulator, platform: &str, appspec: &Value) -> String {
    create(emulator, "CreateApplication", json!({"applicationName": "app", "computePlatform": platform}));
    let mut group = json!({"applicationName": "app", "deploymentGroupName": "live",
        "serviceRoleArn": "arn:aws:iam::123456789012:role/codedeploy"});
    if platform == "ECS" {
        group["ecsServices"] = json!([{"clusterName": "checkout-cluster", "serviceName": "checkout"}]);
    }
    create(emulator, "CreateDeploymentGroup", group);
    let created = create(
        emulator,
        "CreateDeployment",
        json!({"applicationName": "app", "deploymentGroupName": "live", "revision": appspec_revision(appspec)}),
    );
    created["deploymentId"].as_str().expect("a deployment id").to_owned()
}

fn lambda_appspec(function: &str, current: &str, target: &str, hooks: Value) -> Value {
    json!({"Resources": [{"app": {"Type": "AWS::Lambda::Function", "Properties": {
        "Name": function, "Alias": "live", "CurrentVersion": current, "TargetVersion": target}}}],
        "Hooks": hooks})
}

// ---- a whole deployment ------------------------------------------------------------------------

/// The pre-traffic hook of a [`deploy`]: a process speaking the Runtime API, and its limits.
#[derive(Debug, Clone)]
pub struct HookFunction {
    /// Program and arguments; the real `pre-traffic` binary unless a test replaces it.
    pub command: Vec<String>,
    /// `GREENLIGHT_PLAN`.
    pub plan: String,
    /// The function timeout.
    pub timeout_seconds: u64,
    /// The function memory.
    pub memory_mb: u32,
    /// Extra environment (`AWS_LAMBDA_LOG_FORMAT`, say).
    pub environment: BTreeMap<String, String>,
}

impl HookFunction {
    /// The pre-traffic binary with `plan`, 10 s and 128 MB.
    pub fn pre_traffic(plan: &Value) -> Self {
        Self {
            command: vec![bin_dir().join("pre-traffic").display().to_string()],
            plan: plan.to_string(),
            timeout_seconds: 10,
            memory_mb: 128,
            environment: BTreeMap::new(),
        }
    }
}

/// Wraps a process before it runs (in a cgroup, say).
pub type Wrap<'a> = Box<dyn FnOnce(ProcessConfig) -> ProcessConfig + 'a>;

/// Everything a [`deploy`] is told besides its hook.
pub struct DeployOptions<'a> {
    /// Injected before the deployment starts.
    pub faults: Faults,
    /// How fast the emulator's clock runs.
    pub scale: TimeScale,
    /// Wraps the hook's process before it runs.
    pub wrap: Option<Wrap<'a>>,
}

impl std::fmt::Debug for DeployOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployOptions")
            .field("faults", &self.faults)
            .field("scale", &self.scale)
            .field("wrap", &self.wrap.is_some())
            .finish()
    }
}

impl Default for DeployOptions<'_> {
    fn default() -> Self {
        Self { faults: Faults::default(), scale: SCALE, wrap: None }
    }
}

/// A finished deployment, as the emulator recorded it.
#[derive(Debug)]
pub struct Run {
    /// `Succeeded`, `Failed` or `Stopped`.
    pub status: String,
    /// The error code of a deployment that did not succeed.
    pub error_code: Option<String>,
    /// Everything that happened to it.
    pub record: Vec<RecordEntry>,
    /// From CreateDeployment to its end.
    pub took: Duration,
    /// Everything the hook function wrote, across its processes and invocations, with the
    /// runtime host's START/END/REPORT lines in between.
    pub hook_log: String,
}

impl Run {
    /// (status, result) of every report the emulator received.
    pub fn reports(&self) -> Vec<(String, String)> {
        self.report_entries().map(|(status, result, _)| (status, result)).collect()
    }

    /// When each report arrived.
    pub fn report_instants(&self) -> Vec<std::time::Instant> {
        self.report_entries().map(|(_, _, at)| at).collect()
    }

    fn report_entries(&self) -> impl Iterator<Item = (String, String, std::time::Instant)> + '_ {
        self.record.iter().filter_map(|e| match &e.what {
            Happening::Report { status, result, .. } => Some((status.clone(), result.clone(), e.instant)),
            _ => None,
        })
    }

    /// The statuses of the accepted reports.
    pub fn accepted(&self) -> Vec<String> {
        self.reports().into_iter().filter(|(_, result)| result == "accepted").map(|(status, _)| status).collect()
    }

    /// (attempt, outcome) of every invocation of the hook.
    pub fn hook_invocations(&self) -> Vec<(u32, String)> {
        self.record
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Invocation { function, attempt, outcome, .. } if function == PRE_TRAFFIC_HOOK => {
                    Some((*attempt, (*outcome).to_owned()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Deploys `app` (versions 1 → 2, both the checkout function) with `hook` as its pre-traffic
/// hook, waits for the end, and reads back what happened.
pub async fn deploy(hook: HookFunction, options: DeployOptions<'_>) -> Run {
    let app = process(vec![bin_dir().join("checkout-function").display().to_string()], &[]);
    let mut hook_version = ProcessConfig {
        command: hook.command,
        environment: hook.environment.into_iter().chain([("GREENLIGHT_PLAN".to_owned(), hook.plan)]).collect(),
    };
    if let Some(wrap) = options.wrap {
        hook_version = wrap(hook_version);
    }
    let mut app = function([("1", app.clone()), ("2", app)]);
    app.aliases.insert("live".to_owned(), alias("1"));
    let mut hook_function = function([("$LATEST", hook_version)]);
    hook_function.timeout_seconds = hook.timeout_seconds;
    hook_function.memory_mb = hook.memory_mb;
    let config = LocalConfig {
        functions: BTreeMap::from([("app".to_owned(), app), (PRE_TRAFFIC_HOOK.to_owned(), hook_function)]),
        ..LocalConfig::default()
    };
    let log_dir = tempfile::tempdir().expect("a log directory");
    let server =
        Server::start(config, options.scale, 0, Some(log_dir.path().to_owned())).await.expect("the emulator starts");
    let emulator = server.emulator.clone();
    emulator.set_faults(options.faults).expect("faults name only what is served");
    let started = std::time::Instant::now();
    let appspec = lambda_appspec("app", "1", "2", json!([{"BeforeAllowTraffic": PRE_TRAFFIC_HOOK}]));
    let id = create_deployment(&emulator, "Lambda", &appspec);
    let limit = options.scale.apply(Duration::from_secs(3600)) + Duration::from_secs(30);
    emulator.wait_until_complete(&id, limit).await;
    let took = started.elapsed();
    // Late deliveries (duplicates, retries) get their answers before the record is read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, error_code) = {
        let state = emulator.state();
        let d = &state.deployments[&id];
        (d.status.to_string(), d.error.as_ref().map(|(code, _)| (*code).to_owned()))
    };
    let record = emulator.record_of(&id);
    server.shutdown().await;
    // A function that never started writes no log file.
    let hook_log = std::fs::read_to_string(log_dir.path().join(format!("{PRE_TRAFFIC_HOOK}.log"))).unwrap_or_default();
    Run { status, error_code, record, took, hook_log }
}

// ---- a deployment held in one event ------------------------------------------------------------

/// The hook function a [`Held`] deployment names for its event: it answers and never reports,
/// so the event stays in progress until the test reports for it.
pub const HELD_HOOK: &str = "CodeDeployHook_held";

/// What a [`Held`] deployment moves.
#[derive(Debug, Clone)]
pub enum HeldTarget {
    /// The ECS service `checkout-cluster:checkout` (two tasks per task set, the checkout service)
    /// from `checkout:1` to `checkout:2`, which adds `total_minor_units` and keeps `total_cents`.
    Ecs,
    /// The same, with `checkout:2` serving another shape of the checkout service (`minor-units`:
    /// the breaking rename).
    EcsGreen(&'static str),
    /// The function `checkout`, alias `live`, from version 4 to version 5.
    Lambda {
        /// What version 4 runs.
        current: ProcessConfig,
        /// What version 5 runs.
        target: ProcessConfig,
    },
}

/// A deployment on the local CodeDeploy, held in one lifecycle event whose execution the test
/// reports for. The emulator lives as long as the test's runtime.
#[derive(Debug)]
pub struct Held {
    /// The emulator and its endpoint.
    pub server: Server,
    /// The deployment.
    pub deployment_id: String,
    /// The held event's hook execution.
    pub execution_id: String,
    log_dir: tempfile::TempDir,
}

/// An accepted report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReport {
    /// Hook execution id.
    pub execution_id: String,
    /// `Succeeded` or `Failed`.
    pub status: String,
}

impl Held {
    /// Starts an emulator hosting `target` (and `functions` beside it), injects `faults`, and
    /// deploys until `event` is in progress.
    pub async fn start(
        target: HeldTarget,
        event: &str,
        functions: BTreeMap<String, FunctionConfig>,
        faults: Faults,
    ) -> Self {
        let mut config = LocalConfig { functions, ..LocalConfig::default() };
        config.functions.insert(HELD_HOOK.to_owned(), function([("$LATEST", scripted(Answer::Silent))]));
        let hooks = json!([{event: HELD_HOOK}]);
        let (platform, appspec) = match target {
            HeldTarget::Ecs | HeldTarget::EcsGreen(_) => {
                let green = match target {
                    HeldTarget::EcsGreen(shape) => shape,
                    _ => "both",
                };
                let task = |shape: &str| {
                    let service = bin_dir().join("checkout-service").display().to_string();
                    let args = [service.as_str(), "--port", "{port}", "--shape", shape];
                    process(args.map(str::to_owned).to_vec(), &[])
                };
                config.task_definitions.insert("checkout:1".to_owned(), task("cents"));
                config.task_definitions.insert("checkout:2".to_owned(), task(green));
                config.ecs_services.insert(
                    "checkout-cluster:checkout".to_owned(),
                    EcsServiceConfig {
                        task_definition: "checkout:1".to_owned(),
                        production_port: 0,
                        test_port: 0,
                        desired_count: 2,
                    },
                );
                let appspec = json!({"Resources": [{"checkout": {"Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": "checkout:2",
                    "LoadBalancerInfo": {"ContainerName": "checkout", "ContainerPort": 8080}}}}],
                    "Hooks": hooks});
                ("ECS", appspec)
            }
            HeldTarget::Lambda { current, target } => {
                let mut checkout = function([("4", current), ("5", target)]);
                checkout.aliases.insert("live".to_owned(), alias("4"));
                config.functions.insert("checkout".to_owned(), checkout);
                ("Lambda", lambda_appspec("checkout", "4", "5", hooks))
            }
        };
        let log_dir = tempfile::tempdir().expect("a log directory");
        let server =
            Server::start(config, SCALE, 0, Some(log_dir.path().to_owned())).await.expect("the emulator starts");
        server.emulator.set_faults(faults).expect("faults name only what is served");
        let deployment_id = create_deployment(&server.emulator, platform, &appspec);
        let execution_id = held_execution(&server.emulator, &deployment_id, event).await;
        Self { server, deployment_id, execution_id, log_dir }
    }

    /// An ECS deployment held in `event`.
    pub async fn ecs(event: &str) -> Self {
        Self::start(HeldTarget::Ecs, event, BTreeMap::new(), Faults::default()).await
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The emulator.
    pub fn emulator(&self) -> &Emulator {
        &self.server.emulator
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.emulator().set_faults(faults).expect("faults name only what is served");
    }

    /// The event a hook gets for the held execution.
    pub fn event(&self) -> HookEvent {
        HookEvent { deployment_id: self.deployment_id.clone(), execution_id: self.execution_id.clone() }
    }

    /// The same, as Lambda delivers it.
    pub fn event_json(&self) -> Value {
        json!({"DeploymentId": self.deployment_id, "LifecycleEventHookExecutionId": self.execution_id})
    }

    /// Reports the deployment accepted, in order.
    pub fn accepted(&self) -> Vec<AcceptedReport> {
        self.emulator()
            .record_of(&self.deployment_id)
            .into_iter()
            .filter_map(|e| match e.what {
                Happening::Report { execution_id, status, result, .. } if result == "accepted" => {
                    Some(AcceptedReport { execution_id, status })
                }
                _ => None,
            })
            .collect()
    }

    /// Every operation called over the AWS endpoints, in order.
    pub fn calls(&self) -> Vec<String> {
        self.emulator().calls().into_iter().map(|call| call.operation).collect()
    }

    /// Calls of PutLifecycleEventHookExecutionStatus, accepted or not.
    pub fn report_calls(&self) -> usize {
        self.calls().iter().filter(|op| *op == "PutLifecycleEventHookExecutionStatus").count()
    }

    /// (function, qualifier) of every Invoke call; no qualifier is `$LATEST`, as Lambda reads it.
    pub fn invocations(&self) -> Vec<(String, String)> {
        self.emulator()
            .calls()
            .into_iter()
            .filter(|call| call.operation == "Invoke")
            .map(|call| (call.resource.unwrap_or_default(), call.qualifier.unwrap_or_else(|| "$LATEST".to_owned())))
            .collect()
    }

    /// The events a `scripted-function` of `function` logged, in order, once there are at least
    /// `count` (or after five seconds): the runtime host copies a process's output to its log as
    /// it comes, so the last line may land after the invocation's answer.
    pub async fn events_received(&self, function: &str, count: usize) -> Vec<Value> {
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(self.log_path(function)).unwrap_or_default();
            let events: Vec<Value> = log
                .lines()
                .filter_map(|line| line.strip_prefix("event "))
                .filter_map(|event| serde_json::from_str(event).ok())
                .collect();
            if events.len() >= count || tokio::time::Instant::now() >= until {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sample event of `hook` (`events/<hook>.json`) carrying the held deployment's ids, in
    /// a file that lives as long as the deployment.
    pub fn event_file(&self, hook: &str) -> PathBuf {
        let sample = std::fs::read(crate::binaries::event_file(hook)).expect("the sample event");
        let mut event: Value = serde_json::from_slice(&sample).expect("the sample event is JSON");
        event["DeploymentId"] = json!(self.deployment_id);
        event["LifecycleEventHookExecutionId"] = json!(self.execution_id);
        let path = self.scratch().join(format!("{hook}.event.json"));
        std::fs::write(&path, event.to_string()).expect("write the event");
        path
    }

    /// Where the runtime host writes `function`'s log.
    pub fn log_path(&self, function: &str) -> PathBuf {
        self.log_dir.path().join(format!("{function}.log"))
    }

    /// A scratch directory that lives as long as the deployment.
    fn scratch(&self) -> &Path {
        self.log_dir.path()
    }
}

/// An emulator with nothing deployed, for runs that must not reach a deployment.
pub async fn empty() -> Server {
    Server::start(LocalConfig::default(), SCALE, 0, None).await.expect("the emulator starts")
}

/// Waits until `event` of deployment `id` is in progress with its hook invoked; its execution id.
async fn held_execution(emulator: &Emulator, id: &str, event: &str) -> String {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        {
            let state = emulator.state();
            let deployment = &state.deployments[id];
            let held = deployment.events.iter().find(|e| e.name == event);
            if let Some(execution) = held
                .filter(|e| e.status == codedeploy_local::emulator::EventStatus::InProgress)
                .and_then(|e| e.execution_id.clone())
            {
                return execution;
            }
            assert!(
                !deployment.is_complete() && tokio::time::Instant::now() < until,
                "the deployment never held in {event}: {} {:?}\n{:#?}",
                deployment.status,
                deployment.error,
                deployment.events
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Real AWS SDK configuration aimed at `endpoint`, with static test credentials and quick retry
/// backoff (3 attempts, as the SDK's default).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let retry =
        aws_config::retry::RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(20));
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_codedeploy::config::Credentials::new("AKIDTEST", "secret", None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .http_client(greenlight::aws_http::sdk_http_client())
        .load()
        .await
}
