//! Which hook a binary is: the lifecycle event it serves and the platform it serves it on.
//!
//! Each hook binary fixes its identity at compile time, so a function wired to the wrong event in an
//! appspec can be caught at run time (see [`crate::discover`]).

use std::fmt;

/// A CodeDeploy lifecycle event that can invoke a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LifecycleEvent {
    /// ECS: before the green task set is created. A failure here fails without rollback.
    BeforeInstall,
    /// ECS: after the green task set is created.
    AfterInstall,
    /// ECS: after the test listener routes to green. The place for a smoke test.
    AfterAllowTestTraffic,
    /// ECS and Lambda (SAM `PreTraffic`): before production traffic moves.
    BeforeAllowTraffic,
    /// ECS and Lambda (SAM `PostTraffic`): after all production traffic has moved.
    AfterAllowTraffic,
}

impl LifecycleEvent {
    /// The event's name exactly as CodeDeploy spells it in `lifecycleEvents[].lifecycleEventName`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BeforeInstall => "BeforeInstall",
            Self::AfterInstall => "AfterInstall",
            Self::AfterAllowTestTraffic => "AfterAllowTestTraffic",
            Self::BeforeAllowTraffic => "BeforeAllowTraffic",
            Self::AfterAllowTraffic => "AfterAllowTraffic",
        }
    }
}

impl fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compute platform a hook serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Platform {
    /// ECS blue/green deployments (task sets behind production and test listeners).
    Ecs,
    /// Lambda alias traffic shifting (SAM `AutoPublishAlias` + `DeploymentPreference`).
    Lambda,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ecs => "ECS",
            Self::Lambda => "Lambda",
        })
    }
}

/// A hook's fixed identity: its binary name, its lifecycle event and its platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// The binary and package name, e.g. `after-allow-test-traffic`.
    pub name: &'static str,
    /// The lifecycle event this hook must be invoked for.
    pub event: LifecycleEvent,
    /// The platform whose deployments this hook judges.
    pub platform: Platform,
}

impl Hook {
    /// ECS `BeforeInstall`.
    pub const BEFORE_INSTALL: Hook = Hook::new("before-install", LifecycleEvent::BeforeInstall, Platform::Ecs);
    /// ECS `AfterInstall`: waits for the green task set to be running before its checks.
    pub const AFTER_INSTALL: Hook = Hook::new("after-install", LifecycleEvent::AfterInstall, Platform::Ecs);
    /// ECS `AfterAllowTestTraffic`: the smoke test on the test listener.
    pub const AFTER_ALLOW_TEST_TRAFFIC: Hook =
        Hook::new("after-allow-test-traffic", LifecycleEvent::AfterAllowTestTraffic, Platform::Ecs);
    /// ECS `BeforeAllowTraffic`.
    pub const BEFORE_ALLOW_TRAFFIC: Hook =
        Hook::new("before-allow-traffic", LifecycleEvent::BeforeAllowTraffic, Platform::Ecs);
    /// ECS `AfterAllowTraffic`.
    pub const AFTER_ALLOW_TRAFFIC: Hook =
        Hook::new("after-allow-traffic", LifecycleEvent::AfterAllowTraffic, Platform::Ecs);
    /// Lambda `BeforeAllowTraffic` (SAM `PreTraffic`).
    pub const PRE_TRAFFIC: Hook = Hook::new("pre-traffic", LifecycleEvent::BeforeAllowTraffic, Platform::Lambda);
    /// Lambda `AfterAllowTraffic` (SAM `PostTraffic`).
    pub const POST_TRAFFIC: Hook = Hook::new("post-traffic", LifecycleEvent::AfterAllowTraffic, Platform::Lambda);

    /// Every hook greenlight ships, in lifecycle order (ECS first, then Lambda).
    pub const ALL: [Hook; 7] = [
        Self::BEFORE_INSTALL,
        Self::AFTER_INSTALL,
        Self::AFTER_ALLOW_TEST_TRAFFIC,
        Self::BEFORE_ALLOW_TRAFFIC,
        Self::AFTER_ALLOW_TRAFFIC,
        Self::PRE_TRAFFIC,
        Self::POST_TRAFFIC,
    ];

    const fn new(name: &'static str, event: LifecycleEvent, platform: Platform) -> Self {
        Self { name, event, platform }
    }

    /// The Amazon ECS lifecycle stage this hook serves in an ECS-native deployment (without
    /// CodeDeploy): the stage where ECS stands where CodeDeploy's event would. The Lambda hooks
    /// serve none.
    pub fn ecs_stage(self) -> Option<&'static str> {
        if self.platform != Platform::Ecs {
            return None;
        }
        Some(match self.event {
            LifecycleEvent::BeforeInstall => "PRE_SCALE_UP",
            LifecycleEvent::AfterInstall => "POST_SCALE_UP",
            LifecycleEvent::AfterAllowTestTraffic => "POST_TEST_TRAFFIC_SHIFT",
            // ECS runs it before every production step of a linear or canary deployment.
            LifecycleEvent::BeforeAllowTraffic => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            LifecycleEvent::AfterAllowTraffic => "POST_PRODUCTION_TRAFFIC_SHIFT",
        })
    }

    /// Whether this hook waits for the green task set by default (only `after-install` does: at
    /// AfterInstall the green tasks may still be starting).
    pub fn waits_for_green_by_default(self) -> bool {
        self.event == LifecycleEvent::AfterInstall && self.platform == Platform::Ecs
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ecs_hook_serves_one_ecs_stage_and_the_lambda_hooks_none() {
        let stages: Vec<_> = Hook::ALL.iter().map(|hook| (hook.name, hook.ecs_stage())).collect();
        assert_eq!(
            stages,
            [
                ("before-install", Some("PRE_SCALE_UP")),
                ("after-install", Some("POST_SCALE_UP")),
                ("after-allow-test-traffic", Some("POST_TEST_TRAFFIC_SHIFT")),
                ("before-allow-traffic", Some("PRE_PRODUCTION_TRAFFIC_SHIFT")),
                ("after-allow-traffic", Some("POST_PRODUCTION_TRAFFIC_SHIFT")),
                ("pre-traffic", None),
                ("post-traffic", None),
            ]
        );
    }
}
