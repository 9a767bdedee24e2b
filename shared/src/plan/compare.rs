//! Compare checks in the plan: the same request to the baseline and the candidate, judged by
//! their difference ([`crate::checks`]' `compare` measures them).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use super::{DEFAULT_MAX_BODY_BYTES, PlanIssue};

/// The base URLs a compare check of a path gets unless it names its own: the production
/// listener (blue) as the baseline, the test listener (green) as the candidate.
pub(super) const DEFAULT_URLS: [(&str, &str); 2] =
    [("baseline_url", "${production_url}"), ("candidate_url", "${test_url}")];

/// A compare check, compiled.
#[derive(Debug)]
pub struct CompareProbe {
    /// What is sent to both sides.
    pub target: CompareTarget,
    /// What counts as a difference.
    pub mode: CompareMode,
    /// Pointers left out, with their children.
    pub ignore: Vec<PointerPattern>,
    /// Arrays compared regardless of order (values mode).
    pub unordered: Vec<PointerPattern>,
    /// Whether a field only the candidate has fails the check.
    pub forbid_added: bool,
    /// Most bytes read of each answer.
    pub max_body_bytes: usize,
}

/// What a compare check sends.
#[derive(Debug)]
pub enum CompareTarget {
    /// One HTTP request, to both base URLs.
    Http {
        /// Request method.
        method: reqwest::Method,
        /// The baseline's full URL.
        baseline: Box<reqwest::Url>,
        /// The candidate's full URL.
        candidate: Box<reqwest::Url>,
        /// Request headers.
        headers: HeaderMap,
        /// Request body, when side effects are allowed.
        body: Option<Vec<u8>>,
    },
    /// The deployment's current and target versions, invoked with the same payload.
    Invoke {
        /// The event sent to both.
        payload: Vec<u8>,
    },
}

/// What counts as a difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CompareMode {
    /// Fields, their types, the status and the content type.
    Shape,
    /// Also values, beyond the noise two baseline answers show; numbers within the tolerances
    /// are equal.
    Values {
        /// Relative to the larger of the two.
        relative: f64,
        /// Absolute.
        absolute: f64,
    },
}

/// A JSON pointer whose `*` segments match any one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerPattern(Vec<String>);

impl PointerPattern {
    /// The pattern of `pointer` (`/items/*/id`).
    pub fn new(pointer: &str) -> Self {
        Self(pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
    }

    /// Whether `segments` are this pattern's pointer or one of its children.
    pub fn covers(&self, segments: &[String]) -> bool {
        segments.len() >= self.0.len() && self.0.iter().zip(segments).all(|(p, s)| p == "*" || p == s)
    }

    /// Whether `segments` are exactly this pattern's pointer.
    pub fn is(&self, segments: &[String]) -> bool {
        segments.len() == self.0.len() && self.covers(segments)
    }
}

#[derive(Deserialize)]
pub(super) struct CompareDoc {
    path: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    json: Option<Value>,
    baseline_url: Option<String>,
    candidate_url: Option<String>,
    invoke: Option<InvokeDoc>,
    mode: Option<String>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    unordered: Vec<String>,
    #[serde(default)]
    forbid_added: bool,
    #[serde(default)]
    allow_side_effects: bool,
    relative_tolerance: Option<f64>,
    absolute_tolerance: Option<f64>,
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize)]
struct InvokeDoc {
    payload: Option<Value>,
}

pub(super) fn compile_compare(doc: CompareDoc, at: &str, issues: &mut Vec<PlanIssue>) -> Option<CompareProbe> {
    let mode = match doc.mode.as_deref() {
        Some("values") => CompareMode::Values {
            relative: doc.relative_tolerance.unwrap_or(0.0),
            absolute: doc.absolute_tolerance.unwrap_or(0.0),
        },
        _ => {
            if doc.relative_tolerance.is_some() || doc.absolute_tolerance.is_some() {
                issues.push(PlanIssue::new(at, "tolerances apply to \"mode\": \"values\" only"));
            }
            CompareMode::Shape
        }
    };
    let target = match (doc.path, doc.invoke) {
        (Some(path), None) => {
            let method = doc.method.as_deref().unwrap_or("GET");
            let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
                issues.push(PlanIssue::new(format!("{at}/method"), format!("not an HTTP method: {method:?}")));
                return None;
            };
            let safe = method == reqwest::Method::GET || method == reqwest::Method::HEAD;
            if (!safe || doc.json.is_some()) && !doc.allow_side_effects {
                issues.push(PlanIssue::new(
                    at,
                    "only GET and HEAD without a body are sent twice to production unasked; set \"allow_side_effects\": true for this request",
                ));
            }
            let mut url = |base: Option<String>, field: &str| {
                let base = base.unwrap_or_default();
                match reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/'))) {
                    Ok(url) => Some(url),
                    Err(err) => {
                        issues.push(PlanIssue::new(format!("{at}/{field}"), format!("not a URL with the path: {err}")));
                        None
                    }
                }
            };
            let (baseline, candidate) =
                (url(doc.baseline_url, "baseline_url"), url(doc.candidate_url, "candidate_url"));
            let mut headers = HeaderMap::new();
            for (name, value) in &doc.headers {
                match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                    (Ok(name), Ok(value)) => {
                        headers.insert(name, value);
                    }
                    _ => issues.push(PlanIssue::new(format!("{at}/headers/{name}"), "not a valid header value")),
                }
            }
            let body = doc.json.map(|json| {
                headers.entry(reqwest::header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
                json.to_string().into_bytes()
            });
            CompareTarget::Http {
                method,
                baseline: Box::new(baseline?),
                candidate: Box::new(candidate?),
                headers,
                body,
            }
        }
        (None, Some(invoke)) => {
            if doc.method.is_some() || !doc.headers.is_empty() || doc.json.is_some() {
                issues.push(PlanIssue::new(
                    at,
                    "an invoke comparison has no method, headers or json; put the event in invoke.payload",
                ));
            }
            let payload = invoke.payload.unwrap_or_else(|| Value::Object(Default::default()));
            CompareTarget::Invoke { payload: payload.to_string().into_bytes() }
        }
        // The schema's oneOf rejects these first.
        _ => {
            issues.push(PlanIssue::new(at, ONE_TARGET));
            return None;
        }
    };
    Some(CompareProbe {
        target,
        mode,
        ignore: doc.ignore.iter().map(|p| PointerPattern::new(p)).collect(),
        unordered: doc.unordered.iter().map(|p| PointerPattern::new(p)).collect(),
        forbid_added: doc.forbid_added,
        max_body_bytes: doc.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
    })
}

/// The message for a compare check with neither or both of its targets.
pub(super) const ONE_TARGET: &str = "a compare check needs exactly one of \"path\" (HTTP) or \"invoke\" (Lambda)";
