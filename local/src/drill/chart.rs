//! Pictures of a deployment: traffic weight and errors per version over time, as SVG.
//!
//! One picture per drill scenario lets a reader see at a glance when traffic moved, when errors
//! appeared and which lifecycle event, alarm or rollback ended it. The SVG is written by hand: it needs
//! no plotting dependency, and the output is plain text that diffs and opens in any browser.

use std::fmt::Write as _;

/// What happened during one drill scenario, ready to draw.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The scenario, e.g. what the deployment ships.
    pub title: String,
    /// The outcome or configuration, in one line.
    pub subtitle: String,
    /// Samples in time order, one per sampling interval.
    pub samples: Vec<Sample>,
    /// Moments worth labelling, in any order.
    pub markers: Vec<Marker>,
    /// Legend name of the version traffic moves away from.
    pub old_label: String,
    /// Legend name of the version traffic moves to.
    pub new_label: String,
    /// Lines printed under the time axis, e.g. why a hook failed, numbers included; long ones
    /// wrap.
    pub notes: Vec<String>,
}

/// Traffic and outcomes in the sampling interval that ends at `at_ms`; counts are per interval, not
/// running totals, so a burst of errors shows as a spike.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Milliseconds since the scenario started.
    pub at_ms: u64,
    /// Share of traffic routed to the new version, 0..=100.
    pub new_weight_percent: f64,
    /// Successful responses from the old version.
    pub old_ok: u64,
    /// Successful responses from the new version.
    pub new_ok: u64,
    /// Failed responses from the old version.
    pub old_errors: u64,
    /// Failed responses from the new version.
    pub new_errors: u64,
}

/// A labelled moment: a lifecycle event, a hook verdict, an alarm, a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Milliseconds since the scenario started.
    pub at_ms: u64,
    /// Short text drawn along the marker line.
    pub label: String,
    /// Drawn in red: a failed verdict, an alarm, a rollback.
    pub failed: bool,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 580.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const WEIGHT_TOP: f64 = 100.0;
const WEIGHT_HEIGHT: f64 = 160.0;
const COUNT_TOP: f64 = 310.0;
const COUNT_HEIGHT: f64 = 200.0;
/// Space between a panel's frame and its 0 and maximum values, so lines there do not hide in the frame.
const PAD: f64 = 8.0;
const OLD: &str = "#3b6fb6";
const NEW: &str = "#2e9e4f";
const OLD_ERRORS: &str = "#99000d";
const NEW_ERRORS: &str = "#ef3b2c";
const FAILED: &str = "#d7191c";
const NEUTRAL: &str = "#555";
/// Height of one line of notes under the picture.
const NOTE_LINE: f64 = 16.0;
/// Characters of a note's line before it wraps: about the drawing's width at 11 px.
const NOTE_WIDTH: usize = 150;

