//! The local loop most Rust Lambda developers use: the real `cargo lambda watch` (pinned in
//! `.venv`) serving every hook binary of the workspace, `cargo lambda invoke <hook> --data-file
//! events/<hook>.json`, and `codedeploy-local serve` (the binary) holding the deployments those
//! sample events name. cargo-lambda sends `Lambda-Runtime-Deadline-Ms: 600000`, a budget rather
//! than an epoch instant; every hook must still judge and report exactly once, in time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use greenlight::Hook;
use greenlight_tests::python::venv_bin;
use greenlight_tests::{event_file, workspace_root};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A cold build of the hooks' dependencies takes minutes on a small CI machine.
const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Starting serve or watch, and a deployment reaching the next hook event.
const START_LIMIT: Duration = Duration::from_secs(60);
/// One invocation: cargo checks the binary is fresh, starts it, and the hook judges and reports.
const INVOKE_LIMIT: Duration = Duration::from_secs(120);

/// The deployment of the Failed case, with an event written here rather than taken from events/.
const FAILING_DEPLOYMENT: &str = "d-FAILED001";
const FAILING_EXECUTION: &str = "local-loop-failing-before-install";

/// A process started in its own process group, which is killed whole when this is dropped, so
/// that cargo, the hook processes and the task processes they started go too, even when the test
/// fails half-way.
struct ProcessGroup {
    name: &'static str,
    child: Child,
}

impl ProcessGroup {
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        command.process_group(0).kill_on_drop(true);
        let child = command.spawn().unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self { name, child }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else { return };
        // SIGINT first: codedeploy-local stops the processes it hosts on it; then nothing survives.
        for signal in ["-INT", "-KILL"] {
            let _ = std::process::Command::new("kill").args([signal, "--", &format!("-{pid}")]).status();
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("stopped {} (process group {pid})", self.name);
    }
}

/// A health endpoint the plan checks; `healthy` decides between 200 and 503.
struct Target {
    url: String,
    healthy: Arc<AtomicBool>,
}

impl Target {
    async fn start() -> Self {
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let healthy = flag.load(Ordering::SeqCst);
                async move { if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE } }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the target");
        let url = format!("http://{}", listener.local_addr().expect("target address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, healthy }
    }
}

/// codedeploy-local's CodeDeploy and control APIs.
struct Local {
    endpoint: String,
    http: reqwest::Client,
    /// Kept open: serve writes to stdout after its banner, and a closed pipe would end it.
    _stdout: BufReader<ChildStdout>,
}

impl Local {
    async fn codedeploy(&self, operation: &str, input: Value) -> Value {
        let response = self
            .http
            .post(&self.endpoint)
            .header("x-amz-target", format!("CodeDeploy_20141006.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(input.to_string())
            .send()
            .await
            .unwrap_or_else(|err| panic!("{operation}: {err}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_else(|err| panic!("{operation}: {err}"));
        assert!(status.is_success(), "{operation}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{operation} answered {text:?}: {err}"))
    }

    async fn create_deployment_with_ids(&self, body: Value) {
        let response = self
            .http
            .post(format!("{}/_local/deployments", self.endpoint))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /_local/deployments");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST /_local/deployments: {status} {text}");
    }

    async fn deployment(&self, id: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/_local/deployments/{id}", self.endpoint))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET /_local/deployments/{id}: {err}"));
        let text = response.text().await.unwrap_or_else(|err| panic!("deployment {id}: {err}"));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("deployment {id} answered {text:?}: {err}"))
    }

