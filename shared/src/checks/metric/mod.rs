//! One measurement of a metric check: one `GetMetricData` call carrying the candidate's and the
//! baseline's queries over the window, then the judge on the returned series.
//!
//! No data is never a pass by accident: a side with fewer than `min_samples` datapoints fails the
//! measurement, naming the side, unless the check says `no_data: pass`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::types::{self as cw, ScanBy, StatusCode};
use aws_smithy_types::DateTime;

use super::{ProbeContext, variables, window};
use crate::plan::{Aggregate, Check, Direction, MetricJudge, MetricProbe, MetricQuery, NoData, Probe};
use crate::stats::{self, Classification, JudgeConfig};

/// Pages of one `GetMetricData` answer read at most (each up to 100,800 datapoints).
const MAX_PAGES: usize = 20;

pub(super) async fn measure(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    let Probe::Metric(probe) = &check.probe else {
        return Err("not a metric check".to_owned());
    };
    let end = SystemTime::now();
    let start = window::window_start(probe.window, context, end)?;
    let queries: Vec<&MetricQuery> = probe.candidate.iter().chain(&probe.baseline).collect();
    let mut names: Vec<&str> = Vec::new();
    for query in &queries {
        for name in query.variables() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let values = variables::variable_values(&names, context).await?;
    let lookup = |name: &str| values.get(name).cloned().ok_or_else(|| format!("${{{name}}} has no value"));
    let filled = queries.iter().map(|query| query.filled(lookup).map(|q| to_sdk(&q))).collect::<Result<Vec<_>, _>>()?;
    let series = if start < end { fetch(context, filled, start, end).await? } else { BTreeMap::new() };
    let candidate = series.get(&probe.candidate_result).map_or(&[][..], Vec::as_slice);
    let baseline = probe.baseline_result.as_ref().map(|id| series.get(id).map_or(&[][..], Vec::as_slice));
    judge(probe, candidate, baseline)
}

/// The plan's query as the SDK's.
fn to_sdk(query: &MetricQuery) -> cw::MetricDataQuery {
    let metric_stat = query.metric_stat.as_ref().map(|stat| {
        let dimensions = stat
            .metric
            .dimensions
            .iter()
            .map(|d| cw::Dimension::builder().name(&d.name).value(&d.value).build())
            .collect();
        let metric = cw::Metric::builder()
            .namespace(&stat.metric.namespace)
            .metric_name(&stat.metric.metric_name)
            .set_dimensions(Some(dimensions))
            .build();
        cw::MetricStat::builder()
            .metric(metric)
            .period(stat.period)
            .stat(&stat.stat)
            .set_unit(stat.unit.as_deref().map(cw::StandardUnit::from))
            .build()
    });
    cw::MetricDataQuery::builder()
        .id(&query.id)
        .set_metric_stat(metric_stat)
        .set_expression(query.expression.clone())
        .set_label(query.label.clone())
        .set_return_data(query.return_data)
        .set_period(query.period)
        .build()
}

/// Every returned series by query id, oldest datapoint first.
async fn fetch(
    context: &ProbeContext,
    queries: Vec<cw::MetricDataQuery>,
    start: SystemTime,
    end: SystemTime,
) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut next_token = None;
    for _ in 0..MAX_PAGES {
        let output = context
            .aws
            .cloudwatch()
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|err| cloudwatch_error("GetMetricData", err))?;
        for result in output.metric_data_results() {
            let id = result.id().unwrap_or_default();
            if matches!(result.status_code(), Some(StatusCode::InternalError | StatusCode::Forbidden)) {
                let status = result.status_code().map_or("", StatusCode::as_str);
                let messages: Vec<&str> = result.messages().iter().filter_map(|m| m.value()).collect();
                return Err(format!("GetMetricData could not compute {id} ({status}): {}", messages.join("; ")));
            }
            series.entry(id.to_owned()).or_default().extend_from_slice(result.values());
        }
        next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
        if next_token.is_none() {
            return Ok(series);
        }
    }
    Err(format!(
        "GetMetricData answered in more than {MAX_PAGES} pages; shorten the window or lengthen the queries' Period"
    ))
}

