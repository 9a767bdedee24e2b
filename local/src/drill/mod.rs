//! The drill: rehearsed releases, end to end. Each scenario starts a fresh emulator hosting the
//! sample checkout apps and the greenlight hooks (the same binaries that deploy to AWS), creates a
//! deployment, and runs a small load generator against the production path so the blast radius
//! is counted per version. It prints a live timeline and writes a picture and a record of each.

pub mod chart;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{AliasConfig, EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use crate::drill::chart::{Marker, Sample, Timeline, render_svg};
use crate::ecs::traffic::{TASK_SET_HEADER, TaskSetLabel};
use crate::emulator::{
    ComputePlatform, DeploymentStatus, Emulator, EventStatus, Happening, RecordEntry, TargetState, TimeScale,
};
use crate::lambda::runtime::InvokeOutcome;
use crate::server::Server;

/// How often the load generator sends a request.
const LOAD_INTERVAL: Duration = Duration::from_millis(25);
/// How often the picture samples weights and counts.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// The ECS service the drill deploys.
const ECS_SERVICE: &str = "drill:checkout";
/// The alarm the alarm scenario raises.
const ALARM: &str = "checkout-errors";
/// The Lambda function the drill deploys.
const FUNCTION: &str = "checkout";

/// `codedeploy-local drill` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// Scenarios to run, in order (default: all).
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<ScenarioName>,
    /// Where pictures (SVG), records (JSON) and the summary go.
    #[arg(long, default_value = "target/drill")]
    pub out: PathBuf,
    /// How many times faster than AWS waits run: 60 turns a five-minute canary into five seconds.
    #[arg(long, default_value_t = 60.0)]
    pub time_scale: f64,
    /// Where the hook binaries and the checkout apps are (default: next to this program).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The drill's plans and contract schema (default: `examples/drill` of the working directory,
    /// else of the workspace this program was built in).
    #[arg(long)]
    pub drill_dir: Option<PathBuf>,
    /// Print only the summary, not the live timeline.
    #[arg(long)]
    pub quiet: bool,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// Lambda canary of a healthy version: Succeeded.
    LambdaCanary,
    /// Lambda, a broken new version caught by pre-traffic: Failed, the alias never shifted.
    LambdaBrokenVersion,
    /// ECS, the checkout contract break caught by after-allow-test-traffic: Failed, no
    /// production request served by green.
    EcsContractBreak,
    /// ECS canary of a compatible green: Succeeded.
    EcsCanary,
    /// ECS canary with an alarm going off during it: stopped and rolled back.
    EcsAlarmRollback,
}

impl ScenarioName {
    /// Every scenario, in the drill's order.
    pub const ALL: [Self; 5] = [
        Self::LambdaCanary,
        Self::LambdaBrokenVersion,
        Self::EcsContractBreak,
        Self::EcsCanary,
        Self::EcsAlarmRollback,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LambdaCanary => "lambda-canary",
            Self::LambdaBrokenVersion => "lambda-broken-version",
            Self::EcsContractBreak => "ecs-contract-break",
            Self::EcsCanary => "ecs-canary",
            Self::EcsAlarmRollback => "ecs-alarm-rollback",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::LambdaCanary => "(a) Lambda canary, healthy new version",
            Self::LambdaBrokenVersion => "(b) Lambda, broken new version caught by pre-traffic",
            Self::EcsContractBreak => "(c) ECS, checkout contract break caught by the smoke test",
            Self::EcsCanary => "(d) ECS canary, compatible green",
            Self::EcsAlarmRollback => "(e) ECS canary, alarm during the canary",
        }
    }

    fn is_lambda(self) -> bool {
        matches!(self, Self::LambdaCanary | Self::LambdaBrokenVersion)
    }

    /// The hook packages the scenario's appspec names, with the events they serve.
    fn hooks(self) -> &'static [(&'static str, &'static str)] {
        if self.is_lambda() { &LAMBDA_HOOKS } else { &ECS_HOOKS }
    }

    /// (current, target) Lambda versions or (blue, green) task definitions.
    fn versions(self) -> (&'static str, &'static str) {
        match self {
            Self::LambdaCanary => ("1", "2"),
            Self::LambdaBrokenVersion => ("1", "3"),
            Self::EcsContractBreak => ("checkout:1", "checkout:2"),
            Self::EcsCanary | Self::EcsAlarmRollback => ("checkout:1", "checkout:3"),
        }
    }

    fn config_name(self) -> &'static str {
        if self.is_lambda() {
            "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        } else {
            "CodeDeployDefault.ECSCanary10Percent5Minutes"
        }
    }

    /// What must happen: final status, error code, and whether the new version may ever get
    /// production traffic.
    fn expected(self) -> (&'static str, Option<&'static str>, bool) {
        match self {
            Self::LambdaCanary | Self::EcsCanary => ("Succeeded", None, true),
            Self::LambdaBrokenVersion | Self::EcsContractBreak => ("Failed", Some("HOOK_EXECUTION_FAILURE"), false),
            Self::EcsAlarmRollback => ("Stopped", Some("ALARM_ACTIVE"), true),
        }
    }
}

