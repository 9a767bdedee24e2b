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
}

impl ScenarioName {
    /// Every scenario, in the drill's order.
    pub const ALL: [Self; 8] = [
        Self::LambdaCanary,
        Self::LambdaBrokenVersion,
        Self::EcsContractBreak,
        Self::EcsCanary,
        Self::EcsAlarmRollback,
        Self::EcsLatencyRegression,
        Self::LambdaErrorRegression,
        Self::Fleet,
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
        }
    }

    /// The releases the scenario deploys at the same time. Every scenario but the fleet deploys
    /// one: the checkout service or function.
    pub fn releases(self) -> Vec<Release> {
        if self == Self::Fleet {
            return FLEET.to_vec();
        }
        let lambda = self.is_lambda();
        vec![Release {
            service: "checkout",
            application: "drill",
            group: "checkout",
            lambda,
            target: if lambda { FUNCTION } else { ECS_SERVICE },
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
        }
    }

    /// The deployment configuration. The regressions shift for longer than the healthy canaries
    /// so the metric checks have enough periods of both versions serving to judge by: fifteen
    /// one-minute periods of a 10 % canary for the latency, ten steps of a linear shift for the
    /// error rate (one failure in twenty needs the new version to serve a few hundred requests).
    fn config_name(self) -> &'static str {
        match self {
            Self::EcsLatencyRegression => "CodeDeployDefault.ECSCanary10Percent15Minutes",
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
    /// The Lambda function, or the ECS service as `cluster:service`.
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
    /// The hook packages its appspec names, with the events they serve.
    pub(super) fn hooks(&self) -> &'static [(&'static str, &'static str)] {
        if self.lambda { &LAMBDA_HOOKS } else { &ECS_HOOKS }
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
