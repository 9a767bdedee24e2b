//! A function's log: its output, line by line, with Lambda's `START`/`END`/`REPORT` lines, to a
//! file and to the tail `LogType: Tail` returns.

use super::*;

/// A process's output: the tail of the invocation in progress, and the function's log file.
pub(super) struct ProcessLog {
    pub(super) state: Mutex<LogState>,
    pub(super) written: Notify,
}

pub(super) struct LogState {
    /// Everything since the last invocation ended, trimmed to what a tail can show.
    pub(super) tail: String,
    pub(super) file: Option<std::fs::File>,
}

impl ProcessLog {
    pub(super) fn open(dir: Option<&PathBuf>, function_name: &str) -> Self {
        let file = dir.and_then(|dir| {
            let path = dir.join(format!("{function_name}.log"));
            let opened = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
            opened.map_err(|error| tracing::warn!(path = %path.display(), %error, "cannot open the function log")).ok()
        });
        Self { state: Mutex::new(LogState { tail: String::new(), file }), written: Notify::new() }
    }

    pub(super) fn line(&self, line: &str) {
        let mut state = lock(&self.state);
        state.tail.push_str(line);
        state.tail.push('\n');
        if state.tail.len() > 2 * LOG_TAIL_BYTES {
            keep_last(&mut state.tail, LOG_TAIL_BYTES);
        }
        // One write per line: every process of the function appends to the same file, and a
        // line written in two pieces (text, then newline) can have another process's line
        // land between them.
        let written = state.file.as_mut().map(|file| file.write_all(format!("{line}\n").as_bytes()));
        if let Some(Err(error)) = written {
            tracing::warn!(%error, "cannot write the function log; no longer writing it");
            state.file = None;
        }
        drop(state);
        self.written.notify_waiters();
    }

    /// The lines Lambda writes itself when an environment fails: the message, then the type.
    pub(super) fn failure(&self, failure: &Failure) {
        let document = serde_json::from_slice::<Value>(&failure.payload).unwrap_or_default();
        if let Some(message) = document.get("errorMessage").and_then(Value::as_str) {
            self.line(message);
        }
        self.line(&failure.error_type);
    }

    pub(super) fn report(&self, request_id: &str, usage: &Usage, error_type: Option<&str>) {
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
    pub(super) async fn settle(&self) {
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

    pub(super) fn take_tail(&self) -> String {
        let mut tail = std::mem::take(&mut lock(&self.state).tail);
        keep_last(&mut tail, LOG_TAIL_BYTES);
        tail
    }
}

pub(super) fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// Copies a process's stdout or stderr into its log, line by line, until the pipe closes.
pub(super) async fn forward_lines(stream: impl AsyncRead + Unpin, log: Arc<ProcessLog>) {
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
pub(super) fn keep_last(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut cut = text.len() - limit;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
}

/// RFC 3339 in UTC with milliseconds, as Lambda stamps its own log lines.
pub(super) fn rfc3339_millis(time: SystemTime) -> String {
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
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
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
