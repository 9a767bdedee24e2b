//! The control API under `/_local/`, for tests and the drill: deployments with ids chosen
//! beforehand, a deployment's (or an ECS service deployment's) record, load balancers for
//! services ECS deploys itself, alarm states, injected faults, and the calls received.
//!
//! `POST /_local/alarms/{name}` with `{"state": "ALARM"|"OK"}` is the manual override: a CloudWatch
//! alarm of that name moves as SetAlarmState would move it (until its next evaluation); any other
//! name is held raised until cleared.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::codedeploy::DeploymentWithIds;
use crate::emulator::Emulator;
use crate::faults::Faults;
use crate::protocol::aws_json;

/// The routes.
pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/_local/health", get(|| async { "ok" }))
        .route("/_local/deployments", post(create_deployment_with_ids))
        .route("/_local/deployments/{id}", get(deployment_record))
        .route("/_local/service-deployments/{id}", get(service_deployment_record))
        .route("/_local/alarms/{name}", post(set_alarm))
        .route("/_local/load-balancers/{name}", post(add_load_balancer))
        .route("/_local/faults", post(set_faults))
        .route("/_local/calls", get(calls))
}

async fn create_deployment_with_ids(
    State(emulator): State<Emulator>,
    axum::Json(chosen): axum::Json<DeploymentWithIds>,
) -> Response {
    match emulator.create_deployment_with_ids(&chosen) {
        Ok(output) => aws_json::ok(aws_json::Version::V1_1, &output),
        Err(err) => aws_json::error(aws_json::Version::V1_1, err),
    }
}

async fn deployment_record(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    let state = emulator.state();
    let Some(deployment) = state.deployments.get(&id) else {
        return (StatusCode::NOT_FOUND, format!("no deployment {id}")).into_response();
    };
    let summary = json!({
        "deployment_id": deployment.id,
        "status": deployment.status,
        "error_code": deployment.error.as_ref().map(|(code, _)| code),
        "error_message": deployment.error.as_ref().map(|(_, message)| message),
        "rollback_message": deployment.rollback_message,
        "events": deployment.events,
        "target": deployment.target,
    });
    drop(state);
    let mut summary = summary;
    summary["record"] = json!(emulator.record_of(&id));
    axum::Json(summary).into_response()
}

/// Adds a load balancer for services that ECS deploys itself and answers with the ARNs a
/// CreateService names: its target groups and listener rules, and its listeners' ports.
async fn add_load_balancer(
    State(emulator): State<Emulator>,
    Path(name): Path<String>,
    axum::Json(config): axum::Json<crate::config::LoadBalancerConfig>,
) -> Response {
    use crate::elbv2::{ListenerRole, listener_arn, listener_rule_arn, load_balancer, numbered_target_group};
    if let Err(err) = emulator.add_load_balancer(&name, &config).await {
        return (StatusCode::BAD_REQUEST, err.to_string()).into_response();
    }
    let (production, test) =
        emulator.load_balancer_listeners(&name).await.unwrap_or_else(|| unreachable!("just added"));
    let listener = |role: ListenerRole, addr: std::net::SocketAddr| json!({"listener_arn": listener_arn(&name, role), "rule_arn": listener_rule_arn(&name, role), "port": addr.port()});
    axum::Json(json!({
        "load_balancer_arn": load_balancer(&name).arn,
        "target_group_arns": [numbered_target_group(&name, 1).arn, numbered_target_group(&name, 2).arn],
        "production": listener(ListenerRole::Production, production),
        "test": listener(ListenerRole::Test, test),
    }))
    .into_response()
}

/// An ECS service deployment (by the last part of its ARN) as DescribeServiceDeployments shows
/// it, its record (stages, hook invocations with payload and answer, weights, rollback) and the
/// hooks' Lambda invocations.
async fn service_deployment_record(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    let found = {
        let state = emulator.state();
        state
            .native
            .deployments
            .values()
            .find(|d| d.id == id)
            .map(|d| (d.arn.clone(), crate::ecs::api::deployment_json(d)))
    };
    let Some((arn, described)) = found else {
        return (StatusCode::NOT_FOUND, format!("no service deployment {id}")).into_response();
    };
    let record = emulator.service_deployment_record(&arn);
    let invocations = emulator.record_of(&arn);
    axum::Json(json!({"service_deployment": described, "record": record, "invocations": invocations})).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct AlarmState {
    state: String,
}

async fn set_alarm(
    State(emulator): State<Emulator>,
    Path(name): Path<String>,
    axum::Json(body): axum::Json<AlarmState>,
) -> Response {
    match body.state.as_str() {
        "ALARM" => emulator.set_alarm(&name, true),
        "OK" => emulator.set_alarm(&name, false),
        other => return (StatusCode::BAD_REQUEST, format!("state {other:?}: use ALARM or OK")).into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_faults(State(emulator): State<Emulator>, axum::Json(faults): axum::Json<Faults>) -> Response {
    match emulator.set_faults(faults) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

async fn calls(State(emulator): State<Emulator>) -> Response {
    axum::Json(emulator.calls()).into_response()
}
