//! The ELBv2 Describe operations over the hosted ECS services: each one's application load
//! balancer, its production and test listeners (the real loopback listeners, on their real ports,
//! forwarding as they do now) and its blue and green target groups; and over the configured load
//! balancers, with their two numbered target groups and the one rule of each listener.
//!
//! Inputs arrive as [`crate::protocol::aws_query`] decodes them, numbers as strings; outputs are
//! the members of the operation's `…Result` element. Errors are the model's: `LoadBalancerNotFound`,
//! `TargetGroupNotFound`, `ListenerNotFound`, `RuleNotFound` (HTTP 400), and AWS's common `ValidationError` for
//! parameters that exclude each other or do not parse.

use serde_json::{Value, json};

use super::{
    ListenerRole, LoadBalancer, TargetGroup, VPC_ID, default_rule_arn, listener_arn, listener_rule_arn, load_balancer,
    numbered_target_group, target_group,
};
use crate::ecs::traffic::TaskSetLabel;
use crate::emulator::Emulator;
use crate::protocol::ApiError;
use crate::protocol::aws_query::{integer, string, string_list};

/// The most items one page holds, and the default page size (the model's `PageSize` maximum).
const MAX_PAGE_SIZE: i64 = 400;

/// What clients find when they resolve the load balancer's DNS name: the loopback listeners.
const DNS_NAME: &str = "127.0.0.1";

/// One hosted ECS service, as ELBv2 shows it.
#[derive(Debug, Clone)]
struct Hosted {
    balancer: LoadBalancer,
    /// Blue then green, each with the port of the task set registered in it, if one is.
    groups: Vec<(TargetGroup, Option<u16>)>,
    /// Production then test.
    listeners: Vec<HostedListener>,
}

#[derive(Debug, Clone)]
struct HostedListener {
    arn: String,
    port: u16,
    /// Percent of requests to (blue, green), or to target groups 1 and 2.
    weights: (f64, f64),
    /// The rule of a configured load balancer's listener, besides the default one.
    rule: Option<String>,
}

/// Serves one ELBv2 operation, after noting the call and answering its injected faults.
pub async fn serve(emulator: &Emulator, action: &str, input: &Value) -> Result<Value, ApiError> {
    emulator.answer_faults(action, resource(input).as_deref(), None).await?;
    let hosted = hosted(emulator).await;
    match action {
        "DescribeLoadBalancers" => describe_load_balancers(&hosted, input),
        "DescribeTargetGroups" => describe_target_groups(&hosted, input),
        "DescribeListeners" => describe_listeners(&hosted, input),
        "DescribeRules" => describe_rules(&hosted, input),
        other => Err(ApiError::client("InvalidAction", format!("{other} is not served locally"))),
    }
}

/// What a call names, for the list of calls: the load balancer, or the ARNs or names asked for.
fn resource(input: &Value) -> Option<String> {
    if let Some(Value::String(arn)) = input.get("LoadBalancerArn") {
        return Some(arn.clone());
    }
    if let Some(Value::String(arn)) = input.get("ListenerArn") {
        return Some(arn.clone());
    }
    ["LoadBalancerArns", "TargetGroupArns", "ListenerArns", "RuleArns", "Names"].iter().find_map(|member| {
        let items = input.get(*member)?.as_array()?;
        Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
    })
}

/// Every hosted service, in name order, then every configured load balancer, with their
/// listeners as they route now.
async fn hosted(emulator: &Emulator) -> Vec<Hosted> {
    let mut hosted = hosted_services(emulator).await;
    let balancers = emulator.inner.balancers.lock().await;
    hosted.extend(balancers.iter().map(|(name, balancer)| {
        let listener = |role| {
            let [one, two] = balancer.weights(role);
            HostedListener {
                arn: listener_arn(name, role),
                port: balancer.listener(role).addr().port(),
                weights: (one, two),
                rule: Some(listener_rule_arn(name, role)),
            }
        };
        let [one, two] = balancer.target_ports();
        Hosted {
            balancer: load_balancer(name),
            groups: vec![(numbered_target_group(name, 1), one), (numbered_target_group(name, 2), two)],
            listeners: vec![listener(ListenerRole::Production), listener(ListenerRole::Test)],
        }
    }));
    hosted
}

