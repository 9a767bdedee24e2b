//! The plan: what a hook checks, loaded once at start-up and validated against an embedded JSON Schema.
//!
//! Loading happens in two steps. The JSON document is validated against `schema/plan.schema.json`
//! (embedded below) so every shape error names its JSON pointer; then it is compiled into ready-to-run
//! [`Check`]s: URLs parsed, regexes and response schemas compiled, schema and CA files read. A plan
//! that fails either step is a [`PlanError`], which the hook reports as `Failed` (fail closed).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

pub mod catalog;
pub mod compare;
pub mod parameter;
pub mod select;
pub mod template;
mod traffic;

pub use traffic::{
    Aggregate, AlarmsProbe, DEFAULT_MIN_SAMPLES, Dimension, Direction, Metric, MetricJudge, MetricProbe, MetricQuery,
    MetricStat, Moment, NoData, Window,
};

/// The plan's JSON Schema, as kept in the repository.
pub const PLAN_SCHEMA: &str = include_str!("../schema/plan.schema.json");

/// Inline plan JSON.
pub const PLAN_ENV: &str = "GREENLIGHT_PLAN";
/// Path to a plan file, relative paths resolved against the function's package directory.
pub const PLAN_FILE_ENV: &str = "GREENLIGHT_PLAN_FILE";

/// Time kept back from the Lambda deadline for reporting, unless the plan says otherwise.
pub const DEFAULT_REPORT_RESERVE: Duration = Duration::from_secs(5);
const DEFAULT_WAIT_FOR_GREEN_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that are always redacted, whatever the plan says.
pub const ALWAYS_REDACTED: [&str; 5] = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"];

/// Where a plan comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// Inline JSON (`GREENLIGHT_PLAN`); files it names are relative to the package directory.
    Inline(String),
    /// A plan file; files it names are relative to the plan file's folder.
    File(PathBuf),
}

impl PlanSource {
    /// Reads `GREENLIGHT_PLAN` / `GREENLIGHT_PLAN_FILE`. Exactly one must be set.
    pub fn from_env(package_dir: &Path) -> Result<Self, PlanError> {
        let inline = std::env::var(PLAN_ENV).ok().filter(|v| !v.trim().is_empty());
        let file = std::env::var_os(PLAN_FILE_ENV).filter(|v| !v.is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => Err(PlanError::Ambiguous),
            (Some(json), None) => Ok(Self::Inline(json)),
            (None, Some(path)) => Ok(Self::File(package_dir.join(path))),
            (None, None) => Err(PlanError::Missing),
        }
    }
}

/// The directory a deployed function's files live in: `LAMBDA_TASK_ROOT` on Lambda, else the
/// current directory.
pub fn package_dir() -> PathBuf {
    std::env::var_os("LAMBDA_TASK_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Why a plan cannot be used. Always reported as `Failed`: a gate without a valid plan cannot judge.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Neither variable is set.
    #[error(
        "no plan: set {PLAN_ENV} (inline JSON) or {PLAN_FILE_ENV} (a path), or {} or {} for a plan per deployment",
        catalog::CATALOG_FILE_ENV,
        parameter::PARAMETER_ENV
    )]
    Missing,
    /// Both variables are set, so which one is meant is unclear.
    #[error("both {PLAN_ENV} and {PLAN_FILE_ENV} are set; set only one")]
    Ambiguous,
    /// The plan file cannot be read.
    #[error("cannot read plan file {}: {source}", path.display())]
    Read {
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The plan is not JSON.
    #[error("plan is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The plan is JSON but breaks the schema or a rule the schema cannot express.
    #[error("plan is invalid: {}", PlanIssue::join(.0))]
    Invalid(Vec<PlanIssue>),
    /// The checks' worst case does not fit in the function's memory.
    #[error("{0}")]
    TooBigForMemory(MemoryVerdict),
}

/// The share of the function's memory, in percent, that a plan's checks may hold at once. The rest
/// is the hook itself, TLS and connection buffers, and the allocator's slack.
pub const MEMORY_SHARE_PERCENT: u64 = 50;
/// Lambda's limit on a synchronous invocation's response: what the SDK may buffer for an invoke
/// check, whatever the check's own cap.
pub const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// What a plan's checks may hold in memory at once, in bytes: every check reading one body, and
/// the judging slots each holding a body and its parsed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryNeed {
    /// Bodies being read, one per check at most (only checks that judge a body read one).
    pub reading: u64,
    /// Bodies being judged: the [`crate::checks::judge::JUDGING_SLOTS`] largest judging costs.
    pub judging: u64,
}

impl MemoryNeed {
    /// The worst case.
    pub fn total(&self) -> u64 {
        self.reading + self.judging
    }
}

/// Where the memory figure a plan was measured against came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    /// The memory, in MiB (Lambda's MemorySize "MB" are MiB).
    pub mib: u64,
    /// What set it, for messages: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `--memory-mb`, the machine.
    pub source: &'static str,
}

/// Set by Lambda to the function's MemorySize.
pub const FUNCTION_MEMORY_ENV: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

