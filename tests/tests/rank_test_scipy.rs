//! The metric judge's statistics against an independent implementation.
//!
//! `tests/fidelity/rank_test.py` computes, for a fixed table of sample pairs (equal, shifted,
//! noisy with a fixed seed, tied, tiny, large), SciPy's `mannwhitneyu` for every alternative and
//! method, and the Hodges-Lehmann shift with its interval: numpy's median of all pairwise
//! differences, and the interval ends solved with `scipy.optimize.brentq` on R's
//! `wilcox.test(conf.int = TRUE)` statistic. This test computes the same with
//! `greenlight::stats` and requires every number to agree to [`RELATIVE`].

use std::process::{Command, Stdio};

use greenlight::stats::{Alternative, PValueMethod, hodges_lehmann, mann_whitney_u};
use greenlight_tests::python::venv_python;
use greenlight_tests::workspace_root;
use serde::Deserialize;

/// Both sides compute in float64 from the same bits; what is left is rounding in sums and in the
/// normal tail function, far below this.
const RELATIVE: f64 = 1e-9;

#[derive(Debug, Deserialize)]
struct Table {
    scipy: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    x: Vec<u64>,
    y: Vec<u64>,
    tests: Vec<Test>,
    shift: Shift,
}

#[derive(Debug, Deserialize)]
struct Test {
    alternative: String,
    method: String,
    used: String,
    u: f64,
    p_value: f64,
}

#[derive(Debug, Deserialize)]
struct Shift {
    confidence: f64,
    estimate: f64,
    lower: f64,
    upper: f64,
    lower_root: f64,
    upper_root: f64,
    spread: f64,
}

fn alternative(name: &str) -> Alternative {
    match name {
        "two-sided" => Alternative::TwoSided,
        "greater" => Alternative::Greater,
        "less" => Alternative::Less,
        other => panic!("the script named an unknown alternative {other:?}"),
    }
}

fn method(name: &str) -> PValueMethod {
    match name {
        "auto" => PValueMethod::Auto,
        "exact" => PValueMethod::Exact,
        "asymptotic" => PValueMethod::Asymptotic,
        other => panic!("the script named an unknown method {other:?}"),
    }
}

/// `|a − b|` relative to the larger magnitude (0 when both are 0).
fn relative(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 { 0.0 } else { (a - b).abs() / scale }
}

fn floats(bits: &[u64]) -> Vec<f64> {
    bits.iter().map(|&bits| f64::from_bits(bits)).collect()
}

/// Collects disagreements, and the largest relative difference seen, so one run shows them all.
#[derive(Default)]
struct Comparison {
    failures: Vec<String>,
    /// Every relative difference with what it was, to show the largest.
    differences: Vec<(f64, String)>,
}

impl Comparison {
    fn close(&mut self, what: String, ours: f64, theirs: f64) {
        self.close_to_scale(what, ours, theirs, ours.abs().max(theirs.abs()));
    }

    /// `ours` within [`RELATIVE`] of `theirs`, relative to `scale`.
    fn close_to_scale(&mut self, what: String, ours: f64, theirs: f64, scale: f64) {
        let difference = if ours == theirs { 0.0 } else { (ours - theirs).abs() / scale };
        if difference.is_nan() || difference > RELATIVE {
            self.failures
                .push(format!("{what}: greenlight {ours:e}, reference {theirs:e} (relative {difference:.1e})"));
        }
        self.differences.push((difference, what));
    }
}

#[test]
fn mann_whitney_and_hodges_lehmann_agree_with_scipy() {
    let script = workspace_root().join("tests/fidelity/rank_test.py");
    let output = Command::new(venv_python())
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(output.status.success(), "{} failed (its output is above)", script.display());
    let table: Table = serde_json::from_slice(&output.stdout).expect("the script prints one JSON table");
    assert!(table.cases.len() >= 20, "only {} cases", table.cases.len());

    let mut comparison = Comparison::default();
    let mut tests = 0;
    for case in &table.cases {
        let (x, y) = (floats(&case.x), floats(&case.y));
        for test in &case.tests {
            tests += 1;
            let what = format!("{} ({}, {})", case.name, test.alternative, test.method);
            let ours = mann_whitney_u(&x, &y, alternative(&test.alternative), method(&test.method))
                .unwrap_or_else(|err| panic!("{what}: {err}"));
            if ours.method != method(&test.used) {
                comparison.failures.push(format!("{what}: greenlight used {:?}, SciPy {}", ours.method, test.used));
            }
            comparison.close(format!("{what}: U"), ours.u, test.u);
            comparison.close(format!("{what}: p-value"), ours.p_value, test.p_value);
        }

        let shift = &case.shift;
        let ours = hodges_lehmann(&x, &y, shift.confidence).unwrap_or_else(|err| panic!("{}: {err}", case.name));
        comparison.close(format!("{}: estimate", case.name), ours.estimate, shift.estimate);
        comparison.close(format!("{}: lower end", case.name), ours.lower, shift.lower);
        comparison.close(format!("{}: upper end", case.name), ours.upper, shift.upper);
        // The solver's roots themselves, to its tolerance, relative to the differences' scale.
        let scale = shift.lower_root.abs().max(shift.upper_root.abs()).max(shift.spread);
        comparison.close_to_scale(format!("{}: lower root", case.name), ours.lower, shift.lower_root, scale);
        comparison.close_to_scale(format!("{}: upper root", case.name), ours.upper, shift.upper_root, scale);
    }

    println!(
        "{} sample pairs, {tests} rank tests, {} numbers compared with SciPy {}; the largest relative differences:",
        table.cases.len(),
        comparison.differences.len(),
        table.scipy,
    );
    comparison.differences.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (difference, what) in comparison.differences.iter().take(5) {
        println!("  {difference:.1e}  {what}");
    }
    assert!(comparison.failures.is_empty(), "disagreements with the reference:\n{}", comparison.failures.join("\n"));
    assert!(relative(1.0, 1.0 + 2.0 * RELATIVE) > RELATIVE, "the comparison can fail");
}
