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
    for hook in scenario.hooks() {
        let plan = plans_dir.join(format!("{hook}.json")).display().to_string();
        // One hook per package serves every release: the fleet's hooks find each deployment's
        // plan in Parameter Store, the others read their plan file.
        let plan = match scenario.plans_per_deployment() {
            true => ("GREENLIGHT_PLAN_PARAMETER", PLAN_PARAMETER),
            false => ("GREENLIGHT_PLAN_FILE", plan.as_str()),
        };
        // JSON logs, as Lambda's advanced logging writes them, so the drill can read the verdicts.
        let version = process(vec![bin(hook)], &[plan, ("AWS_LAMBDA_LOG_FORMAT", "JSON")]);
        functions.insert(
            hook_function(scenario.is_ecs_native(), hook),
            FunctionConfig {
                timeout_seconds: if scenario.is_ecs_native() { NATIVE_HOOK_TIMEOUT_SECONDS } else { 60 },
                memory_mb: 128,
                versions: BTreeMap::from([("$LATEST".to_owned(), version)]),
                aliases: BTreeMap::new(),
            },
        );
    }
    let checkout = |behaviour: &str| process(vec![bin("checkout-function")], &[("CHECKOUT_BEHAVIOUR", behaviour)]);
    // Version 4 is the healthy function behind a runtime proxy that turns every twentieth
    // answer into a function error: a release that fails 5 % of requests, which no single
    // invocation in a hook's smoke test is likely to see.
    let flaky = process(
        vec!["python3".into(), "-c".into(), FLAKY_FUNCTION.into(), bin("checkout-function"), FLAKY_EVERY.to_string()],
        &[("CHECKOUT_BEHAVIOUR", "healthy")],
    );
    functions.insert(
        FUNCTION.to_owned(),
        FunctionConfig {
            timeout_seconds: 10,
            memory_mb: 128,
            versions: BTreeMap::from([
                ("1".to_owned(), checkout("healthy")),
                ("2".to_owned(), checkout("healthy")),
                ("3".to_owned(), checkout("broken")),
                ("4".to_owned(), flaky),
            ]),
            aliases: BTreeMap::from([(
                "live".to_owned(),
                AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
            )]),
        },
    );
    // The fleet's payments function: two healthy versions.
    functions.insert(
        "payments".to_owned(),
        FunctionConfig {
            timeout_seconds: 10,
            memory_mb: 128,
            versions: BTreeMap::from([("1".to_owned(), checkout("healthy")), ("2".to_owned(), checkout("healthy"))]),
            aliases: BTreeMap::from([(
                "live".to_owned(),
                AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
            )]),
        },
    );
    let service = |shape: &str| {
        process(vec![bin("checkout-service"), "--port".into(), "{port}".into(), "--shape".into(), shape.into()], &[])
    };
    // checkout:3 behind the wrapper: answering 500 once the drill drops the failure flag, or
    // answering correctly but late.
    let wrapped = |delay_ms: u64| {
        process(
            vec![
                "python3".into(),
                "-c".into(),
                WRAPPED_GREEN.into(),
                "{port}".into(),
                bin("checkout-service"),
                green_failure_flag(plans_dir).display().to_string(),
                delay_ms.to_string(),
            ],
            &[],
        )
    };
    let task_definitions = BTreeMap::from([
        ("checkout:1".to_owned(), service("cents")),
        ("checkout:2".to_owned(), service("minor-units")),
        ("checkout:3".to_owned(), service("both")),
        // A release that breaks under production load after passing its tests.
        ("checkout:4".to_owned(), wrapped(0)),
        // A release that passes every test, and the alarm on errors, but answers slowly.
        ("checkout:5".to_owned(), wrapped(SLOW_GREEN_DELAY_MS)),
        // The fleet's cart service: version 2 adds a field, which its clients can ignore.
        ("cart:1".to_owned(), service("cents")),
        ("cart:2".to_owned(), service("both")),
    ]);
    let mut ecs_services = BTreeMap::new();
    for release in scenario.releases().iter().filter(|r| !r.lambda && !r.ecs_native) {
        ecs_services.insert(
            release.target.to_owned(),
            EcsServiceConfig {
                task_definition: release.versions.0.to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 2,
            },
        );
    }
    LocalConfig { functions, task_definitions, ecs_services }
}

