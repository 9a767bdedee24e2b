//! CloudWatch metrics from Lambda mode, as CloudWatch Embedded Metric Format (EMF) documents:
//! JSON log lines on stdout from which CloudWatch Logs extracts metrics, with no API call and no
//! permission beyond the logs Lambda already writes.
//!
//! Namespace `greenlight`. Each run prints, in one write, one document per check (dimensions
//! `hook` and `check`: `CheckLatency` in milliseconds, `CheckPassed` 0 or 1) and then one for the
//! run (dimension `hook`: `Succeeded` 0 or 1, `RunDuration` in milliseconds, `ReportFailed` 0 or
//! 1). A check is a document of its own because EMF takes a dimension's value from the document's
//! one member of that name, so one document can carry one `check` value only.
//!
//! On by default; `GREENLIGHT_METRICS=off` (or `false`, `0`, `no`) turns it off.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Value, json};
use tracing::warn;

use crate::gate::RunOutcome;
use crate::report::ReportOutcome;
use crate::verdict::Status;

/// Set to `off` (or `false`, `0`, `no`) to print no metrics.
pub const METRICS_ENV: &str = "GREENLIGHT_METRICS";
/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "greenlight";

/// CloudWatch takes dimension values of at most this many characters.
const MAX_DIMENSION_VALUE: usize = 1024;

/// Whether metrics are on: unless [`METRICS_ENV`] turns them off.
pub fn enabled() -> bool {
    std::env::var(METRICS_ENV)
        .map_or(true, |v| !matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "false" | "0" | "no"))
}

/// Prints the run's metrics to stdout, where Lambda sends them to CloudWatch Logs, unless they are
/// turned off.
pub fn print(outcome: &RunOutcome) {
    if !enabled() {
        return;
    }
    let timestamp_ms = crate::runner::epoch_ms(SystemTime::now());
    let mut lines = String::new();
    for document in documents(outcome, timestamp_ms) {
        lines.push_str(&document.to_string());
        lines.push('\n');
    }
    // One locked write: the log lines of concurrent tasks cannot land between, or inside, them.
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(lines.as_bytes()).and_then(|()| stdout.flush()) {
        warn!(error = %err, "cannot print the run's metrics");
    }
}

/// The EMF documents of one run: one per check, then the run's.
fn documents(outcome: &RunOutcome, timestamp_ms: u64) -> Vec<Value> {
    let hook = outcome.hook;
    let mut documents = Vec::with_capacity(outcome.verdict.checks.len() + 1);
    for check in &outcome.verdict.checks {
        let mut metrics = vec![("CheckPassed", "Count", json!(u8::from(check.passed)))];
        // A check abandoned before its first measurement has no latency; a made-up one would skew it.
        if let Some(latency) = check.latency_ms {
            metrics.push(("CheckLatency", "Milliseconds", json!(latency)));
        }
        let members = json!({
            "hook": hook,
            "check": dimension_value(&check.name),
            "deployment_id": outcome.deployment_id,
            "dry_run": check.dry_run,
        });
        documents.push(document(timestamp_ms, &["hook", "check"], &metrics, members));
    }
    let metrics = [
        ("Succeeded", "Count", json!(u8::from(outcome.verdict.status == Status::Succeeded))),
        ("RunDuration", "Milliseconds", json!(outcome.duration_ms)),
        ("ReportFailed", "Count", json!(u8::from(outcome.report == ReportOutcome::NotDelivered))),
    ];
    let members = json!({
        "hook": hook,
        "deployment_id": outcome.deployment_id,
        "verdict": outcome.verdict.status.as_str(),
        "report": outcome.report,
    });
    documents.push(document(timestamp_ms, &["hook"], &metrics, members));
    documents
}

/// One EMF document: the `_aws` metadata naming `metrics` under one dimension set, with the metric
/// values and `members` (the dimension values and context) at the top level.
fn document(timestamp_ms: u64, dimensions: &[&str], metrics: &[(&str, &str, Value)], members: Value) -> Value {
    let definitions: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions}],
        },
    });
    if let (Some(root), Value::Object(members)) = (document.as_object_mut(), members) {
        root.extend(members);
        for (name, _, value) in metrics {
            root.insert((*name).to_owned(), value.clone());
        }
    }
    document
}

/// A check name as a CloudWatch dimension value, which must be printable ASCII, not all
/// whitespace, and at most 1024 characters: other characters are written as Rust-style
/// `\u{…}` escapes, so each name stays recognisable and distinct.
fn dimension_value(name: &str) -> String {
    let printable = |c: char| c.is_ascii_graphic() || c == ' ';
    let mut value = String::with_capacity(name.len());
    for c in name.chars() {
        if printable(c) {
            value.push(c);
        } else {
            value.extend(c.escape_unicode());
        }
    }
    if value.trim().is_empty() {
        value = name.chars().flat_map(char::escape_unicode).collect();
    }
    crate::clip(&value, MAX_DIMENSION_VALUE).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::CheckResult;
    use crate::verdict::Verdict;

    fn outcome(checks: Vec<CheckResult>) -> RunOutcome {
        RunOutcome {
            hook: "pre-traffic",
            deployment_id: "d-TEST00001".into(),
            verdict: Verdict::from_checks(checks, false, None),
            report: ReportOutcome::Accepted,
            report_error: None,
            duration_ms: 42,
            answer: None,
        }
    }

    fn check(name: &str, passed: bool, latency_ms: Option<u64>) -> CheckResult {
        CheckResult { name: name.into(), passed, dry_run: false, attempts: 1, latency_ms, reason: None }
    }

    #[test]
    fn each_check_is_a_document_and_the_run_comes_last() {
        let docs = documents(&outcome(vec![check("a", true, Some(7)), check("b", false, None)]), 1_800_000_000_000);
        assert_eq!(docs.len(), 3);
        assert_eq!((docs[0]["check"].as_str(), docs[0]["CheckLatency"].as_u64()), (Some("a"), Some(7)));
        assert_eq!(docs[1]["CheckPassed"], 0);
        assert!(docs[1].get("CheckLatency").is_none(), "never measured, so no latency: {}", docs[1]);
        let names: Vec<&str> = docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["CheckPassed"]);
        assert_eq!(docs[2]["Succeeded"], 0);
        assert_eq!(docs[2]["RunDuration"], 42);
        assert_eq!(docs[2]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["hook"]]));
        assert_eq!(docs[2]["_aws"]["Timestamp"], 1_800_000_000_000u64);
    }

    #[test]
    fn dimension_values_are_printable_ascii() {
        assert_eq!(dimension_value("cart contract"), "cart contract");
        assert_eq!(dimension_value("café\tok"), "caf\\u{e9}\\u{9}ok");
        assert_eq!(dimension_value("  "), "\\u{20}\\u{20}");
        assert_eq!(dimension_value(&"é".repeat(200)).len(), MAX_DIMENSION_VALUE);
    }
}
