//! Properties of the two parsers that take input the hook does not control: the lifecycle event
//! (whatever Lambda or a CLI user hands over) and the plan (whatever the deployer wrote). Neither
//! may panic, since a panic before the report leaves the deployment waiting; each gives a value or
//! an error; and every plan issue carries a JSON pointer that leads to what it is about.
//!
//! The generators mix arbitrary bytes and JSON with documents shaped like events and plans, whose
//! fields are each absent, plausible (near the schema's bounds, on both sides) or arbitrary, so
//! the cases reach the schema, the compile step and the checks' own compilers (URLs, header
//! names, regexes, response schemas, files).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use greenlight::event::{EventError, HookEvent, RAW_INPUT_LOG_LIMIT, truncate_for_log};
use greenlight::plan::{self, PlanError, PlanIssue};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

/// Enough to find the shallow mistakes on every run while keeping the file to a few seconds.
const CASES: u32 = 256;

/// `PROPTEST_CASES`, when set, asks for a deeper run.
fn config() -> ProptestConfig {
    let from_env = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() { from_env } else { ProptestConfig { cases: CASES, ..from_env } }
}

// ---- generators ----

/// Strings that mean something to the parsers: pointer escapes, blanks, URLs, methods, header
/// names, qualifiers, regex fragments, the event's field names in their right and wrong case, the
/// files beside the plan.
const MEANINGFUL: &[&str] = &[
    "",
    " ",
    "\n",
    "~",
    "/",
    "~0",
    "~1",
    "a/b",
    "a~b",
    "é",
    "x-api-key",
    "content-type",
    "http://127.0.0.1:9/",
    "https://127.0.0.1/",
    "http://[::1",
    "not a url",
    "GET",
    "BREW",
    "target",
    "current",
    "alias",
    "$LATEST",
    "(",
    "[a-",
    "^\\d+$",
    "DeploymentId",
    "LifecycleEventHookExecutionId",
    "deploymentId",
    "schema.json",
    "broken.json",
    "junk.pem",
    "empty.pem",
    "missing.json",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "\\PC{0,12}",
        1 => any::<String>(),
        3 => select(MEANINGFUL).prop_map(str::to_owned),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-2_000i64..70_000).prop_map(Value::from),
        // JSON Schema counts 1000.0 as an integer; serde does not.
        (-2_000i64..70_000).prop_map(|n| json!(n as f64)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), text().prop_map(Value::String)]
        .boxed()
}

/// Any JSON value: trees up to four levels deep.
fn any_json() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// How closely a generated document follows the plan schema.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Fields are sometimes arbitrary, numbers sometimes out of bounds, strangers sometimes
    /// present: most documents stop at the schema.
    Loose,
    /// Every value is one the schema accepts, so each document reaches the compile step and the
    /// checks' own parsers (URLs, header names and values, regexes, response schemas, files).
    Schema,
}

/// How often a field of a generated object is there.
#[derive(Clone, Copy)]
enum Presence {
    /// Nearly always: the document's skeleton.
    Usual,
    /// Less often than not.
    Optional,
}

/// An object with each of `fields` absent or plausible, and when loose, now and then arbitrary,
/// with keys that belong to nothing. A usual field fitting the schema is always there, since the
/// schema requires some of them.
fn object_of(fit: Fit, fields: Vec<(&'static str, Presence, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (arbitrary, usually_absent) = if fit == Fit::Loose { (1, 1) } else { (0, 0) };
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(name, presence, plausible)| {
            let (absent, fitting) = match presence {
                Presence::Usual => (usually_absent, 16),
                Presence::Optional => (8, 6),
            };
            prop_oneof![
                absent => Just(None),
                fitting => plausible.prop_map(move |value| Some((name.to_owned(), value))),
                arbitrary => any_json().prop_map(move |value| Some((name.to_owned(), value))),
            ]
            .boxed()
        })
        .collect();
    let strangers = prop_oneof![12 => Just(Vec::new()), arbitrary => prop::collection::vec((text(), any_json()), 1..3)];
    (fields, strangers)
        .prop_map(|(known, strangers)| {
            let mut map: Map<String, Value> = known.into_iter().flatten().collect();
            map.extend(strangers);
            Value::Object(map)
        })
        .boxed()
}

