//! One hook run, end to end: plan → discover → run checks → verdict → report exactly once.
//!
//! The evaluation runs in its own task under a deadline that keeps a reserve for reporting, so a
//! panic or a hang anywhere in it still ends in a `Failed` report before the Lambda deadline.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::checks::ProbeContext;
use crate::checks::variables::Lookups;
use crate::checks::variables::{DeploymentNames, deployment_names};
use crate::discover::{self, Deployment};
use crate::ecs_native::{self, HookAnswer, progress};
use crate::event::{EcsHookEvent, HookEvent};
use crate::hook::{Hook, LifecycleEvent, Platform};
use crate::plan::select::{LoadedPlan, Plans, ServiceNames};
use crate::plan::{Plan, PlanError};
use crate::report::{self, ReportError, ReportOutcome};
use crate::runner::{self, Measured, ProbeFn, Resume};
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
    ssm: Arc<OnceLock<aws_sdk_ssm::Client>>,
    ecs: Arc<OnceLock<aws_sdk_ecs::Client>>,
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
            ssm: Arc::default(),
            ecs: Arc::default(),
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

    /// For plans read from Parameter Store; built on first use.
    pub fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.ssm.get_or_init(|| aws_sdk_ssm::Client::new(&self.config))
    }

    /// For ECS-native deployments, which ECS describes; built on first use.
    pub fn ecs(&self) -> &aws_sdk_ecs::Client {
        self.ecs.get_or_init(|| aws_sdk_ecs::Client::new(&self.config))
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
    plans: Plans,
    aws: AwsClients,
    probe: ProbeFn,
    /// Judging slots for every run of this gate ([`crate::checks::judge`]).
    judging: Arc<tokio::sync::Semaphore>,
    dry_run: bool,
    discovery: bool,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("hook", &self.hook).field("plans", &self.plans).finish_non_exhaustive()
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
    /// For an ECS-native deployment, what the hook answered ECS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<HookAnswer>,
}

impl Gate {
    /// A gate with a loaded plan (or the error that stopped it loading). Builds the HTTP client
    /// once: TLS verification on, the plan's extra CAs added, no redirects followed (a smoke test
    /// should see a 301, not what it points at).
    pub fn new(hook: Hook, plan: Result<Plan, PlanError>, aws: AwsClients) -> Self {
        Self::with_plans(hook, Plans::ready(plan), aws)
    }

