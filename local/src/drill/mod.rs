//! The drill: rehearsed releases, end to end. Each scenario starts a fresh emulator hosting the
//! sample checkout apps and the greenlight hooks (the same binaries that deploy to AWS), creates a
//! deployment, and runs a small load generator against the production path so the blast radius
//! is counted per version. It prints a live timeline and writes a picture and a record of each.

pub mod chart;
mod load;
mod native;
mod scenario;
mod setup;
mod timeline;

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

use load::*;
pub use scenario::{Release, ScenarioName, surprises};
use setup::*;
pub use timeline::HookVerdict;
use timeline::*;

/// How often the load generator sends a request.
const LOAD_INTERVAL: Duration = Duration::from_millis(25);
/// How often the picture samples weights and counts.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// The ECS service the drill deploys.
const ECS_SERVICE: &str = "drill:checkout";
/// The group's CloudWatch alarm, on the new version's errors (see `setup::define_alarm`).
const ALARM: &str = "checkout-errors";
/// The Lambda function the drill deploys.
const FUNCTION: &str = "checkout";
/// The cluster of the service that ECS deploys itself.
const NATIVE_CLUSTER: &str = "shop";
/// The service that ECS deploys itself, as `cluster/service`.
const NATIVE_SERVICE: &str = "shop/checkout";

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

/// What one release of a scenario did.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// Which scenario.
    pub scenario: ScenarioName,
    /// Which of its releases.
    pub release: Release,
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
    /// ECS-native: every invocation of a lifecycle hook, and how ECS read its answer.
    pub ecs_hook_calls: Vec<EcsHookCall>,
    /// What production clients saw.
    pub blast_radius: BlastRadius,
    /// The rollback message, if traffic was put back.
    pub rollback: Option<String>,
    /// What each hook decided and why, from the hooks' logs.
    pub verdicts: Vec<HookVerdict>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// Where the picture is.
    pub picture: PathBuf,
    /// What did not go as the scenario expects; empty when it did.
    pub surprises: Vec<String>,
}

/// One invocation of a lifecycle hook by the local ECS.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EcsHookCall {
    /// The hook package, e.g. `before-allow-traffic`.
    pub hook: String,
    /// The lifecycle stage it was invoked at.
    pub stage: String,
    /// 1, then 2, 3, … after each `IN_PROGRESS`.
    pub attempt: u32,
    /// Invoked while rolling back.
    pub rollback: bool,
    /// `SUCCEEDED`, `IN_PROGRESS` or `FAILED`.
    pub outcome: String,
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
            Ok(released) => outcomes.extend(released),
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
            eprintln!("drill: {} did not go as expected: {}", outcome.label(), outcome.surprises.join("; "));
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
            o.label(),
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

impl ScenarioOutcome {
    /// What a release's deployment did, before anything of it is read: no status, no records.
    fn begun(
        scenario: ScenarioName,
        release: Release,
        deployment_id: &str,
        blast_radius: BlastRadius,
        started: Instant,
    ) -> Self {
        Self {
            scenario,
            release,
            deployment_id: deployment_id.to_owned(),
            status: String::new(),
            error_code: None,
            events: Vec::new(),
            weights: Vec::new(),
            reports: Vec::new(),
            hook_invocations: Vec::new(),
            ecs_hook_calls: Vec::new(),
            blast_radius,
            rollback: None,
            verdicts: Vec::new(),
            duration_ms: started.elapsed().as_millis() as u64,
            picture: PathBuf::new(),
            surprises: Vec::new(),
        }
    }

    /// The scenario, and the service where the scenario deploys several: `fleet/checkout`.
    pub fn label(&self) -> String {
        if self.scenario.releases().len() > 1 {
            format!("{}/{}", self.scenario.as_str(), self.release.service)
        } else {
            self.scenario.as_str().to_owned()
        }
    }
}

