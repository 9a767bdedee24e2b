//! The plan's checks on real traffic: `metric` (CloudWatch queries for the new version and,
//! optionally, the old one, judged against bounds or against each other) and `alarms` (named
//! CloudWatch alarms that must be quiet). Shapes are validated by the plan schema first; this
//! module compiles what the schema cannot say: query ids unique across both sides, exactly one
//! returned series per side, known variables, a judge that has the baseline it compares with.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::PlanIssue;
pub use crate::stats::Direction;
use crate::variables;

/// What an alarms check that names no alarm is told.
pub(super) const NAME_THE_ALARMS: &str = "name the alarms: give names, a prefix, or \"deployment_group\": true";

/// Fewest datapoints a side needs to be judged, unless the check says otherwise.
pub const DEFAULT_MIN_SAMPLES: u32 = 3;

/// A metric check: what to query, over which window, judged how.
#[derive(Debug, Clone)]
pub struct MetricProbe {
    /// The new version's queries (CloudWatch `MetricDataQuery`s, variables unfilled).
    pub candidate: Vec<MetricQuery>,
    /// The old version's queries; empty for a judge on the candidate alone.
    pub baseline: Vec<MetricQuery>,
    /// The id of the candidate query whose values are judged (its one returned query).
    pub candidate_result: String,
    /// The id of the baseline's returned query, when there is a baseline.
    pub baseline_result: Option<String>,
    /// Which datapoints count.
    pub window: Window,
    /// How the values are judged.
    pub judge: MetricJudge,
    /// Fewest datapoints each side needs; fewer is "no data".
    pub min_samples: u32,
    /// What no data means.
    pub no_data: NoData,
}

/// One CloudWatch `MetricDataQuery`, spelled as the API spells it so a query can be pasted from
/// the console or the CLI.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MetricQuery {
    /// Names the query in expressions and results (`^[a-z][a-zA-Z0-9_]*$`).
    pub id: String,
    /// A metric and how to aggregate it.
    pub metric_stat: Option<MetricStat>,
    /// Metric math over other queries' ids.
    pub expression: Option<String>,
    /// A label for the results.
    pub label: Option<String>,
    /// Whether CloudWatch returns this query's values (default true).
    pub return_data: Option<bool>,
    /// An expression's period, in seconds.
    pub period: Option<i32>,
}