/// A CloudWatch call's failure, naming the IAM action (and what to grant when it was refused).
pub(super) fn cloudwatch_error<E, R>(operation: &str, err: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let service = err.as_service_error();
    let code = service.and_then(|e| e.code());
    if crate::is_access_denied(code) {
        return format!(
            "access denied calling cloudwatch:{operation}: grant the hook's role cloudwatch:{operation} on \"*\""
        );
    }
    match (code, service.and_then(|e| e.message())) {
        (Some(code), Some(message)) => format!("cloudwatch:{operation} failed: {code}: {message}"),
        (Some(code), None) => format!("cloudwatch:{operation} failed: {code}"),
        _ => format!("cloudwatch:{operation} failed: {}", crate::aws_http::call_failure(&err)),
    }
}

/// Judges the candidate's series (and the baseline's, when the judge compares).
fn judge(probe: &MetricProbe, candidate: &[f64], baseline: Option<&[f64]>) -> Result<(), String> {
    let needed = probe.min_samples as usize;
    let candidate_short = candidate.len() < needed;
    let baseline_short = baseline.is_some_and(|b| b.len() < needed);
    if candidate_short || baseline_short {
        let mut reason = String::from("no data: ");
        let side = |name: &str, id: &str, count: usize| format!("{name} {id} has {count} datapoint(s)");
        reason.push_str(&side("candidate", &probe.candidate_result, candidate.len()));
        if let (Some(id), Some(baseline)) = (&probe.baseline_result, baseline) {
            let _ = write!(reason, ", {}", side("baseline", id, baseline.len()));
        }
        let short = match (candidate_short, baseline_short) {
            (true, true) => "both sides",
            (true, false) => "the candidate",
            _ => "the baseline",
        };
        let _ = write!(reason, "; {short} below min_samples {needed}");
        return match probe.no_data {
            NoData::Fail => Err(reason),
            NoData::Pass => {
                tracing::warn!(reason, "passing a metric measurement without data, as no_data: pass asks");
                Ok(())
            }
        };
    }
    match (probe.judge, baseline) {
        (MetricJudge::Threshold { min, max, of }, _) => threshold(&probe.candidate_result, candidate, min, max, of),
        (MetricJudge::Relative { direction, max_ratio, margin, of }, Some(baseline)) => {
            relative(candidate, baseline, direction, max_ratio, margin, of)
        }
        (MetricJudge::RankTest { direction, confidence, tolerance }, Some(baseline)) => {
            let config = JudgeConfig { confidence, tolerance, direction, min_samples: 1 };
            rank_test(probe, candidate, baseline, &config)
        }
        // The loader refuses comparing judges without a baseline.
        (_, None) => Err("this judge needs baseline queries".to_owned()),
    }
}

