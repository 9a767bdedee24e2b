//! Fixtures the emulator's integration tests share.

use std::collections::BTreeMap;
use std::path::PathBuf;

use codedeploy_local::config::ProcessConfig;

/// The Runtime API fixture the runtime host tests use; `FAKE_MODE` (`echo`, `error`, …) picks
/// its behaviour.
pub fn fake_function(mode: &str) -> ProcessConfig {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_function.py");
    ProcessConfig {
        command: vec!["python3".to_owned(), script.display().to_string()],
        environment: BTreeMap::from([("FAKE_MODE".to_owned(), mode.to_owned())]),
    }
}
