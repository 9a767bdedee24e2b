//! How two answers differ, by JSON pointer, after Diffy's model: a field missing in the
//! candidate, a field only the candidate has, a changed type, and in values mode a changed value
//! or array length. What two answers of the baseline already disagree on is noise and left out.
//! Differences name pointers and kinds, never values, so a reason never leaks a response.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::plan::compare::{CompareMode, CompareProbe};

/// One side's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status (for Lambda: an API-Gateway-shaped result's `statusCode`, else 200).
    pub status: u16,
    /// The media type, without parameters.
    pub content_type: Option<String>,
    /// The body, parsed when it is JSON.
    pub body: Body,
}

/// An answer's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON document.
    Json(Value),
    /// Anything else, compared as bytes in values mode.
    Other(Vec<u8>),
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// Whether it fails the check (a field only the candidate has does not, unless forbidden).
    pub fails: bool,
    /// Where: a JSON pointer, or `status`, `content type`, `body`.
    pub at: String,
    /// What.
    pub kind: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.kind)
    }
}

type Segments = Vec<String>;

/// How `candidate` differs from `baseline`; `second` is another answer of the baseline to the
/// same request (values mode), whose disagreements with `baseline` are noise.
pub fn differences(
    probe: &CompareProbe,
    baseline: &Answer,
    second: Option<&Answer>,
    candidate: &Answer,
) -> Vec<Difference> {
    let mut found = Vec::new();
    let mut top = |at: &str, kind: String| found.push(Difference { fails: true, at: at.to_owned(), kind });
    if baseline.status != candidate.status && second.is_none_or(|s| s.status == baseline.status) {
        top("status", format!("{} in baseline, {} in candidate", baseline.status, candidate.status));
    }
    if baseline.content_type != candidate.content_type {
        let shown = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".to_owned());
        top(
            "content type",
            format!("{} in baseline, {} in candidate", shown(&baseline.content_type), shown(&candidate.content_type)),
        );
    }
    match (&baseline.body, &candidate.body, probe.mode) {
        (Body::Json(b), Body::Json(c), CompareMode::Shape) => shape_differences(probe, b, c, &mut found),
        (Body::Json(b), Body::Json(c), CompareMode::Values { .. }) => {
            let noise = match second.map(|s| &s.body) {
                Some(Body::Json(second)) => noise(probe, b, second),
                _ => BTreeSet::new(),
            };
            value_differences(probe, b, c, &noise, &mut found);
        }
        (Body::Json(_), Body::Other(_), _) => top("body", "JSON in baseline, not JSON in candidate".to_owned()),
        (Body::Other(_), Body::Json(_), _) => top("body", "not JSON in baseline, JSON in candidate".to_owned()),
        (Body::Other(b), Body::Other(c), CompareMode::Values { .. }) => {
            let noisy = second.is_some_and(|s| s.body != baseline.body);
            if b != c && !noisy {
                top("body", "differs".to_owned());
            }
        }
        (Body::Other(_), Body::Other(_), CompareMode::Shape) => {}
    }
    found.sort_by(|a, b| b.fails.cmp(&a.fails).then_with(|| a.cmp(b)));
    found
}