fn threshold(id: &str, values: &[f64], min: Option<f64>, max: Option<f64>, of: Aggregate) -> Result<(), String> {
    let outside = |value: f64| min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m);
    let bounds = match (min, max) {
        (Some(min), Some(max)) => format!("within [{}, {}]", number(min), number(max)),
        (Some(min), None) => format!("at least {}", number(min)),
        (None, Some(max)) => format!("at most {}", number(max)),
        (None, None) => "bounded".to_owned(),
    };
    if of == Aggregate::Each {
        let bad: Vec<String> = values.iter().filter(|v| outside(**v)).map(|v| number(*v)).collect();
        if bad.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "candidate {id}: {} of {} datapoints not {bounds} ({})",
            bad.len(),
            values.len(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let value = aggregate(of, values);
    if outside(value) {
        return Err(format!(
            "candidate {id}: {} {} over {} datapoints, not {bounds}",
            name(of),
            number(value),
            values.len()
        ));
    }
    Ok(())
}

fn relative(
    candidate: &[f64],
    baseline: &[f64],
    direction: Direction,
    max_ratio: Option<f64>,
    margin: Option<f64>,
    of: Aggregate,
) -> Result<(), String> {
    let (c, b) = (aggregate(of, candidate), aggregate(of, baseline));
    // The looser of the ratio and the margin applies: a ratio means nothing near zero (error rates),
    // a margin nothing at large values (latencies).
    let upper =
        [max_ratio.map(|r| b * r), margin.map(|m| b + m)].into_iter().flatten().fold(f64::NEG_INFINITY, f64::max);
    let lower = [max_ratio.map(|r| b / r), margin.map(|m| b - m)].into_iter().flatten().fold(f64::INFINITY, f64::min);
    let allowance = match (max_ratio, margin) {
        (Some(r), Some(m)) => format!("×{} or ±{}", number(r), number(m)),
        (Some(r), None) => format!("×{}", number(r)),
        (None, Some(m)) => format!("±{}", number(m)),
        (None, None) => String::new(),
    };
    let what = name(of);
    let higher = matches!(direction, Direction::Increase | Direction::Either) && c > upper;
    let lower_bad = matches!(direction, Direction::Decrease | Direction::Either) && c < lower;
    if higher {
        return Err(format!(
            "candidate {what} {} is above the baseline's {} {allowance} (at most {})",
            number(c),
            number(b),
            number(upper)
        ));
    }
    if lower_bad {
        return Err(format!(
            "candidate {what} {} is below the baseline's {} {allowance} (at least {})",
            number(c),
            number(b),
            number(lower)
        ));
    }
    Ok(())
}

/// Kayenta's judgement of the per-period samples ([`crate::stats::classify`]).
fn rank_test(probe: &MetricProbe, candidate: &[f64], baseline: &[f64], config: &JudgeConfig) -> Result<(), String> {
    let sides = format!(
        "candidate {} vs baseline {}",
        probe.candidate_result,
        probe.baseline_result.as_deref().unwrap_or("baseline")
    );
    match stats::classify(baseline, candidate, config) {
        Ok(Classification::Pass(evidence)) => {
            tracing::debug!(sides, verdict = %Classification::Pass(evidence), "rank test passed");
            Ok(())
        }
        Ok(verdict) => Err(format!("{sides}: {verdict}")),
        Err(err) => Err(format!("{sides}: cannot run the rank test: {err}")),
    }
}

/// One value of a non-empty series.
fn aggregate(of: Aggregate, values: &[f64]) -> f64 {
    match of {
        Aggregate::Mean | Aggregate::Each => values.iter().sum::<f64>() / values.len().max(1) as f64,
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Last => values.last().copied().unwrap_or(f64::NAN),
    }
}

fn name(of: Aggregate) -> &'static str {
    match of {
        Aggregate::Each => "each",
        Aggregate::Mean => "mean",
        Aggregate::Sum => "sum",
        Aggregate::Min => "min",
        Aggregate::Max => "max",
        Aggregate::Last => "last",
    }
}

