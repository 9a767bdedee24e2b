//! The Lambda runtime host: function versions as real processes behind the Lambda Runtime API.
//!
//! Each process gets its own Runtime API endpoint, as each Lambda execution environment does, so an
//! answer can only ever belong to the one invocation that process has in flight. Processes stay
//! warm between invocations and are thrown away when they time out, crash or fail to start: the
//! moments Lambda resets an execution environment. A hook that only works on a cold start, or
//! that leaks state into the next invocation, behaves here as it would in AWS.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::ProcessConfig;

mod api;
mod log;
mod sandbox;

use api::*;
use log::*;
use sandbox::*;

/// The region functions run in when the base environment names none.
const DEFAULT_REGION: &str = "us-east-1";
/// The account in the function ARNs handed to functions; nothing checks it locally.
const ACCOUNT_ID: &str = "123456789012";
/// The error type newer Lambda runtimes report for a timeout.
const TIMED_OUT: &str = "Sandbox.Timedout";
/// How much of an invocation's log Lambda returns for `LogType: Tail`.
const LOG_TAIL_BYTES: usize = 4096;
/// Lines longer than this are split, so a process writing without newlines cannot exhaust memory.
const LOG_LINE_BYTES: u64 = 16 * 1024;
/// The largest synchronous response Lambda accepts from a function.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Output comes through pipes and the answer over HTTP, so a line printed just before answering
/// can arrive just after the answer. An answered invocation's log counts as complete once the pipes
/// have been quiet this long.
const LOG_QUIET: Duration = Duration::from_millis(10);
/// Bounds the wait for quiet pipes, so a process that keeps printing cannot hold its caller.
const LOG_SETTLE_LIMIT: Duration = Duration::from_millis(100);
/// How long to wait for the last output of a process that has exited. Processes it started can
/// hold its pipes open indefinitely.
const LOG_DRAIN_LIMIT: Duration = Duration::from_millis(500);
/// How long shutdown waits for invocations in flight to kill their processes. They do so as soon
/// as they are polled; this only bounds a caller that holds an invocation without polling it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The parent's environment variables a process gets: enough to find programs and report panics,
/// and nothing else, so a function cannot depend on the shell it was started from.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_LOG"];

/// Identifies one function version to run, with the settings Lambda applies to it. Processes are
/// pooled by function name and version, so two versions never share a warm process.
#[derive(Debug, Clone)]
pub struct FunctionVersion {
    /// The function name, as in its ARN.
    pub function_name: String,
    /// `$LATEST` or a published version number.
    pub version: String,
    /// The program that speaks the Runtime API, and its extra environment.
    pub process: ProcessConfig,
    /// How long one invocation may take before its process is killed.
    pub timeout: Duration,
    /// Only reported to the process: Lambda sizes CPU by it, locally nothing is limited.
    pub memory_mb: u32,
}

/// How an invocation ended. Only [`InvokeOutcome::Response`] and
/// [`InvokeOutcome::FunctionError`] leave the process warm for the next invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function posted a response.
    Response,
    /// The function posted an error for this invocation.
    FunctionError {
        /// The posted `errorType`, as Lambda reports it to the caller.
        error_type: String,
    },
    /// No answer within the function timeout; the process was killed.
    Timeout,
    /// The process exited (or was killed at shutdown) with the invocation in flight.
    Crashed,
    /// The process could not start, exited before asking for its first event, or reported an
    /// init error.
    InitError,
}

/// What one invocation produced, in the terms the Lambda Invoke API reports it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id the function saw (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// How it ended.
    pub outcome: InvokeOutcome,
    /// The response, or the error document Lambda returns in its place.
    pub payload: Bytes,
    /// The end of the log written during the invocation, with Lambda's START, END and REPORT
    /// lines: what `LogType: Tail` returns.
    pub log_tail: String,
    /// Wall time of the invocation as the caller saw it, cold start included.
    pub duration: Duration,
    /// Set when this invocation started a new process.
    pub cold_start: Option<ColdStart>,
    /// The process's peak resident memory so far, in KiB, as Lambda's `Max Memory Used`: Linux's
    /// `VmHWM`, read when the invocation ended. `None` where `/proc` is missing or the process had
    /// already exited.
    pub max_memory_kb: Option<u64>,
}

