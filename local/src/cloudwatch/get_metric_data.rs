//! GetMetricData: up to 500 queries, each a `MetricStat` (one metric, a period and a statistic)
//! or an `Expression` of metric math over other queries' ids; datapoints in `[StartTime, EndTime)`,
//! newest first unless `ScanBy` says otherwise, paged by `MaxDatapoints` and `NextToken`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::expression::{self, Operand, Series};
use super::put_metric_data::dimensions;
use super::statistic::Statistic;
use super::store::MetricKey;
use super::{bucket_ms, epoch_ms, invalid, missing, parse_token, required_str, timestamp, token};
use crate::emulator::Emulator;
use crate::protocol::ApiError;

/// The most queries one request may carry.
const MAX_QUERIES: usize = 500;
/// MaxDatapoints when the request gives none.
const DEFAULT_MAX_DATAPOINTS: usize = 100_800;

/// The series of `key`'s `statistic` per period of `period_seconds` (scaled, see the module doc
/// of [`super`]), for datapoints in `[start, end)`: bucket start (epoch ms) → value. Periods
/// without data are absent.
pub fn metric_series(
    emulator: &Emulator,
    key: &MetricKey,
    statistic: Statistic,
    period_seconds: u64,
    start: SystemTime,
    end: SystemTime,
) -> Series {
    let bucket = bucket_ms(emulator.scale(), period_seconds);
    let mut buckets: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for sample in emulator.metrics().samples(key, start, end) {
        buckets.entry(epoch_ms(sample.at).div_euclid(bucket) * bucket).or_default().push(sample);
    }
    buckets.into_iter().filter_map(|(at, samples)| statistic.compute(&samples).map(|v| (at, v))).collect()
}

/// A query's `Period`: positive, and 1, 5, 10, 20, 30 or a multiple of 60, as CloudWatch allows.
pub(crate) fn period(value: Option<&Value>, member: &str) -> Result<u64, ApiError> {
    let period = value.and_then(Value::as_u64).ok_or_else(|| missing(member))?;
    if period == 0 || !(matches!(period, 1 | 5 | 10 | 20 | 30) || period % 60 == 0) {
        return Err(invalid(format!("The parameter {member} must be 1, 5, 10, 20, 30 or a multiple of 60.")));
    }
    Ok(period)
}

/// A `Metric` structure: `{Namespace, MetricName, Dimensions}`.
pub(crate) fn metric_key(metric: &Map<String, Value>) -> Result<MetricKey, ApiError> {
    Ok(MetricKey {
        namespace: required_str(metric, "Namespace")?.to_owned(),
        name: required_str(metric, "MetricName")?.to_owned(),
        dimensions: dimensions(metric.get("Dimensions"))?,
    })
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::client("ValidationError", message)
}

/// One query of the request.
struct Query<'a> {
    id: &'a str,
    label: Option<&'a str>,
    return_data: bool,
    what: What<'a>,
}

enum What<'a> {
    Metric { key: MetricKey, statistic: Statistic, period: u64 },
    Expression(&'a str),
}

fn query(item: &Value) -> Result<Query<'_>, ApiError> {
    let item = item.as_object().ok_or_else(|| invalid("a MetricDataQuery is an object"))?;
    let id = required_str(item, "Id")?;
    let valid_id = id.len() <= 255
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_id {
        return Err(validation(format!(
            "The value {id} for field Id is not valid: it must start with a lowercase letter and hold only letters, digits and underscores."
        )));
    }
    let what = match (item.get("MetricStat").and_then(Value::as_object), item.get("Expression").and_then(Value::as_str))
    {
        (Some(stat), None) => {
            let metric = stat.get("Metric").and_then(Value::as_object).ok_or_else(|| missing("MetricStat.Metric"))?;
            let text = required_str(stat, "Stat")?;
            let statistic = Statistic::parse(text)
                .ok_or_else(|| validation(format!("The value {text} for field Stat is not a statistic.")))?;
            What::Metric { key: metric_key(metric)?, statistic, period: period(stat.get("Period"), "Period")? }
        }
        (None, Some(expression)) => What::Expression(expression),
        _ => {
            return Err(validation(format!("The query {id} must have exactly one of MetricStat and Expression.")));
        }
    };
    Ok(Query {
        id,
        label: item.get("Label").and_then(Value::as_str),
        return_data: item.get("ReturnData").and_then(Value::as_bool).unwrap_or(true),
        what,
    })
}

