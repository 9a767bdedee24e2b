//! Metric alarms: PutMetricAlarm, DescribeAlarms, DescribeAlarmHistory, SetAlarmState, and the
//! evaluation that moves each alarm between `OK`, `ALARM` and `INSUFFICIENT_DATA` on the stored
//! metrics.
//!
//! An alarm watches one metric (`Namespace`, `MetricName`, `Dimensions`, with `Statistic` or
//! `ExtendedStatistic`) or a metric-math `Metrics` list whose `ReturnData` query is compared. At
//! the end of every (scaled) period, its last `EvaluationPeriods` complete periods are looked at:
//! `DatapointsToAlarm` of them breaching the threshold put it in `ALARM`; `TreatMissingData`
//! (`missing`, `notBreaching`, `breaching`, `ignore`) says what a period without data counts as.
//! A state set by SetAlarmState (or the control API) holds until the next evaluation, as in
//! CloudWatch. Every transition goes into the alarm's history and the emulator's record.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::get_metric_data::{self, metric_key, metric_series, period};
use super::statistic::Statistic;
use super::store::MetricKey;
use super::{bucket_ms, epoch_ms, invalid, missing, parse_token, required_str, seconds, timestamp, token};
use crate::emulator::{Emulator, Happening};
use crate::protocol::ApiError;

/// The most history items kept, oldest dropped first.
const MAX_HISTORY: usize = 10_000;
/// How often the background evaluation looks for periods that have ended (real time).
const EVALUATION_TICK: Duration = Duration::from_millis(50);
/// The most alarms the emulator keeps (CloudWatch's default quota per region is higher; this
/// bounds memory).
const MAX_ALARMS: usize = 5_000;

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    /// Within the threshold.
    Ok,
    /// Breaching.
    Alarm,
    /// Not enough data to say.
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// Parses CloudWatch's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ok, Self::Alarm, Self::InsufficientData].into_iter().find(|s| s.as_str() == text)
    }
}

/// What an alarm compares.
#[derive(Debug, Clone)]
pub enum Watched {
    /// One metric's statistic.
    Metric {
        /// The series.
        key: MetricKey,
        /// `Statistic` or `ExtendedStatistic`.
        statistic: Statistic,
        /// The request's spelling of it, and whether it was an ExtendedStatistic.
        spelling: (String, bool),
        /// Seconds (AWS time).
        period: u64,
    },
    /// Metric math: the request's `Metrics`, whose one `ReturnData` query is compared.
    Queries {
        /// The queries as given.
        queries: Vec<Value>,
        /// The period of their metrics (AWS seconds), the evaluation's period.
        period: u64,
    },
}

/// One metric alarm.
#[derive(Debug, Clone)]
pub struct MetricAlarm {
    /// The PutMetricAlarm request, for DescribeAlarms.
    pub request: Map<String, Value>,
    /// What it watches.
    pub watched: Watched,
    /// Periods looked at.
    pub evaluation_periods: u64,
    /// Breaching periods among them that put it in ALARM.
    pub datapoints_to_alarm: u64,
    /// The threshold.
    pub threshold: f64,
    /// `GreaterThanThreshold` and the others.
    pub comparison: String,
    /// `missing`, `notBreaching`, `breaching` or `ignore`.
    pub treat_missing_data: String,
    /// Where it is.
    pub state: AlarmState,
    /// Why.
    pub state_reason: String,
    /// When its state was last set.
    pub state_updated: SystemTime,
    /// When its state last changed.
    pub state_transitioned: SystemTime,
    /// When it was last configured.
    pub configuration_updated: SystemTime,
    /// The last period boundary (epoch ms) it was evaluated at.
    evaluated_at: Option<i64>,
}

impl MetricAlarm {
    fn period(&self) -> u64 {
        match &self.watched {
            Watched::Metric { period, .. } | Watched::Queries { period, .. } => *period,
        }
    }

    fn breaches(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            "GreaterThanThreshold" => value > self.threshold,
            "LessThanThreshold" => value < self.threshold,
            _ => value <= self.threshold,
        }
    }
}

