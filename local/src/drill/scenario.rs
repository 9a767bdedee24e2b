//! The scenarios: what each rehearses, the versions and hooks it deploys, and what must happen.

use super::*;

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
    /// ECS canary of a green that answers correctly but slower than blue: the absolute alarm
    /// stays quiet, after-allow-traffic's metric check (green's p99 against blue's over the
    /// canary) fails, and production goes back to blue.
    EcsLatencyRegression,
    /// Lambda linear shift to a version that fails about one invocation in twenty: post-traffic's
    /// metric check (its error rate against the old version's over the shift) fails, and the
    /// alias goes back.
    LambdaErrorRegression,
    /// Three services (checkout and cart on ECS, payments on Lambda) deploy at the same time
    /// through one set of hooks that read each plan from Parameter Store and discover every URL:
    /// checkout's contract break is caught by a `compare` check alone, the other two succeed.
    Fleet,
    /// ECS-native blue/green (no CodeDeploy): the contract break caught by after-allow-test-traffic
    /// at POST_TEST_TRAFFIC_SHIFT, rolled back with no production request served by green.
    EcsNativeContractBreak,
    /// ECS-native linear deployment of a green that breaks under production traffic:
    /// before-allow-traffic's per-step metric gate at PRE_PRODUCTION_TRAFFIC_SHIFT (green's 5xx
    /// share) stops it at its second step, and every hook invocation of the rollback stands aside.
    EcsNativeCanaryRegression,
    /// ECS-native canary with a bake at POST_PRODUCTION_TRAFFIC_SHIFT longer than the hook's
    /// function timeout: after-allow-traffic answers IN_PROGRESS, carrying its measurements across
    /// several invocations, then SUCCEEDED.
    EcsNativeLongBake,
}