/// Integers in `lo..=hi`, mostly small ones and the bounds, sometimes written as floats (`2.0`),
/// which JSON Schema counts as integers; when loose, also just outside the bounds.
fn int_near(fit: Fit, lo: i64, hi: i64) -> BoxedStrategy<Value> {
    let outside = if fit == Fit::Loose { 2 } else { 0 };
    let int = prop_oneof![
        6 => lo..=(lo + 3).min(hi),
        2 => select(vec![lo, hi]),
        outside => select(vec![lo - 1, hi + 1]),
        2 => lo..=hi,
    ];
    (int, prop::bool::weighted(0.1)).prop_map(|(n, as_float)| if as_float { json!(n as f64) } else { json!(n) }).boxed()
}

fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

fn string_from(strategy: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    strategy.prop_map(Value::String).boxed()
}

/// Strings the schema takes where it asks for `minLength: 1`: `text()` without the empty one.
fn some_text() -> BoxedStrategy<String> {
    text().prop_filter("not empty", |text| !text.is_empty()).boxed()
}

/// Header names: tokens as the schema allows them (`~` among them), and when loose, any text.
fn header_name(fit: Fit) -> BoxedStrategy<String> {
    let any_text = if fit == Fit::Loose { 1 } else { 0 };
    prop_oneof![
        2 => "[a-z-]{1,8}",
        2 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,6}",
        1 => select(vec!["a~b", "~", "x-api-key", "content-type"]).prop_map(str::to_owned),
        any_text => text(),
    ]
    .boxed()
}

/// Header values, some of which no HTTP header can carry.
fn header_value() -> BoxedStrategy<Value> {
    let unsendable = select(vec!["\n", "a\rb", "\u{7f}", "\0"]).prop_map(str::to_owned);
    string_from(prop_oneof![2 => "[ -~]{0,8}", 1 => unsendable, 1 => text()])
}

fn header_map(fit: Fit, value: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop::collection::vec((header_name(fit), value), 0..3)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        .boxed()
}

/// Names of files beside the plan: mostly `good`, else a file of another kind, a broken or
/// missing one, the folder itself; when loose, the empty name the schema refuses.
fn file_name(fit: Fit, good: &'static str) -> BoxedStrategy<Value> {
    let mut others = vec!["schema.json", "ca.pem", "broken.json", "junk.pem", "empty.pem", "missing", "."];
    if fit == Fit::Loose {
        others.push("");
    }
    string_from(prop_oneof![3 => Just(good.to_owned()), 1 => select(others).prop_map(str::to_owned)])
}

/// Response schemas: some that compile, some that do not; when loose, anything.
fn response_schema(fit: Fit) -> BoxedStrategy<Value> {
    let types = select(vec!["object", "array", "string", "integer", "nonsense"]).prop_map(Value::from);
    let pattern = prop_oneof!["[a-z()\\[\\]^$*+?|\\\\{}]{0,6}", text(), Just("(?=x)".to_owned())];
    let shaped = object_of(
        Fit::Loose,
        vec![
            ("type", Presence::Usual, types.boxed()),
            ("pattern", Presence::Optional, string_from(pattern)),
            (
                "required",
                Presence::Optional,
                prop::collection::vec(string_from(text()), 0..3).prop_map(Value::Array).boxed(),
            ),
            ("properties", Presence::Optional, header_map(Fit::Loose, Just(json!({"type": "string"})).boxed())),
            ("minimum", Presence::Optional, number()),
            (
                "$ref",
                Presence::Optional,
                string_from(select(vec!["#", "#/nowhere", "other.json"]).prop_map(str::to_owned)),
            ),
        ],
    );
    let arbitrary = if fit == Fit::Loose { 1 } else { 0 };
    prop_oneof![
        1 => Just(json!({"type": "object"})),
        1 => boolean(),
        3 => shaped,
        arbitrary => any_json(),
    ]
    .boxed()
}