/// How a new process came up for an invocation.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ColdStart {
    /// When the host started the process. Only meaningful inside this process, so not serialized.
    #[serde(skip)]
    pub process_started: Instant,
    /// From the process starting to its first `next` poll taking the event: Lambda's
    /// `Init Duration`.
    #[serde(rename = "init_ms", serialize_with = "serialize_millis")]
    pub init: Duration,
}

fn serialize_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1e6).round() / 1e3)
}

impl Invocation {
    /// `X-Amz-Function-Error`. Lambda reports every kind of failure as `Unhandled`, whether the
    /// function posted it or the execution environment failed.
    pub fn function_error(&self) -> Option<&'static str> {
        match self.outcome {
            InvokeOutcome::Response => None,
            _ => Some("Unhandled"),
        }
    }
}

/// Runs function versions as processes and keeps them warm between invocations. Clones share the
/// processes; dropping the last clone kills the idle ones.
#[derive(Clone)]
pub struct RuntimeHost {
    inner: Arc<Host>,
}

impl fmt::Debug for RuntimeHost {
    // The base environment carries credentials, dummy or not; they stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHost")
            .field("region", &self.inner.region)
            .field("log_dir", &self.inner.log_dir)
            .finish_non_exhaustive()
    }
}

struct Host {
    base_env: BTreeMap<String, String>,
    region: String,
    log_dir: Option<PathBuf>,
    /// Warm processes waiting for an invocation, by function name and version.
    idle: Mutex<HashMap<(String, String), Vec<Sandbox>>>,
    /// Set once by [`RuntimeHost::shutdown`], while holding `idle`, so a process finishing an
    /// invocation is either taken by shutdown or sees the flag and kills itself.
    shutdown: watch::Sender<bool>,
    /// Invocations in flight, so shutdown can wait for their processes to die.
    busy: watch::Sender<usize>,
}

impl RuntimeHost {
    /// `base_env` is given to every process: the place to point SDKs at the local endpoints
    /// (`AWS_ENDPOINT_URL`), and to give them a region and dummy credentials. Its `AWS_REGION`
    /// also goes into the function ARNs. With a `log_dir`, each function's output is appended to
    /// `<log_dir>/<function name>.log`, across versions and processes, as a log group would.
    pub fn new(base_env: BTreeMap<String, String>, log_dir: Option<PathBuf>) -> Self {
        let region = base_env.get("AWS_REGION").filter(|r| !r.is_empty()).cloned();
        let host = Host {
            region: region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            base_env,
            log_dir,
            idle: Mutex::default(),
            shutdown: watch::Sender::new(false),
            busy: watch::Sender::new(0),
        };
        Self { inner: Arc::new(host) }
    }

    /// Runs one invocation synchronously (RequestResponse) on a warm process of the version, or a
    /// new one. Whatever the function does, this returns an [`Invocation`]: failures are
    /// outcomes, not errors. Dropping the future kills the process it was using.
    pub async fn invoke(&self, function: &FunctionVersion, payload: Bytes) -> Invocation {
        let started = Instant::now();
        let _busy = Busy::enter(&self.inner.busy);
        let request_id = Uuid::new_v4().to_string();
        let ran = self.inner.invoke(function, &request_id, payload).await;
        Invocation {
            request_id,
            outcome: ran.outcome,
            payload: ran.payload,
            log_tail: ran.log_tail,
            duration: started.elapsed(),
            cold_start: ran.cold_start,
            max_memory_kb: ran.max_memory_kb,
        }
    }