impl ScenarioName {
    /// Every scenario, in the drill's order.
    pub const ALL: [Self; 11] = [
        Self::LambdaCanary,
        Self::LambdaBrokenVersion,
        Self::EcsContractBreak,
        Self::EcsCanary,
        Self::EcsAlarmRollback,
        Self::EcsLatencyRegression,
        Self::LambdaErrorRegression,
        Self::Fleet,
        Self::EcsNativeContractBreak,
        Self::EcsNativeCanaryRegression,
        Self::EcsNativeLongBake,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LambdaCanary => "lambda-canary",
            Self::LambdaBrokenVersion => "lambda-broken-version",
            Self::EcsContractBreak => "ecs-contract-break",
            Self::EcsCanary => "ecs-canary",
            Self::EcsAlarmRollback => "ecs-alarm-rollback",
            Self::EcsLatencyRegression => "ecs-latency-regression",
            Self::LambdaErrorRegression => "lambda-error-regression",
            Self::Fleet => "fleet",
            Self::EcsNativeContractBreak => "ecs-native-contract-break",
            Self::EcsNativeCanaryRegression => "ecs-native-canary-regression",
            Self::EcsNativeLongBake => "ecs-native-long-bake",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Self::LambdaCanary => "(a) Lambda canary, healthy new version",
            Self::LambdaBrokenVersion => "(b) Lambda, broken new version caught by pre-traffic",
            Self::EcsContractBreak => "(c) ECS, checkout contract break caught by the smoke test",
            Self::EcsCanary => "(d) ECS canary, compatible green",
            Self::EcsAlarmRollback => "(e) ECS canary, alarm during the canary",
            Self::EcsLatencyRegression => "(f) ECS canary, green slower than blue caught by its p99",
            Self::LambdaErrorRegression => "(g) Lambda linear, new version's error rate above the old one's",
            Self::Fleet => {
                "(h) Fleet: checkout, cart and payments at once, one set of hooks, plans from Parameter Store"
            }
            Self::EcsNativeContractBreak => {
                "(i) ECS-native blue/green, contract break caught at POST_TEST_TRAFFIC_SHIFT"
            }
            Self::EcsNativeCanaryRegression => "(j) ECS-native linear, a per-step 5xx gate stops it at its second step",
            Self::EcsNativeLongBake => {
                "(k) ECS-native canary, a bake longer than an invocation, IN_PROGRESS until it passes"
            }
        }
    }

    /// The releases the scenario deploys at the same time. Every scenario but the fleet deploys
    /// one: the checkout service or function.
    pub fn releases(self) -> Vec<Release> {
        if self == Self::Fleet {
            return FLEET.to_vec();
        }
        let lambda = self.is_lambda();
        let ecs_native = self.is_ecs_native();
        vec![Release {
            service: "checkout",
            application: if ecs_native { NATIVE_CLUSTER } else { "drill" },
            group: "checkout",
            lambda,
            ecs_native,
            target: match (lambda, ecs_native) {
                (true, _) => FUNCTION,
                (false, true) => NATIVE_SERVICE,
                (false, false) => ECS_SERVICE,
            },
            versions: self.versions(),
            config_name: self.config_name(),
            expected: self.expected(),
            caught_by: self.caught_by(),
        }]
    }

    /// Whether the hooks choose each plan per deployment, from Parameter Store, instead of
    /// reading one plan file each.
    pub(super) fn plans_per_deployment(self) -> bool {
        self == Self::Fleet
    }

    /// Every hook package the scenario's appspecs name.
    pub(super) fn hooks(self) -> Vec<&'static str> {
        let mut hooks = Vec::new();
        for release in self.releases() {
            for (hook, _) in release.hooks() {
                if !hooks.contains(hook) {
                    hooks.push(*hook);
                }
            }
        }
        hooks
    }

    fn is_lambda(self) -> bool {
        matches!(self, Self::LambdaCanary | Self::LambdaBrokenVersion | Self::LambdaErrorRegression)
    }

    /// Whether ECS runs the deployment itself, calling the hooks at its lifecycle stages.
    pub(super) fn is_ecs_native(self) -> bool {
        matches!(self, Self::EcsNativeContractBreak | Self::EcsNativeCanaryRegression | Self::EcsNativeLongBake)
    }

    /// An ECS-native scenario's `deploymentConfiguration`, without its lifecycle hooks. The
    /// linear steps are a quarter each, two minutes apart, so the gate before the second step
    /// judges two minutes of green under a quarter of production.
    pub(super) fn ecs_strategy(self) -> Value {
        match self {
            Self::EcsNativeCanaryRegression => json!({"strategy": "LINEAR", "bakeTimeInMinutes": 0,
                "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}}),
            Self::EcsNativeLongBake => json!({"strategy": "CANARY", "bakeTimeInMinutes": 0,
                "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5}}),
            _ => json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}),
        }
    }

    /// (current, target) Lambda versions or (blue, green) task definitions.
    fn versions(self) -> (&'static str, &'static str) {
        match self {
            Self::LambdaCanary => ("1", "2"),
            Self::LambdaBrokenVersion => ("1", "3"),
            Self::EcsContractBreak => ("checkout:1", "checkout:2"),
            Self::EcsCanary => ("checkout:1", "checkout:3"),
            Self::EcsAlarmRollback => ("checkout:1", "checkout:4"),
            Self::EcsLatencyRegression => ("checkout:1", "checkout:5"),
            Self::LambdaErrorRegression => ("1", "4"),
            Self::Fleet => ("", ""),
            Self::EcsNativeContractBreak => ("checkout:1", "checkout:2"),
            Self::EcsNativeCanaryRegression => ("checkout:1", "checkout:4"),
            Self::EcsNativeLongBake => ("checkout:1", "checkout:3"),
        }
    }

    /// The deployment configuration. The regressions shift for longer than the healthy canaries
    /// so the metric checks have enough periods of both versions serving to judge by: fifteen
    /// one-minute periods of a 10 % canary for the latency, ten steps of a linear shift for the
    /// error rate (one failure in twenty needs the new version to serve a few hundred requests).
    fn config_name(self) -> &'static str {
        match self {
            Self::EcsLatencyRegression => "CodeDeployDefault.ECSCanary10Percent15Minutes",
            Self::EcsNativeContractBreak => "BLUE_GREEN",
            Self::EcsNativeCanaryRegression => "LINEAR, 25 % a step, 2 minutes apart",
            Self::EcsNativeLongBake => "CANARY, 10 % for 5 minutes",
            Self::LambdaErrorRegression => "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
            _ if self.is_lambda() => "CodeDeployDefault.LambdaCanary10Percent5Minutes",
            _ => "CodeDeployDefault.ECSCanary10Percent5Minutes",
        }
    }

    /// What must happen: final status, error code, and whether the new version may ever get
    /// production traffic.
    fn expected(self) -> (&'static str, Option<&'static str>, bool) {
        match self {
            Self::LambdaCanary | Self::EcsCanary | Self::Fleet => ("Succeeded", None, true),
            Self::LambdaBrokenVersion | Self::EcsContractBreak => ("Failed", Some("HOOK_EXECUTION_FAILURE"), false),
            Self::EcsLatencyRegression | Self::LambdaErrorRegression => {
                ("Failed", Some("HOOK_EXECUTION_FAILURE"), true)
            }
            Self::EcsAlarmRollback => ("Stopped", Some("ALARM_ACTIVE"), true),
            Self::EcsNativeContractBreak => ("ROLLBACK_SUCCESSFUL", None, false),
            Self::EcsNativeCanaryRegression => ("ROLLBACK_SUCCESSFUL", None, true),
            Self::EcsNativeLongBake => ("SUCCESSFUL", None, true),
        }
    }
}

