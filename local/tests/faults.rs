//! The faults of the control API (`POST /_local/faults`), each set over HTTP and seen on the wire
//! as a client would see it, and the calls the emulator lists (`GET /_local/calls`).

mod common;

use common::fake_function;

use std::collections::BTreeMap;
use std::time::Duration;

use codedeploy_local::config::{AliasConfig, EcsServiceConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;
use serde_json::{Value, json};

/// `echo` (versions 1 and 2, alias `live` on 1), a hook that answers but never reports, and an
/// ECS service of two tasks that are Python's HTTP server.
fn config() -> LocalConfig {
    let function = |versions: &[&str]| FunctionConfig {
        timeout_seconds: 5,
        memory_mb: 128,
        versions: versions.iter().map(|v| ((*v).to_owned(), fake_function("echo"))).collect(),
        aliases: BTreeMap::new(),
    };
    let mut echo = function(&["1", "2"]);
    echo.aliases.insert(
        "live".to_owned(),
        AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
    );
    let web = ProcessConfig {
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"].map(str::to_owned).to_vec(),
        environment: BTreeMap::new(),
    };
    LocalConfig {
        functions: BTreeMap::from([("echo".to_owned(), echo), ("silent-hook".to_owned(), function(&["$LATEST"]))]),
        task_definitions: BTreeMap::from([("web:1".to_owned(), web.clone()), ("web:2".to_owned(), web)]),
        ecs_services: BTreeMap::from([(
            "shop:web".to_owned(),
            EcsServiceConfig {
                task_definition: "web:1".to_owned(),
                production_port: 0,
                test_port: 0,
                desired_count: 2,
            },
        )]),
    }
}

struct Local {
    server: Server,
    http: reqwest::Client,
}

impl Local {
    async fn start() -> Self {
        let server = Server::start(config(), TimeScale(60.0), 0, None).await.expect("the emulator starts");
        Self { server, http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.endpoint())
    }

    async fn set_faults(&self, faults: Value) -> reqwest::Response {
        self.http.post(self.url("/_local/faults")).json(&faults).send().await.expect("POST /_local/faults")
    }

    fn codedeploy(&self, operation: &str, input: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/"))
            .header("x-amz-target", format!("CodeDeploy_20141006.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(input.to_string())
    }

    fn invoke(&self, function: &str) -> reqwest::RequestBuilder {
        self.invoke_qualified(function, "")
    }

    /// `query` is the URL's query string, empty or `?Qualifier=...`.
    fn invoke_qualified(&self, function: &str, query: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(&format!("/2015-03-31/functions/{function}/invocations{query}"))).body("{}")
    }

    async fn calls(&self) -> Value {
        self.http.get(self.url("/_local/calls")).send().await.expect("GET /_local/calls").json().await.expect("JSON")
    }
}

/// Status, `X-Amzn-Errortype` and body of a response.
async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let kind = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, kind, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_operations_answer_access_denied_in_each_protocol() {
    let local = Local::start().await;
    let faults = local.set_faults(json!({"denied": ["ListDeploymentTargets", "Invoke"]})).await;
    assert_eq!(faults.status().as_u16(), 204);

    let listed = local.codedeploy("ListDeploymentTargets", &json!({"deploymentId": "d-AAAAAAAAA"})).send().await;
    let (status, kind, body) = answer(listed.expect("ListDeploymentTargets")).await;
    assert_eq!(
        (status, kind.as_str(), &body["__type"]),
        (400, "AccessDeniedException", &json!("AccessDeniedException"))
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("not authorized to perform: codedeploy:ListDeploymentTargets"), "{message}");

    let (status, kind, body) = answer(local.invoke("echo").send().await.expect("Invoke")).await;
    assert_eq!((status, kind.as_str()), (403, "AccessDeniedException"));
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("not authorized to perform: lambda:InvokeFunction"), "{message}");

    // Only the named operations are denied.
    let other = local.codedeploy("GetDeployment", &json!({"deploymentId": "d-AAAAAAAAA"})).send().await;
    assert_eq!(answer(other.expect("GetDeployment")).await.1, "DeploymentDoesNotExistException");

    let calls = local.calls().await;
    assert_eq!(
        calls.as_array().map(|calls| calls.iter().map(|c| c["operation"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("ListDeploymentTargets"), json!("Invoke"), json!("GetDeployment")]),
        "{calls}"
    );
    assert_eq!(calls[0]["resource"], "d-AAAAAAAAA");
    assert_eq!(calls[1]["resource"], "echo");
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_operation_is_never_answered_and_the_others_are() {
    let local = Local::start().await;
    assert_eq!(local.set_faults(json!({"hanging": ["GetDeploymentTarget", "Invoke"]})).await.status().as_u16(), 204);
    let input = json!({"deploymentId": "d-AAAAAAAAA", "targetId": "x"});
    let hung = local.codedeploy("GetDeploymentTarget", &input).timeout(Duration::from_secs(1)).send().await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "GetDeploymentTarget answered");
    let hung = local.invoke("echo").timeout(Duration::from_secs(1)).send().await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "Invoke answered");
    let listed = local.codedeploy("ListDeploymentTargets", &json!({"deploymentId": "d-AAAAAAAAA"})).send().await;
    assert_eq!(answer(listed.expect("ListDeploymentTargets")).await.1, "DeploymentDoesNotExistException");
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_that_name_nothing_served_are_refused() {
    let local = Local::start().await;
    let refused = local.set_faults(json!({"denied": ["ListDeployments"]})).await;
    assert_eq!(refused.status().as_u16(), 400);
    let why = refused.text().await.unwrap_or_default();
    assert!(why.contains("\"ListDeployments\" is not an operation served here"), "{why}");
    let refused = local.set_faults(json!({"green_start": {"running_at_install": -1, "started_per_read": 1}})).await;
    assert_eq!(refused.status().as_u16(), 400);
    assert!(local.set_faults(json!({"deny": ["Invoke"]})).await.status().is_client_error(), "unknown fields");
    // A refused document leaves the faults as they were.
    let invoked = local.invoke_qualified("echo", "?Qualifier=1").send().await.expect("Invoke");
    assert_eq!(answer(invoked).await.0, 200);
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claimed_executed_version_replaces_the_header_and_an_empty_one_drops_it() {
    let local = Local::start().await;
    local.set_faults(json!({"executed_versions": {"echo": "7"}})).await;
    let invoked = local.invoke_qualified("echo", "?Qualifier=2").send().await.expect("Invoke");
    assert_eq!(invoked.headers().get("x-amz-executed-version").map(|v| v.to_str().ok()), Some(Some("7")));
    local.set_faults(json!({"executed_versions": {"echo": ""}})).await;
    let invoked = local.invoke_qualified("echo", "?Qualifier=2").send().await.expect("Invoke");
    assert_eq!(invoked.status().as_u16(), 200);
    assert!(invoked.headers().get("x-amz-executed-version").is_none(), "{:?}", invoked.headers());
    let calls = local.calls().await;
    assert_eq!((&calls[0]["resource"], &calls[0]["qualifier"]), (&json!("echo"), &json!("2")), "{calls}");
    local.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_green_task_set_starts_tasks_as_it_is_read() {
    let local = Local::start().await;
    local.set_faults(json!({"green_start": {"running_at_install": 0, "started_per_read": 1}})).await;
    let id = common::ecs_deployment(&local.server.emulator);
    let in_after_install = async {
        loop {
            let event = local.server.emulator.state().deployments[&id].events[2].clone();
            if event.name == "AfterInstall" && event.status == codedeploy_local::emulator::EventStatus::InProgress {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), in_after_install).await.expect("AfterInstall starts");

    let mut running = Vec::new();
    for _ in 0..4 {
        let input = json!({"deploymentId": id, "targetId": "shop:web"});
        let response = local.codedeploy("GetDeploymentTarget", &input).send().await.expect("GetDeploymentTarget");
        let (_, _, body) = answer(response).await;
        let green = &body["deploymentTarget"]["ecsTarget"]["taskSetsInfo"][1];
        assert_eq!(green["taskSetLabel"], "Green", "{body}");
        running.push((green["runningCount"].clone(), green["pendingCount"].clone()));
    }
    assert_eq!(running, [(json!(0), json!(2)), (json!(1), json!(1)), (json!(2), json!(0)), (json!(2), json!(0))]);
    local.server.shutdown().await;
}
