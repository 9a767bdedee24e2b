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

/// One process and its Runtime API: what Lambda calls an execution environment.
struct Sandbox {
    child: Child,
    /// Hands events to the process's `next` poll; holds at most the one in flight.
    events: mpsc::Sender<Event>,
    /// Until the process first polls: where a posted init error arrives.
    init_failure: Option<oneshot::Receiver<Failure>>,
    log: Arc<ProcessLog>,
    started: Instant,
    invocations: u64,
    readers: Vec<AbortOnDrop>,
    _server: AbortOnDrop,
}

impl Sandbox {
    /// Hands the event to the process and waits for the end: an answer, an exit, the timeout or
    /// shutdown. Also returns when the process took the event, if it did.
    async fn run(
        &mut self,
        request_id: &str,
        payload: Bytes,
        timeout: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> (End, Option<Instant>) {
        let start = Instant::now();
        let (taken_tx, taken_rx) = oneshot::channel();
        let (answer_tx, answer_rx) = oneshot::channel();
        let event = Event {
            request_id: request_id.to_owned(),
            payload,
            trace_id: trace_id(),
            taken: taken_tx,
            answer: answer_tx,
        };
        // The queue is empty: a process is only reused after it took and answered its last event.
        // Failing means the Runtime API is gone, and the process with it.
        if self.events.try_send(event).is_err() {
            return (End::Exited(self.kill().await), None);
        }
        // Until the process takes the event, the timeout runs from now. Order matters where two
        // things happen at once: an init error posted just before exiting is the init error.
        let handed_out = tokio::select! {
            biased;
            () = shut_down(shutdown) => return (End::ShutDown, None),
            failure = init_failure(&mut self.init_failure) => return (End::InitFailed(failure), None),
            Ok(at) = taken_rx => at,
            status = self.child.wait() => return (End::Exited(status.ok()), None),
            () = tokio::time::sleep_until((start + timeout).into()) => return (End::TimedOut, None),
        };
        // An answer posted just before exiting is the answer.
        let end = tokio::select! {
            biased;
            () = shut_down(shutdown) => End::ShutDown,
            Ok(answer) = answer_rx => End::Answered(answer),
            status = self.child.wait() => End::Exited(status.ok()),
            () = tokio::time::sleep_until((handed_out + timeout).into()) => End::TimedOut,
        };
        (end, Some(handed_out))
    }

    async fn kill(&mut self) -> Option<ExitStatus> {
        // Fails only when the process has already exited, and then `wait` has its status.
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }

    /// Waits for the output of an exited process to be read to its end.
    async fn drain_log(&mut self) {
        let deadline = tokio::time::Instant::now() + LOG_DRAIN_LIMIT;
        for reader in &mut self.readers {
            let _ = tokio::time::timeout_at(deadline, &mut reader.0).await;
        }
    }
}

/// What an invocation used, for its `REPORT` line.
struct Usage {
    ran: Duration,
    init: Option<Duration>,
    memory_mb: u32,
    max_memory_kb: Option<u64>,
}

/// A process's peak resident set in KiB (`VmHWM` in `/proc/<pid>/status`), on Linux.
fn peak_resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Completes when the host shuts down; never if it cannot any more.
async fn shut_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Completes with an init error if the process posts one before its first poll; never otherwise.
async fn init_failure(slot: &mut Option<oneshot::Receiver<Failure>>) -> Failure {
    if let Some(receiver) = slot.as_mut() {
        let posted = receiver.await;
        // A finished receiver must not be polled again.
        *slot = None;
        if let Ok(failure) = posted {
            return failure;
        }
    }
    std::future::pending().await
}

/// Aborts a task when its owner goes, so a dropped process leaves no server or reader behind.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An error document as Lambda returns it in place of a response.
struct Failure {
    error_type: String,
    payload: Bytes,
}

impl Failure {
    fn new(error_type: &str, message: String) -> Self {
        let payload = json!({"errorMessage": message, "errorType": error_type}).to_string();
        Self { error_type: error_type.to_owned(), payload: Bytes::from(payload) }
    }

    /// The process exited, or was killed, with an invocation in flight or before taking it.
    fn exited(request_id: &str, status: Option<ExitStatus>) -> Self {
        let reason = match status {
            Some(status) => match status.code() {
                Some(code) => format!("Runtime exited with error: exit status {code}"),
                None => format!("Runtime exited with error: {status}"),
            },
            None => "Runtime exited without providing a reason".to_owned(),
        };
        Self::new("Runtime.ExitError", format!("RequestId: {request_id} Error: {reason}"))
    }

