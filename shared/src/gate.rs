//! One hook run, end to end: plan → discover → run checks → verdict → report exactly once.
//!
//! The evaluation runs in its own task under a deadline that keeps a reserve for reporting, so a
//! panic or a hang anywhere in it still ends in a `Failed` report before the Lambda deadline.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

use crate::checks::ProbeContext;
use crate::discover::{self, Deployment};
use crate::event::HookEvent;
use crate::hook::{Hook, LifecycleEvent, Platform};
use crate::plan::{DEFAULT_REPORT_RESERVE, Plan, PlanError};
use crate::report::{self, ReportError, ReportOutcome};
use crate::runner::{self, ProbeFn};
use crate::telemetry;
use crate::verdict::Verdict;

/// The least time kept for reporting, whatever the plan says: the SDK's first retry backoff and
/// the return margin must fit. With less time than this left, checks are skipped and `Failed` is
/// reported at once.
pub const MIN_REPORT_RESERVE: Duration = Duration::from_secs(1);
/// Kept back from the Lambda deadline so the function returns before it is cut off.
const RETURN_MARGIN: Duration = Duration::from_millis(200);

/// AWS clients, built once and shared by every invocation. CodeDeploy's and Lambda's are built at
/// start-up; CloudWatch's and ELBv2's only when a metric or alarm check first needs them, so a plan
/// without such checks starts as fast as before they existed.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// For discovery and reporting.
    pub codedeploy: aws_sdk_codedeploy::Client,
    /// For invoke checks.
    pub lambda: aws_sdk_lambda::Client,
    config: SdkConfig,
    cloudwatch: Arc<OnceLock<aws_sdk_cloudwatch::Client>>,
    elbv2: Arc<OnceLock<aws_sdk_elasticloadbalancingv2::Client>>,
}

impl AwsClients {
    /// Clients from a loaded SDK config (region, credentials, endpoints, retries).
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            codedeploy: aws_sdk_codedeploy::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            config: config.clone(),
            cloudwatch: Arc::default(),
            elbv2: Arc::default(),
        }
    }

    /// For metric and alarm checks; built on first use.
    pub fn cloudwatch(&self) -> &aws_sdk_cloudwatch::Client {
        self.cloudwatch.get_or_init(|| aws_sdk_cloudwatch::Client::new(&self.config))
    }

    /// For the target group and load balancer dimensions of ECS metric checks; built on first use.
    pub fn elbv2(&self) -> &aws_sdk_elasticloadbalancingv2::Client {
        self.elbv2.get_or_init(|| aws_sdk_elasticloadbalancingv2::Client::new(&self.config))
    }

    /// Whether the CloudWatch client has been built: it must not be for a plan that does not use it.
    pub fn cloudwatch_built(&self) -> bool {
        self.cloudwatch.get().is_some()
    }

    /// Clients from the environment, as every AWS SDK loads them, over [`crate::aws_http`]'s client.
    pub async fn from_env() -> Self {
        let loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(crate::aws_http::sdk_http_client());
        Self::new(&loader.load().await)
    }
}

/// A hook ready to judge deployments: its identity, its plan (or why it has none), and its clients.
pub struct Gate {
    hook: Hook,
    /// The plan and the HTTP client built for it, or why the gate cannot judge.
    ready: Result<(Plan, reqwest::Client), String>,
    aws: AwsClients,
    probe: ProbeFn,
    /// Judging slots for every run of this gate ([`crate::checks::judge`]).
    judging: Arc<tokio::sync::Semaphore>,
    dry_run: bool,
    discovery: bool,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("hook", &self.hook).field("ready", &self.ready).finish_non_exhaustive()
    }
}

/// What one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    /// The hook that ran.
    pub hook: &'static str,
    /// The deployment judged.
    pub deployment_id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What CodeDeploy made of the report.
    pub report: ReportOutcome,
    /// Why the report was not delivered, when it was not.
    #[serde(serialize_with = "serialize_display", skip_serializing_if = "Option::is_none")]
    pub report_error: Option<ReportError>,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
}

impl Gate {
    /// A gate with a loaded plan (or the error that stopped it loading). Builds the HTTP client
    /// once: TLS verification on, the plan's extra CAs added, no redirects followed (a smoke test
    /// should see a 301, not what it points at).
    pub fn new(hook: Hook, plan: Result<Plan, PlanError>, aws: AwsClients) -> Self {
        let ready = plan.map_err(|err| err.to_string()).and_then(|plan| match http_client(&plan.extra_roots) {
            Ok(http) => Ok((plan, http)),
            Err(err) => Err(format!("cannot build the HTTP client: {err}")),
        });
        Self {
            hook,
            ready,
            aws,
            probe: runner::live_probe(),
            judging: crate::checks::judge::judging_slots(),
            dry_run: false,
            discovery: true,
        }
    }