/// How long checkout:5 holds each answer, in milliseconds: a few times blue's p99 on loopback,
/// and well inside the smoke test's latency limit.
pub(super) const SLOW_GREEN_DELAY_MS: u64 = 5;

/// One in how many invocations of Lambda version 4 fails.
pub(super) const FLAKY_EVERY: u32 = 20;

/// Where the drill drops the flag that makes checkout:4 answer 500.
pub(super) fn green_failure_flag(plans_dir: &Path) -> std::path::PathBuf {
    plans_dir.join("green-answers-5xx")
}

/// checkout:4 and checkout:5: runs `checkout-service --shape both` on a free port and forwards
/// GETs to it after a delay, answering 500 instead while the flag file exists. Arguments: port,
/// binary, flag file, delay in milliseconds.
const WRAPPED_GREEN: &str = r#"
import ctypes, http.server, os, signal, socket, subprocess, sys, time, urllib.error, urllib.request
port, binary, flag, delay = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]) / 1000
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
        time.sleep(delay)
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

/// Lambda version 4: runs the checkout function against a Runtime API of its own that relays to
/// the real one, except that every Nth response is sent as a function error. Arguments: the
/// function's binary, N.
const FLAKY_FUNCTION: &str = r#"
import ctypes, http.server, os, signal, subprocess, sys, threading, urllib.error, urllib.request
binary, every = sys.argv[1], int(sys.argv[2])
upstream = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
answered, lock = [0], threading.Lock()
ERROR = b'{"errorType": "checkout.PriceLookupTimeout", "errorMessage": "checkout: price lookup timed out"}'
class Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def relay(self, method):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        path = self.path
        if method == "POST" and path.endswith("/response"):
            with lock:
                answered[0] += 1
                fail = answered[0] % every == 0
            if fail:
                path, body = path[: -len("response")] + "error", ERROR
                headers = {"content-type": "application/json", "Lambda-Runtime-Function-Error-Type": "checkout.PriceLookupTimeout"}
        request = urllib.request.Request(upstream + path, data=body, method=method, headers=headers)
        try:
            reply = urllib.request.urlopen(request)
            status = reply.status
        except urllib.error.HTTPError as error:
            reply, status = error, error.code
        data = reply.read()
        self.send_response(status)
        for name, value in reply.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.relay("GET")
    def do_POST(self):
        self.relay("POST")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
threading.Thread(target=server.serve_forever, daemon=True).start()
def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
child = subprocess.Popen([binary], env=env, preexec_fn=die_with_parent)
signal.signal(signal.SIGTERM, lambda *args: (child.kill(), sys.exit(0)))
sys.exit(child.wait())
"#;

