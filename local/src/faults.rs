//! Faults the emulator injects on request, for tests and rehearsals of unhappy paths. Each one is
//! set from Rust ([`Emulator::set_faults`]) or over the control API (`POST /_local/faults`, the
//! same document as JSON), and each answers the way AWS does when the same thing happens there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use axum::http::StatusCode;
use serde::Deserialize;

use crate::emulator::Emulator;
use crate::protocol::ApiError;

/// What the emulator is asked to get wrong. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Errors returned, in order, to the next PutLifecycleEventHookExecutionStatus calls.
    #[serde(default)]
    pub report_failures: VecDeque<ReportFault>,
    /// How many times each hook event is delivered (Lambda may deliver an event more than once).
    #[serde(default)]
    pub deliveries: Option<u32>,
    /// Also deliver an event without ids before the real one.
    #[serde(default)]
    pub malformed_delivery: bool,
    /// Operations answered with `AccessDeniedException` (ELBv2's `AccessDenied`), as when the
    /// caller's role lacks the grant: CodeDeploy, ELBv2, CloudWatch and SSM operations by name,
    /// Lambda's as `Invoke`, `GetAlias`, `UpdateAlias`.
    #[serde(default)]
    pub denied: BTreeSet<String>,
    /// Operations that are never answered, as on an overloaded or unreachable endpoint.
    #[serde(default)]
    pub hanging: BTreeSet<String>,
    /// Operations answered with the service's throttling error, every time, as when the account's
    /// request rate is exhausted: CodeDeploy's, CloudWatch's and SSM's `ThrottlingException`,
    /// Lambda's `TooManyRequestsException` (429), ELBv2's `Throttling`. SDKs retry these, then give up.
    #[serde(default)]
    pub throttled: BTreeSet<String>,
    /// How the green task set of an ECS deployment starts its tasks; without it, they all run
    /// as soon as Install has started the task set.
    #[serde(default)]
    pub green_start: Option<GreenStart>,
    /// Functions whose synchronous invocations name another version in `X-Amz-Executed-Version`
    /// than the one that ran: function name → version claimed. An empty version leaves the
    /// header out.
    #[serde(default)]
    pub executed_versions: BTreeMap<String, String>,
}

/// An error injected on a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFault {
    /// HTTP 400 `ThrottlingException`, which SDKs retry with backoff.
    Throttle,
    /// HTTP 500 `InternalFailure`, which SDKs retry.
    ServerError,
}

impl ReportFault {
    /// The error the report gets.
    pub fn error(self) -> ApiError {
        match self {
            Self::Throttle => ApiError::client("ThrottlingException", "Rate exceeded (injected)"),
            Self::ServerError => {
                ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "injected server error")
            }
        }
    }
}

/// A green task set whose tasks come up slowly, or not all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreenStart {
    /// Tasks running when Install has started the task set.
    pub running_at_install: i64,
    /// Tasks that start, up to the desired count, each time a hook reads the deployment target.
    pub started_per_read: i64,
}

/// The services whose operations can be denied, hung or throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// CodeDeploy (awsJson1_1).
    CodeDeploy,
    /// Lambda (restJson1).
    Lambda,
    /// Elastic Load Balancing v2 (awsQuery).
    Elbv2,
    /// CloudWatch (rpcv2Cbor and awsJson1_0).
    CloudWatch,
    /// Systems Manager Parameter Store (awsJson1_1).
    Ssm,
    /// ECS (awsJson1_1).
    Ecs,
}

impl Service {
    /// The service an operation name belongs to, if the emulator serves it.
    pub fn of(operation: &str) -> Option<Self> {
        if crate::codedeploy::OPERATIONS.contains(&operation) {
            Some(Self::CodeDeploy)
        } else if crate::lambda::OPERATIONS.contains(&operation) {
            Some(Self::Lambda)
        } else if crate::elbv2::OPERATIONS.contains(&operation) {
            Some(Self::Elbv2)
        } else if crate::cloudwatch::OPERATIONS.contains(&operation) {
            Some(Self::CloudWatch)
        } else if crate::ssm::OPERATIONS.contains(&operation) {
            Some(Self::Ssm)
        } else if crate::ecs::OPERATIONS.contains(&operation) {
            Some(Self::Ecs)
        } else {
            None
        }
    }

    /// The IAM action that allows `operation`.
    fn action(self, operation: &str) -> String {
        match (self, operation) {
            (Self::CodeDeploy, _) => format!("codedeploy:{operation}"),
            (Self::Lambda, "Invoke") => "lambda:InvokeFunction".to_owned(),
            (Self::Lambda, _) => format!("lambda:{operation}"),
            (Self::Elbv2, _) => format!("elasticloadbalancing:{operation}"),
            (Self::CloudWatch, _) => format!("cloudwatch:{operation}"),
            (Self::Ssm, _) => format!("ssm:{operation}"),
            (Self::Ecs, _) => format!("ecs:{operation}"),
        }
    }

