//! Runs every check concurrently under one deadline, each by its measurement model.
//!
//! Each check is its own task, so one that hangs, or panics, cannot hold up or take down the others:
//! a panic becomes that check's `Failed` result, and anything unfinished at the deadline is `Failed`
//! with reason "deadline". The tasks live in a `JoinSet` owned by the run: when the run returns, or
//! is itself abandoned, every task still running is cancelled, so no check sends a request after
//! the verdict is reported.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checks::{ProbeContext, measure_once};
use crate::plan::Check;
use crate::plan::template::CheckTemplate;

/// One measurement, boxed so the runner can be handed something other than the live probe (tests
/// use this to make a check panic; production always uses [`live_probe`]).
pub type ProbeFn = Arc<
    dyn Fn(Arc<Check>, Arc<ProbeContext>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// The probe that really measures: HTTP requests and Lambda invocations.
pub fn live_probe() -> ProbeFn {
    Arc::new(|check, context| Box::pin(async move { measure_once(check, &context).await }))
}

/// How long after the deadline a check task may take to notice it before it is abandoned.
const ABANDON_GRACE: Duration = Duration::from_millis(250);

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Dry-run checks are logged but left out of the verdict.
    pub dry_run: bool,
    /// Measurements made.
    pub attempts: u32,
    /// Latency of the last measurement, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Why it failed, or for a pass, nothing.
    pub reason: Option<String>,
}

impl CheckResult {
    fn passed(check: &Check, attempts: u32, latency: Option<Duration>) -> Self {
        Self {
            name: check.name.clone(),
            passed: true,
            dry_run: check.dry_run,
            attempts,
            latency_ms: latency.map(|d| d.as_millis() as u64),
            reason: None,
        }
    }

    pub(crate) fn failed(check: &Check, attempts: u32, latency: Option<Duration>, reason: String) -> Self {
        Self {
            name: check.name.clone(),
            passed: false,
            dry_run: check.dry_run,
            attempts,
            latency_ms: latency.map(|d| d.as_millis() as u64),
            reason: Some(reason),
        }
    }

    /// Whether this result decides the verdict against the deployment.
    pub fn counts_as_failure(&self) -> bool {
        !self.passed && !self.dry_run
    }
}

/// Runs all checks concurrently; results come back in plan order.
pub async fn run_checks(
    checks: &[Arc<Check>],
    context: Arc<ProbeContext>,
    probe: ProbeFn,
    deadline: Instant,
) -> Vec<CheckResult> {
    let fresh = vec![Resume::Fresh; checks.len()];
    let measured = run_checks_resumable(checks, context, probe, deadline, fresh, None).await;
    measured
        .into_iter()
        .zip(checks)
        .map(|(measured, check)| match measured {
            Measured::Done(result) => result,
            // Nothing suspends without a suspend threshold; should it, it is not a pass.
            Measured::Suspended(_) => CheckResult::failed(check, 0, None, "did not finish".to_owned()),
        })
        .collect()
}

/// Where a check stands when it stops to go on in another invocation (ECS-native long gates):
/// its counters, and when its next measurement is due.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Measurements made so far.
    pub attempts: u32,
    /// Failed measurements so far.
    pub failures: u32,
    /// Passing measurements in a row, up to the last.
    pub streak: u32,
    /// The last failed measurement's reason, clipped to [`PROGRESS_REASON_LIMIT`] bytes.
    pub last: String,
    /// When the next measurement is due, in milliseconds since the Unix epoch.
    pub next_at_ms: u64,
}

/// How much of a failed measurement's reason a [`Progress`] keeps.
pub const PROGRESS_REASON_LIMIT: usize = 200;

/// Where a check starts: afresh, passed already in an earlier invocation, or part way.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// No earlier invocation measured it.
    Fresh,
    /// It passed in an earlier invocation, after this many measurements; it is not measured again.
    Passed(u32),
    /// It goes on from here.
    Going(Progress),
}

