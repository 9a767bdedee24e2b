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
    // checkout:4 is checkout:3 behind a wrapper that answers 500 once the drill drops the
    // failure flag: a release that breaks under production load after passing its tests.
    let failing = process(
        vec![
            "python3".into(),
            "-c".into(),
            FAILING_GREEN.into(),
            "{port}".into(),
            bin("checkout-service"),
            green_failure_flag(plans_dir).display().to_string(),
        ],
        &[],
    );
    let task_definitions = BTreeMap::from([
        ("checkout:1".to_owned(), service("cents")),
        ("checkout:2".to_owned(), service("minor-units")),
        ("checkout:3".to_owned(), service("both")),
        ("checkout:4".to_owned(), failing),
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

/// Where the drill drops the flag that makes checkout:4 answer 500.
pub(super) fn green_failure_flag(plans_dir: &Path) -> std::path::PathBuf {
    plans_dir.join("green-answers-5xx")
}

/// checkout:4: runs `checkout-service --shape both` on a free port and forwards GETs to it,
/// answering 500 instead while the flag file exists. Arguments: port, binary, flag file.
const FAILING_GREEN: &str = r#"
import ctypes, http.server, os, signal, socket, subprocess, sys, time, urllib.error, urllib.request
port, binary, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); inner = probe.getsockname()[1]; probe.close()
def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
child = subprocess.Popen([binary, "--port", str(inner), "--shape", "both"], preexec_fn=die_with_parent)
for _ in range(400):
    try:
        socket.create_connection(("127.0.0.1", inner), 0.1).close()
        break
    except OSError:
        time.sleep(0.025)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if os.path.exists(flag):
            status, body, headers = 500, b'{"message": "internal error"}', {"content-type": "application/json"}
        else:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{inner}{self.path}", timeout=5) as reply:
                    status, body, headers = reply.status, reply.read(), reply.headers
            except urllib.error.HTTPError as error:
                status, body, headers = error.code, error.read(), error.headers
        self.send_response(status)
        for name in ("content-type", "x-checkout-shape"):
            if headers.get(name):
                self.send_header(name, headers.get(name))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
try:
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
finally:
    child.kill()
"#;

/// Defines the group's alarm in CloudWatch, on the metrics the new version produces: for ECS,
/// green's share of 5xx answers (metric math on `AWS/ApplicationELB`) above 10% in a minute; for
/// Lambda, any error of the new version behind the alias (`AWS/Lambda`, by ExecutedVersion).
/// The alarm goes off because of the data, as it would in AWS.
pub(super) fn define_alarm(emulator: &Emulator, scenario: ScenarioName) -> Result<(), String> {
    let (_, new) = scenario.versions();
    let alarm = if scenario.is_lambda() {
        json!({"AlarmName": ALARM, "Namespace": "AWS/Lambda", "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}, {"Name": "Resource", "Value": format!("{FUNCTION}:live")},
                           {"Name": "ExecutedVersion", "Value": new}],
            "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"})
    } else {
        let dimensions = json!([
            {"Name": "TargetGroup", "Value": crate::elbv2::target_group(ECS_SERVICE, TaskSetLabel::Green).dimension},
            {"Name": "LoadBalancer", "Value": crate::elbv2::load_balancer(ECS_SERVICE).dimension}]);
        let metric = |id: &str, name: &str| {
            json!({"Id": id, "ReturnData": false, "MetricStat": {"Period": 60, "Stat": "Sum",
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dimensions}}})
        };
        json!({"AlarmName": ALARM, "Metrics": [metric("errors", "HTTPCode_Target_5XX_Count"), metric("requests", "RequestCount"),
                {"Id": "share", "Expression": "100 * errors / requests", "Label": "green 5xx %", "ReturnData": true}],
            "EvaluationPeriods": 1, "Threshold": 10.0, "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching"})
    };
    let input = alarm.as_object().cloned().unwrap_or_default();
    crate::cloudwatch::alarms::put_metric_alarm(emulator, &input)
        .map(|_| ())
        .map_err(|e| format!("PutMetricAlarm: {e}"))
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
