//! The Python tools some tests drive (cfn-lint, the SAM CLI and its translator, cargo-lambda,
//! boto3, junitparser), from a virtualenv at the workspace root. `scripts/python-env.sh` creates it
//! with the versions pinned in `requirements-dev.txt`, and skips pip when they have not changed, so
//! only the first run on a machine pays for the install.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::workspace_root;

/// The virtualenv's directory, created or brought up to date once per test process.
pub fn venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = workspace_root().join("scripts").join("python-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
        assert!(output.status.success(), "{} failed (its output is above)", script.display());
        let path = String::from_utf8(output.stdout).expect("python-env.sh prints a UTF-8 path");
        PathBuf::from(path.trim())
    })
    .clone()
}

/// The virtualenv's Python.
pub fn venv_python() -> PathBuf {
    venv_bin("python")
}

/// An executable the virtualenv installed, such as `cfn-lint`, `sam` or `cargo-lambda`.
pub fn venv_bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}
