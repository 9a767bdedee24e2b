//! CLI mode: the same gate, run once from a terminal or a CI job.
//!
//! Exit codes: 0 Succeeded, 1 Failed (or the report did not land), 2 usage or configuration error
//! (including a `--junit` or `--report` file that cannot be written).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use tokio::time::Instant;

use crate::event::Invocation;
use crate::gate::{AwsClients, Gate, RunOutcome};
use crate::hook::Hook;
use crate::plan::select::Plans;
use crate::plan::{self, MemoryLimit, PlanSource};
use crate::verdict::Status;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Judges one CodeDeploy lifecycle event and reports the verdict, outside Lambda.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The CodeDeploy event: a JSON file, or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    event: PathBuf,
    /// The plan file. Default: GREENLIGHT_PLAN (inline JSON) or GREENLIGHT_PLAN_FILE.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Judge and print, but do not report to CodeDeploy.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Deadline for the whole run, in milliseconds (Lambda's longest timeout by default).
    #[arg(long, value_name = "MS", default_value_t = 900_000)]
    timeout_ms: u64,
    /// Do not ask CodeDeploy (or ECS) about the deployment: no lifecycle-event check, no wait
    /// for green; checks that refer to the deployment fail. For rehearsing checks against a
    /// service, so a CodeDeploy event needs --dry-run: a verdict reached without the
    /// lifecycle-event check is never reported. An ECS event's answer is only printed.
    #[arg(long)]
    skip_discovery: bool,
    /// The function memory the plan must fit in, in MB, as Lambda's MemorySize: its checks may
    /// hold half of it at once. Default: AWS_LAMBDA_FUNCTION_MEMORY_SIZE, else the machine's memory.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_mb: Option<u64>,
    /// Also write the result as JUnit XML for CI test reports: one test case per check, failed
    /// checks with their reason, dry-run checks skipped; written whatever the verdict.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the result as JSON (the document --format json prints); written whatever the
    /// verdict.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A readable table.
    Text,
    /// One JSON document.
    Json,
}