fn http(fit: Fit) -> BoxedStrategy<Value> {
    let url = prop_oneof![
        3 => Just("http://127.0.0.1:9/".to_owned()),
        1 => "[Hh][Tt][Tt][Pp][Ss]?://[a-z0-9.:/~%@\\[\\]-]{1,20}",
        if fit == Fit::Loose { 1 } else { 0 } => text(),
    ];
    let mut methods = vec!["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    if fit == Fit::Loose {
        methods.push("BREW");
    }
    let http = object_of(
        fit,
        vec![
            ("url", Presence::Usual, string_from(url)),
            ("method", Presence::Optional, string_from(select(methods).prop_map(str::to_owned))),
            ("headers", Presence::Optional, header_map(fit, header_value())),
            ("body", Presence::Optional, string_from(text())),
            ("json", Presence::Optional, any_json()),
            ("max_body_bytes", Presence::Optional, int_near(fit, 1, 67_108_864)),
        ],
    );
    exclusive(fit, http, ["body", "json"])
}

/// When the document must fit the schema, drops one of two fields that exclude each other.
fn exclusive(fit: Fit, object: BoxedStrategy<Value>, pair: [&'static str; 2]) -> BoxedStrategy<Value> {
    if fit == Fit::Loose {
        return object;
    }
    (object, select(pair.to_vec()))
        .prop_map(move |(mut object, dropped)| {
            if let Some(map) = object.as_object_mut()
                && pair.iter().all(|field| map.contains_key(*field))
            {
                map.remove(dropped);
            }
            object
        })
        .boxed()
}

fn invoke(fit: Fit) -> BoxedStrategy<Value> {
    let qualifier = prop_oneof![
        select(vec!["target", "current", "alias", "$LATEST", "$LATEST.PUBLISHED", "7"]).prop_map(str::to_owned),
        "[a-zA-Z0-9$_-]{1,8}",
    ];
    let (function, qualifier) = match fit {
        Fit::Loose => (string_from(text()), string_from(prop_oneof![qualifier, text()])),
        Fit::Schema => (string_from("[a-zA-Z0-9:_-]{1,12}"), string_from(qualifier)),
    };
    object_of(
        fit,
        vec![
            ("function", Presence::Optional, function),
            ("qualifier", Presence::Optional, qualifier),
            ("payload", Presence::Optional, any_json()),
        ],
    )
}

fn expect(fit: Fit) -> BoxedStrategy<Value> {
    let regex = string_from(prop_oneof!["[a-z()\\[\\]^$*+?|\\\\]{0,6}", text()]);
    let header_matcher =
        prop_oneof![string_from(text()), object_of(fit, vec![("regex", Presence::Usual, regex)])].boxed();
    let min_statuses = if fit == Fit::Loose { 0 } else { 1 };
    let statuses = prop::collection::vec(int_near(fit, 100, 599), min_statuses..3).prop_map(Value::Array).boxed();
    let expect = object_of(
        fit,
        vec![
            ("status", Presence::Optional, statuses),
            ("headers", Presence::Optional, header_map(fit, header_matcher)),
            ("json_schema", Presence::Optional, response_schema(fit)),
            ("json_schema_file", Presence::Optional, file_name(fit, "schema.json")),
            ("max_latency_ms", Presence::Optional, int_near(fit, 1, 10_000)),
            ("function_error", Presence::Optional, boolean()),
        ],
    );
    exclusive(fit, expect, ["json_schema", "json_schema_file"])
}

fn check(fit: Fit) -> BoxedStrategy<Value> {
    // One probe, as the schema's oneOf wants; when loose, sometimes both or neither.
    let odd = if fit == Fit::Loose { 1 } else { 0 };
    let probes = prop_oneof![
        5 => http(fit).prop_map(|http| vec![("http", http)]),
        3 => invoke(fit).prop_map(|invoke| vec![("invoke", invoke)]),
        odd => (http(fit), invoke(fit)).prop_map(|(http, invoke)| vec![("http", http), ("invoke", invoke)]),
        odd => Just(Vec::new()),
    ];
    let name = match fit {
        Fit::Loose => prop_oneof![3 => "[a-c]{1,2}", 1 => text()].boxed(),
        Fit::Schema => prop_oneof![3 => "[a-c]{1,2}", 1 => some_text()].boxed(),
    };
    let rest = object_of(
        fit,
        vec![
            // Few names, so duplicates happen.
            ("name", Presence::Usual, string_from(name)),
            ("expect", Presence::Optional, expect(fit)),
            ("attempts", Presence::Optional, int_near(fit, 1, 1000)),
            ("interval_ms", Presence::Optional, int_near(fit, 0, 3_600_000)),
            ("failure_limit", Presence::Optional, int_near(fit, 0, 5)),
            ("consecutive_successes", Presence::Optional, int_near(fit, 1, 5)),
            ("timeout_ms", Presence::Optional, int_near(fit, 1, 900_000)),
            ("dry_run", Presence::Optional, boolean()),
        ],
    );
    (rest, probes)
        .prop_map(|(mut check, probes)| {
            if let Some(map) = check.as_object_mut() {
                map.extend(probes.into_iter().map(|(name, probe)| (name.to_owned(), probe)));
            }
            check
        })
        .boxed()
}

/// Documents shaped like plans.
fn plan_like(fit: Fit) -> BoxedStrategy<Value> {
    let redact = prop::collection::vec(string_from(header_name(fit)), 0..3).prop_map(Value::Array).boxed();
    object_of(
        fit,
        vec![
            ("checks", Presence::Usual, prop::collection::vec(check(fit), 0..4).prop_map(Value::Array).boxed()),
            ("dry_run", Presence::Optional, boolean()),
            ("report_reserve_ms", Presence::Optional, int_near(fit, 1000, 60_000)),
            ("redact_headers", Presence::Optional, redact),
            ("ca_bundle_file", Presence::Optional, file_name(fit, "ca.pem")),
            ("wait_for_green", Presence::Optional, boolean()),
            ("wait_for_green_interval_ms", Presence::Optional, int_near(fit, 100, 60_000)),
            ("$schema", Presence::Optional, string_from(text())),
        ],
    )
}

/// Documents shaped like lifecycle events, ids present or not, right or wrong.
fn event_like() -> BoxedStrategy<Value> {
    let id = || {
        prop_oneof![
            4 => string_from("d-[A-Z0-9]{9}"),
            1 => string_from(select(vec!["", " ", "\t\n"]).prop_map(str::to_owned)),
            1 => string_from(text()),
        ]
        .boxed()
    };
    object_of(
        Fit::Loose,
        vec![
            ("DeploymentId", Presence::Usual, id()),
            ("LifecycleEventHookExecutionId", Presence::Usual, id()),
            ("deploymentId", Presence::Optional, id()),
            ("lifecycleEventHookExecutionId", Presence::Optional, id()),
        ],
    )
}

/// JSON text of `value`, cut short at `cut` (a fraction of its length) when `cut` is below 1.
fn text_of(value: &Value, cut: f64) -> String {
    let full = value.to_string();
    if cut >= 1.0 {
        return full;
    }
    let mut end = (full.len() as f64 * cut) as usize;
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    full[..end].to_owned()
}

fn cut() -> BoxedStrategy<f64> {
    prop_oneof![4 => Just(1.0), 1 => 0.0..1.0f64].boxed()
}

// ---- oracles ----

/// A self-signed CA certificate, so a plan's `ca_bundle_file` can be good.
const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBnDCCAUOgAwIBAgIUPaNl5Zz5+/mF+t+c8iOOFlKvBcYwCgYIKoZIzj0EAwIw\n\
IzEhMB8GA1UEAwwYZ3JlZW5saWdodCBwcm9wZXJ0aWVzIENBMCAXDTI2MTIwMTA5\n\
NDcyOFoYDzIxMjYxMTA3MDk0NzI4WjAjMSEwHwYDVQQDDBhncmVlbmxpZ2h0IHBy\n\
b3BlcnRpZXMgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASwFZl0MXj8Vma8\n\
RNmWqD/A6k3QQXv2aHlC0LAXM636ad5sSDDdQMxr8WZrZloaGIvhbt2Al6B948iN\n\
XkCLszBuo1MwUTAdBgNVHQ4EFgQUX1Y7L9H6P7weqxkKub+y01KTbRAwHwYDVR0j\n\
BBgwFoAUX1Y7L9H6P7weqxkKub+y01KTbRAwDwYDVR0TAQH/BAUwAwEB/zAKBggq\n\
hkjOPQQDAgNHADBEAiBQOiJAwehTd+suY/7KPV1jL1yk6LZpx1AyqVEr3Lf7AAIg\n\
QVxDmQD4KjDRNLiP81DQ2KtXzape86bpH4Nb+BlCzfg=\n\
-----END CERTIFICATE-----\n";

/// The folder the plans' relative file names resolve in, with one file of each kind.
fn plan_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-properties");
        std::fs::create_dir_all(&dir).expect("plan folder");
        let files: [(&str, &str); 5] = [
            ("schema.json", r#"{"type": "object"}"#),
            ("ca.pem", CA_PEM),
            ("broken.json", "{"),
            ("junk.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            ("empty.pem", ""),
        ];
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("plan file");
        }
        dir
    })
}