impl MemoryLimit {
    /// The function's memory from Lambda's environment, else the machine's; `None` when neither
    /// can be read.
    pub fn from_env() -> Option<Self> {
        let function = std::env::var(FUNCTION_MEMORY_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok());
        match function {
            Some(mib) => Some(Self { mib, source: FUNCTION_MEMORY_ENV }),
            None => machine_memory_mib().map(|mib| Self { mib, source: "the machine's memory" }),
        }
    }
}

/// `MemTotal` from `/proc/meminfo`, in MiB.
fn machine_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// A plan refused for memory: what it needs, against what it may have, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryVerdict {
    /// The plan's worst case.
    pub need: MemoryNeed,
    /// The memory it was measured against.
    pub limit: MemoryLimit,
    /// The largest body cap among the checks, in bytes.
    pub largest_cap: u64,
}

impl fmt::Display for MemoryVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |bytes: u64| bytes.div_ceil(MIB);
        let allowed = self.limit.mib * MEMORY_SHARE_PERCENT / 100;
        let needed_memory = (mib(self.need.total()) * 100).div_ceil(MEMORY_SHARE_PERCENT);
        write!(
            f,
            "plan needs too much memory: its checks may hold {} MiB at once ({} MiB of bodies being read, {} MiB \
             for the {} bodies judged at once, parsed at up to {}× their cap), over {MEMORY_SHARE_PERCENT}% of the \
             {} MiB from {} ({allowed} MiB); lower max_body_bytes / max_result_bytes (the largest is {} MiB), \
             judge fewer bodies, or give the function at least {needed_memory} MB",
            mib(self.need.total()),
            mib(self.need.reading),
            mib(self.need.judging),
            crate::checks::judge::JUDGING_SLOTS,
            crate::checks::judge::PARSE_BUDGET_FACTOR,
            self.limit.mib,
            self.limit.source,
            mib(self.largest_cap),
        )
    }
}

impl Plan {
    /// The most memory the checks may hold at once. HTTP checks without a schema never read their
    /// body; invoke checks always judge their result, and the SDK buffers up to Lambda's response
    /// limit before the cap applies.
    pub fn memory_need(&self) -> MemoryNeed {
        let factor = crate::checks::judge::PARSE_BUDGET_FACTOR as u64;
        let mut reading = 0u64;
        let mut judging: Vec<u64> = Vec::new();
        for check in &self.checks {
            let (read, cap) = match &check.probe {
                Probe::Http(http) if check.expect.json_schema.is_some() => (http.max_body_bytes, http.max_body_bytes),
                Probe::Http(_) => continue,
                Probe::Invoke(invoke) => (LAMBDA_RESPONSE_LIMIT, invoke.max_result_bytes),
                // A measurement keeps numbers only: datapoints of a bounded window, not documents.
                Probe::Metric(_) | Probe::Alarms(_) => continue,
                // Two answers (three in values mode), all parsed in one judging.
                Probe::Compare(compare) => {
                    let answers = if matches!(compare.mode, compare::CompareMode::Values { .. }) { 3 } else { 2 };
                    let each = match compare.target {
                        compare::CompareTarget::Invoke { .. } => LAMBDA_RESPONSE_LIMIT,
                        compare::CompareTarget::Http { .. } => compare.max_body_bytes,
                    };
                    (answers * each, answers * compare.max_body_bytes)
                }
            };
            reading += read as u64;
            judging.push(cap as u64 * (1 + factor));
        }
        judging.sort_unstable_by(|a, b| b.cmp(a));
        MemoryNeed { reading, judging: judging.iter().take(crate::checks::judge::JUDGING_SLOTS).sum() }
    }

    fn largest_cap(&self) -> u64 {
        let caps = self.checks.iter().map(|check| match &check.probe {
            Probe::Http(http) => http.max_body_bytes as u64,
            Probe::Invoke(invoke) => invoke.max_result_bytes as u64,
            Probe::Compare(compare) => compare.max_body_bytes as u64,
            Probe::Metric(_) | Probe::Alarms(_) => 0,
        });
        caps.max().unwrap_or(0)
    }

    /// The plan, if its worst case fits in [`MEMORY_SHARE_PERCENT`] of `limit`; else why not.
    /// A plan that could exhaust the function's memory would be killed mid-run with no report,
    /// and so would Lambda's retries: it is refused at load, and every invocation reports Failed.
    /// Where the memory is unknown (no Lambda variable and no `/proc/meminfo`), the plan as it is,
    /// with a warning, since no figure can be compared.
    pub fn fit_memory(self, limit: Option<MemoryLimit>) -> Result<Self, PlanError> {
        let Some(limit) = limit else {
            tracing::warn!("the function's memory is unknown: the plan's memory need was not checked");
            return Ok(self);
        };
        let need = self.memory_need();
        if need.total() <= limit.mib * MIB * MEMORY_SHARE_PERCENT / 100 {
            return Ok(self);
        }
        Err(PlanError::TooBigForMemory(MemoryVerdict { need, largest_cap: self.largest_cap(), limit }))
    }
}

/// One problem in a plan, located by JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanIssue {
    /// JSON pointer into the plan (`""` is the whole document).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl PlanIssue {
    pub(crate) fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into() }
    }

    pub(crate) fn join(issues: &[PlanIssue]) -> String {
        issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

impl fmt::Display for PlanIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "at {pointer}: {}", self.message)
    }
}

