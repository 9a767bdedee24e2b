//! CloudWatch: metrics, metric math and metric alarms, over rpcv2Cbor (what the SDKs speak) and
//! awsJson1_0, both handled by one `serve` on JSON values.
//!
//! - [`store`] keeps the datapoints; [`put_metric_data`] serves PutMetricData;
//! - [`get_metric_data`] serves GetMetricData, with [`statistic`] and [`expression`] (metric math);
//! - [`alarms`] serves PutMetricAlarm, DescribeAlarms, DescribeAlarmHistory and SetAlarmState, and
//!   evaluates the alarms in the background;
//! - [`recording`] writes the metrics AWS would publish for traffic through an ECS listener
//!   (`AWS/ApplicationELB`) and for Lambda invocations (`AWS/Lambda`).
//!
//! **Time scale.** Datapoints are stored at the real wall-clock time they happen. A `Period` of P
//! seconds, in a query or an alarm, is P AWS seconds: its buckets last P scaled to real time
//! ([`crate::emulator::TimeScale::apply`]), aligned on multiples of that length since the Unix
//! epoch. At a scale of 60, a 60-second period is a one-second bucket, so a plan written with
//! AWS periods gets as many periods in a five-second canary as in a five-minute one. Timestamps
//! (StartTime, EndTime, the datapoints' own) are real wall-clock times.

pub mod alarms;
pub mod expression;
pub mod get_metric_data;
pub mod put_metric_data;
pub mod recording;
pub mod statistic;
pub mod store;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::emulator::{Emulator, TimeScale};
use crate::protocol::ApiError;
use crate::protocol::rpc_v2_cbor::{self, TimestampPath};

/// Every operation served, as named in `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`
/// and in rpcv2Cbor's `/service/GraniteServiceVersion20100801/operation/<Operation>`.
pub const OPERATIONS: &[&str] =
    &["PutMetricData", "GetMetricData", "PutMetricAlarm", "DescribeAlarms", "DescribeAlarmHistory", "SetAlarmState"];

/// CloudWatch's awsJson target prefix, which is also its service shape name.
pub const TARGET_SERVICE: &str = "GraniteServiceVersion20100801";

/// CloudWatch as rpcv2Cbor serves it.
pub const RPC_V2_CBOR: rpc_v2_cbor::Service =
    rpc_v2_cbor::Service { shape_name: TARGET_SERVICE, query_error_code, timestamps };

/// CloudWatch's state: its metrics and its alarms.
#[derive(Debug, Default)]
pub struct CloudWatch {
    /// Every datapoint.
    pub metrics: store::Metrics,
    /// Every metric alarm and its history.
    pub alarms: Mutex<alarms::Alarms>,
}

/// The awsQueryError code of each exception CloudWatch answers with (the model's
/// `error.code`), which awsQueryCompatible services send in `x-amzn-query-error`.
pub fn query_error_code(exception: &str) -> Option<&'static str> {
    Some(match exception {
        "InvalidParameterValueException" => "InvalidParameterValue",
        "MissingRequiredParameterException" => "MissingParameter",
        "InvalidParameterCombinationException" => "InvalidParameterCombination",
        "InternalServiceFault" => "InternalServiceError",
        "InvalidNextToken" => "InvalidNextToken",
        "LimitExceededFault" => "LimitExceeded",
        "ResourceNotFound" => "ResourceNotFound",
        "InvalidFormatFault" => "InvalidFormat",
        "AccessDeniedException" => "AccessDenied",
        "ThrottlingException" => "Throttling",
        "ValidationError" => "ValidationError",
        _ => return None,
    })
}