impl ScenarioName {
    /// For a regression only a metric check can see: the hook that must fail, and what its
    /// failed check's reason must say (the metric judge's words, naming the queries it compared).
    fn caught_by(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::EcsLatencyRegression => Some(("after-allow-traffic", "candidate green_p99 vs baseline blue_p99")),
            Self::LambdaErrorRegression => Some(("post-traffic", "is above the baseline's")),
            Self::EcsNativeContractBreak => Some(("after-allow-test-traffic", "total_cents")),
            Self::EcsNativeCanaryRegression => Some(("before-allow-traffic", "green_5xx_share")),
            _ => None,
        }
    }
}

/// One deployment of a scenario: a service, its platform and versions, and what must happen.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Release {
    /// The service, as the summary names it.
    pub service: &'static str,
    /// Its CodeDeploy application.
    pub application: &'static str,
    /// Its CodeDeploy deployment group.
    pub group: &'static str,
    /// A Lambda function (else an ECS service).
    pub lambda: bool,
    /// An ECS service that ECS deploys itself, calling the hooks at its lifecycle stages (else
    /// CodeDeploy deploys it). Its application is the cluster, its group the service.
    pub ecs_native: bool,
    /// The Lambda function, or the ECS service as `cluster:service` (`cluster/service` when ECS
    /// deploys it itself).
    pub target: &'static str,
    /// (current, target) Lambda versions or (blue, green) task definitions.
    pub versions: (&'static str, &'static str),
    /// The deployment configuration.
    pub config_name: &'static str,
    /// Final status, error code, and whether the new version may ever get production traffic.
    pub expected: (&'static str, Option<&'static str>, bool),
    /// The hook that must fail and what its failed check's reason must say, where only one
    /// kind of check can see the regression.
    pub caught_by: Option<(&'static str, &'static str)>,
}

impl Release {
    /// The hook packages its appspec names, with the events they serve; or, ECS-native, the
    /// hook packages its service names, with the lifecycle stage each is configured at.
    pub(super) fn hooks(&self) -> &'static [(&'static str, &'static str)] {
        match (self.lambda, self.ecs_native) {
            (true, _) => &LAMBDA_HOOKS,
            (false, true) => &NATIVE_HOOKS,
            (false, false) => &ECS_HOOKS,
        }
    }
}

