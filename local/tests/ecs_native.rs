//! ECS deploying a service itself, as an AWS user's code drives it: the AWS SDK for Rust's ECS
//! client (awsJson1_1) creates a service behind a local load balancer whose target groups and
//! listener rules it finds with the ELBv2 client, updates it, and reads its service deployments
//! and revisions back.

mod common;

use std::collections::BTreeMap;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    AdvancedConfiguration, CanaryConfiguration, DeploymentConfiguration, DeploymentLifecycleHook,
    DeploymentLifecycleHookStage, DeploymentStrategy, LoadBalancer, ServiceDeploymentStatus,
};
use aws_smithy_types::Document;
use codedeploy_local::config::{LoadBalancerConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;

const ROLE: &str = "arn:aws:iam::123456789012:role/ecs-infrastructure";
const HOOK: &str = "arn:aws:lambda:us-east-1:123456789012:function:ecs-hook";

fn config() -> LocalConfig {
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    LocalConfig {
        task_definitions: BTreeMap::from([("web:1".to_owned(), web.clone()), ("web:2".to_owned(), web)]),
        ..LocalConfig::default()
    }
}

struct Local {
    server: Server,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
}

/// The ARNs a template would name: the two target groups and the two listener rules.
struct Arns {
    groups: Vec<String>,
    production_rule: String,
    test_rule: String,
}

impl Local {
    async fn start() -> Self {
        let server = Server::start(config(), TimeScale(600.0), 0, None).await.expect("the emulator starts");
        server.emulator.add_load_balancer("shop", &LoadBalancerConfig::default()).await.expect("the load balancer");
        let sdk = common::sdk_config(&server.endpoint()).await;
        Self { ecs: aws_sdk_ecs::Client::new(&sdk), elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk), server }
    }

    /// Finds the load balancer's target groups and rules through ELBv2.
    async fn arns(&self) -> Arns {
        let balancers = self.elb.describe_load_balancers().names("shop").send().await.expect("the load balancer");
        let balancer = balancers.load_balancers()[0].load_balancer_arn().expect("an ARN").to_owned();
        let groups = self.elb.describe_target_groups().load_balancer_arn(&balancer).send().await.expect("groups");
        let groups: Vec<String> =
            groups.target_groups().iter().map(|g| g.target_group_arn().expect("an ARN").to_owned()).collect();
        let listeners = self.elb.describe_listeners().load_balancer_arn(&balancer).send().await.expect("listeners");
        let mut rules = Vec::new();
        for listener in listeners.listeners() {
            let listed = self.elb.describe_rules().listener_arn(listener.listener_arn().expect("an ARN")).send();
            let listed = listed.await.expect("rules");
            let rule =
                listed.rules().iter().find(|r| r.is_default() == Some(false)).expect("a rule besides the default");
            rules.push(rule.rule_arn().expect("an ARN").to_owned());
        }
        let [production_rule, test_rule] = <[String; 2]>::try_from(rules).expect("production and test");
        Arns { groups, production_rule, test_rule }
    }
}

fn load_balancer(arns: &Arns) -> LoadBalancer {
    let advanced = AdvancedConfiguration::builder()
        .alternate_target_group_arn(&arns.groups[1])
        .production_listener_rule(&arns.production_rule)
        .test_listener_rule(&arns.test_rule)
        .role_arn(ROLE)
        .build();
    LoadBalancer::builder()
        .target_group_arn(&arns.groups[0])
        .container_name("web")
        .container_port(8080)
        .advanced_configuration(advanced)
        .build()
}

fn canary_with_hook(stage: DeploymentLifecycleHookStage) -> DeploymentConfiguration {
    let details =
        Document::Object(std::collections::HashMap::from([("plan".to_owned(), Document::String("smoke".to_owned()))]));
    let hook = DeploymentLifecycleHook::builder()
        .hook_target_arn(HOOK)
        .role_arn(ROLE)
        .lifecycle_stages(stage)
        .hook_details(details)
        .build();
    DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::Canary)
        .canary_configuration(
            CanaryConfiguration::builder().canary_percent(20.0).canary_bake_time_in_minutes(5).build(),
        )
        .lifecycle_hooks(hook)
        .build()
}