/// The output members of `operation` that are timestamps.
pub fn timestamps(operation: &str) -> &'static [TimestampPath] {
    const EACH: &str = TimestampPath::EACH;
    match operation {
        "GetMetricData" => &[TimestampPath(&["MetricDataResults", EACH, "Timestamps", EACH])],
        "DescribeAlarms" => &[
            TimestampPath(&["MetricAlarms", EACH, "AlarmConfigurationUpdatedTimestamp"]),
            TimestampPath(&["MetricAlarms", EACH, "StateUpdatedTimestamp"]),
            TimestampPath(&["MetricAlarms", EACH, "StateTransitionedTimestamp"]),
        ],
        "DescribeAlarmHistory" => &[TimestampPath(&["AlarmHistoryItems", EACH, "Timestamp"])],
        _ => &[],
    }
}

/// Serves one operation as a client called it: noted in the calls, and answered as an injected
/// fault says before the operation itself runs.
pub(crate) async fn serve(emulator: &Emulator, operation: &str, input: &Value) -> Result<Value, ApiError> {
    let resource = input.get("AlarmName").or_else(|| input.get("Namespace")).and_then(Value::as_str);
    emulator.answer_faults(operation, resource, None).await?;
    let input = input.as_object().ok_or_else(|| ApiError::client("SerializationException", "expected an object"))?;
    match operation {
        "PutMetricData" => put_metric_data::put_metric_data(emulator, input),
        "GetMetricData" => get_metric_data::get_metric_data(emulator, input),
        "PutMetricAlarm" => alarms::put_metric_alarm(emulator, input),
        "DescribeAlarms" => alarms::describe_alarms(emulator, input),
        "DescribeAlarmHistory" => alarms::describe_alarm_history(emulator, input),
        "SetAlarmState" => alarms::set_alarm_state(emulator, input),
        other => Err(ApiError::client("UnknownOperationException", format!("{other} is not served locally"))),
    }
}

/// `InvalidParameterValue`.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterValueException", message)
}

/// `MissingParameter`.
pub(crate) fn missing(member: &str) -> ApiError {
    ApiError::client("MissingRequiredParameterException", format!("The parameter {member} is required."))
}

/// A required string member.
pub(crate) fn required_str<'a>(input: &'a Map<String, Value>, member: &str) -> Result<&'a str, ApiError> {
    input.get(member).and_then(Value::as_str).ok_or_else(|| missing(member))
}

/// A timestamp member (epoch seconds on both protocols).
pub(crate) fn timestamp(input: &Map<String, Value>, member: &str) -> Result<Option<SystemTime>, ApiError> {
    match input.get(member) {
        None => Ok(None),
        Some(value) => {
            let seconds = value.as_f64().ok_or_else(|| invalid(format!("{member} must be a timestamp")))?;
            Duration::try_from_secs_f64(seconds)
                .map(|d| Some(SystemTime::UNIX_EPOCH + d))
                .map_err(|_| invalid(format!("{member} must be after 1970")))
        }
    }
}

/// Epoch seconds of `at`, as handlers give timestamps.
pub(crate) fn seconds(at: SystemTime) -> f64 {
    crate::protocol::epoch_seconds(at)
}

/// Milliseconds since the epoch.
pub(crate) fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// The real length of a period of `period_seconds` AWS seconds, in milliseconds (at least 1).
pub fn bucket_ms(scale: TimeScale, period_seconds: u64) -> i64 {
    (scale.apply(Duration::from_secs(period_seconds)).as_millis() as i64).max(1)
}

/// A page token: the position to go on from. Tokens are opaque to clients.
pub(crate) fn parse_token(input: &Map<String, Value>) -> Result<usize, ApiError> {
    match input.get("NextToken").and_then(Value::as_str) {
        None => Ok(0),
        Some(token) => token
            .strip_prefix("next-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::client("InvalidNextToken", format!("{token:?} is not a token this service gave"))),
    }
}

/// The token of `position`.
pub(crate) fn token(position: usize) -> String {
    format!("next-{position}")
}

impl Emulator {
    /// CloudWatch's metrics and alarms.
    pub fn cloudwatch(&self) -> &CloudWatch {
        &self.inner.cloudwatch
    }

    /// The metric store, where every service's metrics go.
    pub fn metrics(&self) -> &store::Metrics {
        &self.inner.cloudwatch.metrics
    }
}
