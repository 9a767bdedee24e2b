//! ECS metric dimensions: a task set names its target group by name, and CloudWatch wants
//! `targetgroup/<name>/<id>` with the load balancer's `app/<name>/<id>`; one ELBv2
//! `DescribeTargetGroups` call gives both, made once per run. Only ECS hooks call it.

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};

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

/// Looks the ECS deployment's target groups up in ELBv2.
pub(super) async fn ecs_dimensions(context: &ProbeContext) -> Result<EcsDimensions, String> {
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

pub(super) fn elbv2_error<E, R>(operation: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::aws_http::call_error("elasticloadbalancing", operation, "\"*\"", err)
}