/// A validated, compiled plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The checks, in plan order.
    pub checks: Vec<Arc<Check>>,
    /// Log the verdict but never report it.
    pub dry_run: bool,
    /// Time kept back from the Lambda deadline for reporting.
    pub report_reserve: Duration,
    /// Which header values are never shown.
    pub redactor: Redactor,
    /// Extra trusted CA certificates for HTTPS checks.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Explicit wait-for-green choice; `None` means the hook's default.
    pub wait_for_green: Option<bool>,
    /// Poll interval while waiting for green.
    pub wait_for_green_interval: Duration,
    /// What the plan's document is, as a digest of its text: a long gate's state carried between
    /// ECS invocations names it, so a state from another plan is refused.
    pub identity: String,
}

/// One check: what to probe, what to expect, and how to measure.
#[derive(Debug)]
pub struct Check {
    /// Unique name, used in logs.
    pub name: String,
    /// What one measurement does.
    pub probe: Probe,
    /// What a passing measurement looks like.
    pub expect: Expect,
    /// How many measurements, how spaced, how judged.
    pub measurement: Measurement,
    /// Run and log, but leave out of the verdict.
    pub dry_run: bool,
    /// The check as written, when its request uses `${variables}`: what runs is this filled with
    /// the deployment's values, and the rest of this check was compiled from stand-ins.
    pub template: Option<Arc<template::CheckTemplate>>,
}

/// The measurement model, after Argo Rollouts' analysis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Measurements at most.
    pub attempts: u32,
    /// Pause between measurements.
    pub interval: Duration,
    /// Failed measurements tolerated; `None`: as many as still leave room to pass.
    pub failure_limit: Option<u32>,
    /// Passing measurements in a row needed to pass.
    pub consecutive_successes: u32,
    /// Per-measurement timeout.
    pub timeout: Duration,
}

/// What one measurement does.
#[derive(Debug)]
pub enum Probe {
    /// An HTTP request.
    Http(HttpProbe),
    /// A synchronous Lambda invocation.
    Invoke(InvokeProbe),
    /// CloudWatch queries on real traffic, judged.
    Metric(MetricProbe),
    /// CloudWatch alarms that must be quiet.
    Alarms(AlarmsProbe),
    /// The same request to the baseline and the candidate, judged by their difference.
    Compare(compare::CompareProbe),
}

impl Probe {
    /// Whether measuring it calls CloudWatch.
    pub fn uses_cloudwatch(&self) -> bool {
        matches!(self, Self::Metric(_) | Self::Alarms(_))
    }
}

/// An HTTP request to make.
#[derive(Debug)]
pub struct HttpProbe {
    /// Request method.
    pub method: reqwest::Method,
    /// Request URL.
    pub url: reqwest::Url,
    /// Request headers; redacted ones are marked sensitive so they never print.
    pub headers: HeaderMap,
    /// Request body, if any.
    pub body: Option<Vec<u8>>,
    /// Most response bytes read.
    pub max_body_bytes: usize,
}

/// A Lambda function to invoke.
#[derive(Debug)]
pub struct InvokeProbe {
    /// Which function.
    pub function: FunctionRef,
    /// Which version or alias; `None` invokes the function unqualified (`$LATEST`).
    pub qualifier: Option<QualifierRef>,
    /// The payload, serialized.
    pub payload: Vec<u8>,
    /// Largest result judged.
    pub max_result_bytes: usize,
}

/// A function named in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionRef {
    /// The function the deployment shifts traffic for.
    Target,
    /// A function name or ARN as given.
    Named(String),
}

/// A qualifier named in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QualifierRef {
    /// The version being deployed.
    Target,
    /// The version being replaced.
    Current,
    /// The deployment's alias.
    Alias,
    /// A version or alias as given.
    Named(String),
}

/// What a passing measurement looks like.
#[derive(Debug, Default)]
pub struct Expect {
    /// Accepted status codes; `None`: any 2xx.
    pub status: Option<Vec<u16>>,
    /// Response headers that must match.
    pub headers: Vec<(HeaderName, HeaderMatch)>,
    /// Schema the JSON body must satisfy.
    pub json_schema: Option<jsonschema::Validator>,
    /// Latency budget per measurement.
    pub max_latency: Option<Duration>,
    /// Invoke only: whether a function error is what we expect.
    pub function_error: bool,
}

impl Expect {
    /// Whether `status` is accepted.
    pub fn status_ok(&self, status: u16) -> bool {
        match &self.status {
            Some(accepted) => accepted.contains(&status),
            None => (200..300).contains(&status),
        }
    }

    /// The accepted statuses, for messages.
    pub fn status_description(&self) -> String {
        match &self.status {
            Some(accepted) => format!("{accepted:?}"),
            None => "2xx".to_owned(),
        }
    }
}

/// How a response header must match.
#[derive(Debug, Clone)]
pub enum HeaderMatch {
    /// Exactly this value.
    Exact(String),
    /// A value this pattern finds a match in.
    Regex(Regex),
}

impl fmt::Display for HeaderMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(value) => write!(f, "{value:?}"),
            Self::Regex(regex) => write!(f, "/{}/", regex.as_str()),
        }
    }
}