/// The fleet: three services of three teams, deployed at once through the same hooks. Checkout
/// renames `total_cents` (task definition 2 answers `minor-units`); cart adds a field beside it
/// (compatible); payments ships a healthy new function version.
const FLEET: [Release; 3] = [
    Release {
        service: "checkout",
        application: "checkout",
        group: "production",
        lambda: false,
        ecs_native: false,
        target: "fleet:checkout",
        versions: ("checkout:1", "checkout:2"),
        config_name: "CodeDeployDefault.ECSCanary10Percent5Minutes",
        expected: ("Failed", Some("HOOK_EXECUTION_FAILURE"), false),
        caught_by: Some((
            "after-allow-test-traffic",
            "the candidate differs from the baseline: /total_cents: missing in candidate",
        )),
    },
    Release {
        service: "cart",
        application: "cart",
        group: "production",
        lambda: false,
        ecs_native: false,
        target: "fleet:cart",
        versions: ("cart:1", "cart:2"),
        config_name: "CodeDeployDefault.ECSCanary10Percent5Minutes",
        expected: ("Succeeded", None, true),
        caught_by: None,
    },
    Release {
        service: "payments",
        application: "payments",
        group: "production",
        lambda: true,
        ecs_native: false,
        target: "payments",
        versions: ("1", "2"),
        config_name: "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        expected: ("Succeeded", None, true),
        caught_by: None,
    },
];

/// Compares an outcome with what its release must show.
pub fn surprises(outcome: &ScenarioOutcome) -> Vec<String> {
    let release = &outcome.release;
    if release.ecs_native {
        return native_surprises(outcome);
    }
    let (status, error_code, new_may_serve) = release.expected;
    let mut surprises = Vec::new();
    if outcome.status != status {
        surprises.push(format!("status {} (expected {status})", outcome.status));
    }
    if outcome.error_code.as_deref() != error_code {
        surprises.push(format!("error code {:?} (expected {error_code:?})", outcome.error_code));
    }
    // Every hook that ran must have reported exactly once; the emulator accepts one per event.
    let accepted = outcome.reports.iter().filter(|(_, result)| result == "accepted").count();
    let platform = if release.lambda { ComputePlatform::Lambda } else { ComputePlatform::Ecs };
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
    if let Some((hook, judged)) = release.caught_by {
        let caught = outcome.verdicts.iter().any(|v| {
            v.hook == hook && v.status == "Failed" && v.failed_checks.iter().any(|(_, reason)| reason.contains(judged))
        });
        if !caught {
            surprises.push(format!("{hook} did not fail saying \"{judged}\": {:?}", outcome.verdicts));
        }
    }
    if let Some(failed) = outcome.verdicts.iter().find(|v| status == "Succeeded" && v.status != "Succeeded") {
        surprises.push(format!("{} reported {}: {}", failed.hook, failed.status, failed.reason));
    }
    surprises
}

