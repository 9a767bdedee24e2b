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

struct Local {
    server: Server,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    codedeploy: aws_sdk_codedeploy::Client,
}

impl Local {
    async fn start() -> Self {
        let server = Server::start(config(), TimeScale(60.0), 0, None).await.expect("the emulator starts");
        let config = common::sdk_config(&server.endpoint()).await;
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
    let id = common::ecs_deployment(&local.server.emulator);
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

/// What a fleet hook reads from a deployment id alone, each read through the SDK as it makes it:
/// the deployment, its group's target groups and listeners, the AppSpec behind it, and then the
/// test listener's URL, which must answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_id_leads_to_its_groups_listeners_and_appspec() {
    use aws_sdk_codedeploy::types::{AppSpecContent, RevisionLocation, RevisionLocationType};
    let local = Local::start().await;
    let codedeploy = &local.codedeploy;
    codedeploy
        .create_application()
        .application_name("shop")
        .compute_platform(aws_sdk_codedeploy::types::ComputePlatform::Ecs)
        .send()
        .await
        .expect("CreateApplication");
    let service = aws_sdk_codedeploy::types::EcsService::builder().cluster_name("shop").service_name("cart").build();
    codedeploy
        .create_deployment_group()
        .application_name("shop")
        .deployment_group_name("cart")
        .service_role_arn("arn:aws:iam::123456789012:role/cd")
        .ecs_services(service)
        .send()
        .await
        .expect("CreateDeploymentGroup");
    let appspec = json!({"Resources": [{"cart": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": "web:2", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}],
        "Hooks": [{"AfterInstall": "silent-hook"}]})
    .to_string();
    let revision = |content: Option<&str>| {
        RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().set_content(content.map(str::to_owned)).build())
            .build()
    };
    let created = codedeploy
        .create_deployment()
        .application_name("shop")
        .deployment_group_name("cart")
        .revision(revision(Some(&appspec)))
        .send()
        .await
        .expect("CreateDeployment");
    let id = created.deployment_id().expect("a deployment id");

    let deployment = codedeploy.get_deployment().deployment_id(id).send().await.expect("GetDeployment");
    let info = deployment.deployment_info().expect("deploymentInfo");
    let group_name = info.deployment_group_name().expect("its group");
    let sha256 = info.revision().and_then(|r| r.app_spec_content()).and_then(|c| c.sha256()).expect("a SHA-256");
    assert!(info.revision().and_then(|r| r.app_spec_content()).and_then(|c| c.content()).is_none());

    let group = codedeploy
        .get_deployment_group()
        .application_name("shop")
        .deployment_group_name(group_name)
        .send()
        .await
        .expect("GetDeploymentGroup");
    let group = group.deployment_group_info().expect("deploymentGroupInfo");
    let [ecs] = group.ecs_services() else { panic!("one ECS service: {group:?}") };
    assert_eq!((ecs.cluster_name(), ecs.service_name()), (Some("shop"), Some("cart")));
    let pairs = group.load_balancer_info().map(|lb| lb.target_group_pair_info_list()).unwrap_or_default();
    let [pair] = pairs else { panic!("one target group pair: {group:?}") };
    let names: Vec<_> = pair.target_groups().iter().filter_map(|g| g.name()).collect();
    assert_eq!(names, ["cart-blue", "cart-green"]);
    let route = |route: Option<&aws_sdk_codedeploy::types::TrafficRoute>| match route.map(|r| r.listener_arns()) {
        Some([arn]) => arn.clone(),
        other => panic!("one listener ARN: {other:?}"),
    };
    let (production_arn, test_arn) = (route(pair.prod_traffic_route()), route(pair.test_traffic_route()));

    let groups = local.elb.describe_target_groups().names("cart-blue").names("cart-green").send().await;
    assert_eq!(groups.expect("the named target groups").target_groups().len(), 2);
    let listeners = local
        .elb
        .describe_listeners()
        .listener_arns(&production_arn)
        .listener_arns(&test_arn)
        .send()
        .await
        .expect("the routes' listeners");
    let (production, test) = local.server.emulator.listeners("shop:cart").await.expect("cart's listeners");
    let ports: Vec<_> = listeners.listeners().iter().map(|l| (l.port(), l.protocol().cloned())).collect();
    assert_eq!(
        ports,
        [
            (Some(i32::from(production.port())), Some(ProtocolEnum::Http)),
            (Some(i32::from(test.port())), Some(ProtocolEnum::Http))
        ]
    );
    let balancer_arn = listeners.listeners()[1].load_balancer_arn().expect("its load balancer");
    let balancers = local.elb.describe_load_balancers().load_balancer_arns(balancer_arn).send().await;
    let dns_name = balancers.expect("the load balancer").load_balancers()[0].dns_name().expect("a DNS name").to_owned();
    let url = format!("http://{dns_name}:{}/", listeners.listeners()[1].port().expect("a port"));
    let answered = reqwest::get(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(answered.status(), 200, "{url}");

    let by_sha = codedeploy
        .get_application_revision()
        .application_name("shop")
        .revision(
            RevisionLocation::builder()
                .revision_type(RevisionLocationType::AppSpecContent)
                .app_spec_content(AppSpecContent::builder().sha256(sha256).build())
                .build(),
        )
        .send()
        .await
        .expect("GetApplicationRevision by SHA-256");
    assert_eq!(by_sha.application_name(), Some("shop"));
    let content = by_sha.revision().and_then(|r| r.app_spec_content());
    assert_eq!(content.and_then(|c| c.content()), Some(appspec.as_str()));
    assert_eq!(content.and_then(|c| c.sha256()), Some(sha256));
    let revision_info = by_sha.revision_info().expect("revisionInfo");
    assert_eq!(revision_info.deployment_groups(), ["cart"]);
    assert!(revision_info.first_used_time().is_some() && revision_info.register_time().is_some());
    let by_content = codedeploy
        .get_application_revision()
        .application_name("shop")
        .revision(revision(Some(&appspec)))
        .send()
        .await
        .expect("GetApplicationRevision by content");
    assert_eq!(by_content.revision(), by_sha.revision());

    let unknown = codedeploy
        .get_application_revision()
        .application_name("shop")
        .revision(revision(Some("{}")))
        .send()
        .await
        .expect_err("never deployed");
    assert!(unknown.as_service_error().is_some_and(|e| e.is_revision_does_not_exist_exception()), "{unknown:?}");
    let empty = codedeploy.get_application_revision().application_name("shop").revision(revision(None)).send();
    let empty = empty.await.expect_err("neither content nor SHA-256");
    assert!(empty.as_service_error().is_some_and(|e| e.is_invalid_revision_exception()), "{empty:?}");
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_group_may_name_only_the_load_balancer_that_is_there() {
    let local = Local::start().await;
    let call = |operation: &str, input: serde_json::Value| local.server.emulator.codedeploy(operation, &input);
    call("CreateApplication", json!({"applicationName": "shop", "computePlatform": "ECS"})).expect("created");
    let group = |name: &str, load_balancer_info: serde_json::Value| {
        json!({"applicationName": "shop", "deploymentGroupName": name,
               "serviceRoleArn": "arn:aws:iam::123456789012:role/cd",
               "ecsServices": [{"clusterName": "shop", "serviceName": "web"}],
               "loadBalancerInfo": load_balancer_info})
    };
    let production =
        codedeploy_local::elbv2::listener_arn("shop:web", codedeploy_local::elbv2::ListenerRole::Production);
    let named = json!({"targetGroupPairInfoList": [{"targetGroups": [{"name": "web-green"}, {"name": "web-blue"}],
        "prodTrafficRoute": {"listenerArns": [production]}}]});
    call("CreateDeploymentGroup", group("named", named)).expect("the hosted target groups, in any order");
    let got = call("GetDeploymentGroup", json!({"applicationName": "shop", "deploymentGroupName": "named"}));
    let info = &got.expect("found")["deploymentGroupInfo"]["loadBalancerInfo"]["targetGroupPairInfoList"][0];
    assert_eq!(info["testTrafficRoute"]["listenerArns"].as_array().map(Vec::len), Some(1), "filled in: {info}");

    let other = json!({"targetGroupPairInfoList": [{"targetGroups": [{"name": "web-blue"}, {"name": "web-red"}]}]});
    let refused = call("CreateDeploymentGroup", group("other", other)).expect_err("not hosted");
    assert_eq!(refused.code, "InvalidTargetGroupPairException");
    let classic = json!({"elbInfoList": [{"name": "classic"}]});
    let refused = call("CreateDeploymentGroup", group("classic", classic)).expect_err("not for ECS");
    assert_eq!(refused.code, "InvalidLoadBalancerInfoException");
    local.server.shutdown().await;
}
