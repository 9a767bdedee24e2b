//! `${test_url}` and `${production_url}`: the ECS deployment group's test and production
//! listeners as URLs, `<protocol>://<load balancer DNS name>:<port>`.
//!
//! `GetDeploymentGroup` names the listeners (its `loadBalancerInfo`), ELBv2's
//! `DescribeListeners` gives their protocol, port and load balancer, and
//! `DescribeLoadBalancers` the load balancer's DNS name. Made once per run, by the first check
//! that needs either URL.

use crate::checks::ProbeContext;
use crate::discover::call_error;

use super::DeploymentNames;
use super::ecs::elbv2_error;

/// The deployment group's listener URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerUrls {
    /// The deployment group, for messages.
    pub deployment_group: String,
    /// The test listener's URL, when the group has a test traffic route.
    pub test: Option<String>,
    /// The production listener's URL.
    pub production: Option<String>,
}

pub(super) async fn listener_urls(context: &ProbeContext, names: DeploymentNames) -> Result<ListenerUrls, String> {
    let group = context
        .aws
        .codedeploy
        .get_deployment_group()
        .application_name(&names.application)
        .deployment_group_name(&names.deployment_group)
        .send()
        .await
        .map_err(|err| call_error("GetDeploymentGroup", err).to_string())?;
    let pair = group
        .deployment_group_info()
        .and_then(|info| info.load_balancer_info())
        .and_then(|lb| lb.target_group_pair_info_list().first())
        .ok_or_else(|| {
            format!(
                "deployment group {} has no target group pair in its loadBalancerInfo, so it names no listeners",
                names.deployment_group
            )
        })?;
    let first = |route: Option<&aws_sdk_codedeploy::types::TrafficRoute>| {
        route.and_then(|r| r.listener_arns().first()).cloned()
    };
    let (test, production) = (first(pair.test_traffic_route()), first(pair.prod_traffic_route()));
    let arns: Vec<String> = test.iter().chain(production.iter()).cloned().collect();
    if arns.is_empty() {
        return Ok(ListenerUrls { deployment_group: names.deployment_group, test: None, production: None });
    }
    let elbv2 = context.aws.elbv2();
    let listeners = elbv2
        .describe_listeners()
        .set_listener_arns(Some(arns))
        .send()
        .await
        .map_err(|err| elbv2_error("DescribeListeners", err))?;
    let listeners = listeners.listeners();
    let mut balancer_arns: Vec<String> =
        listeners.iter().filter_map(|l| l.load_balancer_arn().map(str::to_owned)).collect();
    balancer_arns.dedup();
    let balancers = elbv2
        .describe_load_balancers()
        .set_load_balancer_arns(Some(balancer_arns))
        .send()
        .await
        .map_err(|err| elbv2_error("DescribeLoadBalancers", err))?;
    let url_of = |arn: &Option<String>| -> Result<Option<String>, String> {
        let Some(arn) = arn else { return Ok(None) };
        let listener = listeners
            .iter()
            .find(|l| l.listener_arn() == Some(arn.as_str()))
            .ok_or_else(|| format!("DescribeListeners did not return listener {arn}"))?;
        let dns = balancers
            .load_balancers()
            .iter()
            .find(|b| b.load_balancer_arn() == listener.load_balancer_arn())
            .and_then(|b| b.dns_name())
            .ok_or_else(|| format!("no DNS name for the load balancer of listener {arn}"))?;
        let scheme = match listener.protocol().map(|p| p.as_str()) {
            Some("HTTPS") => "https",
            Some("HTTP") => "http",
            other => {
                return Err(format!("listener {arn} speaks {}, not HTTP or HTTPS", other.unwrap_or("no protocol")));
            }
        };
        let port = listener.port().ok_or_else(|| format!("listener {arn} has no port"))?;
        Ok(Some(format!("{scheme}://{dns}:{port}")))
    };
    Ok(ListenerUrls {
        test: url_of(&test)?,
        production: url_of(&production)?,
        deployment_group: names.deployment_group,
    })
}
