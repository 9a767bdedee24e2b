//! `scripts/drill.sh` as the docs tell a user to run it, with their own `--out`. A file of its own:
//! the script builds the hooks, and a build must not swap binaries under tests running beside it.

use std::process::Command;

use greenlight_tests::workspace_root;

#[test]
fn the_drill_script_writes_its_pictures_where_out_says() {
    // Run from a folder outside the workspace with a relative --out: the folder is the user's,
    // not one inside the workspace where the script runs the drill.
    let caller = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill-script");
    let out = caller.join("pictures");
    if out.exists() {
        std::fs::remove_dir_all(&out).expect("clear the previous run");
    }
    std::fs::create_dir_all(&caller).expect("create the caller's folder");
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/drill.sh"))
        .args(["--scenario", "lambda-canary", "--time-scale", "120", "--quiet", "--out", "pictures"])
        .current_dir(&caller)
        .output()
        .expect("run scripts/drill.sh");
    let text = format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let picture = out.join("lambda-canary.svg");
    let svg = std::fs::read_to_string(&picture)
        .unwrap_or_else(|e| panic!("no picture at {}: {e}\n{text}", picture.display()));
    assert!(svg.trim_start().starts_with("<svg"), "not an SVG: {}", picture.display());
    assert!(out.join("lambda-canary/record.json").exists(), "no record: {text}");
    assert!(out.join("summary.md").exists(), "no summary: {text}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&out.display().to_string()), "{text}");

    // The binary the script built, run from the same folder outside the workspace, finds the
    // drill's plans without --drill-dir.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), Into::into);
    let drill = target.join("debug/codedeploy-local");
    let _ = std::fs::remove_dir_all(caller.join("direct"));
    let output = Command::new(&drill)
        .args(["drill", "--scenario", "lambda-canary", "--time-scale", "120", "--quiet", "--out", "direct"])
        .current_dir(&caller)
        .output()
        .expect("run codedeploy-local drill");
    assert!(output.status.success(), "{}: {}", drill.display(), String::from_utf8_lossy(&output.stderr));
    assert!(caller.join("direct/lambda-canary.svg").exists(), "no picture from {}", drill.display());
}