/// A number as a reason shows it: four significant decimals, no trailing zeros.
fn number(value: f64) -> String {
    let text = if value.abs() >= 1000.0 { format!("{value:.0}") } else { format!("{value:.4}") };
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_owned(),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Moment, Window};

    fn probe(judge: MetricJudge, baseline: bool) -> MetricProbe {
        MetricProbe {
            candidate: Vec::new(),
            baseline: Vec::new(),
            candidate_result: "green".into(),
            baseline_result: baseline.then(|| "blue".into()),
            window: Window::Since(Moment::AllowTraffic),
            judge,
            min_samples: 3,
            no_data: NoData::Fail,
        }
    }

    const MAX_1_PERCENT: MetricJudge = MetricJudge::Threshold { min: None, max: Some(0.01), of: Aggregate::Each };

    #[test]
    fn a_threshold_on_each_datapoint_names_the_ones_outside() {
        let probe = probe(MAX_1_PERCENT, false);
        assert_eq!(judge(&probe, &[0.0, 0.005, 0.01], None), Ok(()));
        let reason = judge(&probe, &[0.0, 0.05, 0.2], None).unwrap_err();
        assert_eq!(reason, "candidate green: 2 of 3 datapoints not at most 0.01 (0.05, 0.2)");
    }

    #[test]
    fn a_threshold_on_an_aggregate_says_which() {
        let probe = probe(MetricJudge::Threshold { min: Some(0.99), max: None, of: Aggregate::Mean }, false);
        assert_eq!(judge(&probe, &[1.0, 0.99, 0.995], None), Ok(()));
        let reason = judge(&probe, &[1.0, 0.9, 0.95], None).unwrap_err();
        assert_eq!(reason, "candidate green: mean 0.95 over 3 datapoints, not at least 0.99");
    }

    #[test]
    fn no_data_fails_by_default_and_names_the_side() {
        let relative = MetricJudge::Relative {
            direction: Direction::Increase,
            max_ratio: Some(1.5),
            margin: None,
            of: Aggregate::Mean,
        };
        let probe = probe(relative, true);
        let reason = judge(&probe, &[0.1, 0.1, 0.1], Some(&[])).unwrap_err();
        assert!(
            reason.contains("baseline blue has 0 datapoint(s)") && reason.contains("the baseline below"),
            "{reason}"
        );
        let reason = judge(&probe, &[0.1], Some(&[0.1, 0.1, 0.1])).unwrap_err();
        assert!(
            reason.contains("candidate green has 1 datapoint(s)") && reason.contains("the candidate below"),
            "{reason}"
        );
        let reason = judge(&probe, &[], Some(&[])).unwrap_err();
        assert!(reason.contains("both sides"), "{reason}");
        let passing = MetricProbe { no_data: NoData::Pass, ..probe };
        assert_eq!(judge(&passing, &[], Some(&[])), Ok(()));
    }

    #[test]
    fn a_relative_bound_takes_the_looser_of_ratio_and_margin() {
        let judge_with = |direction| MetricJudge::Relative {
            direction,
            max_ratio: Some(1.5),
            margin: Some(0.01),
            of: Aggregate::Mean,
        };
        let increase = probe(judge_with(Direction::Increase), true);
        // Near zero the margin allows more than the ratio.
        assert_eq!(judge(&increase, &[0.01, 0.01, 0.01], Some(&[0.001, 0.001, 0.001])), Ok(()));
        let reason = judge(&increase, &[0.05, 0.05, 0.05], Some(&[0.001, 0.001, 0.001])).unwrap_err();
        assert_eq!(reason, "candidate mean 0.05 is above the baseline's 0.001 ×1.5 or ±0.01 (at most 0.011)");
        // At large values the ratio does.
        assert_eq!(judge(&increase, &[140.0; 3], Some(&[100.0; 3])), Ok(()));
        // Lower is fine when only an increase is bad, and not when a decrease is.
        assert_eq!(judge(&increase, &[1.0; 3], Some(&[100.0; 3])), Ok(()));
        let decrease = probe(judge_with(Direction::Decrease), true);
        let reason = judge(&decrease, &[1.0; 3], Some(&[100.0; 3])).unwrap_err();
        assert!(reason.starts_with("candidate mean 1 is below the baseline's 100"), "{reason}");
    }

    #[test]
    fn the_rank_test_fails_a_slower_candidate_and_passes_noise() {
        let probe =
            probe(MetricJudge::RankTest { direction: Direction::Increase, confidence: 0.98, tolerance: 0.25 }, true);
        let blue = [0.30, 0.31, 0.29, 0.32, 0.30, 0.28, 0.31, 0.30, 0.29, 0.33];
        let slower: Vec<f64> = blue.iter().map(|v| v * 3.0).collect();
        let reason = judge(&probe, &slower, Some(&blue)).unwrap_err();
        assert!(reason.starts_with("candidate green vs baseline blue: "), "{reason}");
        assert!(reason.contains("higher at 98"), "{reason}");
        let noisy = [0.31, 0.29, 0.30, 0.33, 0.28, 0.30, 0.32, 0.29, 0.31, 0.30];
        assert_eq!(judge(&probe, &noisy, Some(&blue)), Ok(()));
        // Faster is fine when only an increase is bad.
        let faster: Vec<f64> = blue.iter().map(|v| v / 3.0).collect();
        assert_eq!(judge(&probe, &faster, Some(&blue)), Ok(()));
    }

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(number(0.0510), "0.051");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(0.00012345), "0.0001");
    }
}