/// A pointer is `""` or `/`-separated tokens in which `~` only starts `~0` or `~1` (RFC 6901).
fn is_pointer_syntax(pointer: &str) -> bool {
    let escapes_are_whole = |token: &str| {
        let bytes = token.as_bytes();
        bytes.iter().enumerate().all(|(i, &b)| b != b'~' || matches!(bytes.get(i + 1), Some(b'0' | b'1')))
    };
    pointer.is_empty() || (pointer.starts_with('/') && pointer[1..].split('/').all(escapes_are_whole))
}

/// Where the issue's pointer leads in `document`: to a value, or to a property missing from an
/// object that the issue names.
fn pointer_leads_somewhere(document: &Value, issue: &PlanIssue) -> bool {
    let pointer = issue.pointer.as_str();
    if !is_pointer_syntax(pointer) {
        return false;
    }
    if document.pointer(pointer).is_some() {
        return true;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else { return false };
    let missing = last.replace("~1", "/").replace("~0", "~");
    let named = issue.message.contains(&Value::String(missing.clone()).to_string());
    named && matches!(document.pointer(parent), Some(Value::Object(map)) if !map.contains_key(&missing))
}

/// Defects these properties found in the plan loader. Each is tolerated by the oracle, narrowly,
/// so that everything else stays checked; each has a reproducer test that fails once the loader
/// is fixed, to have the tolerance removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownDefect {
    /// JSON Schema counts `1000.0` as an integer and serde's integer fields do not, so such a
    /// plan passes the schema and is then refused as "not JSON".
    IntegralFloat,
    /// A header name goes into an issue's pointer unescaped: `/headers/a~b`, not `/headers/a~0b`.
    UnescapedHeaderName,
}