#[tokio::test]
async fn a_service_is_created_updated_and_described_through_the_sdk() {
    let local = Local::start().await;
    let arns = local.arns().await;
    let created = local
        .ecs
        .create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web:1")
        .desired_count(2)
        .load_balancers(load_balancer(&arns))
        .deployment_configuration(canary_with_hook(DeploymentLifecycleHookStage::PostTestTrafficShift))
        .send()
        .await
        .expect("CreateService");
    let service = created.service().expect("a service");
    assert_eq!(service.service_arn(), Some("arn:aws:ecs:us-east-1:123456789012:service/shop/web"));
    assert_eq!(service.desired_count(), 2);
    let configuration = service.deployment_configuration().expect("its configuration");
    assert_eq!(configuration.strategy(), Some(&DeploymentStrategy::Canary));
    assert_eq!(configuration.canary_configuration().and_then(|c| c.canary_percent()), Some(20.0));
    let hook = &configuration.lifecycle_hooks()[0];
    assert_eq!(hook.lifecycle_stages(), [DeploymentLifecycleHookStage::PostTestTrafficShift]);
    assert!(
        matches!(hook.hook_details(), Some(Document::Object(details)) if details["plan"] == Document::String("smoke".to_owned()))
    );
    let (production, _) = local.server.emulator.load_balancer_listeners("shop").await.expect("listeners");
    let answered = reqwest::get(format!("http://{production}/")).await.expect("the production listener answers");
    assert_eq!(answered.status(), 200);

    let first_revision = service.current_service_revisions()[0].arn().expect("a revision").to_owned();
    local
        .ecs
        .update_service()
        .cluster("shop")
        .service("web")
        .task_definition("web:2")
        .send()
        .await
        .expect("UpdateService");
    let listed = local.ecs.list_service_deployments().cluster("shop").service("web").send().await.expect("listed");
    let [update, creation] = listed.service_deployments() else { panic!("two deployments: {listed:?}") };
    assert_eq!(creation.status(), Some(&ServiceDeploymentStatus::Successful));
    let arn = update.service_deployment_arn().expect("an ARN");
    assert!(arn.starts_with("arn:aws:ecs:us-east-1:123456789012:service-deployment/shop/web/"), "{arn}");

    let described = local
        .ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .service_deployment_arns(format!("{arn}0"))
        .send()
        .await
        .expect("DescribeServiceDeployments");
    let deployment = &described.service_deployments()[0];
    assert_eq!(deployment.source_service_revisions()[0].arn(), Some(first_revision.as_str()));
    let target = deployment.target_service_revision().and_then(|t| t.arn()).expect("a target").to_owned();
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));

    let revisions = local
        .ecs
        .describe_service_revisions()
        .service_revision_arns(&first_revision)
        .service_revision_arns(&target)
        .send()
        .await
        .expect("DescribeServiceRevisions");
    let on: Vec<(&str, &str)> = revisions
        .service_revisions()
        .iter()
        .map(|revision| {
            let resolved = &revision.resolved_configuration().expect("resolved").load_balancers()[0];
            (resolved.target_group_arn().expect("a group"), resolved.production_listener_rule().expect("a rule"))
        })
        .collect();
    assert_eq!(
        on,
        [
            (arns.groups[0].as_str(), arns.production_rule.as_str()),
            (arns.groups[1].as_str(), arns.production_rule.as_str())
        ]
    );
    let advanced = revisions.service_revisions()[1].load_balancers()[0].advanced_configuration().expect("advanced");
    assert_eq!(advanced.test_listener_rule(), Some(arns.test_rule.as_str()));
    local.server.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_the_exceptions_ecs_answers_with() {
    let local = Local::start().await;
    let arns = local.arns().await;
    let bad_stage = DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::BlueGreen)
        .lifecycle_hooks(
            DeploymentLifecycleHook::builder()
                .hook_target_arn(HOOK)
                .role_arn(ROLE)
                .lifecycle_stages(DeploymentLifecycleHookStage::from("SCALE_UP"))
                .build(),
        )
        .build();
    let refused = local
        .ecs
        .create_service()
        .service_name("web")
        .task_definition("web:1")
        .load_balancers(load_balancer(&arns))
        .deployment_configuration(bad_stage)
        .send()
        .await
        .expect_err("SCALE_UP takes no hooks");
    assert_eq!(refused.code(), Some("InvalidParameterException"));
    assert!(refused.message().is_some_and(|m| m.contains("SCALE_UP")), "{refused:?}");

    let missing = local.ecs.update_service().service("nope").task_definition("web:2").send().await.expect_err("none");
    assert!(missing.as_service_error().is_some_and(|e| e.is_service_not_found_exception()), "{missing:?}");
    local.server.shutdown().await;
}

#[tokio::test]
async fn the_control_api_adds_load_balancers_and_serves_service_deployment_records() {
    let local = Local::start().await;
    let http = reqwest::Client::new();
    let added = http
        .post(format!("{}/_local/load-balancers/cart", local.server.endpoint()))
        .json(&serde_json::json!({"production_port": 0, "test_port": 0}))
        .send()
        .await
        .expect("the control API answers");
    assert_eq!(added.status(), 200);
    let added: serde_json::Value = added.json().await.expect("JSON");
    let rule = added["production"]["rule_arn"].as_str().expect("a rule ARN");
    assert!(rule.starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/cart/"), "{added}");
    let again = http
        .post(format!("{}/_local/load-balancers/cart", local.server.endpoint()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("the control API answers");
    assert_eq!(again.status(), 400, "it exists already");

    let arns = local.arns().await;
    local
        .ecs
        .create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web:1")
        .load_balancers(load_balancer(&arns))
        .deployment_configuration(DeploymentConfiguration::builder().strategy(DeploymentStrategy::BlueGreen).build())
        .send()
        .await
        .expect("CreateService");
    let updated = local.ecs.update_service().cluster("shop").service("web").task_definition("web:2").send().await;
    let arn = updated
        .expect("UpdateService")
        .service()
        .and_then(|s| s.current_service_deployment())
        .expect("a deployment")
        .to_owned();
    assert!(local.server.emulator.wait_until_service_deployment_ends(&arn, std::time::Duration::from_secs(30)).await);
    let id = arn.rsplit('/').next().expect("an id");
    let record: serde_json::Value = http
        .get(format!("{}/_local/service-deployments/{id}", local.server.endpoint()))
        .send()
        .await
        .expect("the control API answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(record["service_deployment"]["status"], "SUCCESSFUL", "{record}");
    let kinds: Vec<&str> =
        record["record"].as_array().expect("a record").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"status"));
    assert!(kinds.contains(&"weights") && kinds.contains(&"stage"), "{kinds:?}");
    let missing = http.get(format!("{}/_local/service-deployments/nope", local.server.endpoint())).send().await;
    assert_eq!(missing.expect("the control API answers").status(), 404);
    local.server.shutdown().await;
}