/// How a check's part of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// Passed or failed.
    Done(CheckResult),
    /// Stopped at a pause, to go on in another invocation.
    Suspended(Progress),
}

/// Like [`run_checks`], but each check may start part way (`resume`, in plan order) and, given
/// `suspend_at`, stops at any pause of at least that long, or one that would cross the deadline,
/// to go on in another invocation, instead of waiting or failing.
pub async fn run_checks_resumable(
    checks: &[Arc<Check>],
    context: Arc<ProbeContext>,
    probe: ProbeFn,
    deadline: Instant,
    resume: Vec<Resume>,
    suspend_at: Option<Duration>,
) -> Vec<Measured> {
    let mut tasks = JoinSet::new();
    let mut index_of = HashMap::with_capacity(checks.len());
    let mut results: Vec<Option<Measured>> = vec![None; checks.len()];
    for (index, (check, resume)) in checks.iter().zip(resume).enumerate() {
        let resume = match resume {
            Resume::Passed(attempts) => {
                results[index] = Some(Measured::Done(CheckResult::passed(check, attempts, None)));
                continue;
            }
            Resume::Fresh => None,
            Resume::Going(progress) => Some(progress),
        };
        let measuring = measure(check.clone(), context.clone(), probe.clone(), deadline, resume, suspend_at);
        let task = tasks.spawn(measuring);
        index_of.insert(task.id(), index);
    }
    loop {
        let (id, result) = match tokio::time::timeout_at(deadline + ABANDON_GRACE, tasks.join_next_with_id()).await {
            Ok(None) | Err(_) => break,
            Ok(Some(Ok((id, result)))) => (id, result),
            Ok(Some(Err(join_error))) => {
                let id = join_error.id();
                let reason = format!("check panicked: {}", panic_message(join_error));
                (id, Measured::Done(CheckResult::failed(&checks[index_of[&id]], 0, None, reason)))
            }
        };
        results[index_of[&id]] = Some(result);
    }
    // Dropping the set would cancel the stragglers too; saying so keeps the intent visible.
    tasks.abort_all();
    checks
        .iter()
        .zip(results)
        .map(|(check, result)| {
            result.unwrap_or_else(|| {
                let reason = "deadline: the check did not finish in time".to_owned();
                Measured::Done(CheckResult::failed(check, 0, None, reason))
            })
        })
        .collect()
}

/// Milliseconds since the Unix epoch (0 for an earlier time).
pub(crate) fn epoch_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A check that uses `${variables}`, filled with this deployment's values.
async fn instantiate(template: &CheckTemplate, context: &ProbeContext) -> Result<Check, String> {
    let names: Vec<&str> = template.variables.iter().map(String::as_str).collect();
    let values = crate::checks::variables::variable_values(&names, context).await?;
    template.fill(&values)
}

/// The message of a panic, as far as it can be recovered.
pub(crate) fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