    /// An error the function posted, made into a document with `errorMessage` and `errorType`
    /// whatever it sent. The type is the body's, else the `Lambda-Runtime-Function-Error-Type`
    /// header's, else `default_type`; other fields (`stackTrace`) are kept.
    fn posted(headers: &HeaderMap, body: &[u8], default_type: &str) -> Self {
        let mut document = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(document)) => document,
            _ => {
                let mut document = Map::new();
                document.insert("errorMessage".to_owned(), String::from_utf8_lossy(body).into());
                document
            }
        };
        let header_type = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok());
        let error_type = document
            .get("errorType")
            .and_then(Value::as_str)
            .or(header_type)
            .filter(|t| !t.is_empty())
            .unwrap_or(default_type)
            .to_owned();
        document.insert("errorType".to_owned(), error_type.clone().into());
        document.entry("errorMessage").or_insert_with(|| String::new().into());
        Self { error_type, payload: Bytes::from(Value::Object(document).to_string()) }
    }
}

/// One invocation on its way to a process.
struct Event {
    request_id: String,
    payload: Bytes,
    trace_id: String,
    /// Told when the process takes the event: the function timeout starts then.
    taken: oneshot::Sender<Instant>,
    answer: oneshot::Sender<Result<Bytes, Failure>>,
}

/// The invocation a process has taken and not yet answered.
struct InFlight {
    request_id: String,
    answer: oneshot::Sender<Result<Bytes, Failure>>,
}

/// The state behind one process's Runtime API.
struct RuntimeApi {
    function_arn: String,
    version: String,
    /// Where the START line goes: written before the process sees the event, it comes before
    /// anything the process prints about it.
    log: Arc<ProcessLog>,
    timeout: Duration,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    in_flight: Mutex<Option<InFlight>>,
    /// Taken by the first poll: after that, init errors are rejected as Lambda rejects them.
    init: Mutex<Option<oneshot::Sender<Failure>>>,
}

impl RuntimeApi {
    fn take_in_flight(&self, request_id: &str) -> Option<InFlight> {
        let mut in_flight = lock(&self.in_flight);
        if in_flight.as_ref().is_some_and(|f| f.request_id == request_id) { in_flight.take() } else { None }
    }
}

fn runtime_api(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{request_id}/response", post(post_response))
        .route("/2018-06-01/runtime/invocation/{request_id}/error", post(post_error))
        .route("/2018-06-01/runtime/init/error", post(post_init_error))
        // Oversized responses are the function's error to report, not a transport failure.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> Response {
    // Polling ends init; from here on an init error can no longer be reported.
    lock(&api.init).take();
    let Some(event) = api.events.lock().await.recv().await else {
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "the execution environment is gone");
    };
    let deadline = SystemTime::now() + api.timeout;
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let headers = [
        ("lambda-runtime-aws-request-id", event.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", api.function_arn.clone()),
        ("lambda-runtime-trace-id", event.trace_id),
    ];
    api.log.line(&start_line(&event.request_id, &api.version));
    *lock(&api.in_flight) = Some(InFlight { request_id: event.request_id, answer: event.answer });
    // The invoker may have given up already; its process is killed then.
    let _ = event.taken.send(Instant::now());
    let mut response = ([(CONTENT_TYPE, "application/json")], event.payload).into_response();
    for (name, value) in headers {
        // Names and versions are validated by the config; an odd one only loses its header.
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    response
}

async fn post_response(State(api): State<Arc<RuntimeApi>>, Path(request_id): Path<String>, body: Bytes) -> Response {
    let Some(in_flight) = api.take_in_flight(&request_id) else { return invalid_request_id(&request_id) };
    if body.len() > MAX_RESPONSE_BYTES {
        let message =
            format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).");
        let _ = in_flight.answer.send(Err(Failure::new("Function.ResponseSizeTooLarge", message.clone())));
        return api_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message);
    }
    let _ = in_flight.answer.send(Ok(body));
    accepted()
}

async fn post_error(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(in_flight) = api.take_in_flight(&request_id) else { return invalid_request_id(&request_id) };
    let _ = in_flight.answer.send(Err(Failure::posted(&headers, &body, "Unhandled")));
    accepted()
}

