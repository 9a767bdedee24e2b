//! The local AWS a scenario runs in: its functions and services, the plans with the listeners
//! filled in, and the deployment created through the CodeDeploy API.

use super::*;

/// The functions, task definitions and services a scenario needs.
pub(super) fn local_config(setup: &DrillSetup, scenario: ScenarioName, plans_dir: &Path) -> LocalConfig {
    let bin = |name: &str| setup.bin_dir.join(name).display().to_string();
    let process = |command: Vec<String>, env: &[(&str, &str)]| ProcessConfig {
        command,
        environment: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    let mut functions = BTreeMap::new();
    for (hook, _) in scenario.hooks() {
        let plan = plans_dir.join(format!("{hook}.json")).display().to_string();
        let version = process(vec![bin(hook)], &[("GREENLIGHT_PLAN_FILE", &plan)]);
        functions.insert(
            format!("CodeDeployHook_{hook}"),
            FunctionConfig {
                timeout_seconds: 60,
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), version)]),
                aliases: BTreeMap::new(),
            },
        );
    }
    let checkout = |behaviour: &str| process(vec![bin("checkout-function")], &[("CHECKOUT_BEHAVIOUR", behaviour)]);
    functions.insert(
        FUNCTION.to_owned(),
        FunctionConfig {
            timeout_seconds: 10,
            memory_mb: 128,
            versions: BTreeMap::from([
                ("1".to_owned(), checkout("healthy")),
                ("2".to_owned(), checkout("healthy")),
                ("3".to_owned(), checkout("broken")),
            ]),
            aliases: BTreeMap::from([(
                "live".to_owned(),
                AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
            )]),
        },
    );
    let service = |shape: &str| {
        process(vec![bin("checkout-service"), "--port".into(), "{port}".into(), "--shape".into(), shape.into()], &[])
    };
    let task_definitions = BTreeMap::from([
        ("checkout:1".to_owned(), service("cents")),
        ("checkout:2".to_owned(), service("minor-units")),
        ("checkout:3".to_owned(), service("both")),
    ]);
    let mut ecs_services = BTreeMap::new();
    if !scenario.is_lambda() {
        ecs_services.insert(
            ECS_SERVICE.to_owned(),
            EcsServiceConfig {
                task_definition: "checkout:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 2,
            },
        );
    }
    LocalConfig { functions, task_definitions, ecs_services }
}

/// The Lambda hooks and the events they serve.
pub(super) const LAMBDA_HOOKS: [(&str, &str); 2] =
    [("pre-traffic", "BeforeAllowTraffic"), ("post-traffic", "AfterAllowTraffic")];

/// The ECS hooks and the events they serve.
pub(super) const ECS_HOOKS: [(&str, &str); 5] = [
    ("before-install", "BeforeInstall"),
    ("after-install", "AfterInstall"),
    ("after-allow-test-traffic", "AfterAllowTestTraffic"),
    ("before-allow-traffic", "BeforeAllowTraffic"),
    ("after-allow-traffic", "AfterAllowTraffic"),
];

/// Copies the drill's plans, with the listener URLs filled in, where the hooks will read them.
pub(super) fn write_plans(
    setup: &DrillSetup,
    scenario: ScenarioName,
    plans_dir: &Path,
    listeners: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> Result<(), String> {
    let source = setup.drill_dir.join("plans");
    let (production, test) =
        listeners.map_or((String::new(), String::new()), |(p, t)| (format!("http://{p}"), format!("http://{t}")));
    for (hook, _) in scenario.hooks() {
        let from = source.join(format!("{hook}.json"));
        let text = std::fs::read_to_string(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let text = text.replace("${PRODUCTION_URL}", &production).replace("${TEST_URL}", &test);
        std::fs::write(plans_dir.join(format!("{hook}.json")), text)
            .map_err(|e| format!("cannot write a plan: {e}"))?;
    }
    let schemas = setup.drill_dir.join("schemas");
    let entries = std::fs::read_dir(&schemas).map_err(|e| format!("cannot read {}: {e}", schemas.display()))?;
    for entry in entries.flatten() {
        std::fs::copy(entry.path(), plans_dir.join("schemas").join(entry.file_name()))
            .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
    }
    Ok(())
}

/// Creates the application, the group and the deployment through the CodeDeploy API.
pub(super) fn create_deployment(emulator: &Emulator, scenario: ScenarioName) -> Result<String, String> {
    let call =
        |operation: &str, input: Value| emulator.codedeploy(operation, &input).map_err(|e| format!("{operation}: {e}"));
    let (old, new) = scenario.versions();
    let role = "arn:aws:iam::123456789012:role/CodeDeployServiceRole";
    let hooks: Vec<Value> =
        scenario.hooks().iter().map(|(hook, event)| json!({*event: format!("CodeDeployHook_{hook}")})).collect();
    let (platform, appspec, group) = if scenario.is_lambda() {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{"checkout": {"Type": "AWS::Lambda::Function", "Properties": {
                "Name": FUNCTION, "Alias": "live", "CurrentVersion": old, "TargetVersion": new}}}],
            "Hooks": hooks,
        });
        let group = json!({"applicationName": "drill", "deploymentGroupName": "checkout", "serviceRoleArn": role,
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]},
            "alarmConfiguration": {"enabled": true, "alarms": [{"name": ALARM}]}});
        ("Lambda", appspec, group)
    } else {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": new, "LoadBalancerInfo": {"ContainerName": "checkout", "ContainerPort": 8080}}}}],
            "Hooks": hooks,
        });
        let (cluster, service) = ECS_SERVICE.split_once(':').unwrap_or(("drill", "checkout"));
        let group = json!({"applicationName": "drill", "deploymentGroupName": "checkout", "serviceRoleArn": role,
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "ecsServices": [{"clusterName": cluster, "serviceName": service}],
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]},
            "alarmConfiguration": {"enabled": true, "alarms": [{"name": ALARM}]}});
        ("ECS", appspec, group)
    };
    call("CreateApplication", json!({"applicationName": "drill", "computePlatform": platform}))?;
    call("CreateDeploymentGroup", group)?;
    let created = call(
        "CreateDeployment",
        json!({"applicationName": "drill", "deploymentGroupName": "checkout", "deploymentConfigName": scenario.config_name(),
               "description": scenario.title(),
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    )?;
    created["deploymentId"].as_str().map(str::to_owned).ok_or_else(|| "CreateDeployment returned no id".to_owned())
}