/// One entry of an alarm's history.
#[derive(Debug, Clone)]
pub struct HistoryItem {
    /// The alarm.
    pub alarm: String,
    /// When.
    pub at: SystemTime,
    /// `StateUpdate` or `ConfigurationUpdate`.
    pub kind: &'static str,
    /// One line.
    pub summary: String,
    /// JSON detail.
    pub data: String,
}

/// Every alarm and the history of all of them.
#[derive(Debug, Default)]
pub struct Alarms {
    /// Alarms by name.
    pub alarms: BTreeMap<String, MetricAlarm>,
    /// Oldest first.
    pub history: VecDeque<HistoryItem>,
}

impl Alarms {
    fn push_history(&mut self, item: HistoryItem) {
        self.history.push_back(item);
        while self.history.len() > MAX_HISTORY {
            self.history.pop_front();
        }
    }

    /// Moves `name` to `state`, noting it in the history when it changes; says whether it changed.
    fn set_state(&mut self, name: &str, state: AlarmState, reason: String) -> bool {
        let now = SystemTime::now();
        let Some(alarm) = self.alarms.get_mut(name) else { return false };
        let old = (alarm.state, std::mem::replace(&mut alarm.state_reason, reason.clone()));
        alarm.state_updated = now;
        if old.0 == state {
            return false;
        }
        alarm.state = state;
        alarm.state_transitioned = now;
        let data = json!({
            "version": "1.0",
            "oldState": {"stateValue": old.0.as_str(), "stateReason": old.1},
            "newState": {"stateValue": state.as_str(), "stateReason": reason},
        });
        self.push_history(HistoryItem {
            alarm: name.to_owned(),
            at: now,
            kind: "StateUpdate",
            summary: format!("Alarm updated from {} to {}", old.0.as_str(), state.as_str()),
            data: data.to_string(),
        });
        true
    }
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::client("ValidationError", message)
}

fn positive(input: &Map<String, Value>, member: &str) -> Result<Option<u64>, ApiError> {
    match input.get(member) {
        None => Ok(None),
        Some(v) => {
            v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| invalid(format!("{member} must be at least 1")))
        }
    }
}

/// Serves PutMetricAlarm: creates the alarm, or updates it (its state is kept).
pub(crate) fn put_metric_alarm(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = required_str(input, "AlarmName")?;
    if name.is_empty() || name.len() > 255 {
        return Err(validation("AlarmName must be 1 to 255 characters."));
    }
    let evaluation_periods = positive(input, "EvaluationPeriods")?.ok_or_else(|| missing("EvaluationPeriods"))?;
    let datapoints_to_alarm = positive(input, "DatapointsToAlarm")?.unwrap_or(evaluation_periods);
    if datapoints_to_alarm > evaluation_periods {
        return Err(validation("DatapointsToAlarm must be at most EvaluationPeriods."));
    }
    let comparison = required_str(input, "ComparisonOperator")?;
    let comparisons =
        ["GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"];
    if !comparisons.contains(&comparison) {
        return Err(validation(format!("ComparisonOperator {comparison} is not one of {}", comparisons.join(", "))));
    }
    let threshold = input.get("Threshold").and_then(Value::as_f64).ok_or_else(|| missing("Threshold"))?;
    let treat_missing_data = input.get("TreatMissingData").and_then(Value::as_str).unwrap_or("missing");
    if !["missing", "notBreaching", "breaching", "ignore"].contains(&treat_missing_data) {
        return Err(validation(format!("TreatMissingData {treat_missing_data} is not valid")));
    }
    let watched = watched(input)?;
    if let Watched::Queries { queries, .. } = &watched {
        // The queries must be ones GetMetricData accepts.
        let probe = json!({"MetricDataQueries": queries, "StartTime": 0, "EndTime": 1});
        get_metric_data::get_metric_data(emulator, probe.as_object().unwrap_or(&Map::new()))?;
    }
    let now = SystemTime::now();
    let mut alarms = emulator.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
    let previous = alarms.alarms.get(name).cloned();
    if previous.is_none() && alarms.alarms.len() >= MAX_ALARMS {
        return Err(ApiError::client("LimitExceededFault", format!("at most {MAX_ALARMS} alarms are kept locally")));
    }
    let (state, state_reason, state_updated, state_transitioned) = previous.as_ref().map_or_else(
        || (AlarmState::InsufficientData, "Unchecked: Initial alarm creation".to_owned(), now, now),
        |p| (p.state, p.state_reason.clone(), p.state_updated, p.state_transitioned),
    );
    let alarm = MetricAlarm {
        request: input.clone(),
        watched,
        evaluation_periods,
        datapoints_to_alarm,
        threshold,
        comparison: comparison.to_owned(),
        treat_missing_data: treat_missing_data.to_owned(),
        state,
        state_reason,
        state_updated,
        state_transitioned,
        configuration_updated: now,
        evaluated_at: None,
    };
    alarms.alarms.insert(name.to_owned(), alarm);
    let verb = if previous.is_some() { "updated" } else { "created" };
    let data = json!({"version": "1.0", "type": if previous.is_some() { "Update" } else { "Create" }});
    alarms.push_history(HistoryItem {
        alarm: name.to_owned(),
        at: now,
        kind: "ConfigurationUpdate",
        summary: format!("Alarm \"{name}\" {verb}"),
        data: data.to_string(),
    });
    drop(alarms);
    // A new or changed alarm is judged on the data it already has at once, as CloudWatch does
    // soon after PutMetricAlarm; a state set right after the call then holds until the next period.
    emulator.evaluate_alarms(SystemTime::now());
    Ok(json!({}))
}