/// Runs `hook` once from the command line.
pub async fn run(hook: Hook) -> ExitCode {
    let about = format!(
        "greenlight {}: judges the {} {} lifecycle event and reports the verdict to CodeDeploy{}",
        hook.name,
        hook.platform,
        hook.event,
        hook.ecs_stage().map(|stage| format!(" (or ECS's {stage} stage, and answers ECS)")).unwrap_or_default()
    );
    let command = Args::command().name(hook.name).bin_name(hook.name).about(about);
    let args = match command.try_get_matches().and_then(|m| Args::from_arg_matches(&m)) {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    crate::telemetry::init_cli();

    // Opened before anything is judged or reported, so a path that cannot be written stops the
    // run before it tells CodeDeploy anything.
    let evidence = match EvidenceFiles::create(&args) {
        Ok(evidence) => evidence,
        Err(err) => {
            eprintln!("{}: {err}", hook.name);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Without discovery there is no lifecycle-event check, so a CodeDeploy verdict must not be
    // reported; an ECS answer is only printed.
    let usable = read_event(&args.event).and_then(|event| match event {
        Invocation::CodeDeploy(_) if args.skip_discovery && !args.dry_run => Err("--skip-discovery needs --dry-run for a CodeDeploy event: a verdict reached without the lifecycle-event check is never reported".to_owned()),
        event => Ok(event),
    });
    let mut event = match usable {
        Ok(event) => event,
        Err(message) => {
            eprintln!("{}: {message}", hook.name);
            if let Err(err) = evidence.write_not_judged(hook.name, &message) {
                eprintln!("{}: {err}", hook.name);
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // A rehearsal's --plan is the plan to judge by, whatever the ECS event's hook names.
    if let (Some(_), Invocation::Ecs(ecs)) = (&args.plan, &mut event)
        && ecs.hook_details.remove(crate::ecs_native::PLAN_PARAMETER_KEY).is_some()
    {
        eprintln!("{}: judging by --plan in place of the event's hookDetails.plan_parameter", hook.name);
    }
    let package_dir = plan::package_dir();
    let memory = match args.memory_mb {
        Some(mib) => Some(MemoryLimit { mib, source: "--memory-mb" }),
        None => MemoryLimit::from_env(),
    };
    let plans = match &args.plan {
        Some(path) => Plans::load_in_background(Ok(PlanSource::File(path.clone())), &package_dir, memory),
        None => Plans::from_env(&package_dir, memory),
    };
    let plan_error = plans.why_unusable().await;

    let gate = Gate::with_plans(hook, plans, AwsClients::from_env().await)
        .dry_run(args.dry_run || crate::lambda::env_flag(crate::lambda::DRY_RUN_ENV))
        .discovery(!args.skip_discovery);
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    let outcome = match &event {
        Invocation::CodeDeploy(event) => Arc::new(gate).judge_and_report(event, deadline).await,
        Invocation::Ecs(event) => Arc::new(gate).answer(event, deadline).await,
    };

    print_outcome(&outcome, args.format);
    if let Some(err) = &outcome.report_error {
        eprintln!("{}: {err}", hook.name);
    }
    if let Err(err) = evidence.write_outcome(&outcome) {
        eprintln!("{}: {err}", hook.name);
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(err) = plan_error {
        eprintln!("{}: {err}", hook.name);
        return ExitCode::from(EXIT_USAGE);
    }
    if outcome.verdict.status == Status::Succeeded && outcome.report_error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

fn read_event(path: &Path) -> Result<Invocation, String> {
    let mut raw = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw).map(|_| ())
    } else {
        std::fs::read(path).map(|bytes| raw = bytes)
    };
    read.map_err(|err| format!("cannot read event {}: {err}", path.display()))?;
    let source = if path.as_os_str() == "-" { "standard input".into() } else { path.display().to_string() };
    Invocation::from_slice(&raw).map_err(|err| format!("{err} (in {source})"))
}

fn print_outcome(outcome: &RunOutcome, format: Format) {
    match format {
        Format::Json => match serde_json::to_string_pretty(outcome) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("cannot print the outcome as JSON: {err}"),
        },
        Format::Text => print!("{}", render_text(outcome)),
    }
}

/// A `--junit` or `--report` file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {what} to {}: {source}", path.display())]
struct EvidenceError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// An evidence file, created (and so checked writable) before the run.
struct EvidenceFile {
    what: &'static str,
    path: PathBuf,
    file: File,
}

impl EvidenceFile {
    fn create(what: &'static str, path: Option<&PathBuf>) -> Result<Option<Self>, EvidenceError> {
        let Some(path) = path else { return Ok(None) };
        match File::create(path) {
            Ok(file) => Ok(Some(Self { what, path: path.clone(), file })),
            Err(source) => Err(EvidenceError { what, path: path.clone(), source }),
        }
    }

    fn write(self, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<(), EvidenceError> {
        let mut out = BufWriter::new(self.file);
        write(&mut out).and_then(|()| out.flush()).map_err(|source| EvidenceError {
            what: self.what,
            path: self.path,
            source,
        })
    }
}

/// Where `--junit` and `--report` go.
struct EvidenceFiles {
    junit: Option<EvidenceFile>,
    report: Option<EvidenceFile>,
}

impl EvidenceFiles {
    fn create(args: &Args) -> Result<Self, EvidenceError> {
        Ok(Self {
            junit: EvidenceFile::create("JUnit report", args.junit.as_ref())?,
            report: EvidenceFile::create("JSON report", args.report.as_ref())?,
        })
    }

    /// Both files for a judged run, whatever the verdict and whatever became of the report.
    fn write_outcome(self, outcome: &RunOutcome) -> Result<(), EvidenceError> {
        if let Some(junit) = self.junit {
            junit.write(|out| crate::evidence::junit::write_outcome(outcome, out))?;
        }
        if let Some(report) = self.report {
            report.write(|out| {
                serde_json::to_writer_pretty(&mut *out, outcome)?;
                out.write_all(b"\n")
            })?;
        }
        Ok(())
    }

    /// Both files for a run that stopped before the gate (an event that cannot be read): the JUnit
    /// report fails its verdict test case, and the JSON report holds the hook and the error.
    fn write_not_judged(self, hook: &str, error: &str) -> Result<(), EvidenceError> {
        if let Some(junit) = self.junit {
            junit.write(|out| crate::evidence::junit::write_not_judged(hook, error, out))?;
        }
        if let Some(report) = self.report {
            report.write(|out| {
                serde_json::to_writer_pretty(&mut *out, &serde_json::json!({"hook": hook, "error": error}))?;
                out.write_all(b"\n")
            })?;
        }
        Ok(())
    }
}

/// The readable form: one row per check, then the verdict and what became of the report.
pub fn render_text(outcome: &RunOutcome) -> String {
    let verdict = &outcome.verdict;
    let mut rows = vec![[
        "CHECK".to_owned(),
        "RESULT".to_owned(),
        "ATTEMPTS".to_owned(),
        "LATENCY".to_owned(),
        "REASON".to_owned(),
    ]];
    for check in &verdict.checks {
        let result = match (check.passed, check.dry_run) {
            (true, false) => "pass",
            (true, true) => "pass (dry run)",
            (false, false) => "FAIL",
            (false, true) => "fail (dry run)",
        };
        rows.push([
            check.name.clone(),
            result.to_owned(),
            check.attempts.to_string(),
            check.latency_ms.map_or("-".to_owned(), |ms| format!("{ms} ms")),
            check.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = format!("{} · deployment {}\n", outcome.hook, outcome.deployment_id);
    if !verdict.checks.is_empty() {
        for row in &rows {
            let line = format!(
                "  {:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    text.push_str(&format!(
        "verdict: {} — {} ({} ms)\nreport: {}\n",
        verdict.status,
        verdict.reason,
        outcome.duration_ms,
        outcome.report.as_str()
    ));
    if let Some(answer) = &outcome.answer {
        text.push_str(&format!("answer: {}\n", serde_json::to_string(answer).unwrap_or_default()));
    }
    text
}
