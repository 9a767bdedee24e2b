//! Logs: one line per check and one summary line per run, structured so CloudWatch Logs Insights
//! can query them (JSON when Lambda's log format is JSON).

use tracing::{error, info, warn};

use crate::gate::RunOutcome;
use crate::verdict::Status;

/// Sets up logging for Lambda: Lambda's advanced logging controls (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`) decide format and level.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Sets up logging for CLI mode: to stderr (stdout carries the result), errors only unless
/// `RUST_LOG` asks for more.
pub fn init_cli() {
    use lambda_runtime::tracing::subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    fmt().with_writer(std::io::stderr).with_target(false).with_env_filter(filter).init();
}

/// Logs every check's result and the run's summary.
pub fn log_run(outcome: &RunOutcome) {
    for check in &outcome.verdict.checks {
        let outcome_word = match (check.passed, check.dry_run) {
            (true, _) => "passed",
            (false, true) => "failed (dry run)",
            (false, false) => "failed",
        };
        let reason = check.reason.as_deref().unwrap_or("");
        if check.counts_as_failure() {
            warn!(deployment_id = %outcome.deployment_id, check = %check.name, outcome = outcome_word, attempts = check.attempts, latency_ms = check.latency_ms, reason, "check");
        } else {
            info!(deployment_id = %outcome.deployment_id, check = %check.name, outcome = outcome_word, attempts = check.attempts, latency_ms = check.latency_ms, reason, "check");
        }
    }
    let verdict = &outcome.verdict;
    match &outcome.report_error {
        Some(err) => error!(
            deployment_id = %outcome.deployment_id, hook = outcome.hook, verdict = %verdict.status,
            reason = %verdict.reason, duration_ms = outcome.duration_ms, error = %err,
            "verdict not reported"
        ),
        None if verdict.status == Status::Failed => warn!(
            deployment_id = %outcome.deployment_id, hook = outcome.hook, verdict = %verdict.status,
            reason = %verdict.reason, duration_ms = outcome.duration_ms, report = outcome.report.as_str(),
            "verdict"
        ),
        None => info!(
            deployment_id = %outcome.deployment_id, hook = outcome.hook, verdict = %verdict.status,
            reason = %verdict.reason, duration_ms = outcome.duration_ms, report = outcome.report.as_str(),
            "verdict"
        ),
    }
}