fn watched(input: &Map<String, Value>) -> Result<Watched, ApiError> {
    if let Some(queries) = input.get("Metrics").and_then(Value::as_array) {
        if input.contains_key("MetricName") || input.contains_key("Namespace") {
            return Err(validation("Metrics cannot be given with MetricName or Namespace."));
        }
        let returned = queries.iter().filter(|q| q.get("ReturnData").and_then(Value::as_bool).unwrap_or(true)).count();
        if returned != 1 {
            return Err(validation("Exactly one of Metrics must have ReturnData true."));
        }
        let period = queries
            .iter()
            .find_map(|q| q.pointer("/MetricStat/Period"))
            .map(|p| period(Some(p), "Period"))
            .transpose()?
            .ok_or_else(|| validation("Metrics must include a MetricStat."))?;
        return Ok(Watched::Queries { queries: queries.clone(), period });
    }
    let key = metric_key(input)?;
    let (text, extended) = match (input.get("Statistic"), input.get("ExtendedStatistic")) {
        (Some(s), None) => (s.as_str().unwrap_or_default(), false),
        (None, Some(s)) => (s.as_str().unwrap_or_default(), true),
        _ => {
            return Err(ApiError::client(
                "InvalidParameterCombinationException",
                "Exactly one of Statistic and ExtendedStatistic must be given.",
            ));
        }
    };
    let statistic =
        Statistic::parse(text).filter(|s| extended == matches!(s, Statistic::Percentile(_))).ok_or_else(|| {
            validation(format!("{text} is not a valid {}", if extended { "ExtendedStatistic" } else { "Statistic" }))
        })?;
    Ok(Watched::Metric {
        key,
        statistic,
        spelling: (text.to_owned(), extended),
        period: period(input.get("Period"), "Period")?,
    })
}

fn alarm_arn(name: &str) -> String {
    format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")
}

fn describe(name: &str, alarm: &MetricAlarm) -> Value {
    let request = &alarm.request;
    let list = |member: &str| request.get(member).cloned().unwrap_or_else(|| json!([]));
    let mut out = json!({
        "AlarmName": name,
        "AlarmArn": alarm_arn(name),
        "AlarmConfigurationUpdatedTimestamp": seconds(alarm.configuration_updated),
        "ActionsEnabled": request.get("ActionsEnabled").and_then(Value::as_bool).unwrap_or(true),
        "OKActions": list("OKActions"),
        "AlarmActions": list("AlarmActions"),
        "InsufficientDataActions": list("InsufficientDataActions"),
        "StateValue": alarm.state.as_str(),
        "StateReason": alarm.state_reason,
        "StateUpdatedTimestamp": seconds(alarm.state_updated),
        "StateTransitionedTimestamp": seconds(alarm.state_transitioned),
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
    });
    for member in ["AlarmDescription", "Unit"] {
        if let Some(value) = request.get(member) {
            out[member] = value.clone();
        }
    }
    match &alarm.watched {
        Watched::Metric { key, spelling, period, .. } => {
            out["Namespace"] = json!(key.namespace);
            out["MetricName"] = json!(key.name);
            out["Dimensions"] =
                json!(key.dimensions.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect::<Vec<_>>());
            out["Period"] = json!(period);
            out[if spelling.1 { "ExtendedStatistic" } else { "Statistic" }] = json!(spelling.0);
        }
        Watched::Queries { queries, .. } => out["Metrics"] = json!(queries),
    }
    out
}