/// Where the drill finds its parts and puts its results.
#[derive(Debug, Clone)]
pub struct DrillSetup {
    /// Hook binaries and checkout apps.
    pub bin_dir: PathBuf,
    /// Plans and schema.
    pub drill_dir: PathBuf,
    /// Results.
    pub out_dir: PathBuf,
    /// Time scale.
    pub scale: TimeScale,
    /// Print the live timeline.
    pub live: bool,
}

/// Requests the load generator sent, per version.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct BlastRadius {
    /// Good answers from the old version.
    pub old_ok: u64,
    /// Good answers from the new version.
    pub new_ok: u64,
    /// Broken answers from the old version.
    pub old_errors: u64,
    /// Broken answers from the new version.
    pub new_errors: u64,
}

/// What one scenario did.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// Which scenario.
    pub scenario: ScenarioName,
    /// The deployment.
    pub deployment_id: String,
    /// Final status.
    pub status: String,
    /// Error code, when it did not succeed.
    pub error_code: Option<String>,
    /// Lifecycle events and their final statuses, in order.
    pub events: Vec<(String, String)>,
    /// Every weight change: (route, percent on the new version).
    pub weights: Vec<(String, f64)>,
    /// Reports the emulator received: (status, result).
    pub reports: Vec<(String, String)>,
    /// Hook invocations: (function, attempt, outcome).
    pub hook_invocations: Vec<(String, u32, String)>,
    /// What production clients saw.
    pub blast_radius: BlastRadius,
    /// The rollback message, if traffic was put back.
    pub rollback: Option<String>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// Where the picture is.
    pub picture: PathBuf,
    /// What did not go as the scenario expects; empty when it did.
    pub surprises: Vec<String>,
}

/// The drill's directory of plans and schemas: the one given, else `examples/drill` in the working
/// directory, in the workspace above this program (`target/<profile>/codedeploy-local`), or in the
/// source tree it was compiled from, whichever has a `plans/` first.
fn find_drill_dir(given: Option<&Path>) -> Result<PathBuf, String> {
    const RELATIVE: &str = "examples/drill";
    let holds_plans = |dir: &Path| dir.join("plans").is_dir();
    if let Some(dir) = given {
        return if holds_plans(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(format!("--drill-dir {}: it has no plans/ directory", dir.display()))
        };
    }
    let beside_the_binary =
        std::env::current_exe().ok().and_then(|exe| exe.ancestors().nth(3).map(|workspace| workspace.join(RELATIVE)));
    let candidates: Vec<PathBuf> = [Some(PathBuf::from(RELATIVE)), beside_the_binary]
        .into_iter()
        .flatten()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(RELATIVE)])
        .collect();
    candidates.iter().find(|dir| holds_plans(dir)).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|dir| dir.display().to_string()).collect();
        format!(
            "cannot find the drill's plans: no plans/ in {}; run from the repository root or pass --drill-dir DIR",
            looked.join(", ")
        )
    })
}

