//! Telling CodeDeploy the verdict with `PutLifecycleEventHookExecutionStatus`.

use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::error::ProvideErrorMetadata;
use aws_sdk_codedeploy::operation::put_lifecycle_event_hook_execution_status::PutLifecycleEventHookExecutionStatusError as PutError;
use aws_sdk_codedeploy::types::LifecycleEventStatus;

use crate::event::HookEvent;
use crate::verdict::Status;

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// CodeDeploy accepted this report.
    Accepted,
    /// An earlier delivery of the same event already reported; CodeDeploy kept that one.
    AlreadyReported,
    /// Dry run: the verdict was logged, not reported.
    Skipped,
    /// An ECS-native deployment: the verdict is the hook's return value, not a report.
    Answered,
    /// The report did not land (see the run's `report_error`).
    NotDelivered,
}

impl ReportOutcome {
    /// Lower-case name for logs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::AlreadyReported => "already reported",
            Self::Skipped => "skipped (dry run)",
            Self::Answered => "answered to ECS",
            Self::NotDelivered => "NOT DELIVERED",
        }
    }
}

/// A report CodeDeploy did not take, after the SDK's retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReportError {
    /// The call failed: throttled past the retries, refused, unreachable, or rejected.
    #[error("reporting {status} for {deployment_id} failed: {message}")]
    Call {
        /// The deployment.
        deployment_id: String,
        /// The status we tried to report.
        status: Status,
        /// What went wrong, with its causes.
        message: String,
    },
    /// No answer before the Lambda deadline.
    #[error("reporting {status} for {deployment_id} did not finish before the deadline")]
    Deadline {
        /// The deployment.
        deployment_id: String,
        /// The status we tried to report.
        status: Status,
    },
}

/// Reports `status` for this hook execution. Throttling and 5xx are retried by the SDK client;
/// `LifecycleEventAlreadyCompletedException` means a duplicate delivery and is not an error.
pub async fn report(client: &Client, event: &HookEvent, status: Status) -> Result<ReportOutcome, ReportError> {
    let wire = match status {
        Status::Succeeded => LifecycleEventStatus::Succeeded,
        // Only an ECS-native gate goes on across invocations; CodeDeploy gets no such verdict,
        // and should it, not judged is not a pass.
        Status::Failed | Status::InProgress => LifecycleEventStatus::Failed,
    };
    let result = client
        .put_lifecycle_event_hook_execution_status()
        .deployment_id(&event.deployment_id)
        .lifecycle_event_hook_execution_id(&event.execution_id)
        .status(wire)
        .send()
        .await;
    match result {
        Ok(_) => Ok(ReportOutcome::Accepted),
        Err(err) if matches!(err.as_service_error(), Some(PutError::LifecycleEventAlreadyCompletedException(_))) => {
            Ok(ReportOutcome::AlreadyReported)
        }
        Err(err) => {
            let denied = crate::is_access_denied(err.as_service_error().and_then(|e| e.code()));
            let detail = crate::aws_http::call_failure(&err);
            let message = if denied {
                format!(
                    "access denied: grant the hook's role codedeploy:PutLifecycleEventHookExecutionStatus on \"*\" (IAM cannot scope it to a deployment group) ({detail})"
                )
            } else {
                detail
            };
            Err(ReportError::Call { deployment_id: event.deployment_id.clone(), status, message })
        }
    }
}