/// Serves DescribeAlarms.
pub(crate) fn describe_alarms(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let names: Option<Vec<&str>> =
        input.get("AlarmNames").and_then(Value::as_array).map(|n| n.iter().filter_map(Value::as_str).collect());
    let prefix = input.get("AlarmNamePrefix").and_then(Value::as_str);
    if names.as_ref().is_some_and(|n| n.len() > 100) {
        return Err(validation("AlarmNames holds at most 100 names."));
    }
    if names.is_some() && prefix.is_some() {
        return Err(validation("AlarmNames and AlarmNamePrefix cannot both be given."));
    }
    let state = match input.get("StateValue").and_then(Value::as_str) {
        None => None,
        Some(text) => {
            Some(AlarmState::parse(text).ok_or_else(|| validation(format!("StateValue {text} is not valid")))?)
        }
    };
    let metric_alarms_wanted = input
        .get("AlarmTypes")
        .and_then(Value::as_array)
        .is_none_or(|types| types.iter().any(|t| t.as_str() == Some("MetricAlarm")));
    let max = positive(input, "MaxRecords")?.unwrap_or(50);
    if max > 100 {
        return Err(validation("MaxRecords must be 1 to 100."));
    }
    let offset = parse_token(input)?;
    let alarms = emulator.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
    let matching: Vec<Value> = alarms
        .alarms
        .iter()
        .filter(|_| metric_alarms_wanted)
        .filter(|(name, _)| names.as_ref().is_none_or(|n| n.contains(&name.as_str())))
        .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
        .filter(|(_, alarm)| state.is_none_or(|s| alarm.state == s))
        .map(|(name, alarm)| describe(name, alarm))
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(max as usize).cloned().collect();
    let mut output = json!({"MetricAlarms": page, "CompositeAlarms": []});
    if offset + (max as usize) < matching.len() {
        output["NextToken"] = json!(token(offset + max as usize));
    }
    Ok(output)
}

/// Serves DescribeAlarmHistory.
pub(crate) fn describe_alarm_history(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = input.get("AlarmName").and_then(Value::as_str);
    let kind = input.get("HistoryItemType").and_then(Value::as_str);
    if kind.is_some_and(|k| {
        !["ConfigurationUpdate", "StateUpdate", "Action", "AlarmContributorStateUpdate", "AlarmContributorAction"]
            .contains(&k)
    }) {
        return Err(validation(format!("HistoryItemType {} is not valid", kind.unwrap_or_default())));
    }
    let start = timestamp(input, "StartDate")?;
    let end = timestamp(input, "EndDate")?;
    let descending = match input.get("ScanBy").and_then(Value::as_str) {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => return Err(validation(format!("ScanBy {other} is not valid"))),
    };
    let max = positive(input, "MaxRecords")?.unwrap_or(100);
    if max > 100 {
        return Err(validation("MaxRecords must be 1 to 100."));
    }
    let offset = parse_token(input)?;
    let alarms = emulator.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
    let mut items: Vec<&HistoryItem> = alarms
        .history
        .iter()
        .filter(|item| name.is_none_or(|n| item.alarm == n))
        .filter(|item| kind.is_none_or(|k| item.kind == k))
        .filter(|item| start.is_none_or(|s| item.at >= s) && end.is_none_or(|e| item.at <= e))
        .collect();
    if descending {
        items.reverse();
    }
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(max as usize)
        .map(|item| {
            json!({
                "AlarmName": item.alarm,
                "AlarmType": "MetricAlarm",
                "Timestamp": seconds(item.at),
                "HistoryItemType": item.kind,
                "HistorySummary": item.summary,
                "HistoryData": item.data,
            })
        })
        .collect();
    let mut output = json!({"AlarmHistoryItems": page});
    if offset + (max as usize) < items.len() {
        output["NextToken"] = json!(token(offset + max as usize));
    }
    Ok(output)
}