async fn hosted_services(emulator: &Emulator) -> Vec<Hosted> {
    let names: Vec<String> = emulator.state().ecs_services.keys().cloned().collect();
    let services = emulator.inner.ecs.lock().await;
    names
        .into_iter()
        .filter_map(|name| {
            let service = services.get(&name)?;
            let port = |task_set: &Option<crate::ecs::TaskSet>| task_set.as_ref().map(|t| t.addr.port());
            let listener = |role, listener: &crate::ecs::traffic::Listener| HostedListener {
                arn: listener_arn(&name, role),
                port: listener.addr().port(),
                weights: listener.weights(),
                rule: None,
            };
            Some(Hosted {
                balancer: load_balancer(&name),
                groups: vec![
                    (target_group(&name, TaskSetLabel::Blue), port(&service.blue)),
                    (target_group(&name, TaskSetLabel::Green), port(&service.green)),
                ],
                listeners: vec![
                    listener(ListenerRole::Production, &service.production),
                    listener(ListenerRole::Test, &service.test),
                ],
            })
        })
        .collect()
}

fn load_balancer_json(hosted: &Hosted) -> Value {
    json!({
        "LoadBalancerArn": hosted.balancer.arn,
        "LoadBalancerName": hosted.balancer.name,
        "DNSName": DNS_NAME,
        "Scheme": "internal",
        "Type": "application",
        "State": {"Code": "active"},
        "VpcId": VPC_ID,
        "IpAddressType": "ipv4",
    })
}

fn target_group_json(hosted: &Hosted, group: &TargetGroup, port: Option<u16>) -> Value {
    let mut json = json!({
        "TargetGroupArn": group.arn,
        "TargetGroupName": group.name,
        "Protocol": "HTTP",
        "ProtocolVersion": "HTTP1",
        "TargetType": "ip",
        "VpcId": VPC_ID,
        "IpAddressType": "ipv4",
        "LoadBalancerArns": [hosted.balancer.arn],
    });
    if let Some(port) = port {
        json["Port"] = json!(port);
    }
    json
}

/// The forward action of a listener (and of its rules): to the target groups that get requests
/// now, weighted as it routes; with one group only, the action names it as `TargetGroupArn` too,
/// as AWS shows a simple forward.
fn forward_action(hosted: &Hosted, listener: &HostedListener) -> Value {
    let (blue, green) = listener.weights;
    let weighted: Vec<(&TargetGroup, i64)> = hosted
        .groups
        .iter()
        .map(|(group, _)| group)
        .zip([blue, green])
        .map(|(group, percent)| (group, percent.round() as i64))
        .filter(|(_, weight)| *weight > 0)
        .collect();
    let tuples: Vec<Value> =
        weighted.iter().map(|(group, weight)| json!({"TargetGroupArn": group.arn, "Weight": weight})).collect();
    let mut action = json!({
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": tuples, "TargetGroupStickinessConfig": {"Enabled": false}},
    });
    if let [(only, _)] = weighted.as_slice() {
        action["TargetGroupArn"] = json!(only.arn);
    }
    action
}

fn listener_json(hosted: &Hosted, listener: &HostedListener) -> Value {
    json!({
        "ListenerArn": listener.arn,
        "LoadBalancerArn": hosted.balancer.arn,
        "Port": listener.port,
        "Protocol": "HTTP",
        "DefaultActions": [forward_action(hosted, listener)],
    })
}

/// A listener's rules: its one rule for every path (on a configured load balancer), then its
/// default rule, both forwarding as the listener does.
fn rules_json(hosted: &Hosted, listener: &HostedListener) -> Vec<(String, Value)> {
    let action = forward_action(hosted, listener);
    let mut rules = Vec::new();
    if let Some(arn) = &listener.rule {
        let condition = json!({"Field": "path-pattern", "Values": ["/*"], "PathPatternConfig": {"Values": ["/*"]}});
        let rule = json!({"RuleArn": arn, "Priority": "1", "Conditions": [condition], "Actions": [action],
                          "IsDefault": false});
        rules.push((arn.clone(), rule));
    }
    let default = default_rule_arn(&listener.arn);
    let rule =
        json!({"RuleArn": default, "Priority": "default", "Conditions": [], "Actions": [action], "IsDefault": true});
    rules.push((default, rule));
    rules
}

/// Of `available` (id, item), the items `wanted` names, in its order, once each; or the error
/// `not_found` makes of the ids not there.
fn pick(
    available: Vec<(String, Value)>,
    wanted: &[String],
    not_found: impl FnOnce(&[&String]) -> ApiError,
) -> Result<Vec<Value>, ApiError> {
    let missing: Vec<&String> = wanted.iter().filter(|id| !available.iter().any(|(have, _)| have == *id)).collect();
    if !missing.is_empty() {
        return Err(not_found(&missing));
    }
    let mut seen = Vec::new();
    let mut picked = Vec::new();
    for id in wanted {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        picked.extend(available.iter().filter(|(have, _)| have == id).map(|(_, item)| item.clone()));
    }
    Ok(picked)
}