/// Runs the drill from the command line.
pub async fn run(args: DrillArgs) -> ExitCode {
    if args.time_scale <= 0.0 {
        eprintln!("codedeploy-local drill: --time-scale must be above 0");
        return ExitCode::from(2);
    }
    let bin_dir = match args.bin_dir.clone().or_else(|| std::env::current_exe().ok()?.parent().map(Path::to_path_buf)) {
        Some(dir) => dir,
        None => {
            eprintln!("codedeploy-local drill: cannot tell where the hook binaries are; pass --bin-dir");
            return ExitCode::from(2);
        }
    };
    let drill_dir = match find_drill_dir(args.drill_dir.as_deref()) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("codedeploy-local drill: {err}");
            return ExitCode::from(2);
        }
    };
    let setup = DrillSetup {
        bin_dir,
        drill_dir,
        out_dir: args.out.clone(),
        scale: TimeScale(args.time_scale),
        live: !args.quiet,
    };
    let scenarios = if args.scenarios.is_empty() { ScenarioName::ALL.to_vec() } else { args.scenarios.clone() };
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        println!("\n=== {}", scenario.title());
        match run_scenario(&setup, scenario).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                eprintln!("codedeploy-local drill: {}: {err}", scenario.as_str());
                return ExitCode::from(2);
            }
        }
    }
    let summary = summary_table(&outcomes);
    println!("\n{summary}");
    if let Err(err) = std::fs::write(setup.out_dir.join("summary.md"), &summary) {
        eprintln!("codedeploy-local drill: cannot write the summary: {err}");
    }
    if outcomes.iter().all(|o| o.surprises.is_empty()) {
        println!("drill: every scenario ended as expected; pictures in {}", setup.out_dir.display());
        ExitCode::SUCCESS
    } else {
        for outcome in outcomes.iter().filter(|o| !o.surprises.is_empty()) {
            eprintln!("drill: {} did not go as expected: {}", outcome.scenario.as_str(), outcome.surprises.join("; "));
        }
        ExitCode::FAILURE
    }
}

/// The summary as a markdown table.
pub fn summary_table(outcomes: &[ScenarioOutcome]) -> String {
    let mut table = String::from(
        "| Scenario | Status | Error code | New version's weights | Old ok/errors | New ok/errors | Time | As expected |\n|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let production: Vec<f64> = o.weights.iter().filter(|(route, _)| route != "test").map(|(_, w)| *w).collect();
        let weights: Vec<String> = if production.iter().all(|w| *w == 0.0) {
            Vec::new()
        } else {
            production.iter().map(|w| format!("{w}%")).collect()
        };
        let b = o.blast_radius;
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {}/{} | {}/{} | {:.1} s | {} |",
            o.scenario.as_str(),
            o.status,
            o.error_code.as_deref().unwrap_or("-"),
            if weights.is_empty() { "never shifted".to_owned() } else { weights.join(" → ") },
            b.old_ok,
            b.old_errors,
            b.new_ok,
            b.new_errors,
            o.duration_ms as f64 / 1000.0,
            if o.surprises.is_empty() { "yes" } else { "NO" },
        );
    }
    table
}

/// Runs one scenario on a fresh emulator.
pub async fn run_scenario(setup: &DrillSetup, scenario: ScenarioName) -> Result<ScenarioOutcome, String> {
    let started = Instant::now();
    let out_dir = setup.out_dir.join(scenario.as_str());
    let plans_dir = out_dir.join("plans");
    std::fs::create_dir_all(plans_dir.join("schemas"))
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let config = local_config(setup, scenario, &plans_dir);
    let server = Server::start(config, setup.scale, 0, Some(out_dir.join("logs"))).await?;
    let result = drive(setup, scenario, &server, &plans_dir, started).await;
    server.shutdown().await;
    result
}