    /// A gate whose plan comes from `plans`, which may still be loading.
    pub fn with_plans(hook: Hook, plans: Plans, aws: AwsClients) -> Self {
        Self {
            hook,
            plans,
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
        self.supervise(event, deadline, move |schedule| async move { gate.evaluate(&owned_event, schedule).await })
            .await
    }

    /// Runs `evaluation` in its own task until the time to judge is up, then reports whatever it
    /// concluded, or why it concluded nothing: a panic or an evaluation still running half a
    /// reserve past its time both become `Failed`. The time to judge follows the plan's report
    /// reserve once the evaluation knows its plan ([`Schedule::plan_known`]). Private, so only this
    /// module's tests can hand it an evaluation other than [`Gate::evaluate`].
    async fn supervise<E, F>(&self, event: &HookEvent, deadline: Instant, evaluation: E) -> RunOutcome
    where
        E: FnOnce(Schedule) -> F,
        F: Future<Output = Judged> + Send + 'static,
    {
        let started = Instant::now();
        let judged = self.judge_within(started, deadline, evaluation).await;
        let Judged { verdict, plan_dry_run, .. } = judged;
        let report = if self.dry_run || plan_dry_run {
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
            answer: None,
        };
        telemetry::log_run(&outcome);
        outcome
    }

    /// Runs `evaluation` in its own task until the time to judge is up: a panic or an evaluation
    /// still running half a reserve past its time both become `Failed`.
    async fn judge_within<E, F>(&self, started: Instant, deadline: Instant, evaluation: E) -> Judged
    where
        E: FnOnce(Schedule) -> F,
        F: Future<Output = Judged> + Send + 'static,
    {
        let (retimed, mut judge_by) = watch::channel(judge_by(started, deadline, self.plans.report_reserve_now()));
        let cutoff = |judge_by: Instant| judge_by + deadline.saturating_duration_since(judge_by) / 2;
        let mut evaluation = tokio::spawn(evaluation(Schedule { started, deadline, judge_by: retimed }));
        let abort = evaluation.abort_handle();
        let mut give_up_at = cutoff(*judge_by.borrow_and_update());
        loop {
            tokio::select! {
                joined = &mut evaluation => break match joined {
                    Ok(judged) => judged,
                    Err(join_error) => Judged::unplanned(Verdict::cannot_judge(
                        format!("hook panicked: {}", runner::panic_message(join_error)),
                        None,
                    )),
                },
                Ok(()) = judge_by.changed() => give_up_at = cutoff(*judge_by.borrow_and_update()),
                () = tokio::time::sleep_until(give_up_at) => {
                    abort.abort();
                    break Judged::unplanned(Verdict::cannot_judge("deadline: the evaluation did not finish in time", None));
                }
            }
        }
    }

    async fn evaluate(&self, event: &HookEvent, schedule: Schedule) -> Judged {
        let lookups = Arc::new(Lookups::default());
        // Discovery needs no plan, so it runs while a plan still loading finishes.
        let plan = async {
            let names = match self.plans.is_per_deployment() {
                true if !self.discovery => {
                    let reason = "the plan is chosen per deployment, by names only CodeDeploy knows, and discovery is off: name a plan (--plan) or let the hook ask CodeDeploy";
                    return Err(Box::new(Verdict::cannot_judge(reason, None)));
                }
                true => match self.deployment_names(event, schedule.judge_by()).await {
                    Ok(names) => {
                        // A fleet's ECS plans judge green through the listeners: ask for them
                        // beside the plan.
                        if self.hook.platform == Platform::Ecs {
                            lookups.prefetch_listeners(&self.aws.codedeploy, &names);
                        }
                        lookups.know_names(names.clone());
                        Some(names)
                    }
                    Err(verdict) => return Err(verdict),
                },
                false => None,
            };
            let chosen = self.plans.get(self.hook.name, names.as_ref(), || self.aws.ssm().clone());
            in_time(schedule.judge_by(), chosen, "", PLAN_LATE).await
        };
        let found = async {
            match self.discovery {
                true => self.discover(event, schedule.judge_by()).await.map(Some),
                false => Ok(None),
            }
        };
        let (loaded, deployment) = match tokio::try_join!(plan, found) {
            Ok(both) => both,
            Err(verdict) => return Judged::unplanned(*verdict),
        };
        self.run_plan(loaded, deployment, lookups, schedule, None).await
    }

    /// The checks of `loaded` on `deployment`, after the wait for green if the plan asks for it.
    /// For an ECS invocation (`ecs`), the checks go on from where earlier invocations left them,
    /// and may stop at a long pause to go on in the next ([`ecs_native::progress`]).
    async fn run_plan(
        &self,
        loaded: Arc<LoadedPlan>,
        deployment: Option<Deployment>,
        lookups: Arc<Lookups>,
        schedule: Schedule,
        ecs: Option<&EcsHookEvent>,
    ) -> Judged {
        let judge_by = schedule.plan_known(loaded.plan.report_reserve);
        let plan_dry_run = loaded.plan.dry_run;
        let judged = |verdict| Judged { verdict, plan_dry_run, goes_on: None };
        let now = std::time::SystemTime::now();
        let carried = match ecs.map(|event| progress::read(self.hook.name, event, &loaded.plan, now)) {
            None => None,
            Some(Ok(carried)) => Some(carried),
            Some(Err(reason)) => return judged(Verdict::cannot_judge(reason, deployment)),
        };
        let (deployment, green_ready) = match deployment {
            Some(deployment) => match self.wait_for_green_if_asked(&loaded.plan, deployment, judge_by).await {
                Ok((deployment, green_ready)) => (Some(Arc::new(deployment)), green_ready),
                Err(verdict) => return judged(*verdict),
            },
            None => (None, false),
        };
        let LoadedPlan { plan, http } = &*loaded;
        let context = Arc::new(ProbeContext {
            http: http.clone(),
            aws: self.aws.clone(),
            started_at: std::time::SystemTime::now(),
            lookups,
            deployment: deployment.clone(),
            redactor: plan.redactor.clone(),
            judging: Arc::clone(&self.judging),
        });
        let deployment = deployment.map(|d| (*d).clone());
        let (Some(event), Some(carried)) = (ecs, carried) else {
            let results = runner::run_checks(&plan.checks, context, self.probe.clone(), judge_by).await;
            return judged(Verdict::from_checks(results, green_ready, deployment));
        };
        // A dry run must not hold the deployment, so its checks do not go on.
        let suspend_at = (!plan.dry_run && !self.dry_run).then_some(progress::SUSPEND_AT);
        let resume = carried.resume.clone();
        let measured =
            runner::run_checks_resumable(&plan.checks, context, self.probe.clone(), judge_by, resume, suspend_at).await;
        let mut results = Vec::with_capacity(measured.len());
        let mut standing = Vec::with_capacity(measured.len());
        let mut next_at_ms = None::<u64>;
        for (measured, check) in measured.into_iter().zip(&plan.checks) {
            match measured {
                Measured::Done(result) => {
                    standing.push(if result.passed { Resume::Passed(result.attempts) } else { Resume::Fresh });
                    results.push(result);
                }
                Measured::Suspended(progress) if check.dry_run => {
                    let reason = "still in progress; a dry-run check does not hold the deployment".to_owned();
                    results.push(runner::CheckResult::failed(check, progress.attempts, None, reason));
                    standing.push(Resume::Fresh);
                }
                Measured::Suspended(progress) => {
                    next_at_ms = Some(next_at_ms.map_or(progress.next_at_ms, |at| at.min(progress.next_at_ms)));
                    standing.push(Resume::Going(progress));
                }
            }
        }
        let verdict = Verdict::from_checks(results, green_ready, deployment.clone());
        let going = standing.iter().filter(|s| matches!(s, Resume::Going(_))).count();
        // A failed check fails the gate now; the others need not go on.
        let Some(next_at_ms) = next_at_ms.filter(|_| verdict.checks.iter().all(|c| !c.counts_as_failure())) else {
            return judged(verdict);
        };
        let hook_details = match progress::write(self.hook.name, event, plan, &carried, &standing) {
            Ok(details) => details,
            Err(reason) => return judged(Verdict::cannot_judge(reason, deployment)),
        };
        let delay = next_at_ms.saturating_sub(runner::epoch_ms(std::time::SystemTime::now())).div_ceil(1000).max(1);
        let reason = format!(
            "in progress: {going} of {} check(s) go on in invocation {} of this gate, in {delay} s",
            plan.checks.len(),
            carried.invocations + 2
        );
        let verdict = Verdict { status: crate::verdict::Status::InProgress, reason, ..verdict };
        let answer = HookAnswer { hook_status: "IN_PROGRESS", call_back_delay: Some(delay), hook_details };
        Judged { verdict, plan_dry_run, goes_on: Some(answer) }
    }

    /// Judges an ECS lifecycle stage and says what to answer ECS, within `deadline`: the same
    /// plan and checks as for CodeDeploy, then `SUCCEEDED` or `FAILED` as the return value. An
    /// invocation during a rollback stands aside (`SUCCEEDED`). A dry run (the function's or the
    /// plan's) answers `SUCCEEDED` whatever it judged, and logs the verdict.
    pub async fn answer(self: &Arc<Self>, event: &EcsHookEvent, deadline: Instant) -> RunOutcome {
        let started = Instant::now();
        let gate = Arc::clone(self);
        let owned_event = event.clone();
        let judged =
            self.judge_within(started, deadline, move |schedule| async move {
                gate.evaluate_ecs(&owned_event, schedule).await
            })
            .await;
        let Judged { verdict, plan_dry_run, goes_on } = judged;
        let dry_run = self.dry_run || plan_dry_run;
        let answer = match (dry_run, goes_on) {
            (true, _) => HookAnswer::from_status(crate::verdict::Status::Succeeded),
            (false, Some(goes_on)) => goes_on,
            (false, None) => HookAnswer::from_verdict(&verdict),
        };
        let outcome = RunOutcome {
            hook: self.hook.name,
            deployment_id: event.deployment_id().to_owned(),
            verdict,
            report: if dry_run { ReportOutcome::Skipped } else { ReportOutcome::Answered },
            report_error: None,
            duration_ms: started.elapsed().as_millis() as u64,
            answer: Some(answer),
        };
        telemetry::log_run(&outcome);
        outcome
    }

    async fn evaluate_ecs(&self, event: &EcsHookEvent, schedule: Schedule) -> Judged {
        let stood_aside = |reason: String| Judged::unplanned(Verdict::stood_aside(reason));
        if self.hook.ecs_stage() != Some(event.stage.as_str()) {
            if let Some(reason) = ecs_native::stands_aside_by_weights(event) {
                return stood_aside(reason);
            }
            let mismatch = self.stage_mismatch(event);
            // Only ECS hooks may ask ECS (their role allows it) whether it is rolling back.
            if self.hook.platform == Platform::Ecs && self.discovery {
                let asked = ecs_native::describe(self.aws.ecs(), &event.resource_arn);
                match tokio::time::timeout_at(schedule.judge_by(), asked).await {
                    Ok(Ok(described)) => {
                        if let Some(reason) =
                            ecs_native::stands_aside_by_status(&ecs_native::service_deployment(&described))
                        {
                            return stood_aside(reason);
                        }
                    }
                    Ok(Err(err)) => {
                        return Judged::unplanned(Verdict::cannot_judge(format!("{mismatch}; and {err}"), None));
                    }
                    Err(_) => {}
                }
            }
            return Judged::unplanned(Verdict::cannot_judge(mismatch, None));
        }
        let lookups = Arc::new(Lookups::default());
        let plan = async {
            let names = self.service_names(event)?;
            let chosen = self.plans.get_for_service(self.hook.name, &names, || self.aws.ssm().clone());
            in_time(schedule.judge_by(), chosen, "", PLAN_LATE).await
        };
        let found = async {
            if !self.discovery {
                return Ok(None);
            }
            let found = ecs_native::discover(self.aws.ecs(), event);
            in_time(schedule.judge_by(), found, "discovery: ", DISCOVERY_LATE).await.map(Some)
        };
        // A rollback found by discovery wins over a plan that could not be chosen.
        let (loaded, deployment) = tokio::join!(plan, found);
        let deployment = match deployment {
            Ok(deployment) => deployment,
            Err(verdict) => return Judged::unplanned(*verdict),
        };
        if let Some(reason) =
            deployment.as_ref().and_then(|d| d.service_deployment.as_ref()).and_then(ecs_native::stands_aside_by_status)
        {
            return stood_aside(reason);
        }
        match loaded {
            Ok(loaded) => self.run_plan(loaded, deployment, lookups, schedule, Some(event)).await,
            Err(verdict) => Judged::unplanned(*verdict),
        }
    }

    /// Why this hook must not judge the stage ECS invoked it at.
    fn stage_mismatch(&self, event: &EcsHookEvent) -> String {
        let hook = self.hook;
        match hook.ecs_stage() {
            Some(own) => format!(
                "{hook} serves ECS's {own} but was invoked at {} of {}; check the service's lifecycleHooks",
                event.stage, event.resource_arn
            ),
            None => {
                let serves = Hook::ALL.iter().find(|h| h.ecs_stage() == Some(event.stage.as_str()));
                format!(
                    "{hook} judges {} deployments and serves no ECS stage, but was invoked at {} of {}; {}",
                    hook.platform,
                    event.stage,
                    event.resource_arn,
                    match serves {
                        Some(other) => format!("use the {other} hook for it"),
                        None => format!("no greenlight hook serves {}", event.stage),
                    }
                )
            }
        }
    }

    /// The names that choose an ECS-native deployment's plan.
    fn service_names(&self, event: &EcsHookEvent) -> Result<ServiceNames, Box<Verdict>> {
        let (cluster, service) = ecs_native::cluster_and_service(&event.resource_arn).ok_or_else(|| {
            Box::new(Verdict::cannot_judge(
                format!("resourceArn {} is not a service deployment ARN", event.resource_arn),
                None,
            ))
        })?;
        let plan_parameter = match event.hook_details.get(ecs_native::PLAN_PARAMETER_KEY) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) if !name.trim().is_empty() => Some(name.clone()),
            Some(other) => {
                let reason = format!(
                    "hookDetails.{} must name a Parameter Store parameter, got {other}",
                    ecs_native::PLAN_PARAMETER_KEY
                );
                return Err(Box::new(Verdict::cannot_judge(reason, None)));
            }
        };
        Ok(ServiceNames { cluster: cluster.to_owned(), service: service.to_owned(), plan_parameter })
    }

    /// The deployment's application and group, which choose a plan per deployment.
    async fn deployment_names(&self, event: &HookEvent, judge_by: Instant) -> Result<DeploymentNames, Box<Verdict>> {
        let asked = deployment_names(&self.aws.codedeploy, &event.deployment_id);
        in_time(judge_by, asked, "choosing the plan: ", "deadline: the plan was not chosen in time").await
    }

    /// Discovery and the identity check.
    async fn discover(&self, event: &HookEvent, judge_by: Instant) -> Result<Deployment, Box<Verdict>> {
        let found = discover::discover(&self.aws.codedeploy, &event.deployment_id);
        let deployment = in_time(judge_by, found, "discovery: ", DISCOVERY_LATE).await?;
        match deployment.mismatch(self.hook) {
            Some(mismatch) => Err(Box::new(Verdict::cannot_judge(mismatch, Some(deployment)))),
            None => Ok(deployment),
        }
    }

    /// For after-install (or a plan that asks), the wait for the green task set. Says whether the
    /// green task set was seen running its desired count.
    async fn wait_for_green_if_asked(
        &self,
        plan: &Plan,
        deployment: Deployment,
        judge_by: Instant,
    ) -> Result<(Deployment, bool), Box<Verdict>> {
        let wait_for_green = plan.wait_for_green.unwrap_or(self.hook.waits_for_green_by_default());
        if wait_for_green && self.hook.event == LifecycleEvent::BeforeInstall {
            let reason = "wait_for_green cannot work at BeforeInstall: the green task set does not exist yet";
            return Err(Box::new(Verdict::cannot_judge(reason, Some(deployment))));
        }
        // Lambda deployments have no green task set: the option has no effect there, and in
        // particular no wait happened that could stand in for a check.
        if wait_for_green && deployment.service_deployment.is_some() {
            let snapshot = deployment.clone();
            let waited = ecs_native::wait_for_green(self.aws.ecs(), deployment, plan.wait_for_green_interval, judge_by);
            return match waited.await {
                Ok(ready) => Ok((ready, true)),
                Err(err) => Err(Box::new(Verdict::cannot_judge(format!("waiting for green: {err}"), Some(snapshot)))),
            };
        }
        if wait_for_green && deployment.platform() == Platform::Ecs {
            let snapshot = deployment.clone();
            let client = &self.aws.codedeploy;
            return match discover::wait_for_green(client, deployment, plan.wait_for_green_interval, judge_by).await {
                Ok(ready) => Ok((ready, true)),
                Err(err) => Err(Box::new(Verdict::cannot_judge(format!("waiting for green: {err}"), Some(snapshot)))),
            };
        }
        Ok((deployment, false))
    }
}