async fn post_init_error(State(api): State<Arc<RuntimeApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(init) = lock(&api.init).take() else {
        return api_error(StatusCode::FORBIDDEN, "InvalidStateTransition", "init error reported after init");
    };
    let _ = init.send(Failure::posted(&headers, &body, "Runtime.InitError"));
    accepted()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn invalid_request_id(request_id: &str) -> Response {
    let message = format!("invalid request id {request_id}: no such invocation in flight");
    api_error(StatusCode::BAD_REQUEST, "InvalidRequestID", &message)
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errorMessage": message, "errorType": error_type}))).into_response()
}

/// A process's output: the tail of the invocation in progress, and the function's log file.
struct ProcessLog {
    state: Mutex<LogState>,
    written: Notify,
}

struct LogState {
    /// Everything since the last invocation ended, trimmed to what a tail can show.
    tail: String,
    file: Option<std::fs::File>,
}

impl ProcessLog {
    fn open(dir: Option<&PathBuf>, function_name: &str) -> Self {
        let file = dir.and_then(|dir| {
            let path = dir.join(format!("{function_name}.log"));
            let opened = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
            opened.map_err(|error| tracing::warn!(path = %path.display(), %error, "cannot open the function log")).ok()
        });
        Self { state: Mutex::new(LogState { tail: String::new(), file }), written: Notify::new() }
    }

    fn line(&self, line: &str) {
        let mut state = lock(&self.state);
        state.tail.push_str(line);
        state.tail.push('\n');
        if state.tail.len() > 2 * LOG_TAIL_BYTES {
            keep_last(&mut state.tail, LOG_TAIL_BYTES);
        }
        let written = state.file.as_mut().map(|file| writeln!(file, "{line}"));
        if let Some(Err(error)) = written {
            tracing::warn!(%error, "cannot write the function log; no longer writing it");
            state.file = None;
        }
        drop(state);
        self.written.notify_waiters();
    }

    /// The lines Lambda writes itself when an environment fails: the message, then the type.
    fn failure(&self, failure: &Failure) {
        let document = serde_json::from_slice::<Value>(&failure.payload).unwrap_or_default();
        if let Some(message) = document.get("errorMessage").and_then(Value::as_str) {
            self.line(message);
        }
        self.line(&failure.error_type);
    }

    fn report(&self, request_id: &str, usage: &Usage, error_type: Option<&str>) {
        self.line(&format!("END RequestId: {request_id}"));
        let millis = usage.ran.as_secs_f64() * 1000.0;
        let mut report = format!(
            "REPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\t",
            millis.ceil(),
            usage.memory_mb
        );
        if let Some(kb) = usage.max_memory_kb {
            report.push_str(&format!("Max Memory Used: {} MB\t", kb.div_ceil(1024)));
        }
        if let Some(init) = usage.init {
            report.push_str(&format!("Init Duration: {:.2} ms\t", init.as_secs_f64() * 1000.0));
        }
        match error_type {
            Some(TIMED_OUT) => report.push_str("Status: timeout\t"),
            Some(error_type) => report.push_str(&format!("Status: error\tError Type: {error_type}\t")),
            None => {}
        }
        self.line(&report);
    }

    /// Waits until output written before an answer has come through the pipes.
    async fn settle(&self) {
        let limit = tokio::time::sleep(LOG_SETTLE_LIMIT);
        tokio::pin!(limit);
        loop {
            tokio::select! {
                () = &mut limit => return,
                () = self.written.notified() => {}
                () = tokio::time::sleep(LOG_QUIET) => return,
            }
        }
    }

    fn take_tail(&self) -> String {
        let mut tail = std::mem::take(&mut lock(&self.state).tail);
        keep_last(&mut tail, LOG_TAIL_BYTES);
        tail
    }
}

fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// Copies a process's stdout or stderr into its log, line by line, until the pipe closes.
async fn forward_lines(stream: impl AsyncRead + Unpin, log: Arc<ProcessLog>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(LOG_LINE_BYTES).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                log.line(text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

/// Keeps the last `limit` bytes, or a little less so as to cut between characters.
fn keep_last(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut cut = text.len() - limit;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
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

/// RFC 3339 in UTC with milliseconds, as Lambda stamps its own log lines.
fn rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's algorithm,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