    /// Kills the idle processes of a function, so its next invocation starts cold, as it does on
    /// Lambda after a configuration change or a while without invocations. Invocations in flight
    /// keep their processes.
    pub async fn recycle(&self, function_name: &str) {
        let retired: Vec<Sandbox> = {
            let mut idle = lock(&self.inner.idle);
            let keys: Vec<_> = idle.keys().filter(|(name, _)| name == function_name).cloned().collect();
            keys.into_iter().filter_map(|key| idle.remove(&key)).flatten().collect()
        };
        for mut sandbox in retired {
            sandbox.kill().await;
        }
    }

    /// Kills every process, idle or running, and refuses later invocations. Invocations in flight
    /// end as [`InvokeOutcome::Crashed`], as they would if Lambda lost the execution environment.
    pub async fn shutdown(&self) {
        let idle = {
            let mut idle = lock(&self.inner.idle);
            self.inner.shutdown.send_replace(true);
            std::mem::take(&mut *idle)
        };
        for mut sandbox in idle.into_values().flatten() {
            sandbox.kill().await;
        }
        let mut busy = self.inner.busy.subscribe();
        // Err only if the sender is gone, and `self` holds it.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, busy.wait_for(|n| *n == 0)).await;
    }
}

/// Counts an invocation as in flight until it ends or its future is dropped.
struct Busy<'a>(&'a watch::Sender<usize>);

