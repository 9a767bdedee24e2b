//! Turning samples into figures: medians and p90s, ratios to the reference, the markdown table, the
//! size table and the SVG chart.

use std::fmt::Write as _;
use std::path::PathBuf;

use codedeploy_local::emulator::{Happening, RecordEntry};
use serde::Serialize;

use crate::subjects::{Side, Subject};

/// One cold run of one subject.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// The subject's name.
    pub subject: &'static str,
    /// Which hook it ran.
    pub side: Side,
    /// The round it ran in, from 0.
    pub run: usize,
    /// Process start to the first `next` poll taking the event (Lambda's `Init Duration`).
    pub init_ms: f64,
    /// Process start to the local CodeDeploy recording the accepted report.
    pub start_to_report_ms: f64,
    /// Peak resident set of the process (`VmHWM`) when the invocation ended.
    pub peak_rss_kb: u64,
}

impl Sample {
    /// Reads a run's figures from its deployment record. Fails unless the subject was invoked
    /// cold, answered, and had exactly one report accepted with `Succeeded`.
    pub fn from_record(subject: &Subject, run: usize, record: &[RecordEntry]) -> Result<Self, String> {
        let invocations: Vec<_> = record
            .iter()
            .filter_map(|entry| match &entry.what {
                Happening::Invocation { function, outcome, cold_start, max_memory_kb, .. }
                    if *function == subject.function =>
                {
                    Some((*outcome, *cold_start, *max_memory_kb))
                }
                _ => None,
            })
            .collect();
        let [(outcome, cold_start, max_memory_kb)] = invocations[..] else {
            return Err(format!("expected one invocation of {}, found {}", subject.function, invocations.len()));
        };
        if outcome != "response" {
            return Err(format!("the hook's invocation ended {outcome}"));
        }
        let cold = cold_start.ok_or("the hook's invocation was not a cold start")?;
        let peak_rss_kb = max_memory_kb.ok_or("the hook's peak memory could not be read (is /proc missing?)")?;
        let accepted: Vec<_> = record
            .iter()
            .filter(|entry| matches!(&entry.what, Happening::Report { status, result, .. } if status == "Succeeded" && result == "accepted"))
            .collect();
        let [report] = accepted[..] else {
            return Err(format!("expected one accepted Succeeded report, found {}", accepted.len()));
        };
        Ok(Self {
            subject: subject.name,
            side: subject.side,
            run,
            init_ms: millis(cold.init),
            start_to_report_ms: millis(report.instant.saturating_duration_since(cold.process_started)),
            peak_rss_kb,
        })
    }
}

fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Median and 90th percentile (nearest rank) of one figure over one subject's runs.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    p90: f64,
}

fn spread(samples: &[Sample], subject: &str, figure: fn(&Sample) -> f64) -> Option<Spread> {
    let mut values: Vec<f64> = samples.iter().filter(|s| s.subject == subject).map(figure).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    let median = if values.len() % 2 == 1 {
        values[values.len() / 2]
    } else {
        (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
    };
    Some(Spread { median, p90: rank(0.9) })
}

fn start_to_report(sample: &Sample) -> f64 {
    sample.start_to_report_ms
}
fn init(sample: &Sample) -> f64 {
    sample.init_ms
}
fn rss_mib(sample: &Sample) -> f64 {
    sample.peak_rss_kb as f64 / 1024.0
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Cores available to the harness.
    pub cores: usize,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description from `/proc`.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { cpu, cores, kernel }
    }
}

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    runs: usize,
    build: String,
    #[serde(flatten)]
    machine: Machine,
    quota: String,
}

impl Context {
    /// The run's settings and the machine's description.
    pub fn describe(runs: usize, build: &str, quota: String) -> Self {
        Self { runs, build: build.to_owned(), machine: Machine::read(), quota }
    }
}

