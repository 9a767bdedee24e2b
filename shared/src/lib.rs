//! greenlight: CodeDeploy lifecycle hooks that judge a deployment by configuration, not script.
//!
//! One run of a hook, as the modules lay it out:
//! [`event`] (the two ids) → [`hook`] (which event this binary serves) → [`plan`] (checks, validated
//! at start-up) → [`discover`] (what is being deployed, which event is in progress) → [`runner`]
//! (all checks concurrently under one deadline, each by its measurement model, via [`checks`]) →
//! [`verdict`] → [`report`] (exactly once) → [`telemetry`] (one line per check, one summary).
//! [`gate`] ties these together; [`lambda`] and [`cli`] are the two ways in. [`evidence`] writes
//! what CI and CloudWatch read: JUnit from CLI mode, metrics from Lambda mode.
#![deny(missing_docs)]

pub mod aws_http;
pub mod checks;
pub mod cli;
pub mod discover;
pub mod ecs_native;
pub mod event;
pub mod evidence;
pub mod gate;
pub mod hook;
pub mod lambda;
pub mod plan;
pub mod report;
pub mod runner;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod variables;
pub mod verdict;

pub use gate::{AwsClients, Gate, RunOutcome};
pub use hook::Hook;

use std::process::ExitCode;

/// Whether an AWS error code means the caller lacks an IAM permission; such errors are reported
/// with the action to grant.
pub(crate) fn is_access_denied(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("AccessDenied") || code == "UnauthorizedOperation")
}

/// The longest prefix of `text` that fits in `limit` bytes and ends on a character boundary.
pub(crate) fn clip(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The whole of a hook binary's `main`: Lambda mode when the Lambda Runtime API is there
/// (`AWS_LAMBDA_RUNTIME_API`), CLI mode otherwise.
pub fn main(hook: Hook) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{}: cannot start the async runtime: {err}", hook.name);
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        match runtime.block_on(lambda::run(hook)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{}: {err}", hook.name);
                ExitCode::FAILURE
            }
        }
    } else {
        runtime.block_on(cli::run(hook))
    }
}
