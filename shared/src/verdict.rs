//! The verdict: `Succeeded` only when every counted check passed and nothing stopped the gate from
//! judging.

use std::fmt;

use crate::discover::Deployment;
use crate::runner::CheckResult;

/// What the hook tells CodeDeploy. CodeDeploy accepts only these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    /// Let the deployment continue.
    Succeeded,
    /// Stop the deployment (and roll back where the event allows).
    Failed,
}

impl Status {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
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

    /// The verdict of a completed run of checks.
    pub fn from_checks(checks: Vec<CheckResult>, deployment: Option<Deployment>) -> Self {
        let failed: Vec<&str> = checks.iter().filter(|c| c.counts_as_failure()).map(|c| c.name.as_str()).collect();
        let counted = checks.iter().filter(|c| !c.dry_run).count();
        let (status, reason) = if failed.is_empty() {
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
        let v = Verdict::from_checks(vec![result("a", true, false), result("b", false, false)], None);
        assert_eq!(v.status, Status::Failed);
        assert_eq!(v.reason, "1 of 2 checks failed: b");
    }

    #[test]
    fn dry_run_failures_do_not_decide() {
        let v = Verdict::from_checks(vec![result("a", true, false), result("b", false, true)], None);
        assert_eq!(v.status, Status::Succeeded);
        assert_eq!(v.reason, "1 of 1 checks passed (1 dry-run check(s) not counted)");
    }
}