const PLAN_LATE: &str = "deadline: the plan did not load in time";
const DISCOVERY_LATE: &str = "deadline: discovery did not finish in time";

/// `step`'s value if it comes by `judge_by`; else a verdict that cannot judge, giving its error
/// after `failed`, or `late` when time ran out.
async fn in_time<T, E: std::fmt::Display>(
    judge_by: Instant,
    step: impl Future<Output = Result<T, E>>,
    failed: &str,
    late: &'static str,
) -> Result<T, Box<Verdict>> {
    match tokio::time::timeout_at(judge_by, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Box::new(Verdict::cannot_judge(format!("{failed}{err}"), None))),
        Err(_) => Err(Box::new(Verdict::cannot_judge(late, None))),
    }
}

/// What an evaluation concluded, and whether its plan asked for a dry run.
struct Judged {
    verdict: Verdict,
    plan_dry_run: bool,
    /// For a gate that goes on in the next ECS invocation, the `IN_PROGRESS` answer to give.
    goes_on: Option<HookAnswer>,
}

impl Judged {
    /// A verdict reached without a plan to say otherwise: reported.
    fn unplanned(verdict: Verdict) -> Self {
        Self { verdict, plan_dry_run: false, goes_on: None }
    }
}

/// An evaluation's time: when its run started, the Lambda deadline, and when judging must stop,
/// which moves once the plan (and its report reserve) is known.
struct Schedule {
    started: Instant,
    deadline: Instant,
    judge_by: watch::Sender<Instant>,
}