/// The known defect that explains a valid document refused as not JSON, if one does.
fn explains_not_json(err: &serde_json::Error, document: &Value) -> Option<KnownDefect> {
    fn has_integral_float(value: &Value) -> bool {
        match value {
            Value::Number(n) => n.as_f64().is_some_and(|f| n.is_f64() && f.fract() == 0.0),
            Value::Array(items) => items.iter().any(has_integral_float),
            Value::Object(map) => map.values().any(has_integral_float),
            _ => false,
        }
    }
    (err.to_string().starts_with("invalid type: floating point") && has_integral_float(document))
        .then_some(KnownDefect::IntegralFloat)
}

/// The known defect that explains an issue's pointer leading nowhere, if one does: escaped, the
/// header name in it leads where it should.
fn explains_pointer(document: &Value, issue: &PlanIssue) -> Option<KnownDefect> {
    let (before, after) = issue.pointer.split_once("/headers/")?;
    let (name, rest) = after.split_once('/').map_or((after, ""), |(name, rest)| (name, rest));
    let escaped = name.replace('~', "~0");
    let repaired = if rest.is_empty() {
        format!("{before}/headers/{escaped}")
    } else {
        format!("{before}/headers/{escaped}/{rest}")
    };
    let repaired = PlanIssue { pointer: repaired, message: issue.message.clone() };
    pointer_leads_somewhere(document, &repaired).then_some(KnownDefect::UnescapedHeaderName)
}