async fn drive(
    setup: &DrillSetup,
    scenario: ScenarioName,
    server: &Server,
    plans_dir: &Path,
    started: Instant,
) -> Result<ScenarioOutcome, String> {
    let emulator = &server.emulator;
    let listeners = emulator.listeners(ECS_SERVICE).await;
    write_plans(setup, scenario, plans_dir, listeners)?;

    let printer = setup.live.then(|| tokio::spawn(print_timeline(emulator.subscribe(), started)));
    // Subscribed before the deployment exists, so the canary's first shift cannot be missed.
    let record = emulator.subscribe();
    let deployment_id = create_deployment(emulator, scenario)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(std::sync::Mutex::new(BlastRadius::default()));
    let load =
        tokio::spawn(generate_load(emulator.clone(), scenario, listeners.map(|l| l.0), counts.clone(), stop.clone()));
    let sampler = tokio::spawn(sample(emulator.clone(), deployment_id.clone(), counts.clone(), stop.clone(), started));
    // Its own task: if the deployment ends before any canary (a hook failed), the drill must
    // not wait for one.
    let alarm = (scenario == ScenarioName::EcsAlarmRollback)
        .then(|| tokio::spawn(raise_alarm_during_canary(emulator.clone(), record, deployment_id.clone())));
    let limit = setup.scale.apply(crate::emulator::HOOK_REPORT_LIMIT) * 3 + Duration::from_secs(30);
    let finished = emulator.wait_until_complete(&deployment_id, limit).await;
    if let Some(alarm) = alarm {
        alarm.abort();
    }
    // A little traffic after the end shows where production settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let samples = sampler.await.unwrap_or_default();
    if let Some(printer) = printer {
        printer.abort();
    }
    if !finished {
        return Err(format!("{deployment_id} did not complete within {limit:?}"));
    }
    let blast_radius = *counts.lock().unwrap_or_else(|p| p.into_inner());
    let record = emulator.record_of(&deployment_id);
    let mut outcome = outcome_of(emulator, scenario, &deployment_id, &record, blast_radius, started);
    outcome.surprises = surprises(&outcome);

    let out_dir = setup.out_dir.join(scenario.as_str());
    let timeline = Timeline {
        title: scenario.title().to_owned(),
        subtitle: format!(
            "{deployment_id}: {}{} - time scale {}x",
            outcome.status,
            outcome.error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
            setup.scale.0
        ),
        samples,
        markers: markers(&record, started, emulator),
        old_label: format!("old ({})", scenario.versions().0),
        new_label: format!("new ({})", scenario.versions().1),
    };
    outcome.picture = setup.out_dir.join(format!("{}.svg", scenario.as_str()));
    std::fs::write(&outcome.picture, render_svg(&timeline)).map_err(|e| format!("cannot write the picture: {e}"))?;
    let record_file = out_dir.join("record.json");
    let document = json!({"outcome": outcome, "record": record});
    std::fs::write(&record_file, serde_json::to_string_pretty(&document).unwrap_or_default())
        .map_err(|e| format!("cannot write {}: {e}", record_file.display()))?;
    Ok(outcome)
}

