//! What a run leaves behind beyond its logs, in the formats other tools read: JUnit XML for CI
//! test reports (CLI mode's `--junit`).

pub mod junit;