/// `plan::parse` gave a plan or a fitting error for `text`.
fn assert_plan_outcome(text: &str) -> Result<(), TestCaseError> {
    let document = serde_json::from_str::<Value>(text);
    match (plan::parse(text, plan_dir()), document) {
        (Ok(plan), Ok(document)) => {
            let listed = document["checks"].as_array().map_or(0, Vec::len);
            prop_assert_eq!(plan.checks.len(), listed, "checks dropped from {}", document);
        }
        (Err(PlanError::Invalid(issues)), Ok(document)) => {
            prop_assert!(!issues.is_empty(), "invalid without an issue: {document}");
            for issue in &issues {
                prop_assert!(!issue.message.is_empty(), "{issue:?} says nothing");
                prop_assert!(
                    pointer_leads_somewhere(&document, issue) || explains_pointer(&document, issue).is_some(),
                    "{issue:?}: the pointer leads nowhere in {document}"
                );
            }
        }
        (Err(PlanError::NotJson(_)), Err(_)) => {}
        (Err(PlanError::NotJson(err)), Ok(document)) => {
            prop_assert!(
                explains_not_json(&err, &document).is_some(),
                "valid JSON refused as not JSON ({err}): {document}"
            );
        }
        (outcome, document) => prop_assert!(false, "{outcome:?} for {document:?}"),
    }
    Ok(())
}

/// The id `field` of `value`, when it is usable: a string with more than blanks.
fn usable_id<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str).filter(|id| !id.trim().is_empty())
}

