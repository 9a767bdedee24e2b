//! The metric store: every datapoint put or recorded, per series (namespace, metric name and
//! dimensions), at the real wall-clock time it belongs to.
//!
//! Memory is bounded two ways: datapoints older than [`RETENTION`] are dropped, and a series keeps
//! at most [`MAX_SAMPLES_PER_SERIES`] datapoints, dropping its oldest first. A rehearsal at a time
//! scale of 60 covers three AWS days within the retention.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long datapoints are kept, in real time.
pub const RETENTION: Duration = Duration::from_secs(3600);

/// The most datapoints one series keeps.
pub const MAX_SAMPLES_PER_SERIES: usize = 100_000;

/// What names one series: its namespace, metric name and dimensions (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricKey {
    /// `AWS/ApplicationELB`, `AWS/Lambda`, or a custom namespace.
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// Dimension name → value.
    pub dimensions: BTreeMap<String, String>,
}

impl MetricKey {
    /// A key from its parts.
    pub fn new(namespace: &str, name: &str, dimensions: &[(&str, &str)]) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions: dimensions.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }
}

/// What one datapoint holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// `count` observations of `value` (PutMetricData's Value, or Values with Counts).
    Value {
        /// The observed value.
        value: f64,
        /// How many times it was observed.
        count: f64,
    },
    /// A statistic set: aggregates only, so no percentile can use it.
    Statistics {
        /// Sum of the values.
        sum: f64,
        /// Smallest value.
        minimum: f64,
        /// Largest value.
        maximum: f64,
        /// How many values.
        sample_count: f64,
    },
}

/// One datapoint of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was observed (real wall-clock time).
    pub at: SystemTime,
    /// What was observed.
    pub observation: Observation,
}

/// The store, shared by everything that records metrics (clones share one store).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<HashMap<MetricKey, VecDeque<Sample>>>>,
}

impl Metrics {
    /// Adds a datapoint to the series `key`, keeping the series within its bounds.
    pub fn put(&self, key: MetricKey, sample: Sample) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let samples = series.entry(key).or_default();
        // Kept in time order: recorded datapoints arrive in order, put ones may be older.
        let at = samples.partition_point(|s| s.at <= sample.at);
        samples.insert(at, sample);
        let horizon = SystemTime::now().checked_sub(RETENTION).unwrap_or(SystemTime::UNIX_EPOCH);
        while samples.front().is_some_and(|s| s.at < horizon) || samples.len() > MAX_SAMPLES_PER_SERIES {
            samples.pop_front();
        }
    }

    /// Records one observation of `value` now.
    pub fn record(&self, key: MetricKey, value: f64) {
        self.put(key, Sample { at: SystemTime::now(), observation: Observation::Value { value, count: 1.0 } });
    }

    /// The datapoints of `key` in `[start, end)`, oldest first.
    pub fn samples(&self, key: &MetricKey, start: SystemTime, end: SystemTime) -> Vec<Sample> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .get(key)
            .map(|samples| samples.iter().filter(|s| s.at >= start && s.at < end).copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_keeps_time_order_and_drops_what_is_past_retention() {
        let metrics = Metrics::default();
        let key = MetricKey::new("N", "M", &[("A", "1")]);
        let now = SystemTime::now();
        let value = |v| Observation::Value { value: v, count: 1.0 };
        metrics.put(key.clone(), Sample { at: now, observation: value(2.0) });
        metrics.put(key.clone(), Sample { at: now - Duration::from_secs(1), observation: value(1.0) });
        metrics.put(key.clone(), Sample { at: now - RETENTION * 2, observation: value(0.0) });
        let kept = metrics.samples(&key, SystemTime::UNIX_EPOCH, now + Duration::from_secs(1));
        assert_eq!(kept.iter().map(|s| s.observation).collect::<Vec<_>>(), vec![value(1.0), value(2.0)]);
        assert!(metrics.samples(&key, now, now).is_empty(), "the end is exclusive");
        assert!(metrics.samples(&MetricKey::new("N", "M", &[]), SystemTime::UNIX_EPOCH, now).is_empty());
    }
}
