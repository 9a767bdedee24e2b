//! The values of a metric check's `${variables}` for this deployment. ECS dimensions need one
//! ELBv2 call (a task set names its target group by name; CloudWatch wants
//! `targetgroup/<name>/<id>`), made once per run.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::checks::ProbeContext;
use crate::discover::DeploymentKind;

/// An ECS deployment's metric dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsDimensions {
    /// The blue target group's `TargetGroup` dimension, when blue has one.
    pub blue_target_group: Option<String>,
    /// The green target group's `TargetGroup` dimension, when green has one.
    pub green_target_group: Option<String>,
    /// The load balancer's `LoadBalancer` dimension.
    pub load_balancer: Option<String>,
}

/// The values of `names`, or why one cannot be filled for this deployment.
pub(super) async fn variable_values(
    names: &[&str],
    context: &ProbeContext,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for &name in names {
        let value = variable(name, context).await.map_err(|why| format!("${{{name}}}: {why}"))?;
        values.insert(name.to_owned(), value);
    }
    Ok(values)
}

async fn variable(name: &str, context: &ProbeContext) -> Result<String, String> {
    let Some(deployment) = context.deployment.as_deref() else {
        return Err("no discovery ran, so the deployment cannot fill it".to_owned());
    };
    if name == "deployment_id" {
        return Ok(deployment.id.clone());
    }
    match &deployment.target {
        DeploymentKind::Lambda(lambda) => match name {
            "function_name" => Ok(lambda.function_name.clone()),
            "alias" => Ok(lambda.alias.clone()),
            "current_version" => Ok(lambda.current_version.clone()),
            "target_version" => Ok(lambda.target_version.clone()),
            _ => Err(format!("an ECS deployment's variable, and {} is a Lambda deployment", deployment.id)),
        },
        DeploymentKind::Ecs(_) => {
            if !matches!(name, "green_target_group" | "blue_target_group" | "load_balancer") {
                return Err(format!("a Lambda deployment's variable, and {} is an ECS deployment", deployment.id));
            }
            let dimensions = context.ecs_dimensions.get_or_init(|| ecs_dimensions(context)).await.clone()?;
            let value = match name {
                "green_target_group" => dimensions.green_target_group,
                "blue_target_group" => dimensions.blue_target_group,
                _ => dimensions.load_balancer,
            };
            value.ok_or_else(|| format!("deployment {} has no such task set or target group", deployment.id))
        }
    }
}

/// Looks the ECS deployment's target groups up in ELBv2.
async fn ecs_dimensions(context: &ProbeContext) -> Result<EcsDimensions, String> {
    let Some(DeploymentKind::Ecs(ecs)) = context.deployment.as_deref().map(|d| &d.target) else {
        return Err("not an ECS deployment".to_owned());
    };
    let blue = ecs.blue.as_ref().and_then(|set| set.target_group.clone());
    let green = ecs.green.as_ref().and_then(|set| set.target_group.clone());
    let names: Vec<String> = blue.iter().chain(green.iter()).cloned().collect();
    if names.is_empty() {
        return Err("the deployment's task sets name no target groups".to_owned());
    }
    let output = context
        .aws
        .elbv2()
        .describe_target_groups()
        .set_names(Some(names))
        .send()
        .await
        .map_err(|err| elbv2_error("DescribeTargetGroups", err))?;
    let groups = output.target_groups();
    let dimension_of = |name: &Option<String>| {
        let name = name.as_deref()?;
        let group = groups.iter().find(|g| g.target_group_name() == Some(name))?;
        group.target_group_arn()?.split_once(":targetgroup/").map(|(_, rest)| format!("targetgroup/{rest}"))
    };
    let load_balancer = groups
        .iter()
        .flat_map(|g| g.load_balancer_arns())
        .find_map(|arn| arn.split_once(":loadbalancer/").map(|(_, rest)| rest.to_owned()));
    Ok(EcsDimensions {
        blue_target_group: dimension_of(&blue),
        green_target_group: dimension_of(&green),
        load_balancer,
    })
}

fn elbv2_error<E, R>(operation: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let service = err.as_service_error();
    if crate::is_access_denied(service.and_then(|e| e.code())) {
        return format!(
            "access denied calling elasticloadbalancing:{operation}: grant the hook's role elasticloadbalancing:{operation} on \"*\""
        );
    }
    match service.and_then(|e| e.message()) {
        Some(message) => format!("elasticloadbalancing:{operation} failed: {message}"),
        None => format!("elasticloadbalancing:{operation} failed: {}", DisplayErrorContext(&err)),
    }
}
