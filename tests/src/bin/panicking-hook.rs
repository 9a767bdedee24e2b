//! The pre-traffic hook with every check panicking, as a real Lambda binary behind
//! the Runtime API. No target can make a real check panic, so the end-to-end fault tests use this
//! to show a panic still ends in one `Failed` report. It is the production gate and Lambda loop;
//! only the measurement is replaced, through the gate's one test seam.

use std::sync::Arc;

use greenlight::Hook;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    greenlight::telemetry::init_lambda();
    let gate = greenlight::lambda::gate_from_env(Hook::PRE_TRAFFIC)
        .await
        .with_probe(Arc::new(|check, _| Box::pin(async move { panic!("check {:?} hit a bug", check.name) })));
    greenlight::lambda::serve(gate).await
}