/// How a figure is judged against its goal.
enum Goal {
    /// The reference's figure over ours must be at least this.
    FasterBy(f64),
    /// Ours over the reference's must be at most this.
    AtMost(f64),
    None,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn ms(spread: Option<Spread>) -> String {
    spread.map_or("–".to_owned(), |s| format!("{} ms ({})", round(s.median), round(s.p90)))
}

fn mib(spread: Option<Spread>) -> String {
    spread.map_or("–".to_owned(), |s| format!("{:.1} MiB ({:.1})", s.median, s.p90))
}

/// Three significant figures at most, without a needless fraction.
fn round(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The markdown report: the timing table, the size table and how they were taken.
pub fn markdown(samples: &[Sample], sizes: &Sizes, context: &Context) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Median (p90) of {} cold runs per subject, interleaved. {} build; {}, {} cores, Linux {}; {}.\n",
        context.runs, context.build, context.machine.cpu, context.machine.cores, context.machine.kernel, context.quota
    );
    let _ = writeln!(out, "| Measure | greenlight | Python reference | Ratio | Goal | |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut row =
        |label: &str, ours: Option<Spread>, theirs: Option<Spread>, cell: fn(Option<Spread>) -> String, goal: Goal| {
            let ratio = ours.zip(theirs).map(|(o, t)| (o.median, t.median));
            let (ratio_cell, goal_cell, met) = match (goal, ratio) {
                (Goal::FasterBy(want), Some((o, t))) => {
                    (format!("{}× faster", round(t / o)), format!("≥ {want}× faster"), verdict(t / o >= want))
                }
                (Goal::AtMost(want), Some((o, t))) => {
                    (format!("{:.2}×", o / t), format!("≤ {want:.2}×"), verdict(o / t <= want))
                }
                (Goal::None, Some((o, t))) => (format!("{}× faster", round(t / o)), "–".to_owned(), ""),
                (_, None) => ("–".to_owned(), "–".to_owned(), ""),
            };
            let _ =
                writeln!(out, "| {label} | {} | {} | {ratio_cell} | {goal_cell} | {met} |", cell(ours), cell(theirs));
        };
    let s = |subject: &str, figure: fn(&Sample) -> f64| spread(samples, subject, figure);
    row("Init: process start → first `next`", s("greenlight-http", init), s("reference-http", init), ms, Goal::None);
    row(
        "Cold start → report, one HTTP check",
        s("greenlight-http", start_to_report),
        s("reference-http", start_to_report),
        ms,
        Goal::FasterBy(25.0),
    );
    row("Peak RSS", s("greenlight-http", rss_mib), s("reference-http", rss_mib), mib, Goal::AtMost(1.0 / 3.0));
    row(
        "Cold start → report, one HTTPS check",
        s("greenlight-https", start_to_report),
        s("reference-https", start_to_report),
        ms,
        Goal::None,
    );
    if s("greenlight-http-throttled", start_to_report).is_some() {
        row(
            "Cold start → report, HTTP, CPU-throttled",
            s("greenlight-http-throttled", start_to_report),
            s("reference-http-throttled", start_to_report),
            ms,
            Goal::FasterBy(25.0),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| Within greenlight | Figure | Baseline | Ratio | Goal | |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut within = |label: &str, figure: &str, baseline: &str, want: f64| {
        let (f, b) = (s(figure, start_to_report), s(baseline, start_to_report));
        let (ratio, met) = f.zip(b).map_or(("–".to_owned(), ""), |(f, b)| {
            (format!("{:.2}×", f.median / b.median), verdict(f.median / b.median <= want))
        });
        let _ = writeln!(out, "| {label} | {} | {} | {ratio} | ≤ {want}× | {met} |", ms(f), ms(b));
    };
    within("Cold start → report vs the std-only floor", "greenlight-http", "floor-http", 2.0);
    within("The same, CPU-throttled", "greenlight-http-throttled", "floor-http-throttled", 2.0);
    within("Cold HTTPS vs cold HTTP, start → report", "greenlight-https", "greenlight-http", 1.5);
    within("50 checks of 200 ms vs one, start → report", "greenlight-50x200ms", "greenlight-1x200ms", 1.5);
    within("One HTTP check + a metric check vs the HTTP check alone", "greenlight-http-metric", "greenlight-http", 1.5);
    let rss = s("greenlight-http", rss_mib);
    let met = rss.map_or("", |r| verdict(r.median <= 8.0));
    let _ = writeln!(out, "| Peak RSS, one HTTP check | {} | – | – | ≤ 8 MiB | {met} |", mib(rss));
    let _ = writeln!(out);
    out.push_str(&sizes.markdown());
    out
}

/// Bootstrap and zip sizes of each hook, per architecture.
#[derive(Debug, Default, Serialize)]
pub struct Sizes {
    /// (architecture, hook, bootstrap bytes, zip bytes).
    rows: Vec<(String, String, u64, u64)>,
}

/// The goals, in bytes (decimal megabytes: the stricter reading).
const BOOTSTRAP_GOAL: u64 = 8_000_000;
const ZIP_GOAL: u64 = 4_000_000;

impl Sizes {
    /// Reads `DIR/<hook>/bootstrap.zip` for every hook directory: the zip's size, and the size of
    /// the `bootstrap` inside it, which is all `cargo lambda build --output-format zip` leaves.
    pub fn read(dirs: &[(String, PathBuf)]) -> Result<Self, String> {
        let mut rows = Vec::new();
        for (arch, dir) in dirs {
            let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let mut zips: Vec<PathBuf> =
                entries.flatten().map(|e| e.path().join("bootstrap.zip")).filter(|zip| zip.exists()).collect();
            zips.sort();
            if zips.is_empty() {
                return Err(format!("{} holds no <hook>/bootstrap.zip: build with --output-format zip", dir.display()));
            }
            for zip in zips {
                let hook = zip.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
                let (bootstrap, zipped) = zip_sizes(&zip).map_err(|e| format!("{}: {e}", zip.display()))?;
                rows.push((arch.clone(), hook.unwrap_or_default(), bootstrap, zipped));
            }
        }
        Ok(Self { rows })
    }

    fn markdown(&self) -> String {
        if self.rows.is_empty() {
            return "Sizes: not measured in this run (no `--lambda-dir`).\n".to_owned();
        }
        let mut out =
            String::from("| Hook | Architecture | bootstrap | ≤ 8 MB | zip | ≤ 4 MB |\n|---|---|---|---|---|---|\n");
        for (arch, hook, bootstrap, zip) in &self.rows {
            let (bootstrap_met, zip_met) = (verdict(*bootstrap <= BOOTSTRAP_GOAL), verdict(*zip <= ZIP_GOAL));
            let (bootstrap, zip) = (megabytes(*bootstrap), megabytes(*zip));
            let _ = writeln!(out, "| {hook} | {arch} | {bootstrap} | {bootstrap_met} | {zip} | {zip_met} |");
        }
        out
    }
}

/// The uncompressed size of `bootstrap` in a Lambda zip, and the zip's own size.
fn zip_sizes(path: &std::path::Path) -> Result<(u64, u64), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let zipped = file.metadata().map_err(|e| e.to_string())?.len();
    let mut archive = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let bootstrap = archive.by_name("bootstrap").map_err(|e| format!("no bootstrap inside: {e}"))?.size();
    Ok((bootstrap, zipped))
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB ({bytes} B)", bytes as f64 / 1e6)
}

/// Two horizontal bar charts of medians with p90 whiskers: cold start to report per subject (log
/// scale), and peak RSS per subject.
pub fn chart(samples: &[Sample]) -> String {
    let mut subjects: Vec<(&str, Side)> = Vec::new();
    for sample in samples {
        if !subjects.iter().any(|(s, _)| *s == sample.subject) {
            subjects.push((sample.subject, sample.side));
        }
    }
    let rows = |figure: fn(&Sample) -> f64| -> Vec<(&str, Side, Spread)> {
        subjects.iter().filter_map(|(name, side)| Some((*name, *side, spread(samples, name, figure)?))).collect()
    };
    let (timing, memory) = (rows(start_to_report), rows(rss_mib));
    let (label_w, plot_w, row_h) = (210.0, 560.0, 26.0);
    let width = label_w + plot_w + 100.0;
    let timing_top = 70.0;
    let memory_top = timing_top + row_h * timing.len() as f64 + 90.0;
    let height = memory_top + row_h * memory.len() as f64 + 50.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, (label, side)) in
        [("greenlight", Side::Greenlight), ("Python reference", Side::Reference), ("std-only floor", Side::Floor)]
            .iter()
            .enumerate()
    {
        let x = label_w + 180.0 * i as f64;
        let _ = writeln!(svg, r#"<rect x="{x}" y="10" width="14" height="14" fill="{}"/>"#, colour(*side));
        let _ = writeln!(svg, r#"<text x="{}" y="22">{label}</text>"#, x + 20.0);
    }

    let max = timing.iter().map(|(_, _, s)| s.p90).fold(1.0, f64::max);
    let hi = (max * 1.5).log10().ceil().max(1.0);
    let log_x = |v: f64| label_w + v.max(1.0).log10() / hi * plot_w;
    panel_title(&mut svg, timing_top, "Cold start → report accepted, ms (median, p90 whisker; log scale)");
    let mut decade: f64 = 1.0;
    while decade.log10() <= hi {
        grid_line(&mut svg, log_x(decade), timing_top, row_h * timing.len() as f64, &format!("{decade}"));
        decade *= 10.0;
    }
    bars(&mut svg, &timing, timing_top, row_h, label_w, log_x, "ms");

    let max = memory.iter().map(|(_, _, s)| s.p90).fold(1.0, f64::max);
    let step = if max > 100.0 { 50.0 } else { 10.0 };
    let top_value = (max * 1.1 / step).ceil() * step;
    let lin_x = |v: f64| label_w + v / top_value * plot_w;
    panel_title(&mut svg, memory_top, "Peak RSS, MiB (median, p90 whisker)");
    let mut tick = 0.0;
    while tick <= top_value {
        grid_line(&mut svg, lin_x(tick), memory_top, row_h * memory.len() as f64, &format!("{tick}"));
        tick += step;
    }
    bars(&mut svg, &memory, memory_top, row_h, label_w, lin_x, "MiB");
    svg.push_str("</svg>\n");
    svg
}

fn colour(side: Side) -> &'static str {
    match side {
        Side::Greenlight => "#2e7d32",
        Side::Reference => "#9e9e9e",
        Side::Floor => "#1565c0",
    }
}

fn panel_title(svg: &mut String, top: f64, title: &str) {
    let _ = writeln!(svg, r#"<text x="10" y="{:.1}" font-size="14" font-weight="bold">{title}</text>"#, top - 22.0);
}

fn grid_line(svg: &mut String, x: f64, top: f64, height: f64, label: &str) {
    let bottom = top + height;
    let _ = writeln!(svg, r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/>"##);
    let _ =
        writeln!(svg, r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##, bottom + 15.0);
}

fn bars(
    svg: &mut String,
    rows: &[(&str, Side, Spread)],
    top: f64,
    row_h: f64,
    label_w: f64,
    x: impl Fn(f64) -> f64,
    unit: &str,
) {
    for (i, (name, side, spread)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let (bar_end, whisker) = (x(spread.median), x(spread.p90));
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{name}</text>"#, label_w - 8.0, y + 16.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="17" fill="{}"/>"#,
            y + 4.0,
            (bar_end - label_w).max(1.0),
            colour(*side)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{bar_end:.1}" y1="{:.1}" x2="{whisker:.1}" y2="{:.1}" stroke="#333"/>"##,
            y + 12.5,
            y + 12.5
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{} {unit}</text>"#,
            whisker.max(bar_end) + 6.0,
            y + 16.0,
            round(spread.median)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(subject: &'static str, ms: f64) -> Sample {
        Sample { subject, side: Side::Greenlight, run: 0, init_ms: ms, start_to_report_ms: ms, peak_rss_kb: 1024 }
    }

    #[test]
    fn median_and_p90_use_every_run_of_one_subject_only() {
        let mut samples: Vec<Sample> = (1..=10).map(|i| sample("a", f64::from(i))).collect();
        samples.push(sample("b", 1000.0));
        let s = spread(&samples, "a", start_to_report).unwrap();
        assert_eq!((s.median, s.p90), (5.5, 9.0));
        let odd = spread(&samples[..5], "a", start_to_report).unwrap();
        assert_eq!((odd.median, odd.p90), (3.0, 5.0));
        assert!(spread(&samples, "missing", start_to_report).is_none());
    }

    #[test]
    fn sizes_come_from_the_bootstrap_inside_each_zip() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("greenlight-bench-sizes-{}", std::process::id()));
        let hook = dir.join("pre-traffic");
        std::fs::create_dir_all(&hook).unwrap();
        let mut writer = zip::ZipWriter::new(std::fs::File::create(hook.join("bootstrap.zip")).unwrap());
        writer.start_file("bootstrap", zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(&[0u8; 10_000]).unwrap();
        writer.finish().unwrap();
        std::fs::create_dir_all(dir.join("not-a-hook")).unwrap();

        let sizes = Sizes::read(&[("arm64".to_owned(), dir.clone())]).unwrap();
        let zipped = std::fs::metadata(hook.join("bootstrap.zip")).unwrap().len();
        assert_eq!(sizes.rows, vec![("arm64".to_owned(), "pre-traffic".to_owned(), 10_000, zipped)]);
        assert!(zipped < 10_000, "the zip is compressed");
        assert!(Sizes::read(&[("x86_64".to_owned(), dir.join("not-a-hook"))]).is_err(), "an empty build is an error");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn goals_are_judged_on_medians_and_a_missed_goal_says_so() {
        let samples = vec![
            sample("greenlight-http", 50.0),
            Sample { side: Side::Reference, ..sample("reference-http", 400.0) },
            sample("greenlight-https", 80.0),
            sample("greenlight-1x200ms", 210.0),
            sample("greenlight-50x200ms", 260.0),
            Sample { side: Side::Floor, ..sample("floor-http", 20.0) },
        ];
        let context = Context::describe(1, "test", "no quota".to_owned());
        let table = markdown(&samples, &Sizes::default(), &context);
        assert!(table.contains("| Cold start → report, one HTTP check | 50.0 ms (50.0) | 400 ms (400) | 8.00× faster | ≥ 25× faster | **missed** |"), "{table}");
        assert!(table.contains("| Cold start → report vs the std-only floor | 50.0 ms (50.0) | 20.0 ms (20.0) | 2.50× | ≤ 2× | **missed** |"), "{table}");
        assert!(table.contains("| Peak RSS, one HTTP check | 1.0 MiB (1.0) | – | – | ≤ 8 MiB | met |"), "{table}");
        assert!(table.contains("| 1.60× | ≤ 1.5× | **missed** |"), "{table}");
        assert!(table.contains("| 1.24× | ≤ 1.5× | met |"), "{table}");
        let svg = chart(&samples);
        assert_eq!(svg.matches("height=\"17\"").count(), 12, "one bar per subject in each panel");
    }
}
