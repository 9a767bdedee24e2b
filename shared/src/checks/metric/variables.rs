//! The values of a metric check's `${variables}` for this deployment: the Lambda ones from
//! discovery, the ECS ones from [`super::ecs`]'s one ELBv2 lookup per run.

use std::collections::BTreeMap;

use super::ecs::ecs_dimensions;
use crate::checks::ProbeContext;
use crate::discover::DeploymentKind;

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