/// `HookEvent::from_value` accepted exactly the objects with both ids usable, kept the ids as
/// sent, and named what was wrong otherwise.
fn assert_event_outcome(value: &Value, outcome: Result<HookEvent, EventError>) -> Result<(), TestCaseError> {
    let ids = (usable_id(value, "DeploymentId"), usable_id(value, "LifecycleEventHookExecutionId"));
    match (outcome, ids) {
        (Ok(event), (Some(deployment), Some(execution))) => {
            prop_assert_eq!(event.deployment_id.as_str(), deployment);
            prop_assert_eq!(event.execution_id.as_str(), execution);
        }
        (Err(EventError::NotAnObject(kind)), _) => {
            prop_assert!(!value.is_object(), "an object refused as {kind}");
        }
        (Err(EventError::MissingField { field, present }), _) => {
            prop_assert!(usable_id(value, field).is_none(), "{field} is usable in {value}");
            let keys = value.as_object().map(|map| map.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let expected = if keys.is_empty() { "none".to_owned() } else { keys.join(", ") };
            prop_assert_eq!(present, expected);
        }
        (outcome, ids) => prop_assert!(false, "{outcome:?} with ids {ids:?} for {value}"),
    }
    Ok(())
}

// ---- properties ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_give_an_event_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let outcome = HookEvent::from_slice(&bytes);
        match serde_json::from_slice::<Value>(&bytes) {
            Err(_) => prop_assert!(matches!(outcome, Err(EventError::NotJson(_))), "{outcome:?}"),
            Ok(value) => assert_event_outcome(&value, outcome)?,
        }
    }

    #[test]
    fn any_json_gives_an_event_or_an_error(value in prop_oneof![any_json(), event_like()]) {
        assert_event_outcome(&value, HookEvent::from_value(value.clone()))?;
    }

    #[test]
    fn event_text_parses_as_its_value_does(value in event_like(), cut in cut()) {
        let text = text_of(&value, cut);
        let outcome = HookEvent::from_slice(text.as_bytes());
        match serde_json::from_str::<Value>(&text) {
            Err(_) => prop_assert!(matches!(outcome, Err(EventError::NotJson(_))), "{outcome:?}"),
            Ok(value) => assert_event_outcome(&value, outcome)?,
        }
    }

    #[test]
    fn the_logged_excerpt_of_any_input_is_bounded(raw in prop_oneof![any::<String>(), "\\PC{1000,1100}", "é{600}"]) {
        let excerpt = truncate_for_log(&raw);
        if raw.len() <= RAW_INPUT_LOG_LIMIT {
            prop_assert_eq!(excerpt, raw);
        } else {
            let kept = excerpt.rsplit_once("… (").map(|(kept, _)| kept);
            prop_assert!(kept.is_some(), "the cut is not marked: {excerpt:?}");
            let kept = kept.unwrap_or_default();
            // As much as fits: a UTF-8 character is at most 4 bytes.
            prop_assert!(kept.len() <= RAW_INPUT_LOG_LIMIT && kept.len() + 4 > RAW_INPUT_LOG_LIMIT, "{excerpt:?}");
            prop_assert!(raw.starts_with(kept), "{excerpt:?}");
            prop_assert!(excerpt.ends_with(&format!("({} bytes in all)", raw.len())), "{excerpt:?}");
        }
    }

    #[test]
    fn any_bytes_give_a_plan_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_plan_outcome(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn any_json_gives_a_plan_or_an_error_with_pointers(value in any_json()) {
        assert_plan_outcome(&value.to_string())?;
    }

    #[test]
    fn plan_shaped_json_gives_a_plan_or_an_error_with_pointers(value in plan_like(Fit::Loose), cut in cut()) {
        assert_plan_outcome(&text_of(&value, cut))?;
    }

    #[test]
    fn plans_the_schema_accepts_compile_or_name_what_is_wrong(value in plan_like(Fit::Schema)) {
        assert_plan_outcome(&value.to_string())?;
    }
}

// ---- known defects, each until it is fixed ----

#[test]
fn known_defect_an_integral_float_is_refused_as_not_json() {
    let text = r#"{"checks": [], "report_reserve_ms": 1000.0}"#;
    let document: Value = serde_json::from_str(text).expect("JSON");
    let outcome = plan::parse(text, plan_dir());
    let explained = match &outcome {
        Err(PlanError::NotJson(err)) => explains_not_json(err, &document),
        _ => None,
    };
    assert_eq!(explained, Some(KnownDefect::IntegralFloat), "fixed? then drop KnownDefect::IntegralFloat: {outcome:?}");
}

#[test]
fn known_defect_a_header_name_is_not_escaped_in_its_pointer() {
    let text = r#"{"checks": [{"name": "a", "http": {"url": "http://127.0.0.1:9/", "headers": {"a~b": "\n"}}}]}"#;
    let document: Value = serde_json::from_str(text).expect("JSON");
    let Err(PlanError::Invalid(issues)) = plan::parse(text, plan_dir()) else { panic!("the header value is invalid") };
    let explained: Vec<Option<KnownDefect>> = issues
        .iter()
        .map(|issue| if pointer_leads_somewhere(&document, issue) { None } else { explains_pointer(&document, issue) })
        .collect();
    assert_eq!(
        explained,
        [Some(KnownDefect::UnescapedHeaderName)],
        "fixed? then drop KnownDefect::UnescapedHeaderName: {issues:?}"
    );
}