/// Runs one scenario on a fresh emulator: what each of its releases did.
pub async fn run_scenario(setup: &DrillSetup, scenario: ScenarioName) -> Result<Vec<ScenarioOutcome>, String> {
    let started = Instant::now();
    let out_dir = setup.out_dir.join(scenario.as_str());
    let plans_dir = out_dir.join("plans");
    std::fs::create_dir_all(plans_dir.join("schemas"))
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    // A flag left by an earlier run would fail green from its first request.
    let _ = std::fs::remove_file(green_failure_flag(&plans_dir));
    // Function logs are appended to; an earlier run's would read as this one's.
    let _ = std::fs::remove_dir_all(out_dir.join("logs"));
    let config = local_config(setup, scenario, &plans_dir);
    let server = Server::start(config, setup.scale, 0, Some(out_dir.join("logs"))).await.map_err(|e| e.to_string())?;
    let result = match scenario.is_ecs_native() {
        true => native::drive(setup, scenario, &server, &plans_dir, started).await,
        false => drive(setup, scenario, &server, &plans_dir, started).await,
    };
    server.shutdown().await;
    result
}

/// A release's production traffic and the samples of it, while its deployment runs.
struct Traffic {
    deployment_id: String,
    counts: Arc<std::sync::Mutex<BlastRadius>>,
    load: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<Vec<Sample>>,
}