/// Serves GetMetricData.
pub(crate) fn get_metric_data(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let items = input.get("MetricDataQueries").and_then(Value::as_array).ok_or_else(|| missing("MetricDataQueries"))?;
    if items.is_empty() || items.len() > MAX_QUERIES {
        return Err(validation(format!("MetricDataQueries must hold 1 to {MAX_QUERIES} queries.")));
    }
    let start = timestamp(input, "StartTime")?.ok_or_else(|| missing("StartTime"))?;
    let end = timestamp(input, "EndTime")?.ok_or_else(|| missing("EndTime"))?;
    if end <= start {
        return Err(validation("The parameter StartTime must be less than the parameter EndTime."));
    }
    let descending = match input.get("ScanBy").and_then(Value::as_str) {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => {
            return Err(validation(format!("ScanBy {other} is not TimestampDescending or TimestampAscending")));
        }
    };
    let max = match input.get("MaxDatapoints") {
        None => DEFAULT_MAX_DATAPOINTS,
        Some(value) => {
            value.as_u64().filter(|n| *n > 0).ok_or_else(|| invalid("MaxDatapoints must be positive"))? as usize
        }
    };
    let offset = parse_token(input)?;
    let queries = items.iter().map(query).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = queries.iter().find(|q| !seen.insert(q.id)) {
        return Err(validation(format!("The value {} for field Id is used by more than one query.", twice.id)));
    }
    if !queries.iter().any(|q| q.return_data) {
        return Err(validation("At least one query must have ReturnData set to true."));
    }

    // Expressions may use any query's id; metrics first, then expressions in order of their
    // dependencies (an expression naming one not yet computed is computed after it).
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for q in &queries {
        if let What::Metric { key, statistic, period } = &q.what {
            series.insert(q.id.to_owned(), metric_series(emulator, key, *statistic, *period, start, end));
        }
    }
    let mut pending: Vec<&Query> = queries.iter().filter(|q| matches!(q.what, What::Expression(_))).collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut last_error = None;
        pending.retain(|q| {
            let What::Expression(text) = q.what else { return false };
            match expression::evaluate(text, &series) {
                Ok(Operand::Series(s)) => {
                    series.insert(q.id.to_owned(), s);
                    false
                }
                Ok(Operand::Constant(_)) => {
                    last_error = Some(validation(format!("The expression {text} names no metric.")));
                    true
                }
                Err(err) => {
                    last_error = Some(validation(err.to_string()));
                    true
                }
            }
        });
        if pending.len() == before {
            return Err(last_error.unwrap_or_else(|| validation("the expressions depend on one another")));
        }
    }

    // Datapoints paged across results in order: the token is the count already returned.
    let mut results = Vec::new();
    let (mut position, mut returned, mut more) = (0usize, 0usize, false);
    for q in queries.iter().filter(|q| q.return_data) {
        let points: Vec<(i64, f64)> = {
            let s = series.get(q.id).cloned().unwrap_or_default();
            if descending { s.into_iter().rev().collect() } else { s.into_iter().collect() }
        };
        let skip = offset.saturating_sub(position).min(points.len());
        position += points.len();
        if skip == points.len() && !points.is_empty() {
            continue;
        }
        let take = (max - returned).min(points.len() - skip);
        returned += take;
        more |= skip + take < points.len();
        let page = &points[skip..skip + take];
        let label = q.label.map(str::to_owned).unwrap_or_else(|| match &q.what {
            What::Metric { key, .. } => key.name.clone(),
            What::Expression(_) => q.id.to_owned(),
        });
        results.push(json!({
            "Id": q.id,
            "Label": label,
            "Timestamps": page.iter().map(|(t, _)| *t as f64 / 1000.0).collect::<Vec<_>>(),
            "Values": page.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": if more { "PartialData" } else { "Complete" },
        }));
        if more {
            break;
        }
    }
    let mut output = json!({"MetricDataResults": results, "Messages": []});
    if more {
        output["NextToken"] = json!(token(offset + returned));
    }
    Ok(output)
}
