//! PutMetricData: datapoints given as `Value`, `Values` with `Counts`, or `StatisticValues`, each
//! with its metric name, dimensions, timestamp (now when absent) and unit.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::store::{MetricKey, Observation, Sample};
use super::{invalid, missing, required_str, timestamp};
use crate::emulator::Emulator;
use crate::protocol::ApiError;

/// The most datapoints one request may carry.
const MAX_METRIC_DATA: usize = 1000;

/// The dimensions of a `Dimensions` list: `[{Name, Value}]`, at most 30.
pub(crate) fn dimensions(list: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let items = list.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if items.len() > 30 {
        return Err(invalid("a metric has at most 30 dimensions"));
    }
    let mut dimensions = BTreeMap::new();
    for item in items {
        let item = item.as_object().ok_or_else(|| invalid("a dimension is {Name, Value}"))?;
        let name = required_str(item, "Name")?;
        let value = required_str(item, "Value")?;
        if name.is_empty() || value.is_empty() {
            return Err(invalid("dimension names and values must not be empty"));
        }
        if dimensions.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(ApiError::client(
                "InvalidParameterValueException",
                format!("The dimension {name} is given more than once"),
            ));
        }
    }
    Ok(dimensions)
}

/// Serves PutMetricData.
pub(crate) fn put_metric_data(emulator: &Emulator, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let namespace = required_str(input, "Namespace")?;
    if namespace.is_empty() || namespace.starts_with("AWS/") || namespace.len() > 255 {
        return Err(invalid(format!("The value {namespace} for parameter Namespace is not valid (AWS/ is reserved).")));
    }
    let data = input.get("MetricData").and_then(Value::as_array).ok_or_else(|| missing("MetricData"))?;
    if data.is_empty() || data.len() > MAX_METRIC_DATA {
        return Err(invalid(format!("MetricData must hold 1 to {MAX_METRIC_DATA} datums")));
    }
    let mut parsed = Vec::new();
    for datum in data {
        let datum = datum.as_object().ok_or_else(|| invalid("a MetricDatum is an object"))?;
        let name = required_str(datum, "MetricName")?;
        let key = MetricKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions(datum.get("Dimensions"))?,
        };
        let at = timestamp(datum, "Timestamp")?.unwrap_or_else(SystemTime::now);
        for observation in observations(datum)? {
            parsed.push((key.clone(), Sample { at, observation }));
        }
    }
    // All or nothing: nothing is stored unless every datum is valid.
    for (key, sample) in parsed {
        emulator.metrics().put(key, sample);
    }
    Ok(json!({}))
}

fn number(value: &Value, what: &str) -> Result<f64, ApiError> {
    value.as_f64().filter(|v| v.is_finite()).ok_or_else(|| invalid(format!("{what} must be a number")))
}

/// The observations of one datum: exactly one of Value, Values (with Counts) and StatisticValues.
fn observations(datum: &Map<String, Value>) -> Result<Vec<Observation>, ApiError> {
    let given = ["Value", "Values", "StatisticValues"].iter().filter(|m| datum.contains_key(**m)).count();
    if given != 1 {
        return Err(ApiError::client(
            "InvalidParameterCombinationException",
            "A metric datum must have exactly one of Value, Values and StatisticValues.",
        ));
    }
    if let Some(value) = datum.get("Value") {
        return Ok(vec![Observation::Value { value: number(value, "Value")?, count: 1.0 }]);
    }
    if let Some(values) = datum.get("Values").and_then(Value::as_array) {
        let counts = datum.get("Counts").and_then(Value::as_array);
        if counts.is_some_and(|c| c.len() != values.len()) {
            return Err(ApiError::client(
                "InvalidParameterCombinationException",
                "Counts must have as many elements as Values.",
            ));
        }
        return values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let count = counts.and_then(|c| c.get(i)).map_or(Ok(1.0), |c| number(c, "Counts"))?;
                Ok(Observation::Value { value: number(value, "Values")?, count })
            })
            .collect();
    }
    let set = datum.get("StatisticValues").and_then(Value::as_object).ok_or_else(|| invalid("StatisticValues"))?;
    let member = |name: &str| set.get(name).ok_or_else(|| missing(&format!("StatisticValues.{name}")));
    let (sum, minimum, maximum, sample_count) = (
        number(member("Sum")?, "Sum")?,
        number(member("Minimum")?, "Minimum")?,
        number(member("Maximum")?, "Maximum")?,
        number(member("SampleCount")?, "SampleCount")?,
    );
    if sample_count <= 0.0 || minimum > maximum {
        return Err(invalid("StatisticValues: SampleCount must be positive and Minimum at most Maximum"));
    }
    Ok(vec![Observation::Statistics { sum, minimum, maximum, sample_count }])
}
