//! The runtime host against real processes speaking the Runtime API (`fixtures/fake_function.py`):
//! how each kind of misbehaviour ends, process reuse, concurrency, and logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codedeploy_local::config::ProcessConfig;
use codedeploy_local::lambda::runtime::{FunctionVersion, Invocation, InvokeOutcome, RuntimeHost};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_function.py");

fn base_env() -> BTreeMap<String, String> {
    [("AWS_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("FROM_BASE", "base"), ("SHARED", "base")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn host() -> RuntimeHost {
    RuntimeHost::new(base_env(), None)
}

fn command(program: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(program).chain(args.iter().copied()).map(str::to_owned).collect()
}

/// Version `1` of `name`, running the fixture in `mode`. The timeout is generous: a cold start counts
/// against it, and Python starts slowly on a busy machine. Tests of timeouts shorten it.
fn function(name: &str, mode: &str) -> FunctionVersion {
    // SHARED overrides the base environment; AWS_LAMBDA_FUNCTION_NAME is Lambda's and must not.
    let environment = [("FAKE_MODE", mode), ("SHARED", "version"), ("AWS_LAMBDA_FUNCTION_NAME", "spoofed")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    FunctionVersion {
        function_name: name.to_owned(),
        version: "1".to_owned(),
        process: ProcessConfig { command: command("python3", &[FIXTURE]), environment },
        timeout: Duration::from_secs(5),
        memory_mb: 256,
    }
}

async fn invoke(host: &RuntimeHost, function: &FunctionVersion, event: Value) -> Invocation {
    host.invoke(function, Bytes::from(event.to_string())).await
}

fn document(invocation: &Invocation) -> Value {
    serde_json::from_slice(&invocation.payload).unwrap_or_else(|e| panic!("{e}: {:?}", invocation.payload))
}

/// The pid the fixture printed when it took the invocation.
fn pid_in_log(invocation: &Invocation) -> u32 {
    let line = invocation.log_tail.lines().find(|l| l.starts_with(&format!("took {}", invocation.request_id)));
    let pid = line.and_then(|l| l.rsplit_once("pid=")).map(|(_, pid)| pid.parse());
    match pid {
        Some(Ok(pid)) => pid,
        _ => panic!("no pid in the log tail:\n{}", invocation.log_tail),
    }
}

/// The pid of the first process of a function to take an event, waiting for it to do so.
async fn pid_in_log_file(path: &std::path::Path) -> u32 {
    for _ in 0..500 {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(pid) = log.lines().find_map(|l| l.split_once("pid=")).and_then(|(_, pid)| pid.parse().ok()) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no process of {} took its event", path.display())
}

/// Whether a process is gone (or a zombie, which is dead too), waiting up to two seconds for it.
async fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) => {
                return true;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

/// A fresh directory for one test's logs, removed when the test ends, however it ends.
struct LogDir(PathBuf);

impl LogDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("codedeploy-local-runtime-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn host(&self) -> RuntimeHost {
        RuntimeHost::new(base_env(), Some(self.0.clone()))
    }

    fn file(&self, function_name: &str) -> PathBuf {
        self.0.join(format!("{function_name}.log"))
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn epoch_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_an_init_error() {
    let host = host();
    let mut function = function("missing", "echo");
    function.process.command = command("/nonexistent/bootstrap", &[]);

    let invocation = invoke(&host, &function, json!({})).await;

    assert_eq!(invocation.outcome, InvokeOutcome::InitError);
    assert_eq!(invocation.function_error(), Some("Unhandled"));
    let error = document(&invocation);
    assert_eq!(error["errorType"], "Runtime.InvalidEntrypoint");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("RequestId: {} Error: fork/exec /nonexistent/bootstrap", invocation.request_id))
    );
    assert!(invocation.log_tail.contains("Error Type: Runtime.InvalidEntrypoint"), "{}", invocation.log_tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_before_the_first_poll_is_an_init_error() {
    let host = host();

    let invocation = invoke(&host, &function("early", "exit_early"), json!({})).await;

    assert_eq!(invocation.outcome, InvokeOutcome::InitError);
    let expected = format!("RequestId: {} Error: Runtime exited with error: exit status 2", invocation.request_id);
    assert_eq!(document(&invocation), json!({"errorType": "Runtime.ExitError", "errorMessage": expected}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_init_error_is_an_init_error_with_its_document() {
    let host = host();
    let function = function("init", "init_error");

    for _ in 0..2 {
        let invocation = invoke(&host, &function, json!({})).await;

        assert_eq!(invocation.outcome, InvokeOutcome::InitError);
        assert_eq!(invocation.function_error(), Some("Unhandled"));
        assert_eq!(document(&invocation), json!({"errorType": "Fake.InitError", "errorMessage": "cannot start"}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_invocation_is_reported_and_the_next_invocation_gets_a_new_process() {
    let host = host();
    let function = function("crashy", "crash");

    let first = invoke(&host, &function, json!({})).await;
    let second = invoke(&host, &function, json!({})).await;

    for invocation in [&first, &second] {
        assert_eq!(invocation.outcome, InvokeOutcome::Crashed);
        assert_eq!(invocation.function_error(), Some("Unhandled"));
        let expected = format!("RequestId: {} Error: Runtime exited with error: exit status 3", invocation.request_id);
        assert_eq!(document(invocation), json!({"errorType": "Runtime.ExitError", "errorMessage": expected}));
        assert!(invocation.log_tail.contains(&format!("{expected}\nRuntime.ExitError\n")), "{}", invocation.log_tail);
    }
    assert_ne!(pid_in_log(&first), pid_in_log(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_invocation_times_out_and_its_process_is_killed() {
    let host = host();
    let mut function = function("hung", "hang");
    function.timeout = Duration::from_secs(1);

    let started = Instant::now();
    let invocation = invoke(&host, &function, json!({})).await;
    let elapsed = started.elapsed();

    assert_eq!(invocation.outcome, InvokeOutcome::Timeout);
    assert_eq!(invocation.function_error(), Some("Unhandled"));
    // The timeout runs from when the process took the event, after a cold start of at most 1 s.
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let error = document(&invocation);
    assert_eq!(error["errorType"], "Sandbox.Timedout");
    let message = error["errorMessage"].as_str().unwrap();
    let (timestamp, rest) = message.split_once(' ').unwrap();
    assert_eq!(rest, format!("{} Task timed out after 1.00 seconds", invocation.request_id));
    let shape = timestamp.bytes().map(|b| if b.is_ascii_digit() { b'9' } else { b }).collect::<Vec<_>>();
    assert_eq!(String::from_utf8(shape).unwrap(), "9999-99-99T99:99:99.999Z", "{timestamp}");
    assert!(invocation.log_tail.contains(message), "{}", invocation.log_tail);
    assert!(invocation.log_tail.contains("Status: timeout"), "{}", invocation.log_tail);
    assert!(gone(pid_in_log(&invocation)).await, "the timed out process is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_runs_from_the_invocation_when_the_process_never_polls() {
    let host = host();
    let mut function = function("stalled", "stall");
    function.timeout = Duration::from_secs(1);

    let started = Instant::now();
    let invocation = invoke(&host, &function, json!({})).await;
    let elapsed = started.elapsed();

    assert_eq!(invocation.outcome, InvokeOutcome::Timeout);
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1800), "{elapsed:?}");
    assert_eq!(document(&invocation)["errorType"], "Sandbox.Timedout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_is_reported_with_its_document_and_the_process_stays_warm() {
    let host = host();
    let function = function("failing", "error");

    let first = invoke(&host, &function, json!({})).await;
    let second = invoke(&host, &function, json!({})).await;

    for invocation in [&first, &second] {
        assert_eq!(invocation.outcome, InvokeOutcome::FunctionError { error_type: "FakeError".to_owned() });
        assert_eq!(invocation.function_error(), Some("Unhandled"));
        let error = document(invocation);
        assert_eq!(error["errorType"], "FakeError");
        assert_eq!(error["stackTrace"], json!(["main"]));
        assert!(invocation.log_tail.contains("Status: error\tError Type: FakeError"), "{}", invocation.log_tail);
    }
    let pid = pid_in_log(&first);
    assert_eq!(document(&first)["errorMessage"], format!("boom from pid={pid}"));
    assert_eq!(pid_in_log(&second), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_a_function_error() {
    let host = host();

    let invocation = invoke(&host, &function("big", "echo"), json!({"padding": "x".repeat(6 * 1024 * 1024)})).await;

    let error_type = "Function.ResponseSizeTooLarge".to_owned();
    assert_eq!(invocation.outcome, InvokeOutcome::FunctionError { error_type: error_type.clone() });
    assert_eq!(document(&invocation)["errorType"], error_type);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_api_rejects_answers_for_unknown_invocations_and_late_init_errors() {
    let host = host();

    let invocation = invoke(&host, &function("misuse", "misuse"), json!({})).await;

    assert_eq!(invocation.outcome, InvokeOutcome::Response);
    assert_eq!(document(&invocation), json!({"unknown_id": 400, "init_error_after_init": 403}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_idle_and_running_processes_and_refuses_more_work() {
    let logs = LogDir::new("shutdown");
    let host = logs.host();
    let idle = invoke(&host, &function("idle", "echo"), json!({})).await;
    let idle_pid = document(&idle)["pid"].as_u64().unwrap() as u32;
    let mut hung = function("hung", "hang");
    hung.timeout = Duration::from_secs(30);
    let running = tokio::spawn({
        let host = host.clone();
        async move { host.invoke(&hung, Bytes::from_static(b"{}")).await }
    });
    let hung_pid = pid_in_log_file(&logs.file("hung")).await;

    let started = Instant::now();
    host.shutdown().await;

    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(gone(idle_pid).await, "the idle process survived shutdown");
    assert!(gone(hung_pid).await, "the running process survived shutdown");
    let running = running.await.unwrap();
    assert_eq!(running.outcome, InvokeOutcome::Crashed);
    assert_eq!(document(&running)["errorType"], "Runtime.ExitError");
    let refused = invoke(&host, &function("idle", "echo"), json!({})).await;
    assert_eq!(refused.outcome, InvokeOutcome::InitError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_an_invocation_kills_its_process() {
    let logs = LogDir::new("abandon");
    let host = logs.host();
    let mut hung = function("abandoned", "hang");
    hung.timeout = Duration::from_secs(30);

    let log = logs.file("abandoned");
    // Whichever finishes first, the other future is dropped: here, the invocation.
    let pid = tokio::select! {
        invocation = invoke(&host, &hung, json!({})) => panic!("the hanging function answered: {invocation:?}"),
        pid = pid_in_log_file(&log) => pid,
    };

    assert!(gone(pid).await, "the abandoned process is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_gets_the_event_and_the_lambda_environment() {
    let host = host();
    let function = function("echo", "echo");

    let before = epoch_ms();
    let invocation = invoke(&host, &function, json!({"hello": "world"})).await;
    let after = epoch_ms();

    assert_eq!(invocation.outcome, InvokeOutcome::Response);
    assert_eq!(invocation.function_error(), None);
    let answer = document(&invocation);
    assert_eq!(answer["event"], json!({"hello": "world"}));
    assert_eq!(answer["request_id"], invocation.request_id);
    assert_eq!(answer["function_arn"], "arn:aws:lambda:eu-west-1:123456789012:function:echo:1");
    assert!(answer["trace_id"].as_str().unwrap().starts_with("Root=1-"), "{}", answer["trace_id"]);
    let deadline = u128::from(answer["deadline_ms"].as_u64().unwrap());
    assert!((before + 5000..=after + 5000).contains(&deadline), "{before} {deadline} {after}");

    let env = &answer["env"];
    let expected = [
        ("AWS_LAMBDA_FUNCTION_NAME", "echo"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/echo"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("TZ", ":UTC"),
        ("FROM_BASE", "base"),
        ("SHARED", "version"),
        ("FAKE_MODE", "echo"),
    ];
    for (name, value) in expected {
        assert_eq!(env[name], value, "{name}");
    }
    let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap_or_default();
    assert!(stream.contains("/[1]"), "{stream}");
    let set_by_lambda =
        ["AWS_LAMBDA_RUNTIME_API", "AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "PATH"];
    for name in set_by_lambda {
        assert!(env[name].is_string(), "{name} missing");
    }
    // Cargo gives the test process these; a clean environment does not pass them on. (Checking for
    // no unknown names at all would fail where `python3` is a shim that sets its own.)
    let unexpected: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("CARGO") && env.get(name).is_some())
        .collect();
    assert!(unexpected.is_empty(), "inherited: {unexpected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_process_is_reused_per_version() {
    let host = host();
    let one = function("warm", "echo");
    let mut two = one.clone();
    two.version = "2".to_owned();

    let first = invoke(&host, &one, json!({})).await;
    let second = invoke(&host, &one, json!({})).await;
    let other_version = invoke(&host, &two, json!({})).await;

    let pid = |invocation: &Invocation| document(invocation)["pid"].as_u64().unwrap();
    assert_eq!(pid(&first), pid(&second));
    assert_ne!(pid(&first), pid(&other_version));
    assert_eq!(document(&other_version)["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "2");
    assert!(first.log_tail.contains("Init Duration: "), "{}", first.log_tail);
    assert!(!second.log_tail.contains("Init Duration: "), "{}", second.log_tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_is_timed_and_recycling_makes_the_next_invocation_cold() {
    let host = host();
    let echo = function("recycled", "echo");
    let before = Instant::now();

    let cold = invoke(&host, &echo, json!({})).await;
    let warm = invoke(&host, &echo, json!({})).await;
    host.recycle("recycled").await;
    let recycled = invoke(&host, &echo, json!({})).await;

    let pid = |invocation: &Invocation| document(invocation)["pid"].as_u64().unwrap();
    assert_eq!(pid(&cold), pid(&warm));
    assert_ne!(pid(&cold), pid(&recycled), "recycling must retire the warm process");
    let start = cold.cold_start.expect("the first invocation starts a process");
    assert!(start.process_started >= before && start.init > Duration::ZERO && start.init < cold.duration);
    assert!(warm.cold_start.is_none());
    assert!(recycled.cold_start.is_some());
    // A Python interpreter holds megabytes; the figure is its own peak, read while it lives.
    for invocation in [&cold, &warm, &recycled] {
        let kb = invocation.max_memory_kb.expect("peak memory read from /proc");
        assert!((1024..1024 * 1024).contains(&kb), "{kb} KiB");
        let line = format!("Max Memory Used: {} MB", kb.div_ceil(1024));
        assert!(invocation.log_tail.contains(&line), "{line} missing from:\n{}", invocation.log_tail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_get_their_own_processes_and_a_hung_one_blocks_nothing() {
    let host = host();
    let slow = function("slow", "echo");
    let hung = function("hung", "hang");
    let event = json!({"sleep_ms": 300});

    let hanging = tokio::spawn({
        let host = host.clone();
        async move { host.invoke(&hung, Bytes::from_static(b"{}")).await }
    });
    let (a, b) = tokio::join!(invoke(&host, &slow, event.clone()), invoke(&host, &slow, event.clone()));
    let third = invoke(&host, &slow, json!({})).await;

    assert!(!hanging.is_finished(), "the hung function should still be running");
    hanging.abort();
    for invocation in [&a, &b, &third] {
        assert_eq!(invocation.outcome, InvokeOutcome::Response);
    }
    let pid = |invocation: &Invocation| document(invocation)["pid"].as_u64().unwrap();
    // A process runs one invocation at a time: two at once need two processes.
    assert_ne!(pid(&a), pid(&b));
    assert!([pid(&a), pid(&b)].contains(&pid(&third)), "a warm process was not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_holds_the_output_of_its_own_invocation() {
    let logs = LogDir::new("tail");
    let host = logs.host();
    let function = function("chatty", "print");

    let first = invoke(&host, &function, json!({})).await;
    let second = invoke(&host, &function, json!({})).await;

    for invocation in [&first, &second] {
        let id = &invocation.request_id;
        let lines: Vec<&str> = invocation.log_tail.lines().collect();
        assert_eq!(lines.first().copied(), Some(format!("START RequestId: {id} Version: 1").as_str()));
        assert!(lines.contains(&format!("to stdout {id}").as_str()), "{lines:?}");
        assert!(lines.contains(&format!("to stderr {id}").as_str()), "{lines:?}");
        assert!(lines.contains(&format!("END RequestId: {id}").as_str()), "{lines:?}");
        let report = lines.last().unwrap();
        assert!(report.starts_with(&format!("REPORT RequestId: {id}\tDuration: ")), "{report}");
        assert!(report.contains("\tMemory Size: 256 MB\t"), "{report}");
    }
    assert!(!second.log_tail.contains(&first.request_id), "{}", second.log_tail);
    let file = std::fs::read_to_string(logs.file("chatty")).unwrap();
    for invocation in [&first, &second] {
        assert!(file.contains(&format!("to stderr {}", invocation.request_id)), "{file}");
        assert!(file.contains(&format!("REPORT RequestId: {}", invocation.request_id)), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_keeps_the_last_4_kb() {
    let host = host();

    let invocation = invoke(&host, &function("verbose", "echo"), json!({"print_lines": 200})).await;

    assert_eq!(invocation.outcome, InvokeOutcome::Response);
    assert!(invocation.log_tail.len() <= 4096, "{}", invocation.log_tail.len());
    assert!(invocation.log_tail.len() > 3500, "{}", invocation.log_tail.len());
    assert!(invocation.log_tail.contains("line 0199 "), "{}", invocation.log_tail);
    assert!(!invocation.log_tail.contains("line 0000 "), "{}", invocation.log_tail);
    assert!(invocation.log_tail.lines().last().unwrap().starts_with("REPORT RequestId: "));
}