/// Serves SetAlarmState: the state holds until the alarm's next evaluation.
pub(crate) fn set_alarm_state(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = required_str(input, "AlarmName")?;
    let text = required_str(input, "StateValue")?;
    let state = AlarmState::parse(text).ok_or_else(|| validation(format!("StateValue {text} is not valid")))?;
    let reason = required_str(input, "StateReason")?;
    if let Some(data) = input.get("StateReasonData").and_then(Value::as_str)
        && serde_json::from_str::<Value>(data).is_err()
    {
        return Err(ApiError::client("InvalidFormatFault", "StateReasonData is not valid JSON."));
    }
    if !emulator.set_alarm_state(name, state, reason.to_owned()) {
        return Err(ApiError::with_status(
            axum::http::StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("Alarm {name} does not exist."),
        ));
    }
    Ok(json!({}))
}

/// The verdict of the periods looked at.
fn verdict(alarm: &MetricAlarm, values: &[Option<f64>]) -> Option<(AlarmState, String)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let missing = values.len() - present.len();
    let mut breaching = present.iter().filter(|v| alarm.breaches(**v)).count();
    if alarm.treat_missing_data == "breaching" {
        breaching += missing;
    }
    let shown: Vec<String> = present.iter().map(|v| format!("{v}")).collect();
    if breaching as u64 >= alarm.datapoints_to_alarm {
        let reason = format!(
            "Threshold Crossed: {breaching} out of the last {} datapoints [{}] were {} the threshold ({}).",
            values.len(),
            shown.join(", "),
            alarm.comparison,
            alarm.threshold
        );
        return Some((AlarmState::Alarm, reason));
    }
    if present.is_empty() {
        return match alarm.treat_missing_data.as_str() {
            "missing" => Some((
                AlarmState::InsufficientData,
                format!("Insufficient Data: {} datapoints were unknown.", values.len()),
            )),
            "ignore" => None,
            _ => Some((AlarmState::Ok, "Threshold Crossed: no datapoints, treated as not breaching.".to_owned())),
        };
    }
    Some((
        AlarmState::Ok,
        format!(
            "Threshold Crossed: datapoints [{}] were not {} the threshold ({}).",
            shown.join(", "),
            alarm.comparison,
            alarm.threshold
        ),
    ))
}

/// The values of the alarm's periods `[first, first + n)` (bucket indices), oldest first.
fn period_values(emulator: &Emulator, alarm: &MetricAlarm, bucket: i64, first: i64) -> Vec<Option<f64>> {
    let n = alarm.evaluation_periods as i64;
    let at = |index: i64| SystemTime::UNIX_EPOCH + Duration::from_millis((index * bucket).max(0) as u64);
    let (start, end) = (at(first), at(first + n));
    let series = match &alarm.watched {
        Watched::Metric { key, statistic, period, .. } => metric_series(emulator, key, *statistic, *period, start, end),
        Watched::Queries { queries, .. } => {
            let input = json!({"MetricDataQueries": queries, "StartTime": seconds(start), "EndTime": seconds(end), "ScanBy": "TimestampAscending"});
            let output = input.as_object().and_then(|i| get_metric_data::get_metric_data(emulator, i).ok());
            let result = output.as_ref().and_then(|o| o.pointer("/MetricDataResults/0")).cloned().unwrap_or_default();
            let times = result.get("Timestamps").and_then(Value::as_array).cloned().unwrap_or_default();
            let values = result.get("Values").and_then(Value::as_array).cloned().unwrap_or_default();
            times
                .iter()
                .zip(&values)
                .filter_map(|(t, v)| Some(((t.as_f64()? * 1000.0).round() as i64, v.as_f64()?)))
                .collect()
        }
    };
    (first..first + n).map(|index| series.get(&(index * bucket)).copied()).collect()
}