/// The functions, task definitions and services a scenario needs.
fn local_config(setup: &DrillSetup, scenario: ScenarioName, plans_dir: &Path) -> LocalConfig {
    let bin = |name: &str| setup.bin_dir.join(name).display().to_string();
    let process = |command: Vec<String>, env: &[(&str, &str)]| ProcessConfig {
        command,
        environment: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    let mut functions = BTreeMap::new();
    for (hook, _) in scenario.hooks() {
        let plan = plans_dir.join(format!("{hook}.json")).display().to_string();
        let version = process(vec![bin(hook)], &[("GREENLIGHT_PLAN_FILE", &plan)]);
        functions.insert(
            format!("CodeDeployHook_{hook}"),
            FunctionConfig {
                timeout_seconds: 60,
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), version)]),
                aliases: BTreeMap::new(),
            },
        );
    }
    let checkout = |behaviour: &str| process(vec![bin("checkout-function")], &[("CHECKOUT_BEHAVIOUR", behaviour)]);
    functions.insert(
        FUNCTION.to_owned(),
        FunctionConfig {
            timeout_seconds: 10,
            memory_mb: 128,
            versions: BTreeMap::from([
                ("1".to_owned(), checkout("healthy")),
                ("2".to_owned(), checkout("healthy")),
                ("3".to_owned(), checkout("broken")),
            ]),
            aliases: BTreeMap::from([(
                "live".to_owned(),
                AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
            )]),
        },
    );
    let service = |shape: &str| {
        process(vec![bin("checkout-service"), "--port".into(), "{port}".into(), "--shape".into(), shape.into()], &[])
    };
    let task_definitions = BTreeMap::from([
        ("checkout:1".to_owned(), service("cents")),
        ("checkout:2".to_owned(), service("minor-units")),
        ("checkout:3".to_owned(), service("both")),
    ]);
    let mut ecs_services = BTreeMap::new();
    if !scenario.is_lambda() {
        ecs_services.insert(
            ECS_SERVICE.to_owned(),
            EcsServiceConfig {
                task_definition: "checkout:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 2,
            },
        );
    }
    LocalConfig { functions, task_definitions, ecs_services }
}

/// The Lambda hooks and the events they serve.
const LAMBDA_HOOKS: [(&str, &str); 2] = [("pre-traffic", "BeforeAllowTraffic"), ("post-traffic", "AfterAllowTraffic")];

/// The ECS hooks and the events they serve.
const ECS_HOOKS: [(&str, &str); 5] = [
    ("before-install", "BeforeInstall"),
    ("after-install", "AfterInstall"),
    ("after-allow-test-traffic", "AfterAllowTestTraffic"),
    ("before-allow-traffic", "BeforeAllowTraffic"),
    ("after-allow-traffic", "AfterAllowTraffic"),
];

/// Copies the drill's plans, with the listener URLs filled in, where the hooks will read them.
fn write_plans(
    setup: &DrillSetup,
    scenario: ScenarioName,
    plans_dir: &Path,
    listeners: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> Result<(), String> {
    let source = setup.drill_dir.join("plans");
    let (production, test) =
        listeners.map_or((String::new(), String::new()), |(p, t)| (format!("http://{p}"), format!("http://{t}")));
    for (hook, _) in scenario.hooks() {
        let from = source.join(format!("{hook}.json"));
        let text = std::fs::read_to_string(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let text = text.replace("${PRODUCTION_URL}", &production).replace("${TEST_URL}", &test);
        std::fs::write(plans_dir.join(format!("{hook}.json")), text)
            .map_err(|e| format!("cannot write a plan: {e}"))?;
    }
    let schemas = setup.drill_dir.join("schemas");
    let entries = std::fs::read_dir(&schemas).map_err(|e| format!("cannot read {}: {e}", schemas.display()))?;
    for entry in entries.flatten() {
        std::fs::copy(entry.path(), plans_dir.join("schemas").join(entry.file_name()))
            .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
    }
    Ok(())
}

/// Creates the application, the group and the deployment through the CodeDeploy API.
fn create_deployment(emulator: &Emulator, scenario: ScenarioName) -> Result<String, String> {
    let call =
        |operation: &str, input: Value| emulator.codedeploy(operation, &input).map_err(|e| format!("{operation}: {e}"));
    let (old, new) = scenario.versions();
    let role = "arn:aws:iam::123456789012:role/CodeDeployServiceRole";
    let hooks: Vec<Value> =
        scenario.hooks().iter().map(|(hook, event)| json!({*event: format!("CodeDeployHook_{hook}")})).collect();
    let (platform, appspec, group) = if scenario.is_lambda() {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{"checkout": {"Type": "AWS::Lambda::Function", "Properties": {
                "Name": FUNCTION, "Alias": "live", "CurrentVersion": old, "TargetVersion": new}}}],
            "Hooks": hooks,
        });
        let group = json!({"applicationName": "drill", "deploymentGroupName": "checkout", "serviceRoleArn": role,
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]},
            "alarmConfiguration": {"enabled": true, "alarms": [{"name": ALARM}]}});
        ("Lambda", appspec, group)
    } else {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": new, "LoadBalancerInfo": {"ContainerName": "checkout", "ContainerPort": 8080}}}}],
            "Hooks": hooks,
        });
        let (cluster, service) = ECS_SERVICE.split_once(':').unwrap_or(("drill", "checkout"));
        let group = json!({"applicationName": "drill", "deploymentGroupName": "checkout", "serviceRoleArn": role,
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "ecsServices": [{"clusterName": cluster, "serviceName": service}],
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]},
            "alarmConfiguration": {"enabled": true, "alarms": [{"name": ALARM}]}});
        ("ECS", appspec, group)
    };
    call("CreateApplication", json!({"applicationName": "drill", "computePlatform": platform}))?;
    call("CreateDeploymentGroup", group)?;
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "drill", "deploymentGroupName": "checkout", "deploymentConfigName": scenario.config_name(),
               "description": scenario.title(),
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    )?;
    created["deploymentId"].as_str().map(str::to_owned).ok_or_else(|| "CreateDeployment returned no id".to_owned())
}