/// Runs one check's measurements: passes after `consecutive_successes` passing measurements in a
/// row; fails once failures exceed `failure_limit`, once passing has become impossible in the
/// attempts left, or at the deadline. A check resumed from `resume` goes on with its counters once
/// its next measurement is due; with `suspend_at`, a pause that long, or one that would cross the
/// deadline, suspends it instead.
async fn measure(
    check: Arc<Check>,
    context: Arc<ProbeContext>,
    probe: ProbeFn,
    deadline: Instant,
    resume: Option<Progress>,
    suspend_at: Option<Duration>,
) -> Measured {
    let check = match &check.template {
        None => check,
        Some(template) => match tokio::time::timeout_at(deadline, instantiate(template, &context)).await {
            Ok(Ok(filled)) => Arc::new(filled),
            Ok(Err(reason)) => return Measured::Done(CheckResult::failed(&check, 0, None, reason)),
            Err(_) => {
                let reason = "deadline: the check's variables were not filled in time".to_owned();
                return Measured::Done(CheckResult::failed(&check, 0, None, reason));
            }
        },
    };
    let model = check.measurement;
    let (mut attempts, mut failures, mut streak) = (0u32, 0u32, 0u32);
    let mut last_latency = None;
    let mut last_reason = String::new();
    // A resumed check's first pause is what is left of the one it stopped at.
    let mut first_pause = None;
    if let Some(progress) = resume {
        (attempts, failures, streak, last_reason) =
            (progress.attempts, progress.failures, progress.streak, progress.last);
        let due = std::time::UNIX_EPOCH + Duration::from_millis(progress.next_at_ms);
        first_pause = Some(due.duration_since(std::time::SystemTime::now()).unwrap_or_default());
    }
    while attempts < model.attempts {
        if attempts > 0 {
            let pause = first_pause.take().unwrap_or(model.interval);
            let crosses = Instant::now() + pause >= deadline;
            if let Some(at) = suspend_at
                && (pause >= at || crosses)
            {
                let last = crate::clip(&last_reason, PROGRESS_REASON_LIMIT).to_owned();
                let next_at_ms = epoch_ms(std::time::SystemTime::now() + pause);
                return Measured::Suspended(Progress { attempts, failures, streak, last, next_at_ms });
            }
            if crosses {
                return Measured::Done(CheckResult::failed(
                    &check,
                    attempts,
                    last_latency,
                    format!("deadline: no time for attempt {} (last: {last_reason})", attempts + 1),
                ));
            }
            tokio::time::sleep(pause).await;
        }
        attempts += 1;
        let started = Instant::now();
        let attempt_deadline = (started + model.timeout).min(deadline);
        let outcome = match tokio::time::timeout_at(attempt_deadline, probe(check.clone(), context.clone())).await {
            Ok(outcome) => outcome,
            Err(_) if attempt_deadline == deadline => {
                return Measured::Done(CheckResult::failed(
                    &check,
                    attempts,
                    Some(started.elapsed()),
                    format!("deadline: attempt {attempts} was still running"),
                ));
            }
            Err(_) => Err(format!("timed out after {} ms", model.timeout.as_millis())),
        };
        let latency = started.elapsed();
        last_latency = Some(latency);
        let outcome = outcome.and_then(|()| match check.expect.max_latency {
            Some(budget) if latency > budget => {
                Err(format!("took {} ms, over the {} ms budget", latency.as_millis(), budget.as_millis()))
            }
            _ => Ok(()),
        });
        match outcome {
            Ok(()) => {
                streak += 1;
                if streak >= model.consecutive_successes {
                    return Measured::Done(CheckResult::passed(&check, attempts, Some(latency)));
                }
            }
            Err(reason) => {
                streak = 0;
                failures += 1;
                last_reason = reason;
                if let Some(limit) = model.failure_limit
                    && failures > limit
                {
                    let reason = format!("{failures} failed measurement(s), limit {limit}: {last_reason}");
                    return Measured::Done(CheckResult::failed(&check, attempts, last_latency, reason));
                }
            }
        }
        let attempts_left = model.attempts - attempts;
        if streak + attempts_left < model.consecutive_successes {
            break;
        }
    }
    let reason = if model.consecutive_successes > 1 {
        format!(
            "{} successes in a row not reached in {attempts} attempt(s); last failure: {last_reason}",
            model.consecutive_successes
        )
    } else if attempts > 1 {
        format!("failed {attempts} of {attempts} attempts; last: {last_reason}")
    } else {
        last_reason
    };
    Measured::Done(CheckResult::failed(&check, attempts, last_latency, reason))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::plan::{Expect, HttpProbe, Measurement, Probe, Redactor};

    fn check(name: &str, measurement: Measurement) -> Arc<Check> {
        Arc::new(Check {
            name: name.to_owned(),
            probe: Probe::Http(HttpProbe {
                method: reqwest::Method::GET,
                url: "http://127.0.0.1:9/".parse().unwrap(),
                headers: Default::default(),
                body: None,
                max_body_bytes: 1,
            }),
            expect: Expect::default(),
            measurement,
            dry_run: false,
            template: None,
        })
    }

    fn model(attempts: u32, failure_limit: Option<u32>, consecutive_successes: u32) -> Measurement {
        Measurement {
            attempts,
            interval: Duration::ZERO,
            failure_limit,
            consecutive_successes,
            timeout: Duration::from_secs(1),
        }
    }

    fn context() -> Arc<ProbeContext> {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        crate::tls::install_crypto_provider();
        Arc::new(ProbeContext {
            http: reqwest::Client::new(),
            aws: crate::AwsClients::new(&config),
            started_at: std::time::SystemTime::now(),
            lookups: Arc::default(),
            deployment: None,
            redactor: Redactor::default(),
            judging: crate::checks::judge::judging_slots(),
        })
    }

    /// A probe that answers from a script: `true` passes, `false` fails; past the end, it fails.
    fn scripted(script: &'static [bool]) -> (ProbeFn, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let probe: ProbeFn = Arc::new(move |_, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
            Box::pin(
                async move { if script.get(n).copied().unwrap_or(false) { Ok(()) } else { Err(format!("no {n}")) } },
            )
        });
        (probe, calls)
    }

    async fn run_one(measurement: Measurement, script: &'static [bool]) -> (CheckResult, u32) {
        let (probe, calls) = scripted(script);
        let deadline = Instant::now() + Duration::from_secs(5);
        let results = run_checks(&[check("c", measurement)], context(), probe, deadline).await;
        (results.into_iter().next().unwrap(), calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn retries_until_the_first_pass() {
        let (result, calls) = run_one(model(3, None, 1), &[false, false, true]).await;
        assert!(result.passed, "{result:?}");
        assert_eq!((result.attempts, calls), (3, 3));
    }

    #[tokio::test]
    async fn all_attempts_failing_fails_with_the_last_reason() {
        let (result, _) = run_one(model(3, None, 1), &[]).await;
        assert!(!result.passed);
        assert_eq!(result.reason.as_deref(), Some("failed 3 of 3 attempts; last: no 2"));
    }

    #[tokio::test]
    async fn failure_limit_stops_early() {
        let (result, calls) = run_one(model(10, Some(1), 1), &[]).await;
        assert!(!result.passed);
        assert_eq!(calls, 2, "the second failure exceeds a limit of 1");
    }

    #[tokio::test]
    async fn consecutive_successes_restart_after_a_failure() {
        let (result, calls) = run_one(model(6, None, 3), &[true, true, false, true, true, true]).await;
        assert!(result.passed, "{result:?}");
        assert_eq!(calls, 6);
    }

    #[tokio::test]
    async fn gives_up_when_passing_is_no_longer_possible() {
        let (result, calls) = run_one(model(5, None, 3), &[true, true, false, true, true]).await;
        assert!(!result.passed);
        assert_eq!(calls, 3, "after the 3rd measurement, 2 attempts cannot make 3 in a row");
    }

    #[tokio::test]
    async fn a_panicking_check_fails_alone() {
        let probe: ProbeFn = Arc::new(|check, _| {
            Box::pin(async move {
                if check.name == "boom" {
                    panic!("kaboom");
                }
                Ok(())
            })
        });
        let checks = [check("boom", model(1, None, 1)), check("fine", model(1, None, 1))];
        let results = run_checks(&checks, context(), probe, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(results[0].reason.as_deref(), Some("check panicked: kaboom"));
        assert!(results[1].passed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_fails_at_the_deadline() {
        let probe: ProbeFn = Arc::new(|_, _| Box::pin(std::future::pending()));
        let mut slow = model(1, None, 1);
        slow.timeout = Duration::from_secs(600);
        let deadline = Instant::now() + Duration::from_secs(3);
        let results = run_checks(&[check("hang", slow)], context(), probe, deadline).await;
        assert!(results[0].reason.as_deref().unwrap().starts_with("deadline"), "{results:?}");
        assert!(Instant::now() <= deadline + ABANDON_GRACE);
    }
}
