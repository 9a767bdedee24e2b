//! One execution environment: a function process, its Runtime API, and how an invocation in it ends.

use super::*;

/// One process and its Runtime API: what Lambda calls an execution environment.
pub(super) struct Sandbox {
    pub(super) child: Child,
    /// Hands events to the process's `next` poll; holds at most the one in flight.
    pub(super) events: mpsc::Sender<Event>,
    /// Until the process first polls: where a posted init error arrives.
    pub(super) init_failure: Option<oneshot::Receiver<Failure>>,
    pub(super) log: Arc<ProcessLog>,
    pub(super) started: Instant,
    pub(super) invocations: u64,
    pub(super) readers: Vec<AbortOnDrop>,
    pub(super) _server: AbortOnDrop,
}

impl Sandbox {
    /// Hands the event to the process and waits for the end: an answer, an exit, the timeout or
    /// shutdown. Also returns when the process took the event, if it did.
    pub(super) async fn run(
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

    pub(super) async fn kill(&mut self) -> Option<ExitStatus> {
        // Fails only when the process has already exited, and then `wait` has its status.
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }

    /// Waits for the output of an exited process to be read to its end.
    pub(super) async fn drain_log(&mut self) {
        let deadline = tokio::time::Instant::now() + LOG_DRAIN_LIMIT;
        for reader in &mut self.readers {
            let _ = tokio::time::timeout_at(deadline, &mut reader.0).await;
        }
    }
}

/// What an invocation used, for its `REPORT` line.
pub(super) struct Usage {
    pub(super) ran: Duration,
    pub(super) init: Option<Duration>,
    pub(super) memory_mb: u32,
    pub(super) max_memory_kb: Option<u64>,
}

/// A process's peak resident set in KiB (`VmHWM` in `/proc/<pid>/status`), on Linux.
pub(super) fn peak_resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Completes when the host shuts down; never if it cannot any more.
pub(super) async fn shut_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Completes with an init error if the process posts one before its first poll; never otherwise.
pub(super) async fn init_failure(slot: &mut Option<oneshot::Receiver<Failure>>) -> Failure {
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
pub(super) struct AbortOnDrop(pub(super) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An error document as Lambda returns it in place of a response.
pub(super) struct Failure {
    pub(super) error_type: String,
    pub(super) payload: Bytes,
}

impl Failure {
    pub(super) fn new(error_type: &str, message: String) -> Self {
        let payload = json!({"errorMessage": message, "errorType": error_type}).to_string();
        Self { error_type: error_type.to_owned(), payload: Bytes::from(payload) }
    }

    /// The process exited, or was killed, with an invocation in flight or before taking it.
    pub(super) fn exited(request_id: &str, status: Option<ExitStatus>) -> Self {
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
    pub(super) fn posted(headers: &HeaderMap, body: &[u8], default_type: &str) -> Self {
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