/// An alarm on the share of errors, in percent: `(namespace, errors metric, id and metric of the
/// total)` summed per 60-second period under `dimensions`, over 10 % for `periods` periods running.
fn share_alarm(metrics: (&str, &str, &str, &str), dimensions: &Value, label: &str, periods: u32) -> Value {
    let (namespace, errors, total_id, total) = metrics;
    let metric = |id: &str, name: &str| {
        json!({"Id": id, "ReturnData": false, "MetricStat": {"Period": 60, "Stat": "Sum",
        "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions}}})
    };
    json!({"AlarmName": ALARM, "Metrics": [metric("errors", errors), metric(total_id, total),
            {"Id": "share", "Expression": format!("100 * errors / {total_id}"), "Label": label, "ReturnData": true}],
        "EvaluationPeriods": periods, "Threshold": 10.0, "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching"})
}

/// Defines the group's alarm in CloudWatch, on the metrics the new version produces: for ECS,
/// green's share of 5xx answers (metric math on `AWS/ApplicationELB`) above 10% in a minute; for
/// Lambda, any error of the new version behind the alias (`AWS/Lambda`, by ExecutedVersion), or,
/// where the new version fails now and then, its error share above 10% two minutes running: an
/// absolute alarm that a 5 % regression stays under (with one failure in twenty, two periods in
/// a row cannot both hold a failure in fewer than ten answers), which the comparison with the
/// old version catches.
/// The alarm goes off because of the data, as it would in AWS.
pub(super) fn define_alarm(emulator: &Emulator, scenario: ScenarioName, release: &Release) -> Result<(), String> {
    let (_, new) = release.versions;
    let lambda_dimensions = json!([{"Name": "FunctionName", "Value": FUNCTION},
        {"Name": "Resource", "Value": format!("{FUNCTION}:live")}, {"Name": "ExecutedVersion", "Value": new}]);
    let alarm = if scenario == ScenarioName::LambdaErrorRegression {
        let errors = ("AWS/Lambda", "Errors", "calls", "Invocations");
        share_alarm(errors, &lambda_dimensions, "new version's error %", 2)
    } else if release.lambda {
        json!({"AlarmName": ALARM, "Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": lambda_dimensions,
            "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"})
    } else {
        let dimensions = json!([
            {"Name": "TargetGroup", "Value": crate::elbv2::target_group(ECS_SERVICE, TaskSetLabel::Green).dimension},
            {"Name": "LoadBalancer", "Value": crate::elbv2::load_balancer(ECS_SERVICE).dimension}]);
        let errors = ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "requests", "RequestCount");
        share_alarm(errors, &dimensions, "green 5xx %", 1)
    };
    let input = alarm.as_object().cloned().unwrap_or_default();
    crate::cloudwatch::alarms::put_metric_alarm(emulator, &input)
        .map(|_| ())
        .map_err(|e| format!("PutMetricAlarm: {e}"))
}

/// The Lambda hooks and the events they serve.
pub(super) const LAMBDA_HOOKS: [(&str, &str); 2] =
    [("pre-traffic", "BeforeAllowTraffic"), ("post-traffic", "AfterAllowTraffic")];

/// The hook function of package `hook`: `CodeDeployHook_<hook>`, the prefix CodeDeploy's managed
/// policy allows it to invoke, or for ECS-native deployments `greenlight-<hook>`.
pub(super) fn hook_function(ecs_native: bool, hook: &str) -> String {
    match ecs_native {
        true => format!("greenlight-{hook}"),
        false => format!("CodeDeployHook_{hook}"),
    }
}

/// The ECS-native hooks' function timeout: short, so that after-allow-traffic's bake of twelve
/// measurements a second apart outlasts an invocation and goes on across several, as a
/// half-hour bake does across fifteen-minute invocations in AWS. Function timeouts are real
/// time, not scaled.
pub(super) const NATIVE_HOOK_TIMEOUT_SECONDS: u64 = 5;

/// The hooks of an ECS-native service and the lifecycle stage each is configured at, its own.
pub(super) const NATIVE_HOOKS: [(&str, &str); 3] = [
    ("after-allow-test-traffic", "POST_TEST_TRAFFIC_SHIFT"),
    ("before-allow-traffic", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
    ("after-allow-traffic", "POST_PRODUCTION_TRAFFIC_SHIFT"),
];

/// The ECS hooks and the events they serve.
pub(super) const ECS_HOOKS: [(&str, &str); 5] = [
    ("before-install", "BeforeInstall"),
    ("after-install", "AfterInstall"),
    ("after-allow-test-traffic", "AfterAllowTestTraffic"),
    ("before-allow-traffic", "BeforeAllowTraffic"),
    ("after-allow-traffic", "AfterAllowTraffic"),
];

/// Copies the drill's plans, with the listener URLs filled in, where the hooks will read them:
/// `plans/`, or for ECS-native scenarios `ecs-native/`, whose plans use the URLs the hooks
/// discover.
pub(super) fn write_plans(
    setup: &DrillSetup,
    scenario: ScenarioName,
    plans_dir: &Path,
    listeners: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> Result<(), String> {
    let source = setup.drill_dir.join(if scenario.is_ecs_native() { "ecs-native" } else { "plans" });
    let (production, test) =
        listeners.map_or((String::new(), String::new()), |(p, t)| (format!("http://{p}"), format!("http://{t}")));
    for hook in scenario.hooks() {
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

/// The fleet's hooks find each plan in Parameter Store by the deployment's names and their own.
pub(super) const PLAN_PARAMETER: &str = "/greenlight/plans/{application}/{deployment_group}/{hook}";

/// Puts each fleet release's plans in the local Parameter Store, as each service's own stack
/// would: `fleet/<ecs|lambda>/<hook>.json` of the drill's directory, one plan per hook that serves
/// every service of its platform, since the variables fill in what differs.
pub(super) fn put_plans(setup: &DrillSetup, emulator: &Emulator, releases: &[Release]) -> Result<(), String> {
    for release in releases {
        let platform = if release.lambda { "lambda" } else { "ecs" };
        for (hook, _) in release.hooks() {
            let from = setup.drill_dir.join("fleet").join(platform).join(format!("{hook}.json"));
            let plan = std::fs::read_to_string(&from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
            let name = PLAN_PARAMETER
                .replace("{application}", release.application)
                .replace("{deployment_group}", release.group)
                .replace("{hook}", hook);
            emulator
                .ssm()
                .put(&name, &plan, crate::ssm::store::ParameterType::String)
                .map_err(|e| format!("PutParameter {name}: {e}"))?;
        }
    }
    Ok(())
}

/// Creates the release's application, group and deployment through the CodeDeploy API.
pub(super) fn create_deployment(
    emulator: &Emulator,
    scenario: ScenarioName,
    release: &Release,
) -> Result<String, String> {
    let call =
        |operation: &str, input: Value| emulator.codedeploy(operation, &input).map_err(|e| format!("{operation}: {e}"));
    let (old, new) = release.versions;
    let role = "arn:aws:iam::123456789012:role/CodeDeployServiceRole";
    let hooks: Vec<Value> =
        release.hooks().iter().map(|(hook, event)| json!({*event: hook_function(false, hook)})).collect();
    let (application, group_name) = (release.application, release.group);
    let mut group = json!({"applicationName": application, "deploymentGroupName": group_name, "serviceRoleArn": role,
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]}});
    // The fleet's groups have no alarm: their hooks' checks are what is rehearsed.
    if !scenario.plans_per_deployment() {
        group["alarmConfiguration"] = json!({"enabled": true, "alarms": [{"name": ALARM}]});
    }
    let (platform, appspec) = if release.lambda {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{release.service: {"Type": "AWS::Lambda::Function", "Properties": {
                "Name": release.target, "Alias": "live", "CurrentVersion": old, "TargetVersion": new}}}],
            "Hooks": hooks,
        });
        ("Lambda", appspec)
    } else {
        let appspec = json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": new, "LoadBalancerInfo": {"ContainerName": release.service, "ContainerPort": 8080}}}}],
            "Hooks": hooks,
        });
        let (cluster, service) = release.target.split_once(':').unwrap_or(("drill", release.target));
        group["ecsServices"] = json!([{"clusterName": cluster, "serviceName": service}]);
        ("ECS", appspec)
    };
    call("CreateApplication", json!({"applicationName": application, "computePlatform": platform}))?;
    call("CreateDeploymentGroup", group)?;
    let created = call(
        "CreateDeployment",
        json!({"applicationName": application, "deploymentGroupName": group_name, "deploymentConfigName": release.config_name,
               "description": scenario.title(),
               "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}}}),
    )?;
    created["deploymentId"].as_str().map(str::to_owned).ok_or_else(|| "CreateDeployment returned no id".to_owned())
}
