//! `greenlight-bench`: the hooks' cold start, memory, concurrency and size, measured side by side
//! with a Python reference hook (`bench/reference/hook.py`, boto3 + urllib3 under `awslambdaric`).
//!
//! Every run is a real Lambda deployment on the local CodeDeploy (`codedeploy-local`): its
//! `BeforeAllowTraffic` hook is the subject, started cold by the emulator's runtime host behind
//! its own Runtime API, checking a local target and reporting over CodeDeploy's wire protocol.
//! Subjects take turns, run by run, so drift on the machine touches every subject alike.
//!
//! The fleet run ([`fleet`]) then sends many services' deployments through one set of hooks at
//! once and compares its wall time with one deployment's alone.
//!
//! ```text
//! bash scripts/bench.sh            # build in release and measure (what the README shows)
//! bash scripts/bench.sh --fleet    # the fleet run alone, into bench/results/fleet.{md,json}
//! bash scripts/bench.sh --tiny     # a few runs of debug builds: proves the harness still works
//! ```

mod fleet;
mod report;
mod subjects;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use codedeploy_local::emulator::{Emulator, Happening, RecordEntry};
use codedeploy_local::limits::{Cgroup, Limit};
use codedeploy_local::server::Server;
use serde_json::{Value, json};

use crate::report::{Sample, Sizes};
use crate::subjects::{Subject, World};

/// Measures the greenlight hooks against the Python reference hook and writes a markdown table,
/// an SVG chart and the raw samples.
#[derive(Debug, Parser)]
#[command(name = "greenlight-bench", args_override_self = true)]
struct Args {
    /// Cold runs per subject.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Where the hook binaries (`pre-traffic`, `checkout-function`) are: `target/release` for
    /// figures worth publishing.
    #[arg(long)]
    hook_dir: PathBuf,
    /// Where to write `results.md`, `results.json` and `chart.svg`.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The CPU share for the throttled runs, in percent of one core. Lambda gives a 128 MB
    /// function 128/1769 of a vCPU, about 7.2 %. 0 skips the throttled runs.
    #[arg(long, default_value_t = 7.2)]
    cpu_quota: f64,
    /// `ARCH=DIR`: a `cargo lambda build --output-format zip --lambda-dir DIR` output whose
    /// bootstrap and zip sizes go in the size table. Repeat per architecture.
    #[arg(long = "lambda-dir", value_parser = parse_lambda_dir)]
    lambda_dirs: Vec<(String, PathBuf)>,
    /// A line describing the build, for the report (for example "release").
    #[arg(long, default_value = "release")]
    build: String,
    /// Only the fleet run: writes `fleet.md` and `fleet.json`, and leaves the cold-start results as
    /// they are.
    #[arg(long)]
    fleet_only: bool,
    /// ECS deployments in the fleet.
    #[arg(long, default_value_t = 24)]
    fleet_ecs: usize,
    /// Lambda deployments in the fleet.
    #[arg(long, default_value_t = 16)]
    fleet_lambda: usize,
    /// Of the fleet's ECS deployments, how many release a green that breaks the cart contract.
    #[arg(long, default_value_t = 3)]
    fleet_broken_ecs: usize,
    /// Of the fleet's Lambda deployments, how many release a version that fails every invocation.
    #[arg(long, default_value_t = 2)]
    fleet_broken_lambda: usize,
}

fn parse_lambda_dir(value: &str) -> Result<(String, PathBuf), String> {
    let (arch, dir) = value.split_once('=').ok_or("expected ARCH=DIR")?;
    Ok((arch.to_owned(), PathBuf::from(dir)))
}

/// How long one deployment may take before the harness gives up on it.
const DEPLOYMENT_LIMIT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("greenlight-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    if !args.fleet_only {
        cold_starts(&args).await?;
    }
    fleet_run(&args).await
}

/// The fleet run, into `fleet.md` and `fleet.json`.
async fn fleet_run(args: &Args) -> Result<(), String> {
    let shape = fleet::FleetShape {
        ecs: args.fleet_ecs,
        lambda: args.fleet_lambda,
        broken_ecs: args.fleet_broken_ecs,
        broken_lambda: args.fleet_broken_lambda,
    };
    let logs = args.out.join("logs").join("fleet");
    let report = fleet::run(&args.hook_dir, shape, &args.build, &logs).await?;
    let markdown = fleet::markdown(&report);
    write(&args.out.join("fleet.md"), &markdown)?;
    write(&args.out.join("fleet.json"), &serde_json::to_string_pretty(&report).unwrap_or_default())?;
    println!("{markdown}");
    eprintln!("greenlight-bench: wrote fleet.md and fleet.json to {}", args.out.display());
    Ok(())
}

