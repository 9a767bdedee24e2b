//! ELBv2 as a hook calls it: the AWS SDK for Rust's client (awsQuery) against the emulator's
//! load balancers, target groups and listeners, found from a CodeDeploy ECS deployment's target.

mod common;

use common::fake_function;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata;
use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersError;
use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersError;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsError;
use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum};
use codedeploy_local::config::{EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::{EventStatus, TimeScale};
use codedeploy_local::faults::Faults;
use codedeploy_local::server::Server;
use serde_json::json;

/// Two ECS services whose tasks are Python's HTTP server, and a hook that never reports.
fn config() -> LocalConfig {
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    let service = |task_definition: &str| EcsServiceConfig {
        task_definition: task_definition.to_owned(),
        production_port: 0,
        test_port: 0,
        desired_count: 1,
    };
    let hook = FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: BTreeMap::from([("$LATEST".to_owned(), fake_function("echo"))]),
        aliases: BTreeMap::new(),
    };
    LocalConfig {
        functions: BTreeMap::from([("silent-hook".to_owned(), hook)]),
        task_definitions: BTreeMap::from([("web:1".to_owned(), web.clone()), ("web:2".to_owned(), web)]),
        ecs_services: BTreeMap::from([
            ("shop:web".to_owned(), service("web:1")),
            ("shop:cart".to_owned(), service("web:1")),
        ]),
    }
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    // The workspace builds the SDK without its default client; this is the one the hooks use.
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_elasticloadbalancingv2::config::Credentials::new("x", "x", None, None, "test"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

struct Local {
    server: Server,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    codedeploy: aws_sdk_codedeploy::Client,
}

impl Local {
    async fn start() -> Self {
        let server = Server::start(config(), TimeScale(60.0), 0, None).await.expect("the emulator starts");
        let config = sdk_config(&server.endpoint()).await;
        Self {
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            codedeploy: aws_sdk_codedeploy::Client::new(&config),
            server,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn load_balancers_are_found_by_name_and_by_arn() {
    let local = Local::start().await;
    let named = local.elb.describe_load_balancers().names("web").send().await.expect("by name");
    let [web] = named.load_balancers() else { panic!("one load balancer: {named:?}") };
    assert_eq!(web.load_balancer_name(), Some("web"));
    assert_eq!(web.dns_name(), Some("127.0.0.1"));
    assert_eq!(web.r#type(), Some(&LoadBalancerTypeEnum::Application));
    let arn = web.load_balancer_arn().expect("an ARN");
    assert!(arn.starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/"), "{arn}");

    let by_arn = local.elb.describe_load_balancers().load_balancer_arns(arn).send().await.expect("by ARN");
    assert_eq!(by_arn.load_balancers(), named.load_balancers());

    let all = local.elb.describe_load_balancers().send().await.expect("all");
    let names: Vec<_> = all.load_balancers().iter().filter_map(|lb| lb.load_balancer_name()).collect();
    assert_eq!(names, ["cart", "web"]);
    let first = local.elb.describe_load_balancers().page_size(1).send().await.expect("page 1");
    let marker = first.next_marker().expect("a second page").to_owned();
    let second = local.elb.describe_load_balancers().page_size(1).marker(marker).send().await.expect("page 2");
    assert_eq!(second.load_balancers()[0].load_balancer_name(), Some("web"));
    assert_eq!(second.next_marker(), None);
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancers_target_groups_and_listeners_are_the_real_ones() {
    let local = Local::start().await;
    let lbs = local.elb.describe_load_balancers().names("cart").send().await.expect("cart");
    let arn = lbs.load_balancers()[0].load_balancer_arn().expect("an ARN").to_owned();

    let groups = local.elb.describe_target_groups().load_balancer_arn(&arn).send().await.expect("its groups");
    let names: Vec<_> = groups.target_groups().iter().filter_map(|g| g.target_group_name()).collect();
    assert_eq!(names, ["cart-blue", "cart-green"]);
    for group in groups.target_groups() {
        assert_eq!(group.load_balancer_arns(), std::slice::from_ref(&arn));
        assert_eq!(group.protocol(), Some(&ProtocolEnum::Http));
    }

    let listeners = local.elb.describe_listeners().load_balancer_arn(&arn).send().await.expect("its listeners");
    let ports: Vec<_> = listeners.listeners().iter().filter_map(|l| l.port()).collect();
    let (production, test) = local.server.emulator.listeners("shop:cart").await.expect("cart's listeners");
    assert_eq!(ports, [i32::from(production.port()), i32::from(test.port())]);
    let blue_arn = groups.target_groups()[0].target_group_arn();
    for listener in listeners.listeners() {
        assert_eq!(listener.load_balancer_arn(), Some(arn.as_str()));
        assert_eq!(listener.protocol(), Some(&ProtocolEnum::Http));
        let [action] = listener.default_actions() else { panic!("one default action: {listener:?}") };
        assert_eq!(action.r#type(), Some(&ActionTypeEnum::Forward));
        assert_eq!(action.target_group_arn(), blue_arn, "before a deployment all traffic is on blue");
    }

    let test_arn = listeners.listeners()[1].listener_arn().expect("an ARN");
    let by_arn = local.elb.describe_listeners().listener_arns(test_arn).send().await.expect("by ARN");
    assert_eq!(by_arn.listeners(), &listeners.listeners()[1..]);
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_group_named_by_get_deployment_target_resolves_to_its_load_balancer() {
    let local = Local::start().await;
    let call = |operation: &str, input: serde_json::Value| {
        local.server.emulator.codedeploy(operation, &input).unwrap_or_else(|e| panic!("{operation}: {e}"))
    };
    call("CreateApplication", json!({"applicationName": "shop", "computePlatform": "ECS"}));
    call(
        "CreateDeploymentGroup",
        json!({"applicationName": "shop", "deploymentGroupName": "web",
               "serviceRoleArn": "arn:aws:iam::123456789012:role/cd",
               "ecsServices": [{"clusterName": "shop", "serviceName": "web"}]}),
    );
    let appspec = json!({"Resources": [{"web": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": "web:2", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}],
        "Hooks": [{"AfterInstall": "silent-hook"}]});
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "shop", "deploymentGroupName": "web",
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    );
    let id = created["deploymentId"].as_str().expect("a deployment id").to_owned();
    let in_after_install = async {
        while local.server.emulator.state().deployments[&id].events[2].status != EventStatus::InProgress {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), in_after_install).await.expect("AfterInstall starts");

    let target = local.codedeploy.get_deployment_target().deployment_id(&id).target_id("shop:web").send().await;
    let target = target.expect("GetDeploymentTarget");
    let sets = target.deployment_target().and_then(|t| t.ecs_target()).map(|t| t.task_sets_info()).unwrap_or_default();
    let green = sets.iter().find(|s| s.task_set_label().map(|l| l.as_str()) == Some("Green")).expect("a green set");
    let name = green.target_group().and_then(|g| g.name()).expect("its target group's name");

    let groups = local.elb.describe_target_groups().names(name).send().await.expect("the named group");
    let [group] = groups.target_groups() else { panic!("one group: {groups:?}") };
    let arn = group.target_group_arn().expect("an ARN");
    assert!(arn.contains(&format!(":targetgroup/{name}/")), "{arn}");
    assert!(group.port().is_some_and(|port| port > 0), "green's task set is registered: {group:?}");
    let by_arn = local.elb.describe_target_groups().target_group_arns(arn).send().await.expect("by ARN");
    assert_eq!(by_arn.target_groups(), groups.target_groups());

    let [balancer_arn] = group.load_balancer_arns() else { panic!("one load balancer: {group:?}") };
    let lbs = local.elb.describe_load_balancers().load_balancer_arns(balancer_arn).send().await.expect("its LB");
    assert_eq!(lbs.load_balancers()[0].load_balancer_name(), Some("web"));
    assert_eq!(lbs.load_balancers()[0].dns_name(), Some("127.0.0.1"));
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_not_there_is_the_sdks_typed_not_found() {
    let local = Local::start().await;
    let missing = local.elb.describe_load_balancers().names("nope").send().await.expect_err("no such LB");
    let missing = missing.into_service_error();
    assert!(matches!(missing, DescribeLoadBalancersError::LoadBalancerNotFoundException(_)), "{missing:?}");
    assert!(missing.message().is_some_and(|m| m.contains("nope")), "{missing:?}");

    let missing = local.elb.describe_target_groups().names("web-red").send().await.expect_err("no such group");
    let missing = missing.into_service_error();
    assert!(matches!(missing, DescribeTargetGroupsError::TargetGroupNotFoundException(_)), "{missing:?}");
    let missing = local.elb.describe_target_groups().load_balancer_arn("arn:nope").send().await.expect_err("no LB");
    let missing = missing.into_service_error();
    assert!(matches!(missing, DescribeTargetGroupsError::LoadBalancerNotFoundException(_)), "{missing:?}");

    let missing = local.elb.describe_listeners().listener_arns("arn:nope").send().await.expect_err("no listener");
    let missing = missing.into_service_error();
    assert!(matches!(missing, DescribeListenersError::ListenerNotFoundException(_)), "{missing:?}");

    let both = local.elb.describe_load_balancers().names("web").load_balancer_arns("arn:x").send().await;
    assert_eq!(both.expect_err("exclusive").into_service_error().code(), Some("ValidationError"));
    let neither = local.elb.describe_listeners().send().await.expect_err("needs an ARN");
    assert_eq!(neither.into_service_error().code(), Some("ValidationError"));
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_describe_arrives_as_access_denied() {
    let local = Local::start().await;
    let faults = Faults { denied: ["DescribeTargetGroups".to_owned()].into(), ..Faults::default() };
    local.server.emulator.set_faults(faults).expect("ELBv2 operations can be denied");
    let denied = local.elb.describe_target_groups().names("web-blue").send().await.expect_err("denied");
    let status = denied.raw_response().map(|r| r.status().as_u16());
    let denied = denied.into_service_error();
    assert_eq!((status, denied.code()), (Some(403), Some("AccessDenied")), "{denied:?}");
    let message = denied.message().unwrap_or_default();
    assert!(message.contains("elasticloadbalancing:DescribeTargetGroups"), "{message}");
    // Only the named operation is denied, and both calls are listed.
    local.elb.describe_load_balancers().send().await.expect("not denied");
    let calls: Vec<_> = local.server.emulator.calls().into_iter().map(|c| (c.operation, c.resource)).collect();
    assert_eq!(
        calls,
        [("DescribeTargetGroups".to_owned(), Some("web-blue".to_owned())), ("DescribeLoadBalancers".to_owned(), None)]
    );
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_describe_is_never_answered_and_the_others_are() {
    let local = Local::start().await;
    let faults = Faults { hanging: ["DescribeListeners".to_owned()].into(), ..Faults::default() };
    local.server.emulator.set_faults(faults).expect("ELBv2 operations can hang");
    let lbs = local.elb.describe_load_balancers().names("web").send().await.expect("not hanging");
    let arn = lbs.load_balancers()[0].load_balancer_arn().expect("an ARN").to_owned();
    let hung =
        tokio::time::timeout(Duration::from_secs(1), local.elb.describe_listeners().load_balancer_arn(arn).send());
    assert!(hung.await.is_err(), "DescribeListeners answered");
    local.server.shutdown().await;
}
