//! Elastic Load Balancing v2: the load balancer, listeners and target groups in front of each
//! hosted ECS service, named as AWS names them.
//!
//! Each ECS service (`cluster:service`) stands behind one application load balancer with a
//! production and a test listener ([`crate::ecs::traffic::Listener`]) and two target groups, one
//! per task set label. CloudWatch's `AWS/ApplicationELB` metrics carry the last part of their ARNs
//! as dimensions (`app/<name>/<id>`, `targetgroup/<name>/<id>`), and CodeDeploy's ECS target names a
//! target group by name only, so every name, ARN and dimension value comes from here.
//!
//! The load balancers of the config's `load_balancers` ([`balancer`]) stand in front of services
//! that ECS deploys itself: a production and a test listener with one rule each, and two target
//! groups (`<name>-1`, `<name>-2`) that the service's revisions take turns in.
//!
//! The API (awsQuery, [`crate::protocol::aws_query`]) describes them: [`describe`] serves
//! [`OPERATIONS`].

pub mod balancer;
pub mod describe;

pub use describe::serve;

use crate::ecs::traffic::TaskSetLabel;

/// Every operation served, as named in the request's `Action`.
pub const OPERATIONS: &[&str] =
    &["DescribeLoadBalancers", "DescribeTargetGroups", "DescribeListeners", "DescribeRules"];

/// The API version the requests name in `Version`, which picks this service.
pub const API_VERSION: &str = "2015-12-01";

/// The XML namespace of every response.
pub const XML_NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// The VPC every load balancer and target group is in: the emulated account's one.
pub const VPC_ID: &str = "vpc-0c0de0e7105a1f00d";

/// Region and account of every ARN the emulator makes.
const ARN_PREFIX: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012";

/// The longest load balancer or target group name AWS accepts.
const NAME_LIMIT: usize = 32;

/// The load balancer in front of one ECS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    /// Its name: the service's, made valid (`[A-Za-z0-9-]`, at most 32).
    pub name: String,
    /// `arn:aws:elasticloadbalancing:…:loadbalancer/app/<name>/<id>`.
    pub arn: String,
    /// CloudWatch's `LoadBalancer` dimension value: `app/<name>/<id>`.
    pub dimension: String,
}

/// One of a service's two target groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its name, as CodeDeploy's `GetDeploymentTarget` gives it.
    pub name: String,
    /// `arn:aws:elasticloadbalancing:…:targetgroup/<name>/<id>`.
    pub arn: String,
    /// CloudWatch's `TargetGroup` dimension value: `targetgroup/<name>/<id>`.
    pub dimension: String,
}

/// Which of a service's two listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// The production listener, which the deployment shifts last.
    Production,
    /// The test listener, which sends test traffic to green from AllowTestTraffic on.
    Test,
}

impl ListenerRole {
    /// `production` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Test => "test",
        }
    }
}

/// The ARN of one of `service`'s listeners: its load balancer's ARN with `listener/` for
/// `loadbalancer/`, and the listener's own id.
pub fn listener_arn(service: &str, role: ListenerRole) -> String {
    let balancer = load_balancer(service);
    let id = resource_id(&format!("listener:{service}:{}", role.as_str()));
    format!("{ARN_PREFIX}:listener/{}/{id}", balancer.dimension)
}

/// The ARN of the one rule (besides the default) of a configured load balancer's listener:
/// `listener-rule/app/<name>/<id>/<listener id>/<rule id>`, as ECS's `advancedConfiguration`
/// names the production and test rules.
pub fn listener_rule_arn(balancer: &str, role: ListenerRole) -> String {
    let listener = listener_arn(balancer, role);
    let tail = listener.rsplit_once(":listener/").map_or(listener.as_str(), |(_, tail)| tail);
    let id = resource_id(&format!("rule:{balancer}:{}", role.as_str()));
    format!("{ARN_PREFIX}:listener-rule/{tail}/{id}")
}

