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
}

impl ScenarioName {
    /// Every scenario, in the drill's order.
    pub const ALL: [Self; 5] = [
        Self::LambdaCanary,
        Self::LambdaBrokenVersion,
        Self::EcsContractBreak,
        Self::EcsCanary,
        Self::EcsAlarmRollback,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LambdaCanary => "lambda-canary",
            Self::LambdaBrokenVersion => "lambda-broken-version",
            Self::EcsContractBreak => "ecs-contract-break",
            Self::EcsCanary => "ecs-canary",
            Self::EcsAlarmRollback => "ecs-alarm-rollback",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Self::LambdaCanary => "(a) Lambda canary, healthy new version",
            Self::LambdaBrokenVersion => "(b) Lambda, broken new version caught by pre-traffic",
            Self::EcsContractBreak => "(c) ECS, checkout contract break caught by the smoke test",
            Self::EcsCanary => "(d) ECS canary, compatible green",
            Self::EcsAlarmRollback => "(e) ECS canary, alarm during the canary",
        }
    }

    pub(super) fn is_lambda(self) -> bool {
        matches!(self, Self::LambdaCanary | Self::LambdaBrokenVersion)
    }

    /// The hook packages the scenario's appspec names, with the events they serve.
    pub(super) fn hooks(self) -> &'static [(&'static str, &'static str)] {
        if self.is_lambda() { &LAMBDA_HOOKS } else { &ECS_HOOKS }
    }

    /// (current, target) Lambda versions or (blue, green) task definitions.
    pub(super) fn versions(self) -> (&'static str, &'static str) {
        match self {
            Self::LambdaCanary => ("1", "2"),
            Self::LambdaBrokenVersion => ("1", "3"),
            Self::EcsContractBreak => ("checkout:1", "checkout:2"),
            Self::EcsCanary => ("checkout:1", "checkout:3"),
            Self::EcsAlarmRollback => ("checkout:1", "checkout:4"),
        }
    }

    pub(super) fn config_name(self) -> &'static str {
        if self.is_lambda() {
            "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        } else {
            "CodeDeployDefault.ECSCanary10Percent5Minutes"
        }
    }

    /// What must happen: final status, error code, and whether the new version may ever get
    /// production traffic.
    pub(super) fn expected(self) -> (&'static str, Option<&'static str>, bool) {
        match self {
            Self::LambdaCanary | Self::EcsCanary => ("Succeeded", None, true),
            Self::LambdaBrokenVersion | Self::EcsContractBreak => ("Failed", Some("HOOK_EXECUTION_FAILURE"), false),
            Self::EcsAlarmRollback => ("Stopped", Some("ALARM_ACTIVE"), true),
        }
    }
}

/// Compares an outcome with what its scenario must show.
pub fn surprises(outcome: &ScenarioOutcome) -> Vec<String> {
    let (status, error_code, new_may_serve) = outcome.scenario.expected();
    let mut surprises = Vec::new();
    if outcome.status != status {
        surprises.push(format!("status {} (expected {status})", outcome.status));
    }
    if outcome.error_code.as_deref() != error_code {
        surprises.push(format!("error code {:?} (expected {error_code:?})", outcome.error_code));
    }
    // Every hook that ran must have reported exactly once; the emulator accepts one per event.
    let accepted = outcome.reports.iter().filter(|(_, result)| result == "accepted").count();
    let platform = if outcome.scenario.is_lambda() { ComputePlatform::Lambda } else { ComputePlatform::Ecs };
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
    surprises
}