/// Decides which header values may be shown.
#[derive(Debug, Clone)]
pub struct Redactor {
    names: HashSet<HeaderName>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self { names: ALWAYS_REDACTED.iter().map(|n| HeaderName::from_static(n)).collect() }
    }
}

impl Redactor {
    /// Whether values of this header must never be shown.
    pub fn is_redacted(&self, name: &HeaderName) -> bool {
        self.names.contains(name)
    }

    /// A header value as it may be shown.
    pub fn show<'a>(&self, name: &HeaderName, value: &'a str) -> std::borrow::Cow<'a, str> {
        if self.is_redacted(name) { "<redacted>".into() } else { format!("{value:?}").into() }
    }
}

// ---- the document as written -------------------------------------------------------------------

#[derive(Deserialize)]
struct PlanDoc {
    checks: Vec<CheckDoc>,
    #[serde(default)]
    dry_run: bool,
    report_reserve_ms: Option<u64>,
    #[serde(default)]
    redact_headers: Vec<String>,
    ca_bundle_file: Option<PathBuf>,
    wait_for_green: Option<bool>,
    wait_for_green_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
struct CheckDoc {
    name: String,
    http: Option<HttpDoc>,
    invoke: Option<InvokeDoc>,
    metric: Option<traffic::MetricDoc>,
    alarms: Option<traffic::AlarmsDoc>,
    compare: Option<compare::CompareDoc>,
    #[serde(default)]
    expect: ExpectDoc,
    attempts: Option<u32>,
    interval_ms: Option<u64>,
    failure_limit: Option<u32>,
    consecutive_successes: Option<u32>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
struct HttpDoc {
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    body: Option<String>,
    json: Option<Value>,
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize)]
struct InvokeDoc {
    function: Option<String>,
    qualifier: Option<String>,
    payload: Option<Value>,
    max_result_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
struct ExpectDoc {
    status: Option<Vec<u16>>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, HeaderMatchDoc>,
    json_schema: Option<Value>,
    json_schema_file: Option<PathBuf>,
    max_latency_ms: Option<u64>,
    #[serde(default)]
    function_error: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderMatchDoc {
    Exact(String),
    Regex { regex: String },
}

// ---- loading ------------------------------------------------------------------------------------

/// Loads, validates and compiles a plan. `package_dir` anchors relative paths of an inline plan.
pub fn load(source: &PlanSource, package_dir: &Path) -> Result<Plan, PlanError> {
    let (text, base_dir) = match source {
        PlanSource::Inline(json) => (json.clone(), package_dir.to_path_buf()),
        PlanSource::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| PlanError::Read { path: path.clone(), source })?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, dir)
        }
    };
    parse(&text, &base_dir)
}