impl Schedule {
    /// When judging must stop, as known so far.
    fn judge_by(&self) -> Instant {
        *self.judge_by.borrow()
    }

    /// Sets the time to judge from the plan's report reserve, and tells the supervisor.
    fn plan_known(&self, report_reserve: Duration) -> Instant {
        let judge_by = judge_by(self.started, self.deadline, report_reserve);
        self.judge_by.send_replace(judge_by);
        judge_by
    }
}

/// When judging must stop: the deadline minus the report reserve. The reserve is the plan's
/// (default 5 s), at most a third of the time left, but never under [`MIN_REPORT_RESERVE`], so
/// a short deadline leaves the report its time and the checks none.
fn judge_by(now: Instant, deadline: Instant, planned: Duration) -> Instant {
    let reserve = planned.min(deadline.saturating_duration_since(now) / 3).max(MIN_REPORT_RESERVE);
    deadline.checked_sub(reserve).unwrap_or(now).max(now)
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
    use crate::plan::{DEFAULT_REPORT_RESERVE, PlanError};
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
                Judged::unplanned(Verdict::cannot_judge("unreachable", None))
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
        let judge_by = judge_by(started, deadline, DEFAULT_REPORT_RESERVE);
        let outcome = gate().supervise(&event(), deadline, |_| std::future::pending::<Judged>()).await;
        assert_eq!(outcome.verdict.status, Status::Failed);
        assert_eq!(outcome.verdict.reason, "deadline: the evaluation did not finish in time");
        let reserve = deadline - judge_by;
        assert_eq!(Instant::now(), judge_by + reserve / 2, "abandoned exactly half a reserve after judging stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn the_plans_reserve_moves_the_time_an_evaluation_is_abandoned() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        let outcome = gate()
            .supervise(&event(), deadline, |schedule| async move {
                schedule.plan_known(Duration::from_secs(2));
                std::future::pending::<Judged>().await
            })
            .await;
        assert_eq!(outcome.verdict.reason, "deadline: the evaluation did not finish in time");
        assert_eq!(
            Instant::now(),
            deadline - Duration::from_secs(1),
            "half of the plan's 2 s reserve, not the default's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_evaluation_on_time_is_what_is_reported() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let outcome = gate()
            .supervise(&event(), deadline, |schedule| async move {
                tokio::time::sleep_until(schedule.judge_by() - Duration::from_millis(1)).await;
                Judged::unplanned(Verdict::from_checks(Vec::new(), true, None))
            })
            .await;
        assert_eq!(outcome.verdict.status, Status::Succeeded, "{:?}", outcome.verdict);
    }

    #[tokio::test(start_paused = true)]
    async fn a_plans_dry_run_is_not_reported() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut gate = gate();
        gate.dry_run = false;
        let outcome = gate
            .supervise(&event(), deadline, |_| async move {
                Judged { verdict: Verdict::from_checks(Vec::new(), true, None), plan_dry_run: true, goes_on: None }
            })
            .await;
        assert_eq!(outcome.report, ReportOutcome::Skipped);
    }

    #[tokio::test]
    async fn a_plan_per_deployment_without_discovery_says_it_cannot_be_chosen() {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let plans =
            Plans::per_deployment(None, Some("/plans/{application}"), Duration::ZERO, std::path::Path::new("."), None);
        let gate = Arc::new(
            Gate::with_plans(Hook::PRE_TRAFFIC, plans, AwsClients::new(&config)).dry_run(true).discovery(false),
        );
        let outcome = gate.judge_and_report(&event(), Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(outcome.verdict.status, Status::Failed);
        assert!(
            outcome.verdict.reason.contains("discovery is off: name a plan (--plan)"),
            "{}",
            outcome.verdict.reason
        );
    }

    /// A gate whose AWS endpoint refuses every connection, so a call it should not make fails.
    fn ecs_gate(hook: Hook) -> Arc<Gate> {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let plan = crate::plan::parse(
            r#"{"checks":[{"name":"up","http":{"url":"http://127.0.0.1:9/"}}]}"#,
            std::path::Path::new("."),
        );
        Arc::new(Gate::new(hook, plan, AwsClients::new(&config)))
    }

    fn ecs_event(stage: &str, weights: serde_json::Value) -> EcsHookEvent {
        let raw = serde_json::json!({
            "executionId": "exec-1", "lifecycleStage": stage,
            "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/dep1",
            "executionDetails": {"targetServiceRevisionArn": "rev/green", "testTrafficWeights": weights}
        });
        match crate::event::Invocation::from_value(raw).unwrap() {
            crate::event::Invocation::Ecs(event) => event,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_lambda_hook_at_an_ecs_stage_fails_naming_both_and_the_hook_to_use() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let outcome = ecs_gate(Hook::PRE_TRAFFIC)
            .answer(&ecs_event("POST_TEST_TRAFFIC_SHIFT", serde_json::json!({})), deadline)
            .await;
        assert_eq!(outcome.answer.as_ref().map(|a| a.hook_status), Some("FAILED"));
        let reason = &outcome.verdict.reason;
        assert!(reason.contains("pre-traffic judges Lambda deployments and serves no ECS stage"), "{reason}");
        assert!(
            reason.contains("POST_TEST_TRAFFIC_SHIFT") && reason.contains("use the after-allow-test-traffic hook"),
            "{reason}"
        );
        assert_eq!(outcome.report, ReportOutcome::Answered);
    }

    #[tokio::test]
    async fn a_shift_back_stands_aside_at_both_rollback_stages_without_a_call() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let back = serde_json::json!({"rev/green": 0, "rev/blue": 100});
        // A rollback calls the hooks of the two shift stages again, shifting back.
        for stage in ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] {
            for hook in Hook::ALL {
                let mut event = ecs_event(stage, serde_json::json!({}));
                match stage {
                    "TEST_TRAFFIC_SHIFT" => event.test_weights = serde_json::from_value(back.clone()).unwrap(),
                    _ => event.production_weights = serde_json::from_value(back.clone()).unwrap(),
                }
                let outcome = ecs_gate(hook).answer(&event, deadline).await;
                let status = outcome.answer.as_ref().map(|a| a.hook_status);
                assert_eq!(status, Some("SUCCEEDED"), "{hook} at {stage}: {:?}", outcome.verdict);
                let reason = &outcome.verdict.reason;
                assert!(reason.starts_with(&format!("stood aside: {stage} shifts traffic back")), "{reason}");
            }
        }
    }

    #[tokio::test]
    async fn an_ecs_hook_at_another_stage_fails_when_ecs_cannot_say_it_is_rolling_back() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let forward = serde_json::json!({"rev/green": 100});
        let outcome =
            ecs_gate(Hook::AFTER_ALLOW_TRAFFIC).answer(&ecs_event("POST_TEST_TRAFFIC_SHIFT", forward), deadline).await;
        assert_eq!(outcome.answer.as_ref().map(|a| a.hook_status), Some("FAILED"));
        let reason = &outcome.verdict.reason;
        assert!(reason.starts_with("after-allow-traffic serves ECS's POST_PRODUCTION_TRAFFIC_SHIFT but was invoked at POST_TEST_TRAFFIC_SHIFT"), "{reason}");
        assert!(reason.contains("ecs:DescribeServiceDeployments failed"), "{reason}");
    }

    #[tokio::test]
    async fn a_plan_parameter_that_is_not_a_name_fails_closed() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut event = ecs_event("POST_TEST_TRAFFIC_SHIFT", serde_json::json!({}));
        event.hook_details.insert("plan_parameter".into(), serde_json::json!(7));
        // Without discovery, so the plan's choice is all that can fail.
        let gate = Arc::new(Arc::into_inner(ecs_gate(Hook::AFTER_ALLOW_TEST_TRAFFIC)).unwrap().discovery(false));
        let outcome = gate.answer(&event, deadline).await;
        assert_eq!(outcome.answer.as_ref().map(|a| a.hook_status), Some("FAILED"));
        assert_eq!(outcome.verdict.reason, "hookDetails.plan_parameter must name a Parameter Store parameter, got 7");
    }

    #[tokio::test]
    async fn a_dry_run_answers_succeeded_whatever_it_judged() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let gate = Arc::new(Arc::into_inner(ecs_gate(Hook::PRE_TRAFFIC)).unwrap().dry_run(true));
        let outcome = gate.answer(&ecs_event("POST_TEST_TRAFFIC_SHIFT", serde_json::json!({})), deadline).await;
        assert_eq!(outcome.verdict.status, Status::Failed);
        assert_eq!(outcome.answer.as_ref().map(|a| a.hook_status), Some("SUCCEEDED"));
        assert_eq!(outcome.report, ReportOutcome::Skipped);
    }

    /// A gate without discovery whose measurements are counted and answered by `pass`.
    fn long_gate(pass: fn(u32) -> bool, counted: Arc<std::sync::atomic::AtomicU32>) -> Arc<Gate> {
        let plan = crate::plan::parse(
            r#"{"report_reserve_ms": 1000, "checks": [{"name": "bake", "http": {"url": "http://127.0.0.1:9/"},
                "attempts": 3, "interval_ms": 1500, "consecutive_successes": 3}]}"#,
            std::path::Path::new("."),
        );
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let probe: ProbeFn = Arc::new(move |_, _| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Box::pin(async move { if pass(n) { Ok(()) } else { Err(format!("measurement {n} failed")) } })
        });
        Arc::new(
            Gate::new(Hook::BEFORE_ALLOW_TRAFFIC, plan, AwsClients::new(&config)).discovery(false).with_probe(probe),
        )
    }

    fn bake_event(details: serde_json::Map<String, serde_json::Value>) -> EcsHookEvent {
        let mut event = ecs_event("PRE_PRODUCTION_TRAFFIC_SHIFT", serde_json::json!({}));
        event.hook_details = details;
        event
    }

    #[tokio::test]
    async fn a_gate_longer_than_an_invocation_goes_on_in_the_next_and_then_succeeds() {
        let counted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let gate = long_gate(|_| true, Arc::clone(&counted));
        // 3 s to the deadline, 1 s reserve: two measurements fit, the third's pause would cross.
        let first = gate.answer(&bake_event(Default::default()), Instant::now() + Duration::from_secs(3)).await;
        let answer = first.answer.clone().unwrap();
        assert_eq!(answer.hook_status, "IN_PROGRESS", "{:?}", first.verdict);
        assert_eq!(first.verdict.status, Status::InProgress);
        assert!(answer.call_back_delay.is_some_and(|d| (1..=2).contains(&d)), "{answer:?}");
        assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(answer.hook_details[progress::STATE_KEY]["checks"][0]["streak"], 2);
        // ECS invokes again after callBackDelay, with the details it was given.
        tokio::time::sleep(Duration::from_secs(answer.call_back_delay.unwrap())).await;
        let second = gate.answer(&bake_event(answer.hook_details), Instant::now() + Duration::from_secs(3)).await;
        assert_eq!(second.answer.as_ref().map(|a| a.hook_status), Some("SUCCEEDED"), "{:?}", second.verdict);
        assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 3, "the streak went on from 2, not from 0");
        assert_eq!(second.verdict.checks[0].attempts, 3);
    }

    #[tokio::test]
    async fn a_gate_that_fails_in_a_later_invocation_answers_failed() {
        let counted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let gate = long_gate(|n| n < 3, Arc::clone(&counted));
        let first = gate.answer(&bake_event(Default::default()), Instant::now() + Duration::from_secs(3)).await;
        let answer = first.answer.unwrap();
        assert_eq!(answer.hook_status, "IN_PROGRESS");
        tokio::time::sleep(Duration::from_secs(answer.call_back_delay.unwrap())).await;
        let second = gate.answer(&bake_event(answer.hook_details), Instant::now() + Duration::from_secs(3)).await;
        assert_eq!(second.answer.as_ref().map(|a| a.hook_status), Some("FAILED"));
        assert!(
            second.verdict.checks[0].reason.as_deref().unwrap().contains("measurement 3 failed"),
            "{:?}",
            second.verdict
        );
    }

    #[tokio::test]
    async fn a_state_changed_on_the_way_fails_closed_without_measuring() {
        let counted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let gate = long_gate(|_| true, Arc::clone(&counted));
        let first = gate.answer(&bake_event(Default::default()), Instant::now() + Duration::from_secs(3)).await;
        let mut details = first.answer.unwrap().hook_details;
        details[progress::STATE_KEY]["checks"][0]["streak"] = serde_json::json!(3);
        let second = gate.answer(&bake_event(details), Instant::now() + Duration::from_secs(3)).await;
        assert_eq!(second.answer.as_ref().map(|a| a.hook_status), Some("FAILED"));
        assert!(second.verdict.reason.contains("digest does not match"), "{}", second.verdict.reason);
        assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 2, "nothing measured on a bad state");
    }
}