/// Compares an ECS-native outcome with what its scenario must show: the final status, where
/// production went, the forward answers the scenario rehearses, and that every invocation of a
/// rollback stood aside (answered SUCCEEDED, and the hook logged why).
fn native_surprises(outcome: &ScenarioOutcome) -> Vec<String> {
    let release = &outcome.release;
    let (status, _, new_may_serve) = release.expected;
    let mut surprises = Vec::new();
    if outcome.status != status {
        surprises.push(format!("status {} (expected {status})", outcome.status));
    }
    let rolled_back = status.starts_with("ROLLBACK_");
    let (rollback, forward): (Vec<&EcsHookCall>, Vec<&EcsHookCall>) =
        outcome.ecs_hook_calls.iter().partition(|call| call.rollback);
    if rolled_back && rollback.is_empty() {
        surprises.push("the rollback invoked no hook".to_owned());
    }
    for call in rollback.iter().filter(|call| call.outcome != "SUCCEEDED") {
        surprises.push(format!("{} answered {} at the rollback's {}", call.hook, call.outcome, call.stage));
    }
    for (hook, _) in release.hooks() {
        let invoked = rollback.iter().filter(|call| call.hook == *hook).count();
        let stood_aside =
            outcome.verdicts.iter().filter(|v| v.hook == *hook && v.reason.starts_with("stood aside:")).count();
        if invoked != stood_aside {
            surprises
                .push(format!("{hook}: {invoked} invocations in the rollback, {stood_aside} logged as standing aside"));
        }
    }
    let production: Vec<f64> =
        outcome.weights.iter().filter(|(route, _)| route == "production").map(|(_, w)| *w).collect();
    let new_served = outcome.blast_radius.new_ok + outcome.blast_radius.new_errors;
    if !new_may_serve && (production.iter().any(|w| *w > 0.0) || new_served > 0) {
        surprises.push(format!("the new version served {new_served} production requests (expected none)"));
    }
    if rolled_back && production.last().is_some_and(|w| *w > 0.0) {
        surprises.push("production traffic moved but was not put back".to_owned());
    }
    if status == "SUCCESSFUL" {
        if outcome.blast_radius.new_ok == 0 {
            surprises.push("the new version served no production request".to_owned());
        }
        if let Some(call) = forward.iter().find(|call| call.outcome == "FAILED") {
            surprises.push(format!("{} answered FAILED at {}", call.hook, call.stage));
        }
    }
    if let Some((hook, judged)) = release.caught_by {
        let caught = outcome.verdicts.iter().any(|v| {
            v.hook == hook && v.status == "Failed" && v.failed_checks.iter().any(|(_, reason)| reason.contains(judged))
        });
        if !caught {
            surprises.push(format!("{hook} did not fail saying \"{judged}\": {:?}", outcome.verdicts));
        }
    }
    let answers = |stage: &str| -> Vec<&str> {
        forward.iter().filter(|call| call.stage == stage).map(|call| call.outcome.as_str()).collect()
    };
    match outcome.scenario {
        ScenarioName::EcsNativeContractBreak => {
            let (test, production) = (answers("POST_TEST_TRAFFIC_SHIFT"), answers("PRE_PRODUCTION_TRAFFIC_SHIFT"));
            if test != ["FAILED"] || !production.is_empty() {
                surprises.push(format!(
                    "POST_TEST_TRAFFIC_SHIFT answered {test:?}, PRE_PRODUCTION_TRAFFIC_SHIFT {production:?} \
                     (expected FAILED, and no production stage)"
                ));
            }
        }
        ScenarioName::EcsNativeCanaryRegression => {
            let gates = answers("PRE_PRODUCTION_TRAFFIC_SHIFT");
            let steps: Vec<f64> = production.iter().copied().filter(|w| *w > 0.0).collect();
            if gates != ["SUCCEEDED", "FAILED"] || steps != [25.0] {
                surprises.push(format!(
                    "the step gates answered {gates:?} with production on green at {steps:?} % \
                     (expected SUCCEEDED then FAILED, after one step of 25 %)"
                ));
            }
        }
        ScenarioName::EcsNativeLongBake => {
            let bake = answers("POST_PRODUCTION_TRAFFIC_SHIFT");
            let went_on = bake.len() >= 3 && bake[..bake.len() - 1].iter().all(|answer| *answer == "IN_PROGRESS");
            if !went_on || bake.last() != Some(&"SUCCEEDED") {
                surprises
                    .push(format!("the bake answered {bake:?} (expected IN_PROGRESS at least twice, then SUCCEEDED)"));
            }
        }
        _ => {}
    }
    surprises
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(hook: &str, stage: &str, rollback: bool, outcome: &str) -> EcsHookCall {
        EcsHookCall { hook: hook.into(), stage: stage.into(), attempt: 1, rollback, outcome: outcome.into() }
    }

    fn stood_aside(hook: &str) -> HookVerdict {
        HookVerdict {
            hook: hook.into(),
            status: "Succeeded".into(),
            reason: "stood aside: TEST_TRAFFIC_SHIFT shifts traffic back".into(),
            failed_checks: Vec::new(),
        }
    }

    /// The contract break as it must end: caught at POST_TEST_TRAFFIC_SHIFT, every hook standing
    /// aside at both stages of the rollback, production never on green.
    fn contract_break() -> ScenarioOutcome {
        let scenario = ScenarioName::EcsNativeContractBreak;
        let mut calls = vec![call("after-allow-test-traffic", "POST_TEST_TRAFFIC_SHIFT", false, "FAILED")];
        let mut verdicts = vec![HookVerdict {
            hook: "after-allow-test-traffic".into(),
            status: "Failed".into(),
            reason: "1 of 2 checks failed".into(),
            failed_checks: vec![("contract".into(), "body breaks the schema: /total_cents is missing".into())],
        }];
        for stage in ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] {
            for (hook, _) in NATIVE_HOOKS {
                calls.push(call(hook, stage, true, "SUCCEEDED"));
                verdicts.push(stood_aside(hook));
            }
        }
        let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/checkout/1";
        let blast_radius = BlastRadius { old_ok: 40, ..BlastRadius::default() };
        let mut outcome = ScenarioOutcome::begun(scenario, scenario.releases()[0], arn, blast_radius, Instant::now());
        outcome.status = "ROLLBACK_SUCCESSFUL".into();
        outcome.weights = vec![("test".into(), 100.0), ("test".into(), 0.0), ("production".into(), 0.0)];
        outcome.ecs_hook_calls = calls;
        outcome.rollback = Some("the POST_TEST_TRAFFIC_SHIFT hook answered FAILED".into());
        outcome.verdicts = verdicts;
        outcome
    }

    #[test]
    fn an_ecs_native_outcome_as_rehearsed_has_no_surprise() {
        assert_eq!(surprises(&contract_break()), Vec::<String>::new());
    }

    #[test]
    fn a_hook_fighting_the_rollback_or_green_in_production_is_a_surprise() {
        let mut fought = contract_break();
        fought.ecs_hook_calls[1].outcome = "FAILED".into();
        let said = surprises(&fought).join("; ");
        assert!(
            said.contains("after-allow-test-traffic answered FAILED at the rollback's TEST_TRAFFIC_SHIFT"),
            "{said}"
        );

        let mut silent = contract_break();
        silent.verdicts.pop();
        let said = surprises(&silent).join("; ");
        assert!(
            said.contains("after-allow-traffic: 2 invocations in the rollback, 1 logged as standing aside"),
            "{said}"
        );

        let mut no_rollback_calls = contract_break();
        no_rollback_calls.ecs_hook_calls.retain(|call| !call.rollback);
        no_rollback_calls.verdicts.truncate(1);
        assert!(surprises(&no_rollback_calls).contains(&"the rollback invoked no hook".to_owned()));

        let mut served = contract_break();
        served.weights.push(("production".into(), 10.0));
        served.blast_radius.new_ok = 3;
        let said = surprises(&served).join("; ");
        assert!(said.contains("the new version served 3 production requests"), "{said}");
        assert!(said.contains("production traffic moved but was not put back"), "{said}");

        let mut late = contract_break();
        late.ecs_hook_calls.insert(1, call("before-allow-traffic", "PRE_PRODUCTION_TRAFFIC_SHIFT", false, "SUCCEEDED"));
        assert!(surprises(&late).join("; ").contains("PRE_PRODUCTION_TRAFFIC_SHIFT [\"SUCCEEDED\"]"));
    }
}