/// Production clients: the alias for Lambda, the production listener for ECS. A good answer is a
/// 200 whose cart carries `total_cents`, the field clients read.
async fn generate_load(
    emulator: Emulator,
    scenario: ScenarioName,
    production: Option<std::net::SocketAddr>,
    counts: Arc<std::sync::Mutex<BlastRadius>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let (_, new_version) = scenario.versions();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (is_new, ok) = if scenario.is_lambda() {
            let request = json!({"httpMethod": "GET", "path": format!("/v2/cart/load-{n}"), "headers": {"accept": "application/json"}});
            match emulator.invoke(FUNCTION, Some("live"), Bytes::from(request.to_string())).await {
                Ok(response) => {
                    let ok = response.invocation.outcome == InvokeOutcome::Response
                        && serde_json::from_slice::<Value>(&response.invocation.payload).is_ok_and(|result| {
                            result["statusCode"] == 200
                                && result["body"]
                                    .as_str()
                                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                                    .is_some_and(cart_is_good)
                        });
                    (response.executed_version == new_version, ok)
                }
                Err(_) => (false, false),
            }
        } else {
            let Some(addr) = production else { return };
            match http.get(format!("http://{addr}/v2/cart/load-{n}")).send().await {
                Ok(response) => {
                    let is_new = response.headers().get(TASK_SET_HEADER).is_some_and(|v| v == "Green");
                    let ok = response.status() == 200 && response.json::<Value>().await.is_ok_and(cart_is_good);
                    (is_new, ok)
                }
                Err(_) => (false, false),
            }
        };
        {
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            match (is_new, ok) {
                (false, true) => c.old_ok += 1,
                (true, true) => c.new_ok += 1,
                (false, false) => c.old_errors += 1,
                (true, false) => c.new_errors += 1,
            }
        }
        tokio::time::sleep(LOAD_INTERVAL).await;
    }
}

fn cart_is_good(cart: Value) -> bool {
    cart.get("total_cents").is_some_and(Value::is_i64)
}

async fn sample(
    emulator: Emulator,
    deployment_id: String,
    counts: Arc<std::sync::Mutex<BlastRadius>>,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut last = BlastRadius::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        let now = *counts.lock().unwrap_or_else(|p| p.into_inner());
        let weight = emulator.state().deployments.get(&deployment_id).map_or(0.0, |d| match &d.target {
            TargetState::Lambda { weight, .. } => *weight,
            TargetState::Ecs { task_sets, .. } => {
                task_sets.iter().find(|s| s.label == TaskSetLabel::Green).map_or(0.0, |s| s.weight)
            }
        });
        samples.push(Sample {
            at_ms: started.elapsed().as_millis() as u64,
            new_weight_percent: weight,
            old_ok: now.old_ok - last.old_ok,
            new_ok: now.new_ok - last.new_ok,
            old_errors: now.old_errors - last.old_errors,
            new_errors: now.new_errors - last.new_errors,
        });
        last = now;
    }
    samples
}

