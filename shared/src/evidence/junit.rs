//! JUnit XML, the format CI systems show as test results: one `<testsuite>` named after the hook,
//! one `<testcase>` per check (`classname` = the hook), failed counted checks as `<failure>` with
//! their reason, dry-run checks as `<skipped>` with what they would have said.
//!
//! A run can fail where no check shows it: a bad plan, a discovery error, a deadline, nothing
//! judged, a report that did not land. Then one more test case, [`VERDICT_CASE`], fails with the
//! reason, so a CI job never shows a gate that could not judge as green.

use std::borrow::Cow;
use std::io::{self, Write};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use crate::gate::RunOutcome;
use crate::report::ReportOutcome;
use crate::runner::CheckResult;
use crate::verdict::Status;

/// The name of the test case that carries a failure no check's test case shows.
pub const VERDICT_CASE: &str = "(verdict)";

/// Writes the JUnit document of a run.
pub fn write_outcome(outcome: &RunOutcome, out: impl Write) -> io::Result<()> {
    let mut cases: Vec<Case> = outcome.verdict.checks.iter().map(Case::of_check).collect();
    if let Some(reason) = unshown_failure(outcome) {
        cases.push(Case { name: VERDICT_CASE, millis: Some(outcome.duration_ms), result: CaseResult::Failed(reason) });
    }
    let properties = [
        ("deployment_id", outcome.deployment_id.as_str()),
        ("verdict", outcome.verdict.status.as_str()),
        ("reason", outcome.verdict.reason.as_str()),
        ("report", outcome.report.as_str()),
    ];
    write_suite(outcome.hook, &properties, &cases, outcome.duration_ms, out)
}

/// Writes the JUnit document of a run that stopped before the gate could judge anything (an
/// event that cannot be read): the verdict test case alone, failed with `reason`.
pub fn write_not_judged(hook: &str, reason: &str, out: impl Write) -> io::Result<()> {
    let cases = [Case { name: VERDICT_CASE, millis: None, result: CaseResult::Failed(reason.to_owned()) }];
    write_suite(hook, &[], &cases, 0, out)
}

/// Why the run failed, when no check's test case already says so; and a report that did not
/// land, which no check can show.
fn unshown_failure(outcome: &RunOutcome) -> Option<String> {
    let mut reasons = Vec::new();
    let failed_check_shown = outcome.verdict.checks.iter().any(CheckResult::counts_as_failure);
    if outcome.verdict.status == Status::Failed && !failed_check_shown {
        reasons.push(format!("Failed: {}", outcome.verdict.reason));
    }
    match &outcome.report_error {
        Some(err) => reasons.push(format!("report not delivered: {err}")),
        None if outcome.report == ReportOutcome::NotDelivered => reasons.push("report not delivered".to_owned()),
        None => {}
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

struct Case<'a> {
    name: &'a str,
    millis: Option<u64>,
    result: CaseResult,
}

enum CaseResult {
    Passed,
    Failed(String),
    Skipped(String),
}

impl<'a> Case<'a> {
    fn of_check(check: &'a CheckResult) -> Self {
        let reason = check.reason.as_deref().unwrap_or("");
        let result = match (check.dry_run, check.passed) {
            (true, true) => CaseResult::Skipped("dry run: passed".to_owned()),
            (true, false) => CaseResult::Skipped(format!("dry run: failed: {reason}")),
            (false, true) => CaseResult::Passed,
            (false, false) => CaseResult::Failed(reason.to_owned()),
        };
        Self { name: &check.name, millis: check.latency_ms, result }
    }
}

fn write_suite(
    hook: &str,
    properties: &[(&str, &str)],
    cases: &[Case],
    millis: u64,
    out: impl Write,
) -> io::Result<()> {
    let count = |wanted: fn(&CaseResult) -> bool| cases.iter().filter(|c| wanted(&c.result)).count().to_string();
    let tests = cases.len().to_string();
    let failures = count(|r| matches!(r, CaseResult::Failed(_)));
    let skipped = count(|r| matches!(r, CaseResult::Skipped(_)));
    let time = seconds(Some(millis));
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    let hook = xml_safe(hook);

    let mut writer = Writer::new_with_indent(out, b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer
        .create_element("testsuites")
        .with_attribute(("name", "greenlight"))
        .with_attributes(counts)
        .write_inner_content(|writer| {
            writer
                .create_element("testsuite")
                .with_attribute(("name", hook.as_ref()))
                .with_attributes(counts)
                .write_inner_content(|writer| {
                    if !properties.is_empty() {
                        writer.create_element("properties").write_inner_content(|writer| {
                            for (name, value) in properties {
                                writer
                                    .create_element("property")
                                    .with_attribute(("name", *name))
                                    .with_attribute(("value", xml_safe(value)))
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                    }
                    for case in cases {
                        write_case(writer, &hook, case)?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut out = writer.into_inner();
    out.write_all(b"\n")?;
    out.flush()
}

fn write_case<W: Write>(writer: &mut Writer<W>, hook: &str, case: &Case) -> io::Result<()> {
    let time = seconds(case.millis);
    let element = writer
        .create_element("testcase")
        .with_attribute(("classname", hook))
        .with_attribute(("name", xml_safe(case.name)))
        .with_attribute(("time", time.as_str()));
    match &case.result {
        CaseResult::Passed => element.write_empty().map(|_| ()),
        CaseResult::Failed(reason) => element
            .write_inner_content(|writer| {
                let reason = xml_safe(reason);
                writer
                    .create_element("failure")
                    .with_attribute(("message", reason.as_ref()))
                    .write_text_content(BytesText::new(&reason))?;
                Ok(())
            })
            .map(|_| ()),
        CaseResult::Skipped(message) => element
            .write_inner_content(|writer| {
                writer.create_element("skipped").with_attribute(("message", xml_safe(message))).write_empty()?;
                Ok(())
            })
            .map(|_| ()),
    }
}

/// JUnit's `time`: seconds, to the millisecond. A check that was never measured took no time.
fn seconds(millis: Option<u64>) -> String {
    let millis = millis.unwrap_or(0);
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// `text` with the characters XML 1.0 cannot carry at all, not even escaped (control characters
/// other than tab, newline and carriage return; U+FFFE and U+FFFF), replaced by U+FFFD. The XML
/// writer escapes everything else; a reason quoting a response body may hold such characters,
/// and one of them would make the whole report unreadable.
fn xml_safe(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().map(|c| if allowed(c) { c } else { char::REPLACEMENT_CHARACTER }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_seconds_to_the_millisecond() {
        assert_eq!(seconds(Some(12)), "0.012");
        assert_eq!(seconds(Some(61_234)), "61.234");
        assert_eq!(seconds(None), "0.000");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced_and_the_rest_kept() {
        assert_eq!(xml_safe("a\u{1}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(xml_safe("tab\tnew\nline <&> \"é\""), Cow::Borrowed(_)));
    }

    #[test]
    fn markup_in_names_and_reasons_is_escaped() {
        let cases = [Case {
            name: "a <b> & \"c\"",
            millis: Some(5),
            result: CaseResult::Failed("expected </failure> & more\u{0}".into()),
        }];
        let mut xml = Vec::new();
        write_suite("hook", &[], &cases, 5, &mut xml).unwrap();
        let xml = String::from_utf8(xml).unwrap();
        assert!(xml.contains(r#"name="a &lt;b&gt; &amp; &quot;c&quot;""#), "{xml}");
        assert!(xml.contains("expected &lt;/failure&gt; &amp; more\u{FFFD}</failure>"), "{xml}");
    }
}