async fn drive(
    setup: &DrillSetup,
    scenario: ScenarioName,
    server: &Server,
    plans_dir: &Path,
    started: Instant,
) -> Result<Vec<ScenarioOutcome>, String> {
    let emulator = &server.emulator;
    let releases = scenario.releases();
    let mut listeners = Vec::new();
    for release in &releases {
        listeners.push(if release.lambda { None } else { emulator.listeners(release.target).await });
    }
    if scenario.plans_per_deployment() {
        put_plans(setup, emulator, &releases)?;
    } else {
        write_plans(setup, scenario, plans_dir, listeners[0])?;
    }

    let services = ServiceNames::default();
    let apps: Vec<&str> = releases.iter().filter(|r| r.lambda).map(|r| r.target).collect();
    let printer =
        setup.live.then(|| tokio::spawn(print_timeline(emulator.subscribe(), started, apps, services.clone())));
    // Subscribed before the deployment exists, so the canary's first shift cannot be missed.
    let record = emulator.subscribe();
    if !scenario.plans_per_deployment() {
        define_alarm(emulator, scenario, &releases[0])?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut traffic = Vec::new();
    for (release, listeners) in releases.iter().zip(&listeners) {
        let deployment_id = create_deployment(emulator, scenario, release)?;
        if releases.len() > 1 {
            services.lock().unwrap_or_else(|p| p.into_inner()).insert(deployment_id.clone(), release.service);
        }
        let counts = Arc::new(std::sync::Mutex::new(BlastRadius::default()));
        let production = listeners.map(|l| l.0);
        let load = tokio::spawn(generate_load(emulator.clone(), *release, production, counts.clone(), stop.clone()));
        let weight = {
            let (emulator, deployment_id) = (emulator.clone(), deployment_id.clone());
            move || codedeploy_weight(&emulator, &deployment_id)
        };
        let sampler = tokio::spawn(sample(weight, counts.clone(), stop.clone(), started));
        traffic.push(Traffic { deployment_id, counts, load, sampler });
    }
    // Its own task: if the deployment ends before any canary (a hook failed), the drill must
    // not wait for one.
    let alarm = (scenario == ScenarioName::EcsAlarmRollback).then(|| {
        let flag = green_failure_flag(plans_dir);
        tokio::spawn(fail_green_during_canary(emulator.clone(), record, traffic[0].deployment_id.clone(), flag))
    });
    // The deployments run at the same time, so each gets the same time from the start.
    let limit = setup.scale.apply(crate::emulator::HOOK_REPORT_LIMIT) * 3 + Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    let mut unfinished = Vec::new();
    for t in &traffic {
        if !emulator.wait_until_complete(&t.deployment_id, deadline.saturating_duration_since(Instant::now())).await {
            unfinished.push(t.deployment_id.clone());
        }
    }
    if let Some(alarm) = alarm {
        alarm.abort();
    }
    // A little traffic after the end shows where production settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut samples = Vec::new();
    for t in traffic {
        let _ = t.load.await;
        samples.push(t.sampler.await.unwrap_or_default());
        let blast_radius = *t.counts.lock().unwrap_or_else(|p| p.into_inner());
        outcomes.push((t.deployment_id, blast_radius));
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    if !unfinished.is_empty() {
        return Err(format!("{} did not complete within {limit:?}", unfinished.join(", ")));
    }
    let out_dir = setup.out_dir.join(scenario.as_str());
    let mut results = Vec::new();
    for ((release, (deployment_id, blast_radius)), samples) in releases.into_iter().zip(outcomes).zip(samples) {
        let record = emulator.record_of(&deployment_id);
        let mut outcome = outcome_of(emulator, scenario, release, &deployment_id, &record, blast_radius, started);
        outcome.verdicts = hook_verdicts(&release, &out_dir.join("logs"), &deployment_id);
        let markers = markers(&record, started, emulator);
        let record = serde_json::to_value(&record).unwrap_or_default();
        results.push(finish(setup, outcome, samples, markers, record, started)?);
    }
    Ok(results)
}

/// Judges what a release did, prints its failed verdicts, and writes its picture and record.
fn finish(
    setup: &DrillSetup,
    mut outcome: ScenarioOutcome,
    samples: Vec<Sample>,
    markers: Vec<Marker>,
    record: Value,
    started: Instant,
) -> Result<ScenarioOutcome, String> {
    let (scenario, release) = (outcome.scenario, outcome.release);
    let several = scenario.releases().len() > 1;
    outcome.surprises = surprises(&outcome);
    let notes = verdict_notes(&outcome.verdicts);
    if setup.live {
        for note in &notes {
            println!("{:7.2}s  verdict {} {note}", started.elapsed().as_secs_f64(), release.service);
        }
    }
    let title = match several {
        false => scenario.title().to_owned(),
        true => format!("{}: {}", scenario.title(), release.service),
    };
    let timeline = Timeline {
        title,
        subtitle: format!(
            "{}: {}{} - time scale {}x",
            outcome.deployment_id,
            outcome.status,
            outcome.error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
            setup.scale.0
        ),
        samples,
        markers,
        old_label: format!("old ({})", release.versions.0),
        new_label: format!("new ({})", release.versions.1),
        notes,
    };
    let name = outcome.label().replace('/', "-");
    outcome.picture = setup.out_dir.join(format!("{name}.svg"));
    std::fs::write(&outcome.picture, render_svg(&timeline)).map_err(|e| format!("cannot write the picture: {e}"))?;
    let out_dir = setup.out_dir.join(scenario.as_str());
    let record_file = match several {
        false => out_dir.join("record.json"),
        true => out_dir.join(format!("record-{}.json", release.service)),
    };
    let document = json!({"outcome": outcome, "record": record});
    std::fs::write(&record_file, serde_json::to_string_pretty(&document).unwrap_or_default())
        .map_err(|e| format!("cannot write {}: {e}", record_file.display()))?;
    Ok(outcome)
}

fn outcome_of(
    emulator: &Emulator,
    scenario: ScenarioName,
    release: Release,
    deployment_id: &str,
    record: &[RecordEntry],
    blast_radius: BlastRadius,
    started: Instant,
) -> ScenarioOutcome {
    let state = emulator.state();
    let deployment = state.deployments.get(deployment_id);
    let mut outcome = ScenarioOutcome::begun(scenario, release, deployment_id, blast_radius, started);
    outcome.status = deployment.map(|d| d.status.to_string()).unwrap_or_default();
    outcome.error_code = deployment.and_then(|d| d.error.as_ref().map(|(code, _)| (*code).to_owned()));
    outcome.events = deployment
        .map(|d| d.events.iter().map(|e| (e.name.to_owned(), e.status.to_string())).collect())
        .unwrap_or_default();
    outcome.rollback = deployment.and_then(|d| d.rollback_message.clone());
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
