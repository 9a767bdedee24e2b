//! What a run leaves behind beyond its logs, in the formats other tools read: JUnit XML for CI
//! test reports (CLI mode's `--junit`) and CloudWatch metrics as Embedded Metric Format lines
//! (Lambda mode).

pub mod junit;
pub mod metrics;