/// A plan document's identity: the first 16 hex digits of its text's SHA-256.
fn identity_of(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Validates and compiles plan JSON; relative file paths in it resolve against `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Plan, PlanError> {
    let mut document: Value = serde_json::from_str(text).map_err(PlanError::NotJson)?;
    let (templated, mut issues) = template::stand_in(&mut document);
    issues.extend(schema_issues(&document));
    if !issues.is_empty() {
        return Err(PlanError::Invalid(issues));
    }
    // The schema has accepted the document's shape, so this only fails on a schema/struct mismatch.
    let doc: PlanDoc = serde_json::from_value(document).map_err(PlanError::NotJson)?;
    let mut plan = compile(doc, base_dir)?;
    plan.identity = identity_of(text);
    for templated in templated {
        let index = templated.index;
        let template = template::CheckTemplate::new(templated, base_dir.to_path_buf(), plan.redactor.clone());
        // Compiled just now, so this plan holds the only reference.
        if let Some(check) = plan.checks.get_mut(index).and_then(Arc::get_mut) {
            check.template = Some(Arc::new(template));
        }
    }
    Ok(plan)
}

/// Compiles the plan schema now, so the first plan validated later does not wait for it.
pub(crate) fn warm_schema() {
    let _ = plan_validator();
}

/// The compiled plan schema. A broken embedded schema (unit tests rule it out) becomes a plan
/// error rather than a panic at start-up, so even then the hook reports.
fn plan_validator() -> Result<&'static jsonschema::Validator, &'static str> {
    static VALIDATOR: std::sync::OnceLock<Result<jsonschema::Validator, String>> = std::sync::OnceLock::new();
    let compiled = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(PLAN_SCHEMA).map_err(|e| format!("embedded plan schema: {e}"))?;
        jsonschema::validator_for(&schema).map_err(|e| format!("embedded plan schema: {e}"))
    });
    compiled.as_ref().map_err(String::as_str)
}

fn schema_issues(document: &Value) -> Vec<PlanIssue> {
    let validator = match plan_validator() {
        Ok(validator) => validator,
        Err(broken) => return vec![PlanIssue::new("", broken)],
    };
    let mut issues: Vec<PlanIssue> = validator
        .iter_errors(document)
        .map(|error| {
            let pointer = error_pointer(&error);
            PlanIssue::new(pointer.clone(), plan_error_message(&error, &pointer))
        })
        .collect();
    issues.dedup();
    issues
}

/// The pointer an error is about. For a missing property, the pointer of the property itself,
/// so "missing /total_minor_units" reads as what is missing, not as "something at the root".
pub(crate) fn error_pointer(error: &jsonschema::ValidationError<'_>) -> String {
    let base = error.instance_path().as_str().to_owned();
    match error.kind() {
        jsonschema::error::ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("{base}/{}", name.replace('~', "~0").replace('/', "~1")),
            None => base,
        },
        _ => base,
    }
}

fn plan_error_message(error: &jsonschema::ValidationError<'_>, pointer: &str) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let is_check = pointer.strip_prefix("/checks/").is_some_and(|rest| !rest.contains('/'));
    match error.kind() {
        Kind::OneOfNotValid { .. } | Kind::OneOfMultipleValid { .. } if is_check => ONE_PROBE.to_owned(),
        Kind::Not { .. } if pointer.ends_with("/http") => "use \"body\" or \"json\", not both".to_owned(),
        Kind::Not { .. } if pointer.ends_with("/expect") => {
            "use \"json_schema\" or \"json_schema_file\", not both".to_owned()
        }
        Kind::AnyOf { .. } if pointer.ends_with("/alarms") => traffic::NAME_THE_ALARMS.to_owned(),
        Kind::OneOfNotValid { .. } | Kind::OneOfMultipleValid { .. } if pointer.ends_with("/compare") => {
            compare::ONE_TARGET.to_owned()
        }
        Kind::OneOfNotValid { .. } | Kind::OneOfMultipleValid { .. } if pointer.ends_with("/window") => {
            "a window needs exactly one of \"since\" or \"last_ms\"".to_owned()
        }
        Kind::OneOfNotValid { .. } | Kind::OneOfMultipleValid { .. } if pointer.contains("/metric/") => {
            "a query needs exactly one of \"MetricStat\" or \"Expression\"".to_owned()
        }
        Kind::Required { property } => format!("required property {property} is missing"),
        _ => shorten(&error.masked().to_string(), 300),
    }
}

/// What a check without exactly one kind is told.
const ONE_PROBE: &str = "a check needs exactly one of \"http\", \"invoke\", \"metric\", \"alarms\" or \"compare\"";

fn shorten(text: &str, limit: usize) -> String {
    match crate::clip(text, limit) {
        clipped if clipped.len() < text.len() => format!("{clipped}…"),
        _ => text.to_owned(),
    }
}

fn compile(doc: PlanDoc, base_dir: &Path) -> Result<Plan, PlanError> {
    let mut issues = Vec::new();

    let mut redactor = Redactor::default();
    for name in &doc.redact_headers {
        // The schema restricts names to header-token characters, so this parse succeeds.
        if let Ok(name) = HeaderName::try_from(name.as_str()) {
            redactor.names.insert(name);
        }
    }

    let mut extra_roots = Vec::new();
    if let Some(path) = &doc.ca_bundle_file {
        let path = base_dir.join(path);
        match std::fs::read(&path) {
            Err(err) => {
                issues.push(PlanIssue::new("/ca_bundle_file", format!("cannot read {}: {err}", path.display())))
            }
            Ok(pem) => match crate::tls::parse_ca_bundle(&pem) {
                Ok(certs) => extra_roots = certs,
                Err(err) => issues.push(PlanIssue::new("/ca_bundle_file", format!("{}: {err}", path.display()))),
            },
        }
    }

    let mut names = HashSet::new();
    let mut checks = Vec::with_capacity(doc.checks.len());
    for (index, check) in doc.checks.into_iter().enumerate() {
        let at = format!("/checks/{index}");
        if !names.insert(check.name.clone()) {
            issues.push(PlanIssue::new(format!("{at}/name"), format!("duplicate check name {:?}", check.name)));
        }
        if let Some(check) = compile_check(check, &at, base_dir, &redactor, &mut issues) {
            checks.push(Arc::new(check));
        }
    }

    if !issues.is_empty() {
        return Err(PlanError::Invalid(issues));
    }
    Ok(Plan {
        checks,
        dry_run: doc.dry_run,
        report_reserve: doc.report_reserve_ms.map_or(DEFAULT_REPORT_RESERVE, Duration::from_millis),
        redactor,
        extra_roots,
        wait_for_green: doc.wait_for_green,
        wait_for_green_interval: doc
            .wait_for_green_interval_ms
            .map_or(DEFAULT_WAIT_FOR_GREEN_INTERVAL, Duration::from_millis),
        identity: String::new(),
    })
}

fn compile_check(
    doc: CheckDoc,
    at: &str,
    base_dir: &Path,
    redactor: &Redactor,
    issues: &mut Vec<PlanIssue>,
) -> Option<Check> {
    let attempts = doc.attempts.unwrap_or(1);
    let consecutive_successes = doc.consecutive_successes.unwrap_or(1);
    if consecutive_successes > attempts {
        issues.push(PlanIssue::new(
            format!("{at}/consecutive_successes"),
            format!("{consecutive_successes} successes in a row cannot happen in {attempts} attempt(s)"),
        ));
    }
    let measurement = Measurement {
        attempts,
        interval: doc.interval_ms.map_or(DEFAULT_INTERVAL, Duration::from_millis),
        failure_limit: doc.failure_limit,
        consecutive_successes,
        timeout: doc.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
    };

    let traffic_only = |issues: &mut Vec<PlanIssue>, expect: &ExpectDoc| {
        let written = expect.status.is_some()
            || !expect.headers.is_empty()
            || expect.json_schema.is_some()
            || expect.json_schema_file.is_some()
            || expect.max_latency_ms.is_some()
            || expect.function_error;
        if written {
            issues.push(PlanIssue::new(
                format!("{at}/expect"),
                "metric, alarms and compare checks have no response to expect; their judge says what passes",
            ));
        }
    };
    // Metric, alarms and compare checks judge with their own judge, not an `expect`.
    let (probe, own_judge) = match (doc.http, doc.invoke, doc.metric, doc.alarms, doc.compare) {
        (None, None, None, None, Some(compare)) => {
            traffic_only(issues, &doc.expect);
            (compare::compile_compare(compare, &format!("{at}/compare"), issues).map(Probe::Compare), true)
        }
        (None, None, Some(metric), None, None) => {
            traffic_only(issues, &doc.expect);
            (traffic::compile_metric(metric, &format!("{at}/metric"), issues).map(Probe::Metric), true)
        }
        (None, None, None, Some(alarms), None) => {
            traffic_only(issues, &doc.expect);
            (traffic::compile_alarms(alarms, &format!("{at}/alarms"), issues).map(Probe::Alarms), true)
        }
        (Some(http), None, None, None, None) => {
            if doc.expect.function_error {
                issues.push(PlanIssue::new(
                    format!("{at}/expect/function_error"),
                    "only invoke checks have function errors",
                ));
            }
            (compile_http(http, &format!("{at}/http"), redactor, issues).map(Probe::Http), false)
        }
        (None, Some(invoke), None, None, None) => {
            if !doc.expect.headers.is_empty() {
                issues.push(PlanIssue::new(
                    format!("{at}/expect/headers"),
                    "invoke checks have no response headers to match",
                ));
            }
            (Some(Probe::Invoke(compile_invoke(invoke))), false)
        }
        // The schema's oneOf rejects these first; record it anyway so a check is never dropped silently.
        _ => {
            issues.push(PlanIssue::new(at, ONE_PROBE));
            (None, false)
        }
    };
    let probe = probe?;
    let expect = match own_judge {
        true => Expect::default(),
        false => compile_expect(doc.expect, &format!("{at}/expect"), base_dir, issues)?,
    };
    Some(Check { name: doc.name, probe, expect, measurement, dry_run: doc.dry_run, template: None })
}

fn compile_http(doc: HttpDoc, at: &str, redactor: &Redactor, issues: &mut Vec<PlanIssue>) -> Option<HttpProbe> {
    let method = doc.method.as_deref().unwrap_or("GET");
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
        issues.push(PlanIssue::new(format!("{at}/method"), format!("not an HTTP method: {method:?}")));
        return None;
    };
    let url = match reqwest::Url::parse(&doc.url) {
        Ok(url) => url,
        Err(err) => {
            issues.push(PlanIssue::new(format!("{at}/url"), format!("not a URL: {err}")));
            return None;
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &doc.headers {
        let pointer = format!("{at}/headers/{name}");
        let (Ok(name), Ok(mut value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        else {
            issues.push(PlanIssue::new(pointer, "not a valid header value"));
            continue;
        };
        value.set_sensitive(redactor.is_redacted(&name));
        headers.insert(name, value);
    }
    let body = match (doc.body, doc.json) {
        (Some(body), _) => Some(body.into_bytes()),
        (None, Some(json)) => {
            headers.entry(reqwest::header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
            Some(json.to_string().into_bytes())
        }
        (None, None) => None,
    };
    Some(HttpProbe { method, url, headers, body, max_body_bytes: doc.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES) })
}

fn compile_invoke(doc: InvokeDoc) -> InvokeProbe {
    let function = match doc.function.as_deref() {
        None | Some("target") => FunctionRef::Target,
        Some(name) => FunctionRef::Named(name.to_owned()),
    };
    // Without a qualifier, the deployed function means its target version; any other function is
    // invoked as named, since the deployment's versions are not its versions.
    let qualifier = match doc.qualifier.as_deref() {
        None if function == FunctionRef::Target => Some(QualifierRef::Target),
        None => None,
        Some("target") => Some(QualifierRef::Target),
        Some("current") => Some(QualifierRef::Current),
        Some("alias") => Some(QualifierRef::Alias),
        Some(other) => Some(QualifierRef::Named(other.to_owned())),
    };
    let payload = doc.payload.unwrap_or_else(|| Value::Object(Default::default())).to_string().into_bytes();
    InvokeProbe {
        function,
        qualifier,
        payload,
        max_result_bytes: doc.max_result_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
    }
}

fn compile_expect(doc: ExpectDoc, at: &str, base_dir: &Path, issues: &mut Vec<PlanIssue>) -> Option<Expect> {
    let mut ok = true;
    let mut headers = Vec::new();
    for (name, matcher) in doc.headers {
        let pointer = format!("{at}/headers/{name}");
        let Ok(header) = HeaderName::try_from(name.as_str()) else {
            issues.push(PlanIssue::new(pointer, "not a valid header name"));
            ok = false;
            continue;
        };
        let matcher = match matcher {
            HeaderMatchDoc::Exact(value) => HeaderMatch::Exact(value),
            HeaderMatchDoc::Regex { regex } => match Regex::new(&regex) {
                Ok(regex) => HeaderMatch::Regex(regex),
                Err(err) => {
                    issues.push(PlanIssue::new(format!("{pointer}/regex"), format!("bad regex: {err}")));
                    ok = false;
                    continue;
                }
            },
        };
        headers.push((header, matcher));
    }

    let schema = match (doc.json_schema, doc.json_schema_file) {
        (Some(schema), _) => Some((schema, format!("{at}/json_schema"))),
        (None, Some(path)) => {
            let pointer = format!("{at}/json_schema_file");
            let path = base_dir.join(path);
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| format!("not JSON: {e}")))
            {
                Ok(schema) => Some((schema, pointer)),
                Err(err) => {
                    issues.push(PlanIssue::new(pointer, format!("cannot load {}: {err}", path.display())));
                    ok = false;
                    None
                }
            }
        }
        (None, None) => None,
    };
    let json_schema = match schema {
        None => None,
        // Patterns in a response schema run against bodies the target controls: the linear-time
        // engine keeps a hostile body from making them backtrack for minutes. A pattern it
        // cannot compile (look-around, back-references) fails the plan here, not a run later.
        Some((schema, pointer)) => {
            match jsonschema::options().with_pattern_options(jsonschema::PatternOptions::regex()).build(&schema) {
                Ok(validator) => Some(validator),
                Err(err) => {
                    issues.push(PlanIssue::new(
                        pointer,
                        format!("not a usable JSON Schema: {}", shorten(&err.to_string(), 300)),
                    ));
                    ok = false;
                    None
                }
            }
        }
    };

    ok.then(|| Expect {
        status: doc.status,
        headers,
        json_schema,
        max_latency: doc.max_latency_ms.map(Duration::from_millis),
        function_error: doc.function_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> Vec<PlanIssue> {
        match parse(text, Path::new(".")) {
            Err(PlanError::Invalid(issues)) => issues,
            other => panic!("expected an invalid plan, got {other:?}"),
        }
    }

    #[test]
    fn embedded_schema_compiles() {
        assert!(plan_validator().is_ok(), "{:?}", plan_validator().err());
    }

    #[test]
    fn the_issue_example_plan_is_valid() {
        let plan = parse(
            r#"{"checks": [
              {"name": "cart contract",
               "http": {"method": "GET", "url": "http://127.0.0.1:8443/v2/cart", "headers": {"accept": "application/json"}},
               "expect": {"status": [200], "headers": {"x-app-version": "47"}, "json_schema": {"type": "object"}, "max_latency_ms": 500},
               "attempts": 3, "interval_ms": 500, "timeout_ms": 2000},
              {"name": "new version answers",
               "invoke": {"function": "target", "qualifier": "target", "payload": {"path": "/v2/cart"}},
               "expect": {"function_error": false, "json_schema": {"type": "object"}}}
            ]}"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.checks.len(), 2);
        assert_eq!(plan.checks[0].measurement.attempts, 3);
        assert!(matches!(plan.checks[1].probe, Probe::Invoke(InvokeProbe { function: FunctionRef::Target, .. })));
    }

    #[test]
    fn wrong_type_names_its_pointer() {
        let issues = invalid(r#"{"checks": [{"name": "a", "http": {"url": "http://x"}, "attempts": "3"}]}"#);
        assert_eq!(issues[0].pointer, "/checks/0/attempts", "{issues:?}");
    }

    #[test]
    fn missing_url_names_the_missing_property() {
        let issues = invalid(r#"{"checks": [{"name": "a", "http": {}}]}"#);
        assert!(issues.iter().any(|i| i.pointer == "/checks/0/http/url"), "{issues:?}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let issues = invalid(r#"{"checks": [], "chekcs": []}"#);
        assert_eq!(issues[0].pointer, "", "{issues:?}");
        assert!(issues[0].message.contains("chekcs"), "{issues:?}");
    }

    #[test]
    fn a_check_needs_exactly_one_probe() {
        let issues = invalid(r#"{"checks": [{"name": "a"}]}"#);
        assert!(issues.iter().any(|i| i.pointer == "/checks/0" && i.message.contains("exactly one")), "{issues:?}");
        let issues = invalid(r#"{"checks": [{"name": "a", "http": {"url": "http://x"}, "invoke": {}}]}"#);
        assert!(issues.iter().any(|i| i.pointer == "/checks/0"), "{issues:?}");
    }

    #[test]
    fn semantic_rules_name_their_pointer() {
        let issues = invalid(
            r#"{"checks": [
              {"name": "a", "http": {"url": "http://x"}, "attempts": 2, "consecutive_successes": 3},
              {"name": "a", "http": {"url": "http://x"}, "expect": {"headers": {"x": {"regex": "("}}}},
              {"name": "c", "http": {"url": "http://x"}, "expect": {"json_schema": {"type": "nope"}}},
              {"name": "d", "invoke": {}, "expect": {"headers": {"x": "1"}}}
            ]}"#,
        );
        let pointers: Vec<&str> = issues.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/checks/0/consecutive_successes",
                "/checks/1/name",
                "/checks/1/expect/headers/x/regex",
                "/checks/2/expect/json_schema",
                "/checks/3/expect/headers"
            ]
        );
    }

    #[test]
    fn missing_schema_file_is_an_issue_not_a_crash() {
        let issues = invalid(
            r#"{"checks": [{"name": "a", "http": {"url": "http://x"}, "expect": {"json_schema_file": "nope.json"}}]}"#,
        );
        assert_eq!(issues[0].pointer, "/checks/0/expect/json_schema_file");
    }

    #[test]
    fn redacted_request_headers_are_marked_sensitive() {
        let plan = parse(
            r#"{"redact_headers": ["x-token"], "checks": [{"name": "a", "http": {"url": "http://x", "headers": {"x-token": "s3cret", "authorization": "Bearer t", "accept": "*/*"}}}]}"#,
            Path::new("."),
        )
        .unwrap();
        let Probe::Http(http) = &plan.checks[0].probe else { unreachable!() };
        assert!(http.headers["x-token"].is_sensitive());
        assert!(http.headers["authorization"].is_sensitive());
        assert!(!http.headers["accept"].is_sensitive());
        assert!(!format!("{plan:?}").contains("s3cret"));
    }

    #[test]
    fn defaults_follow_the_readme() {
        let plan = parse(r#"{"checks": [{"name": "a", "http": {"url": "http://x"}}]}"#, Path::new(".")).unwrap();
        let check = &plan.checks[0];
        assert_eq!(
            check.measurement,
            Measurement {
                attempts: 1,
                interval: Duration::from_secs(1),
                failure_limit: None,
                consecutive_successes: 1,
                timeout: Duration::from_secs(5)
            }
        );
        assert!(check.expect.status_ok(204) && !check.expect.status_ok(301));
        assert_eq!(plan.report_reserve, Duration::from_secs(5));
    }

    fn schema_checks(count: usize, max_body_bytes: usize) -> Plan {
        let checks: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"name": "c{i}", "http": {{"url": "http://x", "max_body_bytes": {max_body_bytes}}}, "expect": {{"json_schema": {{}}}}}}"#
                )
            })
            .collect();
        parse(&format!(r#"{{"checks": [{}]}}"#, checks.join(",")), Path::new(".")).unwrap()
    }

    const SMALL_LAMBDA: MemoryLimit = MemoryLimit { mib: 128, source: FUNCTION_MEMORY_ENV };

    #[test]
    fn default_caps_fit_the_smallest_lambda() {
        let plan = schema_checks(10, DEFAULT_MAX_BODY_BYTES);
        let need = plan.memory_need();
        assert_eq!(need.reading, 10 * MIB);
        assert_eq!(need.judging, 2 * 17 * MIB, "two slots, each a body and its 16× parse");
        assert!(plan.fit_memory(Some(SMALL_LAMBDA)).is_ok());
    }

    #[test]
    fn checks_without_a_schema_read_no_body() {
        let plan = parse(
            r#"{"checks": [{"name": "a", "http": {"url": "http://x", "max_body_bytes": 67108864}}]}"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.memory_need().total(), 0);
    }

    #[test]
    fn invoke_checks_count_lambdas_response_limit_while_reading() {
        let plan =
            parse(r#"{"checks": [{"name": "a", "invoke": {"max_result_bytes": 1024}}]}"#, Path::new(".")).unwrap();
        assert_eq!(plan.memory_need(), MemoryNeed { reading: LAMBDA_RESPONSE_LIMIT as u64, judging: 17 * 1024 });
    }

    #[test]
    fn a_plan_over_its_memory_share_is_refused_with_the_numbers() {
        let limit = MemoryLimit { mib: 256, source: FUNCTION_MEMORY_ENV };
        let err = schema_checks(4, 60 * MIB as usize).fit_memory(Some(limit)).unwrap_err().to_string();
        assert!(err.contains("may hold 2280 MiB at once"), "{err}");
        assert!(err.contains("240 MiB of bodies being read"), "{err}");
        assert!(err.contains("over 50% of the 256 MiB from AWS_LAMBDA_FUNCTION_MEMORY_SIZE (128 MiB)"), "{err}");
        assert!(err.contains("the largest is 60 MiB"), "{err}");
        assert!(err.contains("at least 4560 MB"), "{err}");
    }

    #[test]
    fn response_schema_patterns_must_compile_for_the_linear_time_engine() {
        let issues = invalid(
            r#"{"checks": [{"name": "a", "http": {"url": "http://x"}, "expect": {"json_schema": {"properties": {"id": {"pattern": "^(?!tmp-)"}}}}}]}"#,
        );
        assert_eq!(issues[0].pointer, "/checks/0/expect/json_schema", "{issues:?}");
        let plan = parse(
            r#"{"checks": [{"name": "a", "http": {"url": "http://x"}, "expect": {"json_schema": {"properties": {"id": {"pattern": "^(a+)+$"}}}}}]}"#,
            Path::new("."),
        )
        .unwrap();
        let schema = plan.checks[0].expect.json_schema.as_ref().unwrap();
        // Catastrophic for a backtracking engine; instant for a linear one.
        let hostile = serde_json::json!({"id": format!("{}!", "a".repeat(100_000))});
        assert!(!schema.is_valid(&hostile));
    }
}
