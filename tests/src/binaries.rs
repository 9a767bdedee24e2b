//! The workspace's binaries under test: the hooks and the sample apps, built once per test
//! process, and the sample events.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Path to a hook binary or a sample app, building them once per test process (cargo builds only
/// the test package's own binaries for its tests).
pub fn hook_binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The directory of the built hooks and sample apps (`target/<profile>`), building them once.
pub fn bin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut command = std::process::Command::new(cargo);
            command.current_dir(workspace_root()).args(["build", "--quiet", "-p", "checkout-examples"]);
            for hook in greenlight::Hook::ALL {
                command.args(["-p", hook.name]);
            }
            let status = command.status().expect("run cargo build");
            assert!(status.success(), "building the hook binaries and sample apps failed");
            // target/<profile>/deps/<test binary> → target/<profile>
            let exe = std::env::current_exe().expect("current exe");
            exe.parent().and_then(|deps| deps.parent()).expect("target profile dir").to_path_buf()
        })
        .clone()
}

/// The sample event for a hook.
pub fn event_file(name: &str) -> PathBuf {
    workspace_root().join("events").join(format!("{name}.json"))
}