/// The ARN of a listener's default rule: `listener-rule/…/<listener id>/<id>`.
pub fn default_rule_arn(listener_arn: &str) -> String {
    let tail = listener_arn.rsplit_once(":listener/").map_or(listener_arn, |(_, tail)| tail);
    format!("{ARN_PREFIX}:listener-rule/{tail}/{}", resource_id(&format!("default-rule:{listener_arn}")))
}

/// Target group `number` (1 or 2) of the configured load balancer `balancer`: `<name>-<number>`.
pub fn numbered_target_group(balancer: &str, number: u8) -> TargetGroup {
    let name = resource_name(balancer, &format!("-{number}"));
    let dimension = format!("targetgroup/{name}/{}", resource_id(&format!("tg:{balancer}:{number}")));
    TargetGroup { arn: format!("{ARN_PREFIX}:{dimension}"), name, dimension }
}

/// The load balancer of the ECS service `cluster:service`.
pub fn load_balancer(service: &str) -> LoadBalancer {
    let name = resource_name(service, "");
    let dimension = format!("app/{name}/{}", resource_id(&format!("lb:{service}")));
    LoadBalancer { arn: format!("{ARN_PREFIX}:loadbalancer/{dimension}"), name, dimension }
}

/// The target group of `service` that the task set labelled `label` registers in.
pub fn target_group(service: &str, label: TaskSetLabel) -> TargetGroup {
    let suffix = match label {
        TaskSetLabel::Blue => "-blue",
        TaskSetLabel::Green => "-green",
    };
    let name = resource_name(service, suffix);
    let dimension = format!("targetgroup/{name}/{}", resource_id(&format!("tg:{service}:{}", label.as_str())));
    TargetGroup { arn: format!("{ARN_PREFIX}:{dimension}"), name, dimension }
}

/// `service`'s name (the part after the cluster) in ELB's alphabet, shortened so that `suffix`
/// still fits in [`NAME_LIMIT`]; never starting or ending with a hyphen.
fn resource_name(service: &str, suffix: &str) -> String {
    let bare = service.rsplit_once(':').map_or(service, |(_, name)| name);
    let cleaned: String = bare.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let mut name: String = cleaned.trim_matches('-').chars().take(NAME_LIMIT - suffix.len()).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        name.push_str("service");
    }
    name + suffix
}

/// A stable 16-hex-digit id, as AWS's are, derived from what the resource is: the same service
/// gets the same ARNs in every run, so a plan or an alarm written against them keeps working.
fn resource_id(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arns_and_dimensions_have_aws_forms() {
        let lb = load_balancer("default:checkout");
        assert_eq!(lb.name, "checkout");
        assert!(lb.dimension.starts_with("app/checkout/"), "{}", lb.dimension);
        assert_eq!(lb.dimension.len(), "app/checkout/".len() + 16);
        assert!(lb.arn.ends_with(&format!(":loadbalancer/{}", lb.dimension)));

        let green = target_group("default:checkout", TaskSetLabel::Green);
        assert_eq!(green.name, "checkout-green");
        assert!(green.dimension.starts_with("targetgroup/checkout-green/"));
        assert!(green.arn.ends_with(&format!(":{}", green.dimension)));
        assert_ne!(green, target_group("default:checkout", TaskSetLabel::Blue));
        assert_ne!(green.dimension, target_group("other:checkout", TaskSetLabel::Green).dimension);

        let test = listener_arn("default:checkout", ListenerRole::Test);
        assert!(test.starts_with(&format!("{ARN_PREFIX}:listener/{}/", lb.dimension)), "{test}");
        assert_eq!(test.len(), format!("{ARN_PREFIX}:listener/{}/", lb.dimension).len() + 16);
        assert_ne!(test, listener_arn("default:checkout", ListenerRole::Production));
    }

    #[test]
    fn long_or_odd_service_names_become_valid_elb_names() {
        let group = target_group("c:a_very_long_service_name_that_goes_on_and_on", TaskSetLabel::Green);
        assert!(group.name.len() <= NAME_LIMIT, "{}", group.name);
        assert!(group.name.ends_with("-green"));
        assert!(group.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(load_balancer("c:__").name, "service");
    }
}