    /// Logs verdicts without reporting them.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Skips discovery (CLI rehearsals, always with dry run: without discovery the lifecycle-event
    /// check cannot run, so such a verdict must not be reported). Checks that refer to the
    /// deployment fail.
    pub fn discovery(mut self, discovery: bool) -> Self {
        self.discovery = discovery;
        self
    }

    /// Replaces how one measurement is taken. For tests that need a check to panic, which no real
    /// target can cause; production code never calls this.
    pub fn with_probe(mut self, probe: ProbeFn) -> Self {
        self.probe = probe;
        self
    }

    /// The hook this gate serves.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// Judges the deployment and reports the verdict exactly once, before `deadline`. An error
    /// means the report did not land (Lambda mode returns it so Lambda's async retry tries again).
    pub async fn run(self: &Arc<Self>, event: &HookEvent, deadline: Instant) -> Result<RunOutcome, ReportError> {
        let mut outcome = self.judge_and_report(event, deadline).await;
        match outcome.report_error.take() {
            Some(err) => Err(err),
            None => Ok(outcome),
        }
    }

    /// Like [`Gate::run`], but keeps the outcome when the report failed, for callers that show
    /// the verdict either way (CLI mode).
    pub async fn judge_and_report(self: &Arc<Self>, event: &HookEvent, deadline: Instant) -> RunOutcome {
        let gate = Arc::clone(self);
        let owned_event = event.clone();
        self.supervise(event, deadline, move |judge_by| async move { gate.evaluate(&owned_event, judge_by).await })
            .await
    }

    /// Runs `evaluation` in its own task until the time to judge is up, then reports whatever it
    /// concluded, or why it concluded nothing: a panic or an evaluation still running half a
    /// reserve past its time both become `Failed`. Private, so only this module's tests can hand
    /// it an evaluation other than [`Gate::evaluate`].
    async fn supervise<E, F>(&self, event: &HookEvent, deadline: Instant, evaluation: E) -> RunOutcome
    where
        E: FnOnce(Instant) -> F,
        F: Future<Output = Verdict> + Send + 'static,
    {
        let started = Instant::now();
        let judge_by = self.judge_by(started, deadline);
        let reserve = deadline.saturating_duration_since(judge_by);

        let evaluation = tokio::spawn(evaluation(judge_by));
        let abort = evaluation.abort_handle();
        let verdict = match tokio::time::timeout_at(judge_by + reserve / 2, evaluation).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(join_error)) => {
                Verdict::cannot_judge(format!("hook panicked: {}", runner::panic_message(join_error)), None)
            }
            Err(_) => {
                abort.abort();
                Verdict::cannot_judge("deadline: the evaluation did not finish in time", None)
            }
        };

        let dry_run = self.dry_run || self.ready.as_ref().is_ok_and(|(plan, _)| plan.dry_run);
        let report = if dry_run {
            Ok(ReportOutcome::Skipped)
        } else {
            let report_by = deadline.checked_sub(RETURN_MARGIN).unwrap_or(deadline);
            match tokio::time::timeout_at(report_by, report::report(&self.aws.codedeploy, event, verdict.status)).await
            {
                Ok(result) => result,
                Err(_) => {
                    Err(ReportError::Deadline { deployment_id: event.deployment_id.clone(), status: verdict.status })
                }
            }
        };
        let outcome = RunOutcome {
            hook: self.hook.name,
            deployment_id: event.deployment_id.clone(),
            verdict,
            report: *report.as_ref().unwrap_or(&ReportOutcome::NotDelivered),
            report_error: report.err(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        telemetry::log_run(&outcome);
        outcome
    }

    /// When judging must stop: the deadline minus the report reserve. The reserve is the plan's
    /// (default 5 s), at most a third of the time left, but never under [`MIN_REPORT_RESERVE`], so
    /// a short deadline leaves the report its time and the checks none.
    fn judge_by(&self, now: Instant, deadline: Instant) -> Instant {
        let planned = self.ready.as_ref().map_or(DEFAULT_REPORT_RESERVE, |(plan, _)| plan.report_reserve);
        let reserve = planned.min(deadline.saturating_duration_since(now) / 3).max(MIN_REPORT_RESERVE);
        deadline.checked_sub(reserve).unwrap_or(now).max(now)
    }

    async fn evaluate(&self, event: &HookEvent, judge_by: Instant) -> Verdict {
        let (plan, http) = match &self.ready {
            Ok(ready) => ready,
            Err(reason) => return Verdict::cannot_judge(reason.clone(), None),
        };
        let (deployment, green_ready) = if self.discovery {
            match self.discover(plan, event, judge_by).await {
                Ok((deployment, green_ready)) => (Some(Arc::new(deployment)), green_ready),
                Err(verdict) => return *verdict,
            }
        } else {
            (None, false)
        };
        let context = Arc::new(ProbeContext {
            http: http.clone(),
            aws: self.aws.clone(),
            started_at: std::time::SystemTime::now(),
            ecs_dimensions: Arc::default(),
            deployment: deployment.clone(),
            redactor: plan.redactor.clone(),
            judging: Arc::clone(&self.judging),
        });
        let results = runner::run_checks(&plan.checks, context, self.probe.clone(), judge_by).await;
        Verdict::from_checks(results, green_ready, deployment.map(|d| (*d).clone()))
    }

    /// Discovery, the identity check and (for after-install) the wait for green. Says whether the
    /// green task set was seen running its desired count.
    async fn discover(
        &self,
        plan: &Plan,
        event: &HookEvent,
        judge_by: Instant,
    ) -> Result<(Deployment, bool), Box<Verdict>> {
        let client = &self.aws.codedeploy;
        let found = tokio::time::timeout_at(judge_by, discover::discover(client, &event.deployment_id)).await;
        let deployment = match found {
            Ok(Ok(deployment)) => deployment,
            Ok(Err(err)) => {
                return Err(Box::new(Verdict::cannot_judge(format!("discovery: {err}"), None)));
            }
            Err(_) => {
                return Err(Box::new(Verdict::cannot_judge("deadline: discovery did not finish in time", None)));
            }
        };
        if let Some(mismatch) = deployment.mismatch(self.hook) {
            return Err(Box::new(Verdict::cannot_judge(mismatch, Some(deployment))));
        }
        let wait_for_green = plan.wait_for_green.unwrap_or(self.hook.waits_for_green_by_default());
        if wait_for_green && self.hook.event == LifecycleEvent::BeforeInstall {
            let reason = "wait_for_green cannot work at BeforeInstall: the green task set does not exist yet";
            return Err(Box::new(Verdict::cannot_judge(reason, Some(deployment))));
        }
        // Lambda deployments have no green task set: the option has no effect there, and in
        // particular no wait happened that could stand in for a check.
        if wait_for_green && deployment.platform() == Platform::Ecs {
            let snapshot = deployment.clone();
            return match discover::wait_for_green(client, deployment, plan.wait_for_green_interval, judge_by).await {
                Ok(ready) => Ok((ready, true)),
                Err(err) => Err(Box::new(Verdict::cannot_judge(format!("waiting for green: {err}"), Some(snapshot)))),
            };
        }
        Ok((deployment, false))
    }
}

