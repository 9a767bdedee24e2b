//! The verdict: `Succeeded` only when every counted check passed and nothing stopped the gate from
//! judging.

use std::fmt;

use crate::discover::Deployment;
use crate::runner::CheckResult;

/// What the hook tells CodeDeploy (which accepts only the first two) or ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    /// Let the deployment continue.
    Succeeded,
    /// Stop the deployment (and roll back where the event allows).
    Failed,
    /// Not judged yet: an ECS-native gate goes on in the next invocation.
    InProgress,
}

impl Status {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::InProgress => "InProgress",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A judged deployment: status, why, and each check's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// What to report.
    pub status: Status,
    /// One line saying why.
    pub reason: String,
    /// Every check's result, in plan order (empty when the gate failed before running checks).
    pub checks: Vec<CheckResult>,
    /// What discovery learned, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
}

impl Verdict {
    /// A gate that could not judge: fail closed with the reason.
    pub fn cannot_judge(reason: impl Into<String>, deployment: Option<Deployment>) -> Self {
        Self { status: Status::Failed, reason: reason.into(), checks: Vec::new(), deployment }
    }

    /// `Succeeded` without judging: a rollback is under way, and a hook must not fight it.
    pub fn stood_aside(reason: impl Into<String>) -> Self {
        Self { status: Status::Succeeded, reason: reason.into(), checks: Vec::new(), deployment: None }
    }

    /// The verdict of a completed run of checks. `green_ready` says the hook waited for the green
    /// task set and saw it running: that alone is a judgement. Without it, a run in which no check
    /// counted judged nothing and fails closed.
    pub fn from_checks(checks: Vec<CheckResult>, green_ready: bool, deployment: Option<Deployment>) -> Self {
        let failed: Vec<&str> = checks.iter().filter(|c| c.counts_as_failure()).map(|c| c.name.as_str()).collect();
        let counted = checks.iter().filter(|c| !c.dry_run).count();
        let (status, reason) = if counted == 0 && green_ready {
            (Status::Succeeded, "the green task set runs its desired count; no checks counted".to_owned())
        } else if counted == 0 {
            let reason = if checks.is_empty() {
                "nothing was judged: the plan has no checks (add one, or wait_for_green at after-install)".to_owned()
            } else {
                format!("nothing was judged: all {} check(s) are dry runs", checks.len())
            };
            (Status::Failed, reason)
        } else if failed.is_empty() {
            let dry = checks.len() - counted;
            let mut reason = format!("{counted} of {counted} checks passed");
            if dry > 0 {
                reason.push_str(&format!(" ({dry} dry-run check(s) not counted)"));
            }
            (Status::Succeeded, reason)
        } else {
            (Status::Failed, format!("{} of {counted} checks failed: {}", failed.len(), failed.join(", ")))
        };
        Self { status, reason, checks, deployment }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, passed: bool, dry_run: bool) -> CheckResult {
        CheckResult { name: name.into(), passed, dry_run, attempts: 1, latency_ms: Some(1), reason: None }
    }

    #[test]
    fn every_counted_check_must_pass() {
        let v = Verdict::from_checks(vec![result("a", true, false), result("b", false, false)], false, None);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(v.reason, "1 of 2 checks failed: b");
    }

    #[test]
    fn dry_run_failures_do_not_decide() {
        let v = Verdict::from_checks(vec![result("a", true, false), result("b", false, true)], false, None);
        assert_eq!(v.status, Status::Succeeded);
        assert_eq!(v.reason, "1 of 1 checks passed (1 dry-run check(s) not counted)");
    }

    #[test]
    fn judging_nothing_fails_closed() {
        let v = Verdict::from_checks(vec![], false, None);
        assert_eq!(v.status, Status::Failed);
        let v = Verdict::from_checks(vec![result("a", true, true)], false, None);
        assert_eq!((v.status, v.reason.as_str()), (Status::Failed, "nothing was judged: all 1 check(s) are dry runs"));
    }

    #[test]
    fn a_green_wait_alone_is_a_judgement() {
        assert_eq!(Verdict::from_checks(vec![], true, None).status, Status::Succeeded);
    }
}