    /// The error AWS answers when the caller calls `operation` too often.
    pub fn throttled(self, operation: &str) -> ApiError {
        let message = format!("Rate exceeded for {} (injected)", self.action(operation));
        match self {
            Self::CodeDeploy | Self::CloudWatch | Self::Ssm | Self::Ecs => {
                ApiError::client("ThrottlingException", message)
            }
            Self::Lambda => ApiError::with_status(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", message),
            Self::Elbv2 => ApiError::client("Throttling", message),
        }
    }

    /// The error AWS answers when the caller may not call `operation`: HTTP 400 in the awsJson and
    /// rpcv2Cbor protocols (CodeDeploy, CloudWatch, SSM), 403 in Lambda's, and in ELBv2's awsQuery
    /// 403 with the code `AccessDenied`.
    pub fn access_denied(self, operation: &str) -> ApiError {
        let message = format!(
            "User: arn:aws:sts::123456789012:assumed-role/codedeploy-local/caller is not authorized to perform: {} (injected)",
            self.action(operation)
        );
        match self {
            Self::CodeDeploy | Self::CloudWatch | Self::Ssm | Self::Ecs => {
                ApiError::client("AccessDeniedException", message)
            }
            Self::Lambda => ApiError::with_status(StatusCode::FORBIDDEN, "AccessDeniedException", message),
            Self::Elbv2 => ApiError::with_status(StatusCode::FORBIDDEN, "AccessDenied", message),
        }
    }
}

/// Faults that name something the emulator does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// An operation in `denied`, `hanging` or `throttled` that is not served.
    #[error("{0:?} is not an operation served here (CodeDeploy: {codedeploy}; Lambda: {lambda}; ELBv2: {elbv2}; CloudWatch: {cloudwatch}; SSM: {ssm}; ECS: {ecs})",
        codedeploy = crate::codedeploy::OPERATIONS.join(", "), lambda = crate::lambda::OPERATIONS.join(", "),
        elbv2 = crate::elbv2::OPERATIONS.join(", "), cloudwatch = crate::cloudwatch::OPERATIONS.join(", "),
        ssm = crate::ssm::OPERATIONS.join(", "), ecs = crate::ecs::OPERATIONS.join(", "))]
    UnknownOperation(String),
    /// A green start that counts tasks below zero.
    #[error("green_start counts must not be negative")]
    NegativeGreenStart,
}

impl Faults {
    /// Checks that every fault names something served.
    pub fn validate(&self) -> Result<(), FaultError> {
        let named = self.denied.iter().chain(&self.hanging).chain(&self.throttled);
        if let Some(unknown) = named.into_iter().find(|op| Service::of(op).is_none()) {
            return Err(FaultError::UnknownOperation(unknown.clone()));
        }
        if self.green_start.is_some_and(|g| g.running_at_install < 0 || g.started_per_read < 0) {
            return Err(FaultError::NegativeGreenStart);
        }
        Ok(())
    }
}

impl Emulator {
    /// Replaces the injected faults, once they are known to name only what is served.
    pub fn set_faults(&self, faults: Faults) -> Result<(), FaultError> {
        faults.validate()?;
        *self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    /// Takes the next injected report error, if any.
    pub fn next_report_fault(&self) -> Option<ReportFault> {
        self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()).report_failures.pop_front()
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes a call of `operation` (on `resource`, at `qualifier`), then answers it as the injected
    /// faults say: never, if the operation hangs; with AccessDeniedException, if it is denied; with
    /// the service's throttling error, if it is throttled.
    /// `Ok` lets the operation itself run. Every service's calls go through here.
    pub async fn answer_faults(
        &self,
        operation: &str,
        resource: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<(), ApiError> {
        self.note_call(operation, resource, qualifier);
        if self.hangs(operation) {
            return std::future::pending().await;
        }
        if let Some(denied) = self.denial(operation) {
            return Err(denied);
        }
        let throttled = self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()).throttled.contains(operation);
        match Service::of(operation) {
            Some(service) if throttled => Err(service.throttled(operation)),
            _ => Ok(()),
        }
    }

    /// The injected error for a call of `operation`, if it is denied.
    fn denial(&self, operation: &str) -> Option<ApiError> {
        let denied = self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()).denied.contains(operation);
        denied.then(|| Service::of(operation).map(|service| service.access_denied(operation))).flatten()
    }

    /// Whether calls of `operation` are never answered.
    fn hangs(&self, operation: &str) -> bool {
        self.inner.faults.lock().unwrap_or_else(|p| p.into_inner()).hanging.contains(operation)
    }
}