fn http_client(extra_roots: &[CertificateDer<'static>]) -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config(extra_roots).map_err(|err| err.to_string())?;
    reqwest::Client::builder()
        .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|err| crate::checks::error_chain(&err))
}

fn serialize_display<S: serde::Serializer>(value: &Option<ReportError>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(err) => serializer.collect_str(err),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanError;
    use crate::report::ReportOutcome;
    use crate::verdict::Status;

    /// A dry-run gate: it judges and logs, and never calls CodeDeploy.
    fn gate() -> Gate {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        Gate::new(Hook::PRE_TRAFFIC, Err(PlanError::Missing), AwsClients::new(&config)).dry_run(true)
    }

    fn event() -> HookEvent {
        HookEvent { deployment_id: "d-SEAM00001".to_owned(), execution_id: "exec-seam".to_owned() }
    }

    #[tokio::test]
    async fn a_panic_outside_the_checks_fails_with_its_message() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let outcome = gate()
            .supervise(&event(), deadline, |_| async {
                panic!("discovery blew up");
                #[allow(unreachable_code)]
                Verdict::cannot_judge("unreachable", None)
            })
            .await;
        assert_eq!(outcome.verdict.status, Status::Failed);
        assert_eq!(outcome.verdict.reason, "hook panicked: discovery blew up");
        assert_eq!(outcome.report, ReportOutcome::Skipped);
    }

    #[tokio::test(start_paused = true)]
    async fn an_evaluation_past_its_time_is_abandoned_half_a_reserve_later() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        let gate = gate();
        let judge_by = gate.judge_by(started, deadline);
        let outcome = gate.supervise(&event(), deadline, |_| std::future::pending::<Verdict>()).await;
        assert_eq!(outcome.verdict.status, Status::Failed);
        assert_eq!(outcome.verdict.reason, "deadline: the evaluation did not finish in time");
        let reserve = deadline - judge_by;
        assert_eq!(Instant::now(), judge_by + reserve / 2, "abandoned exactly half a reserve after judging stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn an_evaluation_on_time_is_what_is_reported() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let outcome = gate()
            .supervise(&event(), deadline, |judge_by| async move {
                tokio::time::sleep_until(judge_by - Duration::from_millis(1)).await;
                Verdict::from_checks(Vec::new(), true, None)
            })
            .await;
        assert_eq!(outcome.verdict.status, Status::Succeeded, "{:?}", outcome.verdict);
    }
}