/// A metric and its statistic.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MetricStat {
    /// Which metric.
    pub metric: Metric,
    /// Seconds per datapoint.
    pub period: i32,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount` or a percentile such as `p99`.
    pub stat: String,
    /// The unit to filter on, if any.
    pub unit: Option<String>,
}

/// A CloudWatch metric.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Metric {
    /// For example `AWS/ApplicationELB`.
    pub namespace: String,
    /// For example `HTTPCode_Target_5XX_Count`.
    pub metric_name: String,
    /// Name and value pairs.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

/// A metric dimension.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Dimension {
    /// For example `TargetGroup`.
    pub name: String,
    /// For example `${green_target_group}`.
    pub value: String,
}

impl MetricQuery {
    /// Whether CloudWatch returns this query's values.
    pub fn returns_data(&self) -> bool {
        self.return_data.unwrap_or(true)
    }

    /// Every string of the query that may hold variables, with its pointer below the query.
    fn strings(&self) -> Vec<(String, &str)> {
        let mut strings = Vec::new();
        if let Some(stat) = &self.metric_stat {
            strings.push(("/MetricStat/Metric/Namespace".to_owned(), stat.metric.namespace.as_str()));
            strings.push(("/MetricStat/Metric/MetricName".to_owned(), stat.metric.metric_name.as_str()));
            for (index, dimension) in stat.metric.dimensions.iter().enumerate() {
                strings.push((format!("/MetricStat/Metric/Dimensions/{index}/Value"), dimension.value.as_str()));
            }
        }
        if let Some(expression) = &self.expression {
            strings.push(("/Expression".to_owned(), expression.as_str()));
        }
        if let Some(label) = &self.label {
            strings.push(("/Label".to_owned(), label.as_str()));
        }
        strings
    }

    /// The query with its variables filled by `value`.
    pub fn filled<E>(&self, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<Self, E> {
        let mut filled = self.clone();
        if let Some(stat) = &mut filled.metric_stat {
            stat.metric.namespace = variables::fill(&stat.metric.namespace, &mut value)?;
            stat.metric.metric_name = variables::fill(&stat.metric.metric_name, &mut value)?;
            for dimension in &mut stat.metric.dimensions {
                dimension.value = variables::fill(&dimension.value, &mut value)?;
            }
        }
        if let Some(expression) = &mut filled.expression {
            *expression = variables::fill(expression, &mut value)?;
        }
        if let Some(label) = &mut filled.label {
            *label = variables::fill(label, &mut value)?;
        }
        Ok(filled)
    }

    /// The variables the query uses.
    pub fn variables(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for (_, text) in self.strings() {
            for name in variables::used_in(text).unwrap_or_default() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }
}

/// Which datapoints a measurement looks at: from a moment, or a fixed duration back, until now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// From a moment of the deployment until the measurement.
    Since(Moment),
    /// The last so long before the measurement.
    Last(Duration),
}

/// A moment a window can start at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The start of the deployment's first lifecycle event.
    Deployment,
    /// The start of the AllowTraffic event: the traffic shift, when both versions serve.
    AllowTraffic,
    /// The start of this hook's run: with attempts and an interval, a bake that keeps measuring.
    Hook,
}

/// How a metric check judges its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricJudge {
    /// Absolute bounds on the candidate.
    Threshold {
        /// Lowest allowed.
        min: Option<f64>,
        /// Highest allowed.
        max: Option<f64>,
        /// Which value of the candidate's series is bounded.
        of: Aggregate,
    },
    /// Bounds relative to the baseline over the same window.
    Relative {
        /// Which way is worse.
        direction: Direction,
        /// The candidate may be this many times the baseline (or the baseline this many times the
        /// candidate, for a decrease).
        max_ratio: Option<f64>,
        /// The candidate may differ from the baseline by this much.
        margin: Option<f64>,
        /// Which value of each series is compared.
        of: Aggregate,
    },
    /// A Mann-Whitney rank test on the per-period samples, in Kayenta's manner.
    RankTest {
        /// Which way is worse.
        direction: Direction,
        /// Confidence level of the test (0.5–0.9999).
        confidence: f64,
        /// Kayenta's band: the interval's near end must clear this fraction of the estimated shift.
        tolerance: f64,
    },
}

/// Which value of a series a bound applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Every datapoint.
    Each,
    /// The mean of the datapoints.
    Mean,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// Their sum.
    Sum,
    /// The latest.
    Last,
}

/// What a side without enough datapoints means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// The measurement fails, naming the side (the default: no data is not a pass).
    #[default]
    Fail,
    /// The measurement passes, and says so.
    Pass,
}

/// An alarms check: which alarms must be quiet.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmsProbe {
    /// Alarms by name.
    pub names: Vec<String>,
    /// Every alarm whose name starts so.
    pub prefix: Option<String>,
    /// The alarms of the deployment's own deployment group.
    pub deployment_group: bool,
    /// A window in which none may have been in `ALARM`; `None`: only the state now counts.
    pub window: Option<Window>,
    /// Whether `INSUFFICIENT_DATA` passes (default: it fails).
    pub insufficient_data_passes: bool,
}

// ---- the document as written -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricDoc {
    candidate: Vec<MetricQuery>,
    #[serde(default)]
    baseline: Vec<MetricQuery>,
    window: WindowDoc,
    judge: JudgeDoc,
    min_samples: Option<u32>,
    #[serde(default)]
    no_data: NoData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowDoc {
    since: Option<MomentDoc>,
    last_ms: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum MomentDoc {
    Deployment,
    AllowTraffic,
    Hook,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum JudgeDoc {
    Threshold {
        min: Option<f64>,
        max: Option<f64>,
        #[serde(default = "each")]
        of: Aggregate,
    },
    Relative {
        direction: Direction,
        max_ratio: Option<f64>,
        margin: Option<f64>,
        #[serde(default = "mean")]
        of: Aggregate,
    },
    RankTest {
        direction: Direction,
        confidence: Option<f64>,
        tolerance: Option<f64>,
    },
}

fn each() -> Aggregate {
    Aggregate::Each
}

fn mean() -> Aggregate {
    Aggregate::Mean
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlarmsDoc {
    #[serde(default)]
    names: Vec<String>,
    prefix: Option<String>,
    #[serde(default)]
    deployment_group: bool,
    window: Option<WindowDoc>,
    #[serde(default)]
    insufficient_data: NoData,
}

// ---- compiling ----------------------------------------------------------------------------------

/// Compiles a metric check's document; issues are recorded with their pointers below `at`.
pub(super) fn compile_metric(doc: MetricDoc, at: &str, issues: &mut Vec<PlanIssue>) -> Option<MetricProbe> {
    let before = issues.len();
    let mut ids = HashSet::new();
    for (side, queries) in [("candidate", &doc.candidate), ("baseline", &doc.baseline)] {
        for (index, query) in queries.iter().enumerate() {
            let here = format!("{at}/{side}/{index}");
            if !ids.insert(query.id.as_str()) {
                issues.push(PlanIssue::new(
                    format!("{here}/Id"),
                    format!("query id {:?} is used twice; ids must be unique across candidate and baseline, which go in one GetMetricData call", query.id),
                ));
            }
            for (pointer, text) in query.strings() {
                if let Err(err) = variables::used_in(text) {
                    issues.push(PlanIssue::new(format!("{here}{pointer}"), err.to_string()));
                }
            }
        }
    }
    let candidate_result = returned(&doc.candidate, &format!("{at}/candidate"), issues);
    let baseline_result =
        if doc.baseline.is_empty() { None } else { returned(&doc.baseline, &format!("{at}/baseline"), issues) };
    let judge = compile_judge(doc.judge, &format!("{at}/judge"), issues);
    if let Some(judge) = judge
        && !matches!(judge, MetricJudge::Threshold { .. })
        && doc.baseline.is_empty()
    {
        issues.push(PlanIssue::new(
            format!("{at}/baseline"),
            "this judge compares the candidate with a baseline: give baseline queries (for example blue's target group or the current version)",
        ));
    }
    if matches!(judge, Some(MetricJudge::Threshold { .. })) && !doc.baseline.is_empty() {
        issues.push(PlanIssue::new(
            format!("{at}/baseline"),
            "a threshold judge bounds the candidate alone: drop the baseline, or judge with relative or rank_test",
        ));
    }
    let window = compile_window(&doc.window, &format!("{at}/window"), issues);
    if issues.len() > before {
        return None;
    }
    Some(MetricProbe {
        candidate: doc.candidate,
        baseline: doc.baseline,
        candidate_result: candidate_result?,
        baseline_result,
        window: window?,
        judge: judge?,
        min_samples: doc.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
        no_data: doc.no_data,
    })
}

/// The id of the one query of `queries` that returns data.
fn returned(queries: &[MetricQuery], at: &str, issues: &mut Vec<PlanIssue>) -> Option<String> {
    let returning: Vec<&MetricQuery> = queries.iter().filter(|q| q.returns_data()).collect();
    match returning.as_slice() {
        [one] => Some(one.id.clone()),
        [] => {
            issues.push(PlanIssue::new(
                at,
                "no query returns data: leave ReturnData unset (true) on the series to judge",
            ));
            None
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|q| q.id.as_str()).collect();
            issues.push(PlanIssue::new(
                at,
                format!(
                    "queries {} all return data; set \"ReturnData\": false on all but the series to judge",
                    ids.join(", ")
                ),
            ));
            None
        }
    }
}

fn compile_judge(doc: JudgeDoc, at: &str, issues: &mut Vec<PlanIssue>) -> Option<MetricJudge> {
    Some(match doc {
        JudgeDoc::Threshold { min, max, of } => {
            if min.is_none() && max.is_none() {
                issues.push(PlanIssue::new(format!("{at}/threshold"), "give min, max or both"));
                return None;
            }
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                issues.push(PlanIssue::new(format!("{at}/threshold"), format!("min {min} is above max {max}")));
                return None;
            }
            MetricJudge::Threshold { min, max, of }
        }
        JudgeDoc::Relative { direction, max_ratio, margin, of } => {
            if max_ratio.is_none() && margin.is_none() {
                issues.push(PlanIssue::new(format!("{at}/relative"), "give max_ratio, margin or both"));
                return None;
            }
            if of == Aggregate::Each {
                issues.push(PlanIssue::new(
                    format!("{at}/relative/of"),
                    "a relative bound compares one value per side: use mean, min, max, sum or last",
                ));
                return None;
            }
            MetricJudge::Relative { direction, max_ratio, margin, of }
        }
        JudgeDoc::RankTest { direction, confidence, tolerance } => MetricJudge::RankTest {
            direction,
            confidence: confidence.unwrap_or(crate::stats::DEFAULT_CONFIDENCE),
            tolerance: tolerance.unwrap_or(crate::stats::DEFAULT_TOLERANCE),
        },
    })
}

fn compile_window(doc: &WindowDoc, at: &str, issues: &mut Vec<PlanIssue>) -> Option<Window> {
    match (doc.since, doc.last_ms) {
        (Some(moment), None) => Some(Window::Since(match moment {
            MomentDoc::Deployment => Moment::Deployment,
            MomentDoc::AllowTraffic => Moment::AllowTraffic,
            MomentDoc::Hook => Moment::Hook,
        })),
        (None, Some(ms)) => Some(Window::Last(Duration::from_millis(ms))),
        // The schema asks for exactly one; say so here too rather than drop the check.
        _ => {
            issues.push(PlanIssue::new(at, "a window needs exactly one of \"since\" or \"last_ms\""));
            None
        }
    }
}

/// Compiles an alarms check's document.
pub(super) fn compile_alarms(doc: AlarmsDoc, at: &str, issues: &mut Vec<PlanIssue>) -> Option<AlarmsProbe> {
    if doc.names.is_empty() && doc.prefix.is_none() && !doc.deployment_group {
        issues.push(PlanIssue::new(at, NAME_THE_ALARMS));
        return None;
    }
    let window = match &doc.window {
        Some(window) => Some(compile_window(window, &format!("{at}/window"), issues)?),
        None => None,
    };
    Some(AlarmsProbe {
        names: doc.names,
        prefix: doc.prefix,
        deployment_group: doc.deployment_group,
        window,
        insufficient_data_passes: doc.insufficient_data == NoData::Pass,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{PlanError, Probe, parse};

    fn green_5xx(id: &str, return_data: bool, group: &str) -> serde_json::Value {
        serde_json::json!({
            "Id": id,
            "ReturnData": return_data,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApplicationELB",
                    "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": "${load_balancer}"}]
                },
                "Period": 60,
                "Stat": "Sum"
            }
        })
    }

    fn plan_with(metric: serde_json::Value) -> Result<crate::plan::Plan, PlanError> {
        let text = serde_json::json!({"checks": [{"name": "m", "metric": metric}]}).to_string();
        parse(&text, Path::new("."))
    }

    fn issues(metric: serde_json::Value) -> Vec<String> {
        match plan_with(metric) {
            Err(PlanError::Invalid(issues)) => issues.iter().map(ToString::to_string).collect(),
            other => panic!("expected an invalid plan, got {other:?}"),
        }
    }

    #[test]
    fn a_comparing_metric_check_compiles_with_its_defaults() {
        let plan = plan_with(serde_json::json!({
            "candidate": [green_5xx("green", true, "${green_target_group}")],
            "baseline": [green_5xx("blue", true, "${blue_target_group}")],
            "window": {"since": "allow_traffic"},
            "judge": {"rank_test": {"direction": "increase"}}
        }))
        .unwrap();
        let Probe::Metric(probe) = &plan.checks[0].probe else { panic!("not a metric check") };
        assert_eq!(probe.candidate_result, "green");
        assert_eq!(probe.baseline_result.as_deref(), Some("blue"));
        assert_eq!(probe.window, Window::Since(Moment::AllowTraffic));
        assert_eq!(
            probe.judge,
            MetricJudge::RankTest { direction: Direction::Increase, confidence: 0.98, tolerance: 0.25 }
        );
        assert_eq!((probe.min_samples, probe.no_data), (DEFAULT_MIN_SAMPLES, NoData::Fail));
        assert_eq!(probe.candidate[0].variables(), ["green_target_group", "load_balancer"]);
        assert!(plan.checks[0].probe.uses_cloudwatch());
    }

    #[test]
    fn ids_unique_across_sides_and_one_returned_series_per_side() {
        let found = issues(serde_json::json!({
            "candidate": [green_5xx("errors", true, "a"), green_5xx("rate", true, "b")],
            "baseline": [green_5xx("errors", true, "c")],
            "window": {"last_ms": 600000},
            "judge": {"relative": {"direction": "increase", "max_ratio": 2}}
        }));
        assert!(
            found.iter().any(|i| i.starts_with("at /checks/0/metric/baseline/0/Id: query id \"errors\" is used twice")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|i| i.contains("/metric/candidate: queries errors, rate all return data")),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_variables_and_judges_without_a_baseline_are_refused() {
        let found = issues(serde_json::json!({
            "candidate": [green_5xx("green", true, "${green_targetgroup}")],
            "window": {"since": "deployment"},
            "judge": {"relative": {"direction": "increase", "margin": 0.01}}
        }));
        assert!(
            found.iter().any(|i| i.starts_with("at /checks/0/metric/candidate/0/MetricStat/Metric/Dimensions/0/Value: unknown variable ${green_targetgroup}")),
            "{found:?}"
        );
        assert!(found.iter().any(|i| i.starts_with("at /checks/0/metric/baseline: this judge compares")), "{found:?}");
    }

    #[test]
    fn the_schema_holds_cloudwatch_limits_and_one_judge() {
        let mut query = green_5xx("Green", true, "x");
        query["MetricStat"]["Period"] = 45.into();
        query["MetricStat"]["Stat"] = "p999".into();
        let found = issues(serde_json::json!({
            "candidate": [query],
            "window": {"since": "allow_traffic", "last_ms": 1000},
            "judge": {"threshold": {"max": 1}, "rank_test": {"direction": "increase"}}
        }));
        for pointer in
            ["/candidate/0/Id", "/candidate/0/MetricStat/Period", "/candidate/0/MetricStat/Stat", "/window", "/judge"]
        {
            assert!(
                found.iter().any(|i| i.starts_with(&format!("at /checks/0/metric{pointer}:"))),
                "{pointer}: {found:?}"
            );
        }
    }

    #[test]
    fn metric_and_alarms_checks_take_no_expect_and_alarms_need_names() {
        let found = |text: &str| match parse(text, Path::new(".")) {
            Err(PlanError::Invalid(found)) => found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            other => panic!("expected an invalid plan, got {other:?}"),
        };
        let expecting =
            found(r#"{"checks": [{"name": "a", "alarms": {"names": ["x"]}, "expect": {"status": [200]}}]}"#);
        assert!(
            expecting.iter().any(|i| i.starts_with("at /checks/0/expect: metric, alarms and compare checks")),
            "{expecting:?}"
        );
        let unnamed = found(r#"{"checks": [{"name": "b", "alarms": {"window": {"since": "deployment"}}}]}"#);
        assert_eq!(
            unnamed,
            ["at /checks/0/alarms: name the alarms: give names, a prefix, or \"deployment_group\": true"]
        );

        let plan = parse(
            r#"{"checks": [{"name": "quiet", "alarms": {"deployment_group": true, "window": {"since": "deployment"}}}]}"#,
            Path::new("."),
        )
        .unwrap();
        let Probe::Alarms(probe) = &plan.checks[0].probe else { panic!("not an alarms check") };
        assert!(probe.deployment_group && !probe.insufficient_data_passes);
        assert_eq!(probe.window, Some(Window::Since(Moment::Deployment)));
    }
}