/// The cold-start measurements, into `results.md`, `results.json` and `chart.svg`.
async fn cold_starts(args: &Args) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".to_owned());
    }
    let limits: &[Limit] = if args.cpu_quota > 0.0 { &[Limit::CpuPercent(args.cpu_quota)] } else { &[] };
    let (quota, quota_note) = match Cgroup::create(limits) {
        Ok(Some(quota)) => {
            let note = format!("throttled runs: {}", quota.describe());
            (Some(quota), note)
        }
        Ok(None) => (None, "throttled runs: skipped (--cpu-quota 0)".to_owned()),
        Err(why) => {
            eprintln!("greenlight-bench: no throttled runs: {why}");
            (None, format!("throttled runs: not measured ({why})"))
        }
    };
    // Read first, so a missing build fails before the runs rather than after them.
    let sizes = Sizes::read(&args.lambda_dirs)?;
    let world = World::start(&args.hook_dir, quota.as_ref()).await?;
    let config = world.local_config();
    let server = Server::start(config, codedeploy_local::emulator::TimeScale(1.0), 0, Some(args.out.join("logs")))
        .await
        .map_err(|e| e.to_string())?;
    setup_group(&server.emulator)?;

    // On Ctrl-C or SIGTERM the runs stop, and the shutdown below still kills every hook process
    // before the cgroup is removed.
    let measured = tokio::select! {
        measured = measure_all(&server.emulator, &world.subjects, args.runs) => measured,
        signal = interrupted() => Err(format!("stopped by {signal}; nothing written")),
    };
    server.shutdown().await;
    drop(quota);
    let samples = measured?;

    let context = report::Context::describe(args.runs, &args.build, quota_note);
    let markdown = report::markdown(&samples, &sizes, &context);
    let svg = report::chart(&samples);
    let json = json!({"context": context, "samples": samples, "sizes": sizes});
    write(&args.out.join("results.md"), &markdown)?;
    write(&args.out.join("chart.svg"), &svg)?;
    write(&args.out.join("results.json"), &serde_json::to_string_pretty(&json).unwrap_or_default())?;
    println!("{markdown}");
    eprintln!("greenlight-bench: wrote results.md, results.json and chart.svg to {}", args.out.display());
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

const APPLICATION: &str = "bench";
const GROUP: &str = "checkout";

fn setup_group(emulator: &Emulator) -> Result<(), String> {
    let call =
        |operation: &str, input: Value| emulator.codedeploy(operation, &input).map_err(|e| format!("{operation}: {e}"));
    call("CreateApplication", json!({"applicationName": APPLICATION, "computePlatform": "Lambda"}))?;
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": APPLICATION, "deploymentGroupName": GROUP,
               "serviceRoleArn": "arn:aws:iam::123456789012:role/CodeDeployServiceRole",
               "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}}),
    )?;
    Ok(())
}

/// Every subject, `runs` times, taking turns; each sample is printed as it comes.
async fn measure_all(emulator: &Emulator, subjects: &[Subject], runs: usize) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut alias_version = 1;
    let total = runs * subjects.len();
    for run in 0..runs {
        for subject in subjects {
            let sample = measure(emulator, subject, run, &mut alias_version)
                .await
                .map_err(|err| format!("{} (run {}): {err}", subject.name, run + 1))?;
            eprintln!(
                "[{:>3}/{total}] {:<26} init {:>8.1} ms  start-to-report {:>8.1} ms  peak RSS {:>6.1} MiB",
                samples.len() + 1,
                subject.name,
                sample.init_ms,
                sample.start_to_report_ms,
                sample.peak_rss_kb as f64 / 1024.0
            );
            samples.push(sample);
        }
    }
    Ok(samples)
}

/// Completes with the signal's name when the harness is asked to stop.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// One cold run: the subject's idle processes are recycled, then a deployment names it as its
/// `BeforeAllowTraffic` hook and must succeed on the subject's report.
async fn measure(
    emulator: &Emulator,
    subject: &Subject,
    run: usize,
    alias_version: &mut u32,
) -> Result<Sample, String> {
    emulator.runtime().recycle(&subject.function).await;
    let (current, target) = (*alias_version, 3 - *alias_version);
    let appspec = json!({
        "version": 0.0,
        "Resources": [{"checkout": {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": subjects::CHECKOUT, "Alias": "live", "CurrentVersion": current.to_string(),
            "TargetVersion": target.to_string()}}}],
        "Hooks": [{"BeforeAllowTraffic": subject.function}],
    });
    let created = emulator
        .codedeploy(
            "CreateDeployment",
            &json!({"applicationName": APPLICATION, "deploymentGroupName": GROUP,
                    "deploymentConfigName": "CodeDeployDefault.LambdaAllAtOnce",
                    "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
        )
        .map_err(|e| format!("CreateDeployment: {e}"))?;
    let id = created["deploymentId"].as_str().ok_or("CreateDeployment returned no id")?.to_owned();
    if !emulator.wait_until_complete(&id, DEPLOYMENT_LIMIT).await {
        return Err(format!("deployment {id} did not finish within {DEPLOYMENT_LIMIT:?}"));
    }
    let status = emulator.state().deployments.get(&id).map_or("missing", |d| d.status.as_str());
    if status != "Succeeded" {
        return Err(format!(
            "deployment {id} ended {status}; the hook's log is in the logs directory. The subject must pass for its timing to mean anything"
        ));
    }
    *alias_version = target;
    // The deployment can finish on the report before the invocation has ended and been recorded.
    let record = wait_for_invocation(emulator, &id, &subject.function).await?;
    Sample::from_record(subject, run, &record)
}

async fn wait_for_invocation(emulator: &Emulator, id: &str, function: &str) -> Result<Vec<RecordEntry>, String> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record = emulator.record_of(id);
        let ended = record
            .iter()
            .any(|entry| matches!(&entry.what, Happening::Invocation { function: f, .. } if f == function));
        if ended {
            return Ok(record);
        }
        if std::time::Instant::now() >= until {
            return Err(format!("the invocation of {function} never ended after its report"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
