//! Statistics over the datapoints of one period: `Sum`, `Average`, `Minimum`, `Maximum`,
//! `SampleCount`, and percentiles `pNN` / `pNN.N`.

use super::store::{Observation, Sample};

/// A statistic CloudWatch computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// Sum of the values.
    Sum,
    /// Sum over count.
    Average,
    /// Smallest value.
    Minimum,
    /// Largest value.
    Maximum,
    /// How many values.
    SampleCount,
    /// The value at this percentile (0–100), nearest rank.
    Percentile(f64),
}

impl Statistic {
    /// Parses `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount`, `p99`, `p99.9`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Sum" => Self::Sum,
            "Average" => Self::Average,
            "Minimum" => Self::Minimum,
            "Maximum" => Self::Maximum,
            "SampleCount" => Self::SampleCount,
            _ => {
                let number = text.strip_prefix('p')?;
                let digits_ok = number.split_once('.').map_or(number.len() <= 3, |(whole, fraction)| {
                    !whole.is_empty() && whole.len() <= 3 && !fraction.is_empty() && fraction.len() <= 10
                });
                let percent: f64 = number.parse().ok().filter(|p| (0.0..=100.0).contains(p) && digits_ok)?;
                if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return None;
                }
                Self::Percentile(percent)
            }
        })
    }

    /// The statistic of `samples`, or `None` when there is nothing to compute it from.
    pub fn compute(self, samples: &[Sample]) -> Option<f64> {
        let (mut sum, mut count, mut minimum, mut maximum) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for sample in samples {
            match sample.observation {
                Observation::Value { value, count: n } => {
                    sum += value * n;
                    count += n;
                    minimum = minimum.min(value);
                    maximum = maximum.max(value);
                }
                Observation::Statistics { sum: s, minimum: lo, maximum: hi, sample_count } => {
                    sum += s;
                    count += sample_count;
                    minimum = minimum.min(lo);
                    maximum = maximum.max(hi);
                }
            }
        }
        if count <= 0.0 {
            return None;
        }
        Some(match self {
            Self::Sum => sum,
            Self::Average => sum / count,
            Self::Minimum => minimum,
            Self::Maximum => maximum,
            Self::SampleCount => count,
            Self::Percentile(percent) => return percentile(samples, percent),
        })
    }
}

/// Nearest-rank percentile over the individual values; statistic sets carry none.
fn percentile(samples: &[Sample], percent: f64) -> Option<f64> {
    let mut values: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| match s.observation {
            Observation::Value { value, count } => Some((value, count)),
            Observation::Statistics { .. } => None,
        })
        .collect();
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|(_, n)| n).sum();
    if total <= 0.0 {
        return None;
    }
    let rank = (percent / 100.0 * total).ceil().max(1.0);
    let mut seen = 0.0;
    for (value, count) in &values {
        seen += count;
        if seen >= rank {
            return Some(*value);
        }
    }
    values.last().map(|(value, _)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn values(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .map(|&value| Sample { at: SystemTime::now(), observation: Observation::Value { value, count: 1.0 } })
            .collect()
    }

    #[test]
    fn each_statistic_of_one_to_ten() {
        let samples = values(&[3.0, 1.0, 2.0, 10.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let of = |text| Statistic::parse(text).and_then(|s| s.compute(&samples));
        assert_eq!(of("Sum"), Some(55.0));
        assert_eq!(of("Average"), Some(5.5));
        assert_eq!(of("Minimum"), Some(1.0));
        assert_eq!(of("Maximum"), Some(10.0));
        assert_eq!(of("SampleCount"), Some(10.0));
        assert_eq!(of("p90"), Some(9.0));
        assert_eq!(of("p99.9"), Some(10.0));
        assert_eq!(of("p50"), Some(5.0));
        assert_eq!(Statistic::Sum.compute(&[]), None);
    }

    #[test]
    fn only_cloudwatch_spellings_parse() {
        for bad in ["sum", "p", "p101", "p-1", "p1e2", "pabc", "p9999", "P90", "p90."] {
            assert_eq!(Statistic::parse(bad), None, "{bad}");
        }
        assert_eq!(Statistic::parse("p0.5"), Some(Statistic::Percentile(0.5)));
    }
}