fn quoted(ids: &[&String]) -> String {
    ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ")
}

fn load_balancer_not_found(ids: &[&String]) -> ApiError {
    ApiError::client("LoadBalancerNotFound", format!("Load balancers {} not found", quoted(ids)))
}

fn target_group_not_found(ids: &[&String]) -> ApiError {
    ApiError::client("TargetGroupNotFound", format!("Target groups {} not found", quoted(ids)))
}

fn listener_not_found(ids: &[&String]) -> ApiError {
    ApiError::client("ListenerNotFound", format!("Listeners {} not found", quoted(ids)))
}

fn rule_not_found(ids: &[&String]) -> ApiError {
    ApiError::client("RuleNotFound", format!("Rules {} not found", quoted(ids)))
}

fn validation(message: &str) -> ApiError {
    ApiError::client("ValidationError", message)
}

/// The load balancer `arn` names.
fn balancer<'a>(hosted: &'a [Hosted], arn: &str) -> Result<&'a Hosted, ApiError> {
    hosted.iter().find(|h| h.balancer.arn == arn).ok_or_else(|| load_balancer_not_found(&[&arn.to_owned()]))
}

/// One page of `items` as the output's `member` (and `NextMarker` when more follow). The marker
/// is where the next page starts, which clients pass back unread.
fn paged(member: &str, items: Vec<Value>, input: &Value) -> Result<Value, ApiError> {
    let size = match integer(input, "PageSize")? {
        None => MAX_PAGE_SIZE,
        Some(size @ 1..=MAX_PAGE_SIZE) => size,
        Some(_) => return Err(validation("PageSize must be between 1 and 400")),
    };
    let start = match string(input, "Marker")? {
        None => 0,
        Some(marker) => marker
            .parse::<usize>()
            .ok()
            .filter(|start| *start <= items.len())
            .ok_or_else(|| validation("The marker is not one a previous call returned"))?,
    };
    let end = start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX)).min(items.len());
    let mut output = json!({ member: items[start..end] });
    if end < items.len() {
        output["NextMarker"] = json!(end.to_string());
    }
    Ok(output)
}

fn describe_load_balancers(hosted: &[Hosted], input: &Value) -> Result<Value, ApiError> {
    let arns = string_list(input, "LoadBalancerArns")?;
    let names = string_list(input, "Names")?;
    let by = |id: fn(&Hosted) -> &String| hosted.iter().map(|h| (id(h).clone(), load_balancer_json(h))).collect();
    let items = match (arns, names) {
        (Some(_), Some(_)) => {
            return Err(validation("Load balancer names and load balancer ARNs cannot be specified at the same time"));
        }
        (Some(arns), None) => pick(by(|h| &h.balancer.arn), &arns, load_balancer_not_found)?,
        (None, Some(names)) => pick(by(|h| &h.balancer.name), &names, load_balancer_not_found)?,
        (None, None) => hosted.iter().map(load_balancer_json).collect(),
    };
    paged("LoadBalancers", items, input)
}

fn describe_target_groups(hosted: &[Hosted], input: &Value) -> Result<Value, ApiError> {
    let balancer_arn = string(input, "LoadBalancerArn")?;
    let arns = string_list(input, "TargetGroupArns")?;
    let names = string_list(input, "Names")?;
    if [balancer_arn.is_some(), arns.is_some(), names.is_some()].iter().filter(|given| **given).count() > 1 {
        return Err(validation(
            "Only one of load balancer ARN, target group ARNs or target group names can be specified",
        ));
    }
    let groups = |of: &[&Hosted]| -> Vec<(String, String, Value)> {
        of.iter()
            .flat_map(|h| {
                h.groups.iter().map(|(g, port)| (g.arn.clone(), g.name.clone(), target_group_json(h, g, *port)))
            })
            .collect()
    };
    let all: Vec<&Hosted> = hosted.iter().collect();
    let items = if let Some(arn) = balancer_arn {
        groups(&[balancer(hosted, arn)?]).into_iter().map(|(_, _, item)| item).collect()
    } else if let Some(arns) = arns {
        let available = groups(&all).into_iter().map(|(arn, _, item)| (arn, item)).collect();
        pick(available, &arns, target_group_not_found)?
    } else if let Some(names) = names {
        let available = groups(&all).into_iter().map(|(_, name, item)| (name, item)).collect();
        pick(available, &names, target_group_not_found)?
    } else {
        groups(&all).into_iter().map(|(_, _, item)| item).collect()
    };
    paged("TargetGroups", items, input)
}