impl<'a> Busy<'a> {
    fn enter(count: &'a watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// What the host made of one invocation, before the caller's timing is added.
struct Ran {
    outcome: InvokeOutcome,
    payload: Bytes,
    log_tail: String,
    cold_start: Option<ColdStart>,
    max_memory_kb: Option<u64>,
}

impl Ran {
    /// An invocation that never reached a process.
    fn unstarted(failure: Failure, log_tail: String) -> Self {
        Self {
            outcome: InvokeOutcome::InitError,
            payload: failure.payload,
            log_tail,
            cold_start: None,
            max_memory_kb: None,
        }
    }
}

/// How a run on a process ended, before it is put in Lambda's terms.
enum End {
    Answered(Result<Bytes, Failure>),
    TimedOut,
    Exited(Option<ExitStatus>),
    InitFailed(Failure),
    ShutDown,
}

impl Host {
    async fn invoke(&self, function: &FunctionVersion, request_id: &str, payload: Bytes) -> Ran {
        let key = (function.function_name.clone(), function.version.clone());
        let mut shutdown = self.shutdown.subscribe();
        let warm = match self.checkout(&key) {
            Ok(warm) => warm,
            Err(failure) => return Ran::unstarted(failure, String::new()),
        };
        let mut sandbox = match warm {
            Some(sandbox) => sandbox,
            None => match self.start(function, request_id).await {
                Ok(sandbox) => sandbox,
                Err((failure, log)) => {
                    log.line(&start_line(request_id, &function.version));
                    log.failure(&failure);
                    let usage =
                        Usage { ran: Duration::ZERO, init: None, memory_mb: function.memory_mb, max_memory_kb: None };
                    log.report(request_id, &usage, Some(&failure.error_type));
                    return Ran::unstarted(failure, log.take_tail());
                }
            },
        };
        let run_start = Instant::now();
        let (end, handed_out) = sandbox.run(request_id, payload, function.timeout, &mut shutdown).await;
        let ended_at = SystemTime::now();
        let ran = handed_out.unwrap_or(run_start).elapsed();
        let first = sandbox.invocations == 0;
        let init_duration = first.then(|| handed_out.unwrap_or_else(Instant::now) - sandbox.started);
        // Read before the process can be killed: a dead process has no `/proc` entry.
        let max_memory_kb = sandbox.child.id().and_then(peak_resident_kb);

        // Answered is the only end that leaves the process alive and fit for another invocation.
        let keep = matches!(end, End::Answered(_));
        let never_started = matches!(end, End::Exited(_)) && handed_out.is_none() && first;
        let status = match &end {
            End::Answered(_) => None,
            End::Exited(status) => *status,
            End::TimedOut | End::InitFailed(_) | End::ShutDown => sandbox.kill().await,
        };
        if keep {
            sandbox.log.settle().await;
        } else {
            sandbox.drain_log().await;
        }
        if handed_out.is_none() {
            // The Runtime API writes START when it hands the event out; Lambda logs one regardless.
            sandbox.log.line(&start_line(request_id, &function.version));
        }
        let (outcome, payload, error_type) = match end {
            End::Answered(Ok(body)) => (InvokeOutcome::Response, body, None),
            End::Answered(Err(failure)) => {
                let outcome = InvokeOutcome::FunctionError { error_type: failure.error_type.clone() };
                (outcome, failure.payload, Some(failure.error_type))
            }
            End::TimedOut => {
                let message = format!(
                    "{} {request_id} Task timed out after {:.2} seconds",
                    rfc3339_millis(ended_at),
                    function.timeout.as_secs_f64()
                );
                sandbox.log.line(&message);
                let failure = Failure::new(TIMED_OUT, message);
                (InvokeOutcome::Timeout, failure.payload, Some(failure.error_type))
            }
            End::InitFailed(failure) => (InvokeOutcome::InitError, failure.payload, Some(failure.error_type)),
            End::Exited(_) | End::ShutDown => {
                let failure = Failure::exited(request_id, status);
                sandbox.log.failure(&failure);
                let outcome = if never_started { InvokeOutcome::InitError } else { InvokeOutcome::Crashed };
                (outcome, failure.payload, Some(failure.error_type))
            }
        };
        let usage = Usage { ran, init: init_duration, memory_mb: function.memory_mb, max_memory_kb };
        sandbox.log.report(request_id, &usage, error_type.as_deref());
        let log_tail = sandbox.log.take_tail();
        let cold_start = init_duration
            .filter(|_| handed_out.is_some())
            .map(|init| ColdStart { process_started: sandbox.started, init });
        if keep {
            sandbox.invocations += 1;
            self.checkin(key, sandbox).await;
        }
        Ran { outcome, payload, log_tail, cold_start, max_memory_kb }
    }

    /// A warm process for the version, if one is idle; an error once the host has shut down.
    fn checkout(&self, key: &(String, String)) -> Result<Option<Sandbox>, Failure> {
        let mut idle = lock(&self.idle);
        if *self.shutdown.borrow() {
            return Err(Failure::new("Runtime.Unavailable", "the runtime host has shut down".to_owned()));
        }
        let Some(sandboxes) = idle.get_mut(key) else { return Ok(None) };
        // A process that died while idle is dropped here; Lambda would start a new one too.
        while let Some(mut sandbox) = sandboxes.pop() {
            if matches!(sandbox.child.try_wait(), Ok(None)) {
                return Ok(Some(sandbox));
            }
        }
        Ok(None)
    }

    async fn checkin(&self, key: (String, String), mut sandbox: Sandbox) {
        {
            let mut idle = lock(&self.idle);
            if !*self.shutdown.borrow() {
                idle.entry(key).or_default().push(sandbox);
                return;
            }
        }
        sandbox.kill().await;
    }

    /// Starts a process for the version with its own Runtime API. On failure, returns the log the
    /// failure belongs in along with it.
    async fn start(&self, function: &FunctionVersion, request_id: &str) -> Result<Sandbox, (Failure, Arc<ProcessLog>)> {
        let started = Instant::now();
        let log = Arc::new(ProcessLog::open(self.log_dir.as_ref(), &function.function_name));
        let entrypoint = |message: String| {
            let message = format!("RequestId: {request_id} Error: {message}");
            (Failure::new("Runtime.InvalidEntrypoint", message), Arc::clone(&log))
        };
        let Some((program, args)) = function.process.command.split_first() else {
            return Err(entrypoint("the function has an empty command".to_owned()));
        };
        let unavailable = |what: &str, error: std::io::Error| {
            let message = format!("RequestId: {request_id} Error: {what}: {error}");
            (Failure::new("Runtime.Unavailable", message), Arc::clone(&log))
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| unavailable("cannot listen for the Runtime API", e))?;
        let api_addr = listener.local_addr().map_err(|e| unavailable("cannot listen for the Runtime API", e))?;

        let (events_tx, events_rx) = mpsc::channel(1);
        let (init_tx, init_rx) = oneshot::channel();
        let api = Arc::new(RuntimeApi {
            function_arn: format!(
                "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}:{}",
                self.region, function.function_name, function.version
            ),
            version: function.version.clone(),
            log: Arc::clone(&log),
            timeout: function.timeout,
            events: tokio::sync::Mutex::new(events_rx),
            in_flight: Mutex::new(None),
            init: Mutex::new(Some(init_tx)),
        });
        let server = AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, runtime_api(api)).await {
                tracing::warn!(%error, "Runtime API server stopped");
            }
        }));

        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(self.environment(function, api_addr))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| entrypoint(format!("fork/exec {program}: {e}")))?;

        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(AbortOnDrop(tokio::spawn(forward_lines(stdout, Arc::clone(&log)))));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(AbortOnDrop(tokio::spawn(forward_lines(stderr, Arc::clone(&log)))));
        }
        Ok(Sandbox {
            child,
            events: events_tx,
            init_failure: Some(init_rx),
            log,
            started,
            invocations: 0,
            readers,
            _server: server,
        })
    }

    /// The process environment: a clean one, then the base environment, then the version's own,
    /// then what Lambda reserves and sets itself whatever the configuration says.
    fn environment(&self, function: &FunctionVersion, api_addr: SocketAddr) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> =
            INHERITED_ENV.iter().filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?))).collect();
        env.extend(self.base_env.clone());
        env.extend(function.process.environment.clone());
        // Lambda's task root is where the code is; locally the process runs in our directory.
        let task_root = std::env::current_dir().map_or_else(|_| "/var/task".to_owned(), |d| d.display().to_string());
        let log_stream = format!(
            "{}/[{}]{}",
            rfc3339_millis(SystemTime::now()).get(..10).unwrap_or_default().replace('-', "/"),
            function.version,
            Uuid::new_v4().simple()
        );
        let name = &function.function_name;
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", api_addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", function.version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", function.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
            ("_HANDLER", "bootstrap".to_owned()),
            ("LAMBDA_TASK_ROOT", task_root.clone()),
            ("LAMBDA_RUNTIME_DIR", task_root),
            ("TZ", ":UTC".to_owned()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
        ];
        env.extend(reserved.map(|(k, v)| (k.to_owned(), v)));
        env
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can be left half-updated by a panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An X-Ray trace header as Lambda passes it when the caller sent none: unsampled.
fn trace_id() -> String {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let root = Uuid::new_v4().simple().to_string();
    let parent = Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Parent={};Sampled=0", &root[..24], &parent[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let at = |secs: u64, millis: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn posted_errors_always_carry_message_and_type() {
        let mut headers = HeaderMap::new();
        headers.insert("lambda-runtime-function-error-type", HeaderValue::from_static("Header.Type"));
        let document = |failure: Failure| serde_json::from_slice::<Value>(&failure.payload).unwrap();

        let body = br#"{"errorMessage":"boom","errorType":"Body.Type","stackTrace":["x"]}"#;
        let failure = Failure::posted(&headers, body, "Unhandled");
        assert_eq!(failure.error_type, "Body.Type");
        assert_eq!(document(failure), json!({"errorMessage":"boom","errorType":"Body.Type","stackTrace":["x"]}));

        let failure = Failure::posted(&headers, b"not json", "Unhandled");
        assert_eq!(document(failure), json!({"errorMessage":"not json","errorType":"Header.Type"}));

        let failure = Failure::posted(&HeaderMap::new(), b"{}", "Runtime.InitError");
        assert_eq!(document(failure), json!({"errorMessage":"","errorType":"Runtime.InitError"}));
    }

    #[test]
    fn tails_are_cut_between_characters() {
        let mut text = "é".repeat(10);
        keep_last(&mut text, 5);
        assert_eq!(text, "éé");
    }
}