/// What a pointer holds in shape mode: the kinds of value seen there (array elements share `*`).
#[derive(Debug, Default)]
struct Seen {
    kinds: BTreeSet<&'static str>,
    /// An array seen there was empty (its elements' shape is unknown on this side).
    empty_array: bool,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape(value: &Value, at: &mut Segments, out: &mut BTreeMap<Segments, Seen>) {
    let seen = out.entry(at.clone()).or_default();
    seen.kinds.insert(kind(value));
    match value {
        Value::Array(items) => {
            seen.empty_array |= items.is_empty();
            at.push("*".to_owned());
            for item in items {
                shape(item, at, out);
            }
            at.pop();
        }
        Value::Object(members) => {
            for (key, member) in members {
                at.push(key.clone());
                shape(member, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pointer(segments: &[String]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    segments.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect()
}

fn ignored(probe: &CompareProbe, at: &[String]) -> bool {
    probe.ignore.iter().any(|pattern| pattern.covers(at))
}

/// Whether the other side can say anything about `at`: its parent is there, and is not an
/// empty array or only ever null.
fn comparable(other: &BTreeMap<Segments, Seen>, at: &[String]) -> bool {
    let Some((_, parent)) = at.split_last() else { return true };
    match other.get(parent) {
        Some(seen) => {
            !(at.last().is_some_and(|s| s == "*") && seen.empty_array) && seen.kinds != BTreeSet::from(["null"])
        }
        None => false,
    }
}

fn shape_differences(probe: &CompareProbe, baseline: &Value, candidate: &Value, found: &mut Vec<Difference>) {
    let (mut b, mut c) = (BTreeMap::new(), BTreeMap::new());
    shape(baseline, &mut Vec::new(), &mut b);
    shape(candidate, &mut Vec::new(), &mut c);
    for (at, seen) in &b {
        if ignored(probe, at) {
            continue;
        }
        match c.get(at) {
            None if comparable(&c, at) => {
                found.push(Difference { fails: true, at: pointer(at), kind: "missing in candidate".to_owned() })
            }
            None => {}
            Some(other) => {
                // A null beside a value is data, not a change of type.
                let without_null = |kinds: &BTreeSet<&'static str>| {
                    kinds.iter().copied().filter(|k| *k != "null").collect::<BTreeSet<_>>()
                };
                let (was, now) = (without_null(&seen.kinds), without_null(&other.kinds));
                if !was.is_empty() && !now.is_empty() && was != now {
                    let join = |kinds: BTreeSet<&str>| kinds.into_iter().collect::<Vec<_>>().join(" or ");
                    let kind = format!("type changed: {} in baseline, {} in candidate", join(was), join(now));
                    found.push(Difference { fails: true, at: pointer(at), kind });
                }
            }
        }
    }
    for at in c.keys() {
        if !b.contains_key(at) && !ignored(probe, at) && comparable(&b, at) {
            let kind = "only in candidate".to_owned();
            found.push(Difference { fails: probe.forbid_added, at: pointer(at), kind });
        }
    }
}

/// The leaves of a document by pointer, arrays by index, `unordered` arrays sorted first; each
/// array also records its length.
fn leaves(probe: &CompareProbe, value: &Value, at: &mut Segments, out: &mut BTreeMap<Segments, Value>) {
    match value {
        Value::Array(items) => {
            out.insert(at.clone(), Value::from(items.len()));
            let mut items: Vec<&Value> = items.iter().collect();
            if probe.unordered.iter().any(|pattern| pattern.is(at)) {
                items.sort_by_cached_key(|item| item.to_string());
            }
            for (index, item) in items.into_iter().enumerate() {
                at.push(index.to_string());
                leaves(probe, item, at, out);
                at.pop();
            }
        }
        Value::Object(members) => {
            out.insert(at.clone(), Value::Object(Default::default()));
            for (key, member) in members {
                at.push(key.clone());
                leaves(probe, member, at, out);
                at.pop();
            }
        }
        leaf => {
            out.insert(at.clone(), leaf.clone());
        }
    }
}

fn same(probe: &CompareProbe, a: &Value, b: &Value) -> bool {
    match (a, b, probe.mode) {
        (Value::Number(x), Value::Number(y), CompareMode::Values { relative, absolute }) => {
            let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else { return a == b };
            let gap = (x - y).abs();
            gap <= absolute || gap <= relative * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

/// Where two answers of the baseline disagree: noise, left out with everything under it.
fn noise(probe: &CompareProbe, first: &Value, second: &Value) -> BTreeSet<Segments> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves(probe, first, &mut Vec::new(), &mut a);
    leaves(probe, second, &mut Vec::new(), &mut b);
    let mut noisy = BTreeSet::new();
    for (at, value) in &a {
        if b.get(at).is_none_or(|other| !same(probe, value, other)) {
            noisy.insert(at.clone());
        }
    }
    noisy.extend(b.keys().filter(|at| !a.contains_key(*at)).cloned());
    noisy
}

fn value_differences(
    probe: &CompareProbe,
    baseline: &Value,
    candidate: &Value,
    noise: &BTreeSet<Segments>,
    found: &mut Vec<Difference>,
) {
    let (mut b, mut c) = (BTreeMap::new(), BTreeMap::new());
    leaves(probe, baseline, &mut Vec::new(), &mut b);
    leaves(probe, candidate, &mut Vec::new(), &mut c);
    let quiet = |at: &[String]| !ignored(probe, at) && !(0..=at.len()).any(|n| noise.contains(&at[..n]));
    for (at, value) in &b {
        if !quiet(at) {
            continue;
        }
        let parent_there = at.split_last().is_none_or(|(_, parent)| c.contains_key(parent));
        let kind = match c.get(at) {
            None if parent_there => "missing in candidate",
            None => continue,
            Some(other) if kind(value) != kind(other) => "type changed",
            Some(other) if value.is_array() || other.is_array() => continue,
            Some(other) if !same(probe, value, other) => {
                if b.keys().any(|k| k.len() == at.len() + 1 && k.starts_with(at)) {
                    "array length changed"
                } else {
                    "value changed"
                }
            }
            Some(_) => continue,
        };
        found.push(Difference { fails: true, at: pointer(at), kind: kind.to_owned() });
    }
    for at in c.keys() {
        let parent_there = at.split_last().is_none_or(|(_, parent)| b.contains_key(parent));
        if !b.contains_key(at) && quiet(at) && parent_there {
            found.push(Difference { fails: probe.forbid_added, at: pointer(at), kind: "only in candidate".to_owned() });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::compare::{CompareTarget, PointerPattern};

    fn probe(mode: CompareMode, ignore: &[&str], unordered: &[&str], forbid_added: bool) -> CompareProbe {
        CompareProbe {
            target: CompareTarget::Invoke { payload: Vec::new() },
            mode,
            ignore: ignore.iter().map(|p| PointerPattern::new(p)).collect(),
            unordered: unordered.iter().map(|p| PointerPattern::new(p)).collect(),
            forbid_added,
            max_body_bytes: 1 << 20,
        }
    }

    fn json(body: Value) -> Answer {
        Answer { status: 200, content_type: Some("application/json".into()), body: Body::Json(body) }
    }

    fn shown(found: &[Difference]) -> Vec<String> {
        found.iter().map(|d| format!("{}{d}", if d.fails { "" } else { "(ok) " })).collect()
    }

    const VALUES: CompareMode = CompareMode::Values { relative: 0.0, absolute: 0.0 };

    #[test]
    fn the_checkout_rename_is_a_missing_field_and_an_added_one() {
        let blue = json(json!({"id": "c1", "total_cents": 1250, "items": [{"sku": "a", "qty": 1}]}));
        let green = json(json!({"id": "c1", "total_minor_units": 1250, "items": [{"sku": "a", "qty": 1}]}));
        let found = differences(&probe(CompareMode::Shape, &[], &[], false), &blue, None, &green);
        assert_eq!(shown(&found), ["/total_cents: missing in candidate", "(ok) /total_minor_units: only in candidate"]);
        let forbidden = differences(&probe(CompareMode::Shape, &[], &[], true), &blue, None, &green);
        assert!(forbidden.iter().all(|d| d.fails), "{forbidden:?}");
    }

    #[test]
    fn shape_mode_sees_types_and_array_elements_but_not_values_or_nulls() {
        let blue = json(json!({"total": 12, "note": null, "items": [{"sku": "a"}, {"sku": "b"}], "tags": []}));
        let green = json(json!({"total": "12", "note": "gift", "items": [{"sku": "z", "price": 3}], "tags": ["x"]}));
        let found = differences(&probe(CompareMode::Shape, &[], &[], false), &blue, None, &green);
        assert_eq!(
            shown(&found),
            ["/total: type changed: number in baseline, string in candidate", "(ok) /items/*/price: only in candidate"]
        );
    }

    #[test]
    fn an_empty_array_or_a_missing_parent_says_nothing_of_what_is_under_it() {
        let blue = json(json!({"items": [{"sku": "a"}], "customer": {"id": 1, "name": "x"}}));
        let green = json(json!({"items": []}));
        let found = differences(&probe(CompareMode::Shape, &[], &[], false), &blue, None, &green);
        assert_eq!(shown(&found), ["/customer: missing in candidate"], "one difference for the whole object");
    }

    #[test]
    fn status_and_content_type_are_compared_and_ignored_pointers_are_not() {
        let blue = json(json!({"id": "1", "items": [{"id": "u1", "sku": "a"}]}));
        let mut green = json(json!({"items": [{"sku": "a"}]}));
        green.status = 500;
        green.content_type = Some("text/html".into());
        let found = differences(&probe(CompareMode::Shape, &["/id", "/items/*/id"], &[], false), &blue, None, &green);
        assert_eq!(
            shown(&found),
            [
                "content type: application/json in baseline, text/html in candidate",
                "status: 200 in baseline, 500 in candidate"
            ]
        );
    }

    #[test]
    fn values_that_differ_between_two_baseline_answers_are_noise() {
        let first = json(json!({"request_id": "r1", "at": 100, "total": 1250, "currency": "EUR"}));
        let second = json(json!({"request_id": "r2", "at": 101, "total": 1250, "currency": "EUR"}));
        let green = json(json!({"request_id": "r3", "at": 102, "total": 1300, "currency": "EUR"}));
        let found = differences(&probe(VALUES, &[], &[], false), &first, Some(&second), &green);
        assert_eq!(shown(&found), ["/total: value changed"], "the id and the time are noise, the total is not");
    }

    #[test]
    fn values_mode_tolerances_and_unordered_arrays() {
        let blue = json(json!({"total": 100.0, "tags": ["a", "b"], "items": [1, 2]}));
        let green = json(json!({"total": 104.0, "tags": ["b", "a"], "items": [1, 2, 3]}));
        let loose = CompareMode::Values { relative: 0.05, absolute: 0.0 };
        let found = differences(&probe(loose, &[], &["/tags"], false), &blue, Some(&blue), &green);
        assert_eq!(shown(&found), ["/items: array length changed", "(ok) /items/2: only in candidate"]);
        let strict = differences(&probe(VALUES, &[], &[], false), &blue, Some(&blue), &green);
        assert!(strict.iter().any(|d| d.at == "/total") && strict.iter().any(|d| d.at == "/tags/0"), "{strict:?}");
    }

    #[test]
    fn a_body_that_stops_being_json_is_a_difference() {
        let blue = json(json!({"ok": true}));
        let green = Answer {
            status: 200,
            content_type: Some("application/json".into()),
            body: Body::Other(b"<html>".to_vec()),
        };
        let found = differences(&probe(CompareMode::Shape, &[], &[], false), &blue, None, &green);
        assert_eq!(shown(&found), ["body: JSON in baseline, not JSON in candidate"]);
    }
}