impl Emulator {
    /// Sets an alarm's state as SetAlarmState does; false if there is no such alarm.
    pub fn set_alarm_state(&self, name: &str, state: AlarmState, reason: String) -> bool {
        let (exists, changed) = {
            let mut alarms = self.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
            (alarms.alarms.contains_key(name), alarms.set_state(name, state, reason))
        };
        if changed {
            self.record(None, Happening::Alarm { name: name.to_owned(), state: state.as_str() });
        }
        exists
    }

    /// The state of the CloudWatch alarm `name`, if there is one.
    pub fn alarm_state(&self, name: &str) -> Option<AlarmState> {
        self.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner()).alarms.get(name).map(|a| a.state)
    }

    /// Evaluates every alarm whose period has ended since its last evaluation, at `now`.
    pub fn evaluate_alarms(&self, now: SystemTime) {
        let due: Vec<(String, MetricAlarm, i64, i64)> = {
            let alarms = self.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
            alarms
                .alarms
                .iter()
                .filter_map(|(name, alarm)| {
                    let bucket = bucket_ms(self.scale(), alarm.period());
                    let current = epoch_ms(now).div_euclid(bucket);
                    (alarm.evaluated_at != Some(current)).then(|| (name.clone(), alarm.clone(), bucket, current))
                })
                .collect()
        };
        for (name, alarm, bucket, current) in due {
            let values = period_values(self, &alarm, bucket, current - alarm.evaluation_periods as i64);
            let changed = {
                let mut alarms = self.cloudwatch().alarms.lock().unwrap_or_else(|p| p.into_inner());
                let Some(stored) = alarms.alarms.get_mut(&name) else { continue };
                stored.evaluated_at = Some(current);
                match verdict(&alarm, &values) {
                    Some((state, reason)) => alarms.set_state(&name, state, reason).then_some(state),
                    None => None,
                }
            };
            if let Some(state) = changed {
                self.record(None, Happening::Alarm { name, state: state.as_str() });
            }
        }
    }

    /// Evaluates the alarms every [`EVALUATION_TICK`] for as long as the emulator exists.
    pub(crate) fn spawn_alarm_evaluation(&self) {
        let weak = self.downgrade();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EVALUATION_TICK).await;
                let Some(emulator) = weak.upgrade() else { return };
                emulator.evaluate_alarms(SystemTime::now());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(evaluation_periods: u64, datapoints_to_alarm: u64, treat_missing_data: &str) -> MetricAlarm {
        let now = SystemTime::now();
        MetricAlarm {
            request: Map::new(),
            watched: Watched::Queries { queries: Vec::new(), period: 60 },
            evaluation_periods,
            datapoints_to_alarm,
            threshold: 5.0,
            comparison: "GreaterThanThreshold".to_owned(),
            treat_missing_data: treat_missing_data.to_owned(),
            state: AlarmState::InsufficientData,
            state_reason: String::new(),
            state_updated: now,
            state_transitioned: now,
            configuration_updated: now,
            evaluated_at: None,
        }
    }

    fn state(alarm: &MetricAlarm, values: &[Option<f64>]) -> Option<AlarmState> {
        verdict(alarm, values).map(|(state, _)| state)
    }

    #[test]
    fn m_of_n_breaching_periods_raise_it() {
        let two_of_three = alarm(3, 2, "missing");
        assert_eq!(state(&two_of_three, &[Some(6.0), Some(1.0), Some(7.0)]), Some(AlarmState::Alarm));
        assert_eq!(state(&two_of_three, &[Some(6.0), Some(1.0), Some(5.0)]), Some(AlarmState::Ok), "5 is not above 5");
        assert_eq!(state(&two_of_three, &[Some(6.0), None, None]), Some(AlarmState::Ok));
    }

    #[test]
    fn missing_data_counts_as_the_alarm_says() {
        let none = [None, None];
        assert_eq!(state(&alarm(2, 2, "missing"), &none), Some(AlarmState::InsufficientData));
        assert_eq!(state(&alarm(2, 2, "notBreaching"), &none), Some(AlarmState::Ok));
        assert_eq!(state(&alarm(2, 2, "breaching"), &none), Some(AlarmState::Alarm));
        assert_eq!(state(&alarm(2, 2, "ignore"), &none), None, "ignore keeps the state");
        assert_eq!(state(&alarm(2, 2, "breaching"), &[Some(9.0), None]), Some(AlarmState::Alarm));
    }
}