/// Waits for the canary step, then raises the group's alarm, as a spike of errors would.
async fn raise_alarm_during_canary(
    emulator: Emulator,
    mut record: tokio::sync::broadcast::Receiver<RecordEntry>,
    deployment_id: String,
) {
    loop {
        match record.recv().await {
            Ok(RecordEntry {
                deployment_id: Some(id),
                what: Happening::Weights { route: "production", new, .. },
                ..
            }) if id == deployment_id && new > 0.0 => {
                break;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
    // Halfway through the five-minute canary, so green has served its share by then.
    tokio::time::sleep(emulator.scale().apply(Duration::from_secs(150))).await;
    emulator.set_alarm(ALARM, true);
}

fn outcome_of(
    emulator: &Emulator,
    scenario: ScenarioName,
    deployment_id: &str,
    record: &[RecordEntry],
    blast_radius: BlastRadius,
    started: Instant,
) -> ScenarioOutcome {
    let state = emulator.state();
    let deployment = state.deployments.get(deployment_id);
    let mut outcome = ScenarioOutcome {
        scenario,
        deployment_id: deployment_id.to_owned(),
        status: deployment.map(|d| d.status.to_string()).unwrap_or_default(),
        error_code: deployment.and_then(|d| d.error.as_ref().map(|(code, _)| (*code).to_owned())),
        events: deployment
            .map(|d| d.events.iter().map(|e| (e.name.to_owned(), e.status.to_string())).collect())
            .unwrap_or_default(),
        weights: Vec::new(),
        reports: Vec::new(),
        hook_invocations: Vec::new(),
        blast_radius,
        rollback: deployment.and_then(|d| d.rollback_message.clone()),
        duration_ms: started.elapsed().as_millis() as u64,
        picture: PathBuf::new(),
        surprises: Vec::new(),
    };
    for entry in record {
        match &entry.what {
            Happening::Weights { route, new, .. } => outcome.weights.push(((*route).to_owned(), *new)),
            Happening::Report { status, result, .. } => outcome.reports.push((status.clone(), result.clone())),
            Happening::Invocation { function, attempt, outcome: result, .. }
                if function.starts_with("CodeDeployHook_") =>
            {
                outcome.hook_invocations.push((function.clone(), *attempt, (*result).to_owned()));
            }
            _ => {}
        }
    }
    outcome
}

/// Compares an outcome with what its scenario must show.
pub fn surprises(outcome: &ScenarioOutcome) -> Vec<String> {
    let (status, error_code, new_may_serve) = outcome.scenario.expected();
    let mut surprises = Vec::new();
    if outcome.status != status {
        surprises.push(format!("status {} (expected {status})", outcome.status));
    }
    if outcome.error_code.as_deref() != error_code {
        surprises.push(format!("error code {:?} (expected {error_code:?})", outcome.error_code));
    }
    // Every hook that ran must have reported exactly once; the emulator accepts one per event.
    let accepted = outcome.reports.iter().filter(|(_, result)| result == "accepted").count();
    let platform = if outcome.scenario.is_lambda() { ComputePlatform::Lambda } else { ComputePlatform::Ecs };
    let hooks_run = outcome
        .events
        .iter()
        .filter(|(name, status)| {
            let is_hook = platform.lifecycle().iter().any(|(event, is_hook)| event == name && *is_hook);
            is_hook && (status == "Succeeded" || status == "Failed")
        })
        .count();
    if accepted != hooks_run || accepted == 0 {
        surprises.push(format!("{accepted} accepted reports for {hooks_run} hook events that ran"));
    }
    let production = outcome.weights.iter().filter(|(route, _)| route != "test").map(|(_, w)| *w);
    let production_shifted = production.clone().any(|w| w > 0.0);
    let new_served = outcome.blast_radius.new_ok + outcome.blast_radius.new_errors;
    if !new_may_serve && (production_shifted || new_served > 0) {
        surprises.push(format!("the new version served {new_served} production requests (expected none)"));
    }
    if status != "Succeeded" && production.clone().next_back().is_some_and(|w| w > 0.0) {
        surprises.push("production traffic moved but was not put back".to_owned());
    }
    if status == "Succeeded" && outcome.blast_radius.new_ok == 0 {
        surprises.push("the new version served no production request".to_owned());
    }
    surprises
}

fn markers(record: &[RecordEntry], started: Instant, emulator: &Emulator) -> Vec<Marker> {
    // Record times count from the emulator's start, which is a moment after the scenario's.
    let offset = (started.elapsed().as_millis() as u64).saturating_sub(emulator.now_ms());
    record
        .iter()
        .filter_map(|entry| {
            let (label, failed) = match &entry.what {
                Happening::EventStatus { event, status: EventStatus::InProgress } => ((*event).to_owned(), false),
                Happening::EventStatus { event, status: EventStatus::Failed } => (format!("{event} Failed"), true),
                Happening::Rollback { .. } => ("rollback".to_owned(), true),
                Happening::DeploymentStatus { status, .. }
                    if !matches!(status, DeploymentStatus::InProgress | DeploymentStatus::Created) =>
                {
                    (status.to_string(), *status != DeploymentStatus::Succeeded)
                }
                _ => return None,
            };
            Some(Marker { at_ms: entry.at_ms + offset, label, failed })
        })
        .chain(alarm_markers(emulator, offset))
        .collect()
}

fn alarm_markers(emulator: &Emulator, offset: u64) -> Vec<Marker> {
    emulator
        .state()
        .record
        .iter()
        .filter_map(|entry| match &entry.what {
            Happening::Alarm { name, state: "ALARM" } => {
                Some(Marker { at_ms: entry.at_ms + offset, label: format!("alarm {name}"), failed: true })
            }
            _ => None,
        })
        .collect()
}

async fn print_timeline(mut events: tokio::sync::broadcast::Receiver<RecordEntry>, started: Instant) {
    loop {
        let entry = match events.recv().await {
            Ok(entry) => entry,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let at = started.elapsed().as_secs_f64();
        let line = match &entry.what {
            Happening::DeploymentStatus { status, error_code, message } => format!(
                "deployment {} {status}{}{}",
                entry.deployment_id.as_deref().unwrap_or_default(),
                error_code.map(|c| format!(" [{c}]")).unwrap_or_default(),
                message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ),
            Happening::EventStatus { event, status } => format!("{event:<22} {status}"),
            Happening::Invocation { function, version, invocation_type, attempt, outcome, duration_ms, .. } => format!(
                "  invoked {function}:{version} ({invocation_type}, attempt {attempt}) -> {outcome} in {duration_ms} ms"
            ),
            Happening::Report { event, status, result, .. } => format!("  report {status} for {event} -> {result}"),
            Happening::Weights { old, new, route } => format!("  {route} traffic: old {old}% / new {new}%"),
            Happening::Alarm { name, state } => format!("  alarm {name} -> {state}"),
            Happening::Rollback { message } => format!("  rollback: {message}"),
        };
        // Load-generator invocations of the app would drown the timeline.
        if matches!(&entry.what, Happening::Invocation { function, .. } if function == FUNCTION) {
            continue;
        }
        println!("{at:7.2}s  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_dir_without_plans_is_refused_by_name() {
        let err = find_drill_dir(Some(Path::new("/nonexistent/drill"))).unwrap_err();
        assert_eq!(err, "--drill-dir /nonexistent/drill: it has no plans/ directory");
    }

    #[test]
    fn the_plans_are_found_from_outside_the_repository_root() {
        // cargo runs this package's tests in local/, which has no examples/drill of its own.
        assert!(!Path::new("examples/drill").exists(), "run from {:?}", std::env::current_dir());
        let found = find_drill_dir(None).expect("found from the binary's or the sources' location");
        assert!(found.join("plans/after-allow-test-traffic.json").is_file(), "{}", found.display());
    }
}