fn describe_listeners(hosted: &[Hosted], input: &Value) -> Result<Value, ApiError> {
    let balancer_arn = string(input, "LoadBalancerArn")?;
    let arns = string_list(input, "ListenerArns")?;
    let items = match (balancer_arn, arns) {
        (Some(_), Some(_)) => {
            return Err(validation("Listener ARNs and a load balancer ARN cannot be specified at the same time"));
        }
        (None, None) => return Err(validation("You must specify either listener ARNs or a load balancer ARN")),
        (Some(arn), None) => {
            let owner = balancer(hosted, arn)?;
            owner.listeners.iter().map(|l| listener_json(owner, l)).collect()
        }
        (None, Some(arns)) => {
            let available = hosted
                .iter()
                .flat_map(|h| h.listeners.iter().map(move |l| (l.arn.clone(), listener_json(h, l))))
                .collect();
            pick(available, &arns, listener_not_found)?
        }
    };
    paged("Listeners", items, input)
}

fn describe_rules(hosted: &[Hosted], input: &Value) -> Result<Value, ApiError> {
    let listener_arn = string(input, "ListenerArn")?;
    let arns = string_list(input, "RuleArns")?;
    let items = match (listener_arn, arns) {
        (Some(_), Some(_)) => {
            return Err(validation("Rule ARNs and a listener ARN cannot be specified at the same time"));
        }
        (None, None) => return Err(validation("You must specify either listener ARNs or rule ARNs")),
        (Some(arn), None) => {
            let (owner, listener) = hosted
                .iter()
                .find_map(|h| h.listeners.iter().find(|l| l.arn == arn).map(|l| (h, l)))
                .ok_or_else(|| listener_not_found(&[&arn.to_owned()]))?;
            rules_json(owner, listener).into_iter().map(|(_, rule)| rule).collect()
        }
        (None, Some(arns)) => {
            let available = hosted.iter().flat_map(|h| h.listeners.iter().flat_map(|l| rules_json(h, l))).collect();
            pick(available, &arns, rule_not_found)?
        }
    };
    paged("Rules", items, input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, production: u16, test: u16, weights: (f64, f64)) -> Hosted {
        Hosted {
            balancer: load_balancer(name),
            groups: vec![
                (target_group(name, TaskSetLabel::Blue), Some(9001)),
                (target_group(name, TaskSetLabel::Green), None),
            ],
            listeners: vec![
                HostedListener {
                    arn: listener_arn(name, ListenerRole::Production),
                    port: production,
                    weights,
                    rule: None,
                },
                HostedListener {
                    arn: listener_arn(name, ListenerRole::Test),
                    port: test,
                    weights: (0.0, 100.0),
                    rule: None,
                },
            ],
        }
    }

    fn two() -> Vec<Hosted> {
        vec![service("shop:cart", 8080, 8081, (100.0, 0.0)), service("shop:web", 9090, 9091, (75.0, 25.0))]
    }

    fn code(result: Result<Value, ApiError>) -> &'static str {
        result.map(|_| "ok").unwrap_or_else(|e| e.code)
    }

    #[test]
    fn load_balancers_by_name_arn_or_all() {
        let hosted = two();
        let web = load_balancer("shop:web");
        let named = describe_load_balancers(&hosted, &json!({"Names": ["web"]})).expect("found");
        assert_eq!(named["LoadBalancers"][0]["LoadBalancerArn"], json!(web.arn));
        assert_eq!(named["LoadBalancers"].as_array().map(Vec::len), Some(1));
        let by_arn = describe_load_balancers(&hosted, &json!({"LoadBalancerArns": [web.arn]})).expect("found");
        assert_eq!(by_arn, named);
        let all = describe_load_balancers(&hosted, &json!({})).expect("all");
        assert_eq!(all["LoadBalancers"].as_array().map(Vec::len), Some(2));
        assert_eq!(code(describe_load_balancers(&hosted, &json!({"Names": ["web", "nope"]}))), "LoadBalancerNotFound");
        assert_eq!(
            code(describe_load_balancers(&hosted, &json!({"Names": ["web"], "LoadBalancerArns": [web.arn]}))),
            "ValidationError"
        );
    }

    #[test]
    fn pages_follow_their_markers() {
        let hosted = two();
        let first = describe_load_balancers(&hosted, &json!({"PageSize": "1"})).expect("page 1");
        assert_eq!(first["LoadBalancers"][0]["LoadBalancerName"], json!("cart"));
        let marker = first["NextMarker"].as_str().expect("a marker").to_owned();
        let second = describe_load_balancers(&hosted, &json!({"PageSize": "1", "Marker": marker})).expect("page 2");
        assert_eq!(second["LoadBalancers"][0]["LoadBalancerName"], json!("web"));
        assert!(second.get("NextMarker").is_none(), "{second}");
        assert_eq!(code(describe_load_balancers(&hosted, &json!({"PageSize": "0"}))), "ValidationError");
        assert_eq!(code(describe_load_balancers(&hosted, &json!({"PageSize": "many"}))), "ValidationError");
        assert_eq!(code(describe_load_balancers(&hosted, &json!({"Marker": "99"}))), "ValidationError");
    }

    #[test]
    fn target_groups_by_balancer_name_or_arn() {
        let hosted = two();
        let web = load_balancer("shop:web");
        let of_web = describe_target_groups(&hosted, &json!({"LoadBalancerArn": web.arn})).expect("found");
        let names: Vec<&Value> =
            of_web["TargetGroups"].as_array().into_iter().flatten().map(|g| &g["TargetGroupName"]).collect();
        assert_eq!(names, [&json!("web-blue"), &json!("web-green")]);
        assert_eq!(of_web["TargetGroups"][0]["LoadBalancerArns"], json!([web.arn]));
        assert_eq!(of_web["TargetGroups"][0]["Port"], json!(9001));
        assert!(of_web["TargetGroups"][1].get("Port").is_none(), "no task set is registered in green");
        let green = target_group("shop:web", TaskSetLabel::Green);
        let named = describe_target_groups(&hosted, &json!({"Names": ["web-green"]})).expect("found");
        assert_eq!(named["TargetGroups"][0]["TargetGroupArn"], json!(green.arn));
        let by_arn = describe_target_groups(&hosted, &json!({"TargetGroupArns": [green.arn]})).expect("found");
        assert_eq!(by_arn, named);
        assert_eq!(code(describe_target_groups(&hosted, &json!({"Names": ["web-red"]}))), "TargetGroupNotFound");
        assert_eq!(code(describe_target_groups(&hosted, &json!({"LoadBalancerArn": "arn:x"}))), "LoadBalancerNotFound");
        assert_eq!(
            code(describe_target_groups(&hosted, &json!({"Names": ["web-green"], "LoadBalancerArn": web.arn}))),
            "ValidationError"
        );
    }

    #[test]
    fn listeners_forward_as_they_route() {
        let hosted = two();
        let web = load_balancer("shop:web");
        let listed = describe_listeners(&hosted, &json!({"LoadBalancerArn": web.arn})).expect("found");
        let production = &listed["Listeners"][0];
        assert_eq!((&production["Port"], &production["Protocol"]), (&json!(9090), &json!("HTTP")));
        let action = &production["DefaultActions"][0];
        assert_eq!(action["Type"], json!("forward"));
        let blue = target_group("shop:web", TaskSetLabel::Blue);
        let green = target_group("shop:web", TaskSetLabel::Green);
        assert_eq!(
            action["ForwardConfig"]["TargetGroups"],
            json!([{"TargetGroupArn": blue.arn, "Weight": 75}, {"TargetGroupArn": green.arn, "Weight": 25}])
        );
        assert!(action.get("TargetGroupArn").is_none(), "two groups get traffic: {action}");
        let test = &listed["Listeners"][1];
        assert_eq!(test["Port"], json!(9091));
        assert_eq!(test["DefaultActions"][0]["TargetGroupArn"], json!(green.arn));

        let arn = listener_arn("shop:cart", ListenerRole::Test);
        let by_arn = describe_listeners(&hosted, &json!({"ListenerArns": [arn]})).expect("found");
        assert_eq!(by_arn["Listeners"][0]["Port"], json!(8081));
        assert_eq!(code(describe_listeners(&hosted, &json!({"ListenerArns": [arn, "arn:nope"]}))), "ListenerNotFound");
        assert_eq!(code(describe_listeners(&hosted, &json!({}))), "ValidationError");
        assert_eq!(
            code(describe_listeners(&hosted, &json!({"ListenerArns": [arn], "LoadBalancerArn": web.arn}))),
            "ValidationError"
        );
        assert_eq!(code(describe_listeners(&hosted, &json!({"LoadBalancerArn": "arn:x"}))), "LoadBalancerNotFound");
    }
}