    /// Waits until `id`'s `event` is in progress, as the hook's discovery must find it.
    async fn wait_for_event(&self, id: &str, event: &str) {
        let until = Instant::now() + START_LIMIT;
        loop {
            let deployment = self.deployment(id).await;
            let status = deployment["events"]
                .as_array()
                .and_then(|events| events.iter().find(|e| e["name"] == event))
                .map(|e| e["status"].clone());
            if status == Some(json!("InProgress")) {
                return;
            }
            assert!(Instant::now() < until, "{id} never reached {event}: {deployment:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_until_complete(&self, id: &str) -> Value {
        let until = Instant::now() + START_LIMIT;
        loop {
            let deployment = self.deployment(id).await;
            if matches!(deployment["status"].as_str(), Some("Succeeded" | "Failed" | "Stopped")) {
                return deployment;
            }
            assert!(Instant::now() < until, "{id} did not complete: {deployment:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The reports codedeploy-local received for one execution, accepted or not.
    async fn reports(&self, deployment_id: &str, execution_id: &str) -> Vec<Value> {
        let deployment = self.deployment(deployment_id).await;
        let record = deployment["record"].as_array().cloned().unwrap_or_default();
        record.into_iter().filter(|e| e["kind"] == "report" && e["execution_id"] == execution_id).collect()
    }
}

/// Runs `command` with the environment of a developer's shell rather than the one `cargo test`
/// gives this test: build scripts watch some of those variables (ring reruns when
/// `CARGO_MANIFEST_DIR` changes), so builds from here and from a shell would keep invalidating
/// each other's artifacts.
fn as_from_a_shell(command: &mut Command) -> &mut Command {
    let set_by_cargo_test = |key: &str| {
        key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
    };
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_test) {
            command.env_remove(key);
        }
    }
    command
}

/// The binaries the loop runs, built as `cargo lambda watch` builds them: `cargo run --bin <hook>`
/// in the workspace root resolves features across every member, so `--bin` without `-p` here
/// leaves watch nothing to compile. Returns the directory they are in and how long it took.
async fn build_the_loop() -> (PathBuf, Duration) {
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    as_from_a_shell(&mut command).current_dir(workspace_root()).args(["build", "--quiet"]);
    for bin in Hook::ALL.iter().map(|h| h.name).chain(["codedeploy-local", "checkout-service", "checkout-function"]) {
        command.args(["--bin", bin]);
    }
    let status = tokio::time::timeout(BUILD_LIMIT, command.kill_on_drop(true).status())
        .await
        .expect("the build did not finish in time")
        .expect("run cargo build");
    assert!(status.success(), "building the loop's binaries failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    (target.join("debug"), started.elapsed())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

async fn serve(bin: &Path, dir: &Path) -> (ProcessGroup, Local) {
    let bin_arg = |name: &str| bin.join(name).display().to_string();
    let service = |shape: &str| json!({"command": [bin_arg("checkout-service"), "--port", "{port}", "--shape", shape]});
    let function = json!({"command": [bin_arg("checkout-function")], "environment": {"CHECKOUT_BEHAVIOUR": "healthy"}});
    let config = json!({
        "functions": {"checkout": {"versions": {"1": function, "2": function}, "aliases": {"live": {"version": "1"}}}},
        "task_definitions": {"checkout:1": service("cents"), "checkout:2": service("both")},
        "ecs_services": {"prod:checkout": {"task_definition": "checkout:1"}},
    });
    let config_file = dir.join("local.json");
    std::fs::write(&config_file, config.to_string()).expect("write the serve config");
    let mut command = Command::new(bin.join("codedeploy-local"));
    command
        .args(["serve", "--port", "0", "--config"])
        .arg(&config_file)
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut group = ProcessGroup::spawn("codedeploy-local serve", &mut command);
    let mut stdout = BufReader::new(group.child.stdout.take().expect("serve's stdout"));
    let mut banner = String::new();
    tokio::time::timeout(START_LIMIT, stdout.read_line(&mut banner))
        .await
        .expect("codedeploy-local printed no banner in time")
        .expect("read the banner");
    let endpoint = banner.split_whitespace().last().unwrap_or_default().to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "banner: {banner}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    (group, Local { endpoint, http, _stdout: stdout })
}

/// One of `examples/local-loop/{ecs,lambda}/`, as `scripts/local-loop.sh` posts them.
fn loop_file(platform: &str, name: &str) -> Value {
    let path = workspace_root().join("examples/local-loop").join(platform).join(name);
    let text = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The application, group and deployment of one platform, with the sample events' ids, so that
/// `events/<hook>.json` belongs to it. Returns the deployment id.
async fn hold_sample_deployment(local: &Local, platform: &str) -> String {
    local.codedeploy("CreateApplication", loop_file(platform, "application.json")).await;
    local.codedeploy("CreateDeploymentGroup", loop_file(platform, "group.json")).await;
    let deployment = loop_file(platform, "deployment.json");
    local.create_deployment_with_ids(deployment.clone()).await;
    deployment["deployment_id"].as_str().expect("a deployment id").to_owned()
}

/// What the watch process printed so far, for failure messages.
fn watch_output(dir: &Path) -> String {
    let tail = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!("--- watch stdout\n{}\n--- watch stderr\n{}", tail("watch.out"), tail("watch.err"))
}

/// `cargo lambda invoke <hook> --data-file <event>`; returns the hook's answer and how long it took.
async fn invoke(port: u16, hook: &str, event: &Path, dir: &Path) -> (Value, Duration) {
    let started = Instant::now();
    let mut command = Command::new(venv_bin("cargo-lambda"));
    command
        .current_dir(workspace_root())
        .args(["lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .arg("--data-file")
        .arg(event)
        .args(["--output-format", "json", hook])
        .kill_on_drop(true);
    let output = tokio::time::timeout(INVOKE_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!("cargo lambda invoke {hook} did not return within {INVOKE_LIMIT:?}\n{}", watch_output(dir))
        })
        .expect("run cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo lambda invoke {hook}: {:?}\n{stdout}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        watch_output(dir)
    );
    let answer = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{hook} answered {stdout:?}: {err}"));
    (answer, started.elapsed())
}

/// Invokes `hook` with `event` and checks its answer and the one report codedeploy-local got.
async fn invoke_and_check(local: &Local, port: u16, hook: Hook, event: &Path, expected: &str, dir: &Path) -> Duration {
    let ids: Value = serde_json::from_slice(&std::fs::read(event).expect("read the event")).expect("event JSON");
    let (deployment_id, execution_id) =
        (ids["DeploymentId"].as_str().unwrap(), ids["LifecycleEventHookExecutionId"].as_str().unwrap());
    local.wait_for_event(deployment_id, hook.event.as_str()).await;
    let (answer, took) = invoke(port, hook.name, event, dir).await;
    assert_eq!(answer["verdict"]["status"], expected, "{}: {answer:#}\n{}", hook.name, watch_output(dir));
    assert_eq!(answer["report"], "accepted", "{}: {answer:#}", hook.name);
    let reports = local.reports(deployment_id, execution_id).await;
    assert_eq!(reports.len(), 1, "{}: codedeploy-local got {reports:#?}", hook.name);
    assert_eq!(reports[0]["status"], expected, "{}: {reports:#?}", hook.name);
    assert_eq!(reports[0]["result"], "accepted", "{}: {reports:#?}", hook.name);
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hook_judges_and_reports_once_under_cargo_lambda_watch() {
    let dir = std::env::temp_dir().join(format!("greenlight-cargo-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cargo_lambda = venv_bin("cargo-lambda");

    let (bin, build_took) = build_the_loop().await;
    eprintln!("built the loop's binaries as cargo lambda watch builds them in {build_took:.1?}");

    let (_serve, local) = serve(&bin, &dir).await;
    let target = Target::start().await;
    let mut deployments = Vec::new();
    for platform in ["ecs", "lambda"] {
        deployments.push(hold_sample_deployment(&local, platform).await);
    }

    let plan = json!({"checks": [{"name": "health", "http": {"url": format!("{}/health", target.url)},
        "expect": {"status": [200]}, "timeout_ms": 2000}]});
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).expect("write the plan");
    // An env file rather than --env-var, which splits values at commas.
    let env_file = dir.join("loop.env");
    let env = [
        ("AWS_ENDPOINT_URL", local.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "codedeploy-local"),
        ("AWS_SECRET_ACCESS_KEY", "codedeploy-local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("GREENLIGHT_PLAN_FILE", &plan_file.display().to_string()),
    ];
    let env_text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, env_text).expect("write the env file");

    let port = free_port();
    let started = Instant::now();
    let mut command = Command::new(&cargo_lambda);
    as_from_a_shell(&mut command)
        .current_dir(workspace_root())
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .arg("--env-file")
        .arg(&env_file)
        .stdout(std::fs::File::create(dir.join("watch.out")).expect("watch.out"))
        .stderr(std::fs::File::create(dir.join("watch.err")).expect("watch.err"));
    let watch = ProcessGroup::spawn("cargo lambda watch", &mut command);
    let until = Instant::now() + START_LIMIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < until, "cargo lambda watch did not listen on {port}\n{}", watch_output(&dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("cargo lambda watch listened after {:.1?}", started.elapsed());

    // Each platform's sample deployment walks its lifecycle as the hooks report.
    for hook in Hook::ALL {
        let took = invoke_and_check(&local, port, hook, &event_file(hook.name), "Succeeded", &dir).await;
        eprintln!("{}: first invocation returned in {took:.1?}", hook.name);
    }
    for id in &deployments {
        let deployment = local.wait_until_complete(id).await;
        assert_eq!(deployment["status"], "Succeeded", "{deployment:#}");
    }

    // The warm before-install process, now against a target that answers 503.
    target.healthy.store(false, Ordering::SeqCst);
    let mut failing = loop_file("ecs", "deployment.json");
    failing["deployment_id"] = json!(FAILING_DEPLOYMENT);
    failing["execution_ids"] = json!({"BeforeInstall": FAILING_EXECUTION});
    local.create_deployment_with_ids(failing).await;
    let failing_event = dir.join("before-install-failing.json");
    let event = json!({"DeploymentId": FAILING_DEPLOYMENT, "LifecycleEventHookExecutionId": FAILING_EXECUTION});
    std::fs::write(&failing_event, event.to_string()).expect("write the failing event");
    let took = invoke_and_check(&local, port, Hook::BEFORE_INSTALL, &failing_event, "Failed", &dir).await;
    eprintln!("before-install against a failing target returned in {took:.1?}");
    let deployment = local.wait_until_complete(FAILING_DEPLOYMENT).await;
    assert_eq!(deployment["status"], "Failed", "{deployment:#}");

    // One warning per hook process: the deadline cargo-lambda sends is read as a budget.
    let printed: String =
        ["watch.out", "watch.err"].iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default()).collect();
    let warnings = printed.matches("Lambda-Runtime-Deadline-Ms is not an epoch instant").count();
    assert_eq!(warnings, Hook::ALL.len(), "{}", watch_output(&dir));
    eprintln!("the whole loop took {:.1?} after the build", started.elapsed());
    drop(watch);
    let _ = std::fs::remove_dir_all(&dir);
}