/// A line in a panel's legend: color, dashed, text.
type Legend = (&'static str, bool, String);

/// Draws `timeline`: traffic weight on top, requests and errors per interval below, markers across both.
pub fn render_svg(timeline: &Timeline) -> String {
    let samples = &timeline.samples;
    let or = |label: &str, fallback: &str| if label.is_empty() { fallback.to_owned() } else { label.to_owned() };
    let (old, new) = (or(&timeline.old_label, "old"), or(&timeline.new_label, "new"));
    let times = samples.iter().map(|s| s.at_ms).chain(timeline.markers.iter().map(|m| m.at_ms));
    let end_s = times.max().unwrap_or(0).max(1000) as f64 / 1000.0;
    let x = |ms: u64| LEFT + (ms as f64 / 1000.0 / end_s) * (WIDTH - LEFT - RIGHT);
    let peak = samples.iter().flat_map(|s| [s.old_ok, s.new_ok, s.old_errors, s.new_errors]).max().unwrap_or(0);
    let count_step = nice_step(peak.max(1) as f64, 4.0).max(1.0);
    let count_max = (peak.max(1) as f64 / count_step).ceil() * count_step;
    let weight_y = |percent: f64| WEIGHT_TOP + PAD + (WEIGHT_HEIGHT - 2.0 * PAD) * (1.0 - percent / 100.0);
    let count_y = |count: f64| COUNT_TOP + PAD + (COUNT_HEIGHT - 2.0 * PAD) * (1.0 - count / count_max);
    let (middle, bottom) = ((LEFT + WIDTH - RIGHT) / 2.0, COUNT_TOP + COUNT_HEIGHT);
    let notes: Vec<String> = timeline.notes.iter().flat_map(|note| wrap(note, NOTE_WIDTH)).collect();
    let height = HEIGHT + NOTE_LINE * notes.len() as f64;

    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect width="100%" height="100%" fill="white"/>
"#,
        escape(&timeline.title)
    );
    text(&mut svg, (LEFT, 30.0), r#"font-size="18" font-weight="bold""#, &timeline.title);
    text(&mut svg, (LEFT, 52.0), &format!(r#"fill="{NEUTRAL}""#), &timeline.subtitle);
    let weight_ticks: Vec<f64> = (0..=4).map(|i| f64::from(i) * 25.0).collect();
    let weight_legend = [(NEW, false, format!("{new} %")), (OLD, true, format!("{old} %"))];
    panel(&mut svg, (WEIGHT_TOP, WEIGHT_HEIGHT), "Traffic weight (%)", &weight_ticks, weight_y, &weight_legend);
    let count_ticks: Vec<f64> = (0..).map(|i| f64::from(i) * count_step).take_while(|&c| c <= count_max).collect();
    let count_legend = [
        (OLD, true, format!("{old} ok")),
        (NEW, false, format!("{new} ok")),
        (OLD_ERRORS, true, format!("{old} errors")),
        (NEW_ERRORS, false, format!("{new} errors")),
    ];
    panel(&mut svg, (COUNT_TOP, COUNT_HEIGHT), "Requests per interval", &count_ticks, count_y, &count_legend);

    // Time axis: gridlines through both panels, labels under the lower one.
    let step = nice_step(end_s, 8.0);
    for t in (0..).map(|i| f64::from(i) * step).take_while(|&t| t <= end_s + 1e-9) {
        let tx = x((t * 1000.0).round() as u64);
        line(&mut svg, (tx, WEIGHT_TOP), (tx, bottom), r##"stroke="#eee""##);
        text(&mut svg, (tx, bottom + 16.0), r#"text-anchor="middle""#, &number(t));
    }
    text(&mut svg, (middle, HEIGHT - 24.0), r#"text-anchor="middle""#, "seconds since start");
    if samples.is_empty() {
        let style = format!(r#"text-anchor="middle" fill="{NEUTRAL}" font-size="14""#);
        text(&mut svg, (middle, WEIGHT_TOP + WEIGHT_HEIGHT / 2.0), &style, "no samples recorded");
    }
    for (i, note) in notes.iter().enumerate() {
        let style = format!(r#"font-size="11" fill="{NEUTRAL}""#);
        text(&mut svg, (LEFT, HEIGHT - 4.0 + NOTE_LINE * i as f64), &style, note);
    }

    // Weights hold from one sample to the next, so they are drawn as steps.
    let steps = |weight: fn(&Sample) -> f64| {
        let mut points = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            if let Some(before) = i.checked_sub(1).map(|j| &samples[j]) {
                points.push((x(s.at_ms), weight_y(weight(before))));
            }
            points.push((x(s.at_ms), weight_y(weight(s))));
        }
        points
    };
    polyline(&mut svg, &steps(|s| 100.0 - s.new_weight_percent), OLD, true);
    polyline(&mut svg, &steps(|s| s.new_weight_percent), NEW, false);
    let counts =
        |count: fn(&Sample) -> u64| samples.iter().map(|s| (x(s.at_ms), count_y(count(s) as f64))).collect::<Vec<_>>();
    polyline(&mut svg, &counts(|s| s.old_ok), OLD, true);
    polyline(&mut svg, &counts(|s| s.new_ok), NEW, false);
    polyline(&mut svg, &counts(|s| s.old_errors), OLD_ERRORS, true);
    polyline(&mut svg, &counts(|s| s.new_errors), NEW_ERRORS, false);

    // Markers: lines at the true time, then labels on top, nudged apart when markers are close. A label
    // rotated -90° hangs left of its baseline, so the baseline sits right of the line.
    let mut markers: Vec<&Marker> = timeline.markers.iter().collect();
    markers.sort_by_key(|m| m.at_ms);
    let color = |marker: &Marker| if marker.failed { FAILED } else { NEUTRAL };
    for marker in &markers {
        let mx = x(marker.at_ms);
        line(
            &mut svg,
            (mx, WEIGHT_TOP),
            (mx, bottom),
            &format!(r#"stroke="{}" stroke-dasharray="4 3""#, color(marker)),
        );
    }
    let mut label_x = f64::NEG_INFINITY;
    for marker in &markers {
        label_x = (x(marker.at_ms) + 12.0).max(label_x + 13.0);
        let (lx, ly) = (label_x, WEIGHT_TOP + 4.0);
        let style = format!(
            r#"transform="rotate(-90 {lx:.1} {ly:.1})" text-anchor="end" font-size="11" fill="{}" stroke="white" stroke-width="3" paint-order="stroke""#,
            color(marker)
        );
        text(&mut svg, (lx, ly), &style, &marker.label);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Splits `note` into lines of at most `width` characters at spaces (a longer word gets a line of
/// its own); continuation lines are indented.
fn wrap(note: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in note.split_whitespace() {
        if !current.trim().is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut current, "    ".to_owned()));
        }
        if !current.trim().is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

/// A framed panel with horizontal gridlines at `ticks`, and its title and legend above it.
fn panel(
    svg: &mut String,
    (top, height): (f64, f64),
    title: &str,
    ticks: &[f64],
    y: impl Fn(f64) -> f64,
    legend: &[Legend],
) {
    let right = WIDTH - RIGHT;
    for &tick in ticks {
        line(svg, (LEFT, y(tick)), (right, y(tick)), r##"stroke="#eee""##);
        text(svg, (LEFT - 6.0, y(tick) + 4.0), r#"text-anchor="end""#, &number(tick));
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{height}" fill="none" stroke="#999"/>"##,
        right - LEFT
    );
    text(svg, (LEFT, top - 10.0), r#"font-weight="bold""#, title);
    // Text width is estimated: there are no font metrics to ask.
    let mut lx = LEFT + 7.0 * title.chars().count() as f64 + 24.0;
    for (color, dashed, label) in legend {
        let dash = if *dashed { r#" stroke-dasharray="6 3""# } else { "" };
        line(svg, (lx, top - 14.0), (lx + 20.0, top - 14.0), &format!(r#"stroke="{color}" stroke-width="2"{dash}"#));
        text(svg, (lx + 25.0, top - 10.0), "", label);
        lx += 6.5 * label.chars().count() as f64 + 45.0;
    }
}

fn line(svg: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
    let _ = writeln!(svg, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#);
}

/// Writes a text element; `content` is escaped here so no caller can forget.
fn text(svg: &mut String, (x, y): (f64, f64), style: &str, content: &str) {
    let _ = writeln!(svg, r#"<text x="{x:.1}" y="{y:.1}" {style}>{}</text>"#, escape(content));
}

fn polyline(svg: &mut String, points: &[(f64, f64)], color: &str, dashed: bool) {
    if points.is_empty() {
        return;
    }
    let points: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
    let dash = if dashed { r#" stroke-dasharray="6 3""# } else { "" };
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
        points.join(" ")
    );
}

/// A round tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    let raw = range / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let nice = match raw / magnitude {
        n if n < 1.5 => 1.0,
        n if n < 3.5 => 2.0,
        n if n < 7.5 => 5.0,
        _ => 10.0,
    };
    nice * magnitude
}

/// A tick label: whole numbers without decimals, others with one.
fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Timeline {
        let sample = |at_ms, new_weight_percent, new_errors| Sample {
            at_ms,
            new_weight_percent,
            old_ok: 90,
            new_ok: 10,
            old_errors: 0,
            new_errors,
        };
        Timeline {
            title: "checkout <v2> & friends".into(),
            subtitle: "Canary10Percent5Minutes".into(),
            samples: vec![sample(1000, 0.0, 0), sample(2000, 10.0, 0), sample(3000, 10.0, 7), sample(4000, 0.0, 0)],
            markers: vec![
                Marker { at_ms: 2500, label: "alarm: checkout-5xx".into(), failed: true },
                Marker { at_ms: 1500, label: "AfterAllowTestTraffic: Succeeded".into(), failed: false },
            ],
            old_label: "v1".into(),
            new_label: "v2".into(),
            notes: Vec::new(),
        }
    }

    /// Tags balance and every `&` starts an entity: enough to know a browser will parse it.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>\n"), "{svg}");
        let mut open = Vec::new();
        for tag in svg.split('<').skip(1).map(|rest| rest.split('>').next().unwrap()) {
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "unbalanced </{name}>");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap());
            }
        }
        assert!(open.is_empty(), "unclosed {open:?}");
        for (i, _) in svg.match_indices('&') {
            assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| svg[i..].starts_with(e)), "{svg}");
        }
    }

    #[test]
    fn renders_a_well_formed_chart_with_text_escaped() {
        let svg = render_svg(&canary());
        assert_well_formed(&svg);
        assert!(svg.contains("checkout &lt;v2&gt; &amp; friends"));
        assert!(!svg.contains("<v2>"));
        assert!(svg.contains("v2 errors"));
    }

    #[test]
    fn draws_markers_with_failed_ones_in_red() {
        let svg = render_svg(&canary());
        let line_of = |label: &str| svg.lines().find(|l| l.contains(label)).unwrap().to_owned();
        assert!(line_of("alarm: checkout-5xx").contains(FAILED));
        assert!(line_of("AfterAllowTestTraffic: Succeeded").contains(NEUTRAL));
    }

    #[test]
    fn renders_an_empty_timeline_with_a_note() {
        let svg = render_svg(&Timeline::default());
        assert_well_formed(&svg);
        assert!(svg.contains("no samples recorded"));
        assert!(!svg.contains("<polyline"));
    }

    #[test]
    fn notes_go_under_the_chart_wrapped_and_the_picture_grows_for_them() {
        let mut timeline = canary();
        let long = format!("AfterAllowTraffic Failed: {}", "candidate green_p99 vs baseline blue_p99 ".repeat(5));
        timeline.notes = vec!["first note".into(), long];
        let svg = render_svg(&timeline);
        assert_well_formed(&svg);
        let notes: Vec<&str> =
            svg.lines().filter(|l| l.contains(r#"font-size="11" fill="#) && !l.contains("rotate")).collect();
        assert_eq!(notes.len(), 3, "one short note, one wrapped in two: {notes:?}");
        assert!(notes[0].contains(">first note<") && notes[1].contains("AfterAllowTraffic Failed: candidate"));
        assert!(svg.contains(&format!(r#"height="{}""#, HEIGHT + 3.0 * NOTE_LINE)), "{svg}");
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "    ccc"]);
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(nice_step(60.0, 8.0), 10.0);
        assert_eq!(nice_step(300.0, 8.0), 50.0);
        assert_eq!(nice_step(1.0, 8.0), 0.1);
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(20.0), "20");
    }
}
