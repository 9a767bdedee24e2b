//! Checks whose requests use `${variables}`, such as `"url": "${test_url}/health"`, so one plan
//! serves every service of a fleet.
//!
//! At load, every string of a check's `http`, `invoke`, `alarms` and `compare` is scanned: an unknown
//! variable makes the plan invalid at its pointer, and a known one is replaced by a value of its
//! form ([`crate::variables::example`]), so the rest of the check is validated and compiled as
//! usual. When the check runs, the check as written is filled with the deployment's values and
//! compiled again ([`CheckTemplate::fill`]). Metric checks fill their queries themselves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::{Check, CheckDoc, PlanIssue, Redactor};
use crate::variables;

/// The parts of a check whose strings may hold variables.
const TEMPLATED: [&str; 4] = ["http", "invoke", "alarms", "compare"];

/// A check as written, with the variables it uses.
#[derive(Debug)]
pub struct CheckTemplate {
    doc: Value,
    at: String,
    base_dir: PathBuf,
    redactor: Redactor,
    /// The variables it uses, each once.
    pub variables: Vec<String>,
}

/// A check of the document that uses variables: its index, the check as written, the variables.
pub(super) struct Templated {
    pub index: usize,
    pub doc: Value,
    pub variables: Vec<String>,
}

/// Replaces the variables in `document`'s checks with stand-ins. Returns the checks that use any,
/// as written, and an issue for every string with an unknown or unterminated variable.
pub(super) fn stand_in(document: &mut Value) -> (Vec<Templated>, Vec<PlanIssue>) {
    let mut templated = Vec::new();
    let mut issues = Vec::new();
    let Some(checks) = document.get_mut("checks").and_then(Value::as_array_mut) else {
        return (templated, issues);
    };
    for (index, check) in checks.iter_mut().enumerate() {
        // A compare check of a path compares the production listener with the test listener
        // unless it names its own base URLs: variables, written in before the scan.
        if let Some(compare) = check.get_mut("compare").and_then(Value::as_object_mut)
            && compare.contains_key("path")
        {
            for (field, default) in super::compare::DEFAULT_URLS {
                compare.entry(field).or_insert_with(|| Value::String(default.to_owned()));
            }
        }
        let written = check.clone();
        let mut used = Vec::new();
        for part in TEMPLATED {
            if let Some(value) = check.get_mut(part) {
                walk(value, &format!("/checks/{index}/{part}"), &mut used, &mut issues);
            }
        }
        if !used.is_empty() {
            templated.push(Templated { index, doc: written, variables: used });
        }
    }
    (templated, issues)
}

fn walk(value: &mut Value, at: &str, used: &mut Vec<String>, issues: &mut Vec<PlanIssue>) {
    match value {
        Value::String(text) => match variables::used_in(text) {
            Err(err) => issues.push(PlanIssue::new(at, err.to_string())),
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                for name in names {
                    if !used.iter().any(|u| u == name) {
                        used.push(name.to_owned());
                    }
                }
                let stood_in = variables::fill(text, |name| variables::example(name).map(str::to_owned).ok_or(()));
                if let Ok(stood_in) = stood_in {
                    *text = stood_in;
                }
            }
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &format!("{at}/{i}"), used, issues);
            }
        }
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                walk(member, &format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), used, issues);
            }
        }
        _ => {}
    }
}

impl CheckTemplate {
    pub(super) fn new(templated: Templated, base_dir: PathBuf, redactor: Redactor) -> Self {
        Self {
            at: format!("/checks/{}", templated.index),
            doc: templated.doc,
            base_dir,
            redactor,
            variables: templated.variables,
        }
    }

    /// The check as written with `values` filled in, compiled. An error says which part the
    /// deployment's values made invalid.
    pub fn fill(&self, values: &BTreeMap<String, String>) -> Result<Check, String> {
        let mut doc = self.doc.clone();
        for part in TEMPLATED {
            if let Some(value) = doc.get_mut(part) {
                fill_strings(value, values);
            }
        }
        let check: CheckDoc = serde_json::from_value(doc)
            .map_err(|err| format!("with this deployment's values the check is not valid: {err}"))?;
        let mut issues = Vec::new();
        match super::compile_check(check, &self.at, &self.base_dir, &self.redactor, &mut issues) {
            Some(check) if issues.is_empty() => Ok(check),
            _ => Err(format!("with this deployment's values the check is not valid: {}", PlanIssue::join(&issues))),
        }
    }
}

fn fill_strings(value: &mut Value, values: &BTreeMap<String, String>) {
    match value {
        Value::String(text) => {
            let filled = variables::fill(text, |name| values.get(name).cloned().ok_or(()));
            if let Ok(filled) = filled {
                *text = filled;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill_strings(item, values)),
        Value::Object(members) => members.values_mut().for_each(|member| fill_strings(member, values)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{Probe, parse};

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_request_with_variables_is_checked_with_stand_ins_and_run_with_the_deployments_values() {
        let plan = parse(
            r#"{"checks":[
                {"name":"health","http":{"url":"${test_url}/health?d=${deployment_id}","headers":{"x-service":"${service}"}}},
                {"name":"plain","http":{"url":"http://127.0.0.1:9/"}}]}"#,
            Path::new("."),
        )
        .unwrap();
        let template = plan.checks[0].template.as_ref().expect("the templated check keeps its template");
        let mut used = template.variables.clone();
        used.sort();
        assert_eq!(used, ["deployment_id", "service", "test_url"]);
        assert!(plan.checks[1].template.is_none());
        let filled = template
            .fill(&values(&[("test_url", "http://lb.local:8080"), ("deployment_id", "d-1"), ("service", "cart")]))
            .unwrap();
        let Probe::Http(http) = &filled.probe else { panic!("an http check") };
        assert_eq!(http.url.as_str(), "http://lb.local:8080/health?d=d-1");
        assert_eq!(http.headers["x-service"], "cart");
        assert!(filled.template.is_none());
    }

    #[test]
    fn an_unknown_variable_is_invalid_at_its_pointer() {
        let err = parse(
            r#"{"checks":[{"name":"a","http":{"url":"${test_ur}/health","headers":{"a/b":"${service"}}}]}"#,
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("at /checks/0/http/url: unknown variable ${test_ur}; the variables are"), "{err}");
        assert!(err.contains("at /checks/0/http/headers/a~1b: \"${\" without a closing \"}\""), "{err}");
    }

    #[test]
    fn values_that_break_the_check_say_so() {
        let plan = parse(r#"{"checks":[{"name":"a","http":{"url":"${test_url}/health"}}]}"#, Path::new(".")).unwrap();
        let err = plan.checks[0].template.as_ref().unwrap().fill(&values(&[("test_url", "not a url")])).unwrap_err();
        assert!(
            err.starts_with("with this deployment's values the check is not valid: at /checks/0/http/url: not a URL"),
            "{err}"
        );
    }
}
