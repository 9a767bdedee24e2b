//! `${test_url}` and `${production_url}`: the ECS deployment group's test and production
//! listeners as URLs, `<protocol>://<load balancer DNS name>:<port>`.
//!
//! `GetDeploymentGroup` names the listeners (its `loadBalancerInfo`), ELBv2's
//! `DescribeListeners` gives their protocol and port, and `DescribeLoadBalancers` the DNS name of
//! the load balancer each listener's ARN names, asked at the same time. Made once per run, by the
//! first check that needs either URL.

use crate::checks::ProbeContext;
use crate::discover::{KnownListeners, call_error};

use super::DeploymentNames;
use super::ecs::elbv2_error;

/// The deployment's listener URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerUrls {
    /// What routes through them and where it names them, for messages.
    pub owner: String,
    /// The test listener's URL, when the group has a test traffic route.
    pub test: Option<String>,
    /// The production listener's URL.
    pub production: Option<String>,
}

/// The listeners a deployment group routes through: (test, production) listener ARNs.
pub(super) type GroupListeners = (Option<String>, Option<String>);

/// The group's test and production listeners, from its `loadBalancerInfo`.
pub(super) async fn group_listeners(
    codedeploy: &aws_sdk_codedeploy::Client,
    names: &DeploymentNames,
) -> Result<GroupListeners, String> {
    let group = codedeploy
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
    Ok((first(pair.test_traffic_route()), first(pair.prod_traffic_route())))
}

pub(super) async fn listener_urls(context: &ProbeContext, names: DeploymentNames) -> Result<ListenerUrls, String> {
    let asked = match context.lookups.take_prefetched() {
        Some(asked) => asked.await.unwrap_or_else(|err| Err(format!("GetDeploymentGroup did not finish: {err}"))),
        None => group_listeners(&context.aws.codedeploy, &names).await,
    };
    let (test, production) = asked?;
    let owner = format!("deployment group {} (its loadBalancerInfo)", names.deployment_group);
    urls_of(context, KnownListeners { owner, test, production }).await
}

/// The URLs of `known` listeners: `DescribeListeners` and `DescribeLoadBalancers`, at once when
/// the listener ARNs name their load balancers.
pub(super) async fn urls_of(context: &ProbeContext, known: KnownListeners) -> Result<ListenerUrls, String> {
    let KnownListeners { owner, test, production } = known;
    let arns: Vec<String> = test.iter().chain(production.iter()).cloned().collect();
    if arns.is_empty() {
        return Ok(ListenerUrls { owner, test: None, production: None });
    }
    let elbv2 = context.aws.elbv2();
    let describe_listeners = |arns: Vec<String>| async {
        elbv2
            .describe_listeners()
            .set_listener_arns(Some(arns))
            .send()
            .await
            .map_err(|err| elbv2_error("DescribeListeners", err))
    };
    let describe_balancers = |mut arns: Vec<String>| async {
        arns.sort();
        arns.dedup();
        elbv2
            .describe_load_balancers()
            .set_load_balancer_arns(Some(arns))
            .send()
            .await
            .map_err(|err| elbv2_error("DescribeLoadBalancers", err))
    };
    // A listener's ARN names its load balancer, so both are asked at once: one round trip.
    let (listeners, balancers) = match arns.iter().map(|arn| balancer_of(arn)).collect::<Option<Vec<_>>>() {
        Some(balancer_arns) => tokio::try_join!(describe_listeners(arns), describe_balancers(balancer_arns))?,
        None => {
            let listeners = describe_listeners(arns).await?;
            let balancer_arns = listeners.listeners().iter().filter_map(|l| l.load_balancer_arn().map(str::to_owned));
            let balancers = describe_balancers(balancer_arns.collect()).await?;
            (listeners, balancers)
        }
    };
    let listeners = listeners.listeners();
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
    Ok(ListenerUrls { test: url_of(&test)?, production: url_of(&production)?, owner })
}

/// The load balancer of a listener, read from the listener's ARN as ELBv2 builds it:
/// `…:listener/app/<name>/<balancer id>/<listener id>` is a listener of
/// `…:loadbalancer/app/<name>/<balancer id>`. `None` for an ARN of another form.
fn balancer_of(listener_arn: &str) -> Option<String> {
    let (head, path) = listener_arn.split_once(":listener/")?;
    let (balancer, _listener) = path.rsplit_once('/')?;
    (balancer.split('/').count() == 3).then(|| format!("{head}:loadbalancer/{balancer}"))
}

#[cfg(test)]
mod tests {
    use super::balancer_of;

    #[test]
    fn a_listeners_arn_names_its_load_balancer() {
        let listener =
            "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
        assert_eq!(
            balancer_of(listener).as_deref(),
            Some("arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/shop/50dc6c495c0c9188")
        );
        let network =
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/net/edge/0123456789abcdef/fedcba9876543210";
        assert!(balancer_of(network).is_some_and(|arn| arn.ends_with(":loadbalancer/net/edge/0123456789abcdef")));
        assert_eq!(balancer_of("arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/a/b/c/d"), None);
        assert_eq!(balancer_of("not an arn"), None);
    }
}
