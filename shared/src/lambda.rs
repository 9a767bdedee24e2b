//! Lambda mode: the same gate behind the Lambda Runtime API (`lambda_runtime`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{error, warn};

use crate::ecs_native::HookAnswer;
use crate::event::{EventError, Invocation, truncate_for_log};
use crate::gate::{AwsClients, Gate, RunOutcome};
use crate::hook::Hook;
use crate::plan::select::Plans;
use crate::plan::{self, MemoryLimit};
use crate::report::ReportError;

/// Set to `1` or `true` to log verdicts without reporting them.
pub const DRY_RUN_ENV: &str = "GREENLIGHT_DRY_RUN";

/// Why an invocation returned an error to Lambda instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// Nothing can be reported without the event's ids (and ECS rolls back on this error).
    #[error("malformed lifecycle-hook event, nothing reported: {0}")]
    Event(#[from] EventError),
    /// The report did not land; returning an error lets Lambda's async retry try again.
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Self {
        let error_type = match err {
            InvocationError::Event(_) => "greenlight.MalformedEvent",
            InvocationError::Report(_) => "greenlight.ReportFailed",
        };
        Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

/// Whether an environment flag is set to a true value.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Runs `hook` as a Lambda function: plan and clients are set up once, then every invocation judges
/// one lifecycle event.
pub async fn run(hook: Hook) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_lambda();
    serve(gate_from_env(hook).await).await
}

/// The gate a Lambda function runs: the plan from the environment (or why it is unusable, which
/// makes every invocation report `Failed`), clients from the environment, dry run if asked. The
/// plan loads on a thread of its own meanwhile ([`Plans::load_in_background`]).
pub async fn gate_from_env(hook: Hook) -> Gate {
    let package_dir = plan::package_dir();
    let plans = Plans::from_env(&package_dir, MemoryLimit::from_env());
    Gate::with_plans(hook, plans, AwsClients::from_env().await).dry_run(env_flag(DRY_RUN_ENV))
}

/// Serves `gate` behind the Lambda Runtime API until the runtime stops. Tracing must already be
/// set up.
pub async fn serve(gate: Gate) -> Result<(), lambda_runtime::Error> {
    let gate = Arc::new(gate);
    lambda_runtime::run(service_fn(move |invocation: LambdaEvent<Value>| {
        let gate = Arc::clone(&gate);
        // Boxed: an invocation's future nests deep enough to overflow the compiler's query depth
        // in a binary that wraps this loop in one more async block.
        Box::pin(async move { handle(&gate, invocation).await })
    }))
    .await
}

/// What an invocation returns: for CodeDeploy the run's outcome (CodeDeploy reads only the
/// report), for ECS the answer ECS acts on.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    /// A CodeDeploy lifecycle event, judged and reported.
    Reported(Box<RunOutcome>),
    /// An ECS lifecycle stage, judged and answered.
    Answered(HookAnswer),
}

async fn handle(gate: &Arc<Gate>, invocation: LambdaEvent<Value>) -> Result<Response, InvocationError> {
    let deadline = deadline_of(invocation.context.deadline, SystemTime::now());
    let raw = invocation.payload;
    let event = Invocation::from_value(raw.clone()).inspect_err(|err| {
        error!(hook = gate.hook().name, error = %err, raw = %truncate_for_log(&raw.to_string()), "malformed event");
    })?;
    match event {
        Invocation::CodeDeploy(event) => {
            let mut outcome = gate.judge_and_report(&event, deadline).await;
            crate::evidence::metrics::print(&outcome);
            outcome.report_error.take().map_or(Ok(Response::Reported(Box::new(outcome))), |err| Err(err.into()))
        }
        Invocation::Ecs(event) => {
            let outcome = gate.answer(&event, deadline).await;
            crate::evidence::metrics::print(&outcome);
            let answer = outcome.answer.unwrap_or_else(|| HookAnswer::from_verdict(&outcome.verdict));
            Ok(Response::Answered(answer))
        }
    }
}

/// Deadlines below this (September 2001 in epoch milliseconds) cannot be Lambda's wall-clock
/// instants; Lambda's longest timeout is 900 000 ms, so any relative budget is far below it.
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline as a monotonic instant. Lambda sends `Lambda-Runtime-Deadline-Ms` as
/// epoch milliseconds; some runtime emulators (cargo-lambda's sends `600000`) send a budget
/// instead. A value that cannot be an epoch instant is read as a budget from `now`, with one
/// warning per process, so the hook judges and reports under those emulators too.
fn deadline_of(deadline_ms: u64, now: SystemTime) -> Instant {
    let left = if deadline_ms < EARLIEST_EPOCH_DEADLINE_MS {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            warn!(
                deadline_ms,
                "Lambda-Runtime-Deadline-Ms is not an epoch instant (a runtime emulator?); reading it as a budget of that many milliseconds from now"
            )
        });
        Duration::from_millis(deadline_ms)
    } else {
        (UNIX_EPOCH + Duration::from_millis(deadline_ms)).duration_since(now).unwrap_or_default()
    };
    Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_counts_down_from_now() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let left = deadline_of(1_800_000_003_000, now).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(2_900) && left <= Duration::from_secs(3), "{left:?}");
    }

    #[test]
    fn a_relative_budget_is_read_as_time_from_now() {
        let left = deadline_of(600_000, SystemTime::now()).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(599) && left <= Duration::from_secs(600), "{left:?}");
    }

    #[test]
    fn a_past_epoch_deadline_leaves_no_time() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        assert!(deadline_of(1_799_999_000_000, now) <= Instant::now());
    }
}
