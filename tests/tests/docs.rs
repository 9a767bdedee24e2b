//! The docs stay true: every command in a `sh` or `bash` block of README.md and docs/*.md is run
//! by `.ci/run` or by a test named below, or says in its block what it needs that the tests do not
//! have; and every relative link points at a file, and a heading, that exists.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use greenlight_tests::deployment::Held;
use greenlight_tests::{bin_dir, workspace_root};
use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};
use serde_json::Value;
use tokio::process::Command;

/// A comment line in a command block that starts with this marks the rest of the block as
/// commands the tests cannot run, and says why, for example `# needs an AWS account`.
const NEEDS: &str = "# needs ";

/// Who runs a documented command that `.ci/run` does not run exactly as written.
#[derive(Debug, Clone, Copy)]
enum RunBy {
    /// A test, as `file::function` under tests/tests.
    Test(&'static str),
    /// `.ci/run`, with extra arguments that change only what it prints: the line it runs.
    CiAs(&'static str),
    /// The CI job itself, whose entry point `.ci/run` is.
    CiJob,
}

const CLI_DRY_RUN: &str = "AWS_REGION=us-east-1 cargo run -p after-allow-test-traffic -- \
    --event events/after-allow-test-traffic.json --plan examples/plans/checkout-contract.json \
    --skip-discovery --dry-run";
const CLI_WHOLE_FLOW: &str = "AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_ENDPOINT_URL_CODEDEPLOY=http://127.0.0.1:PORT GREENLIGHT_PLAN_FILE=examples/plans/checkout-contract.json \
    cargo run -p after-allow-test-traffic -- --event events/after-allow-test-traffic.json --format json";
const CLI_STDIN: &str = "echo '{\"DeploymentId\":\"d-ECS000001\",\"LifecycleEventHookExecutionId\":\"eyJ\"}' \
    | AWS_REGION=us-east-1 cargo run -p after-allow-test-traffic -- --event - \
    --plan examples/plans/checkout-contract.json --skip-discovery --dry-run";
const CLI_MALFORMED: &str = "cargo run -p after-allow-test-traffic -- --event events/malformed/wrong-case.json \
    --plan examples/plans/checkout-contract.json";

/// Documented commands that `.ci/run` does not run as written, and who does. A command the docs
/// gain goes here with the test that runs it, or into `.ci/run`, or gets a `# needs` line.
const RUN_BY: &[(&str, RunBy)] = &[
    ("bash scripts/drill.sh", RunBy::CiAs("bash scripts/drill.sh --quiet")),
    // The test runs this scenario at this scale with a relative --out of its own, from outside
    // the workspace, and checks the pictures land there.
    (
        "bash scripts/drill.sh --scenario lambda-canary --time-scale 120 --out target/drill-canary",
        RunBy::Test("drill_script::the_drill_script_writes_its_pictures_where_out_says"),
    ),
    (CLI_DRY_RUN, RunBy::Test("docs::the_cli_mode_examples_run_as_documented")),
    (CLI_WHOLE_FLOW, RunBy::Test("docs::the_cli_mode_examples_run_as_documented")),
    (CLI_STDIN, RunBy::Test("docs::the_cli_mode_examples_run_as_documented")),
    (CLI_MALFORMED, RunBy::Test("docs::the_cli_mode_examples_run_as_documented")),
    ("bash .ci/run", RunBy::CiJob),
    // The loop's test activates the same virtualenv (python::venv) and invokes every hook in order.
    ("source \"$(bash scripts/python-env.sh)/bin/activate\"", RunBy::Test(CARGO_LAMBDA_LOOP)),
    (
        "cargo lambda invoke before-install --invoke-address 127.0.0.1 --data-file events/before-install.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke after-install --invoke-address 127.0.0.1 --data-file events/after-install.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke after-allow-test-traffic --invoke-address 127.0.0.1 --data-file events/after-allow-test-traffic.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke before-allow-traffic --invoke-address 127.0.0.1 --data-file events/before-allow-traffic.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke after-allow-traffic --invoke-address 127.0.0.1 --data-file events/after-allow-traffic.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke pre-traffic --invoke-address 127.0.0.1 --data-file events/pre-traffic.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
    (
        "cargo lambda invoke post-traffic --invoke-address 127.0.0.1 --data-file events/post-traffic.json",
        RunBy::Test(CARGO_LAMBDA_LOOP),
    ),
];

/// The test that runs the local loop under the real `cargo lambda watch`.
const CARGO_LAMBDA_LOOP: &str = "cargo_lambda::every_hook_judges_and_reports_once_under_cargo_lambda_watch";

/// README.md and every page of the guide.
fn documents() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).display().to_string()
}

/// One command of a command block: continuation lines joined, its trailing comment and extra
/// whitespace dropped.
#[derive(Debug)]
struct Documented {
    place: String,
    command: String,
    needs: Option<String>,
}

fn commands_in(page: &Path) -> Vec<Documented> {
    let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("read {}: {e}", page.display()));
    let mut found = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (event, range) in Parser::new(&text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if matches!(info.split_whitespace().next(), Some("sh" | "bash")) =>
            {
                block = Some((text[..range.start].lines().count() + 1, String::new()));
            }
            Event::Text(code) => {
                if let Some((_, body)) = block.as_mut() {
                    body.push_str(&code);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((fence_line, body)) = block.take() {
                    found.extend(commands_of_block(&relative(page), fence_line, &body));
                }
            }
            _ => {}
        }
    }
    found
}

fn commands_of_block(page: &str, fence_line: usize, body: &str) -> Vec<Documented> {
    let mut commands = Vec::new();
    let mut needs = None;
    let mut pending: Option<(usize, String)> = None;
    for (offset, line) in body.lines().enumerate() {
        let number = fence_line + 1 + offset;
        let trimmed = line.trim();
        if pending.is_none() {
            if let Some(reason) = trimmed.strip_prefix(NEEDS) {
                needs = Some(reason.trim().to_owned());
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
        }
        let code = without_comment(line);
        let (start, mut command) = pending.take().unwrap_or((number, String::new()));
        match code.trim_end().strip_suffix('\\') {
            Some(continued) => {
                command.push_str(continued);
                command.push(' ');
                pending = Some((start, command));
            }
            None => {
                command.push_str(code);
                let command = command.split_whitespace().collect::<Vec<_>>().join(" ");
                commands.push(Documented { place: format!("{page}:{start}"), command, needs: needs.clone() });
            }
        }
    }
    commands
}

/// The line without a trailing `# comment`, minding quotes.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The commands `.ci/run` runs, one a line.
fn ci_commands() -> Vec<String> {
    let script = std::fs::read_to_string(workspace_root().join(".ci/run")).expect("read .ci/run");
    script
        .lines()
        .map(str::trim)
        .filter(|line| {
            !(line.is_empty()
                || line.starts_with('#')
                || line.starts_with("echo ")
                || line.starts_with("set ")
                || line.starts_with("cd "))
        })
        .map(str::to_owned)
        .collect()
}

fn normalised(command: &str) -> String {
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why `RUN_BY` cannot be trusted for `command`, if it cannot.
fn check_run_by(command: &str, run_by: RunBy, ci: &[String]) -> Option<String> {
    match run_by {
        RunBy::Test(name) => {
            let Some((file, function)) = name.split_once("::") else {
                return Some(format!("`{command}`: name its test as file::function, not `{name}`"));
            };
            let path = workspace_root().join("tests/tests").join(format!("{file}.rs"));
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            (!source.contains(&format!("fn {function}("))).then(|| {
                format!("`{command}` is said to be run by {name}, but {} has no fn {function}", relative(&path))
            })
        }
        RunBy::CiAs(line) => (!ci.iter().any(|c| c == line) || !line.starts_with(&format!("{command} ")))
            .then(|| format!("`{command}` is said to be run by .ci/run as `{line}`, but .ci/run has no such line")),
        RunBy::CiJob => None,
    }
}

#[test]
fn every_documented_command_is_run_by_ci_or_a_test() {
    let ci = ci_commands();
    let run_by: Vec<(String, RunBy)> = RUN_BY.iter().map(|(c, r)| (normalised(c), *r)).collect();
    let mut problems = Vec::new();
    let mut documented = HashSet::new();
    for page in documents() {
        for Documented { place, command, needs } in commands_in(&page) {
            documented.insert(command.clone());
            if let Some(reason) = needs {
                if reason.is_empty() {
                    problems.push(format!("{place}: a `{NEEDS}` line must say what the commands below it need"));
                }
                continue;
            }
            if ci.contains(&command) {
                continue;
            }
            match run_by.iter().find(|(c, _)| *c == command) {
                Some((_, how)) => problems.extend(check_run_by(&command, *how, &ci)),
                None => problems.push(format!(
                    "{place}: `{command}` is run by neither .ci/run nor a test. Run it in a test and add it, with \
                     that test, to RUN_BY in tests/tests/docs.rs; or add it to .ci/run; or, if it cannot run \
                     here, put a line `{NEEDS}<what it needs>` (for example `# needs an AWS account`) above it \
                     in its block."
                )),
            }
        }
    }
    for (command, _) in &run_by {
        if !documented.contains(command) {
            problems.push(format!("RUN_BY in tests/tests/docs.rs lists `{command}`, which no doc has (any more)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors_of(page: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let mut anchors = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(&text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = anchor(&h);
                    let mut candidate = base.clone();
                    let mut n = 0;
                    while !anchors.insert(candidate.clone()) {
                        n += 1;
                        candidate = format!("{base}-{n}");
                    }
                }
            }
            _ => {}
        }
    }
    anchors
}

#[test]
fn every_relative_link_in_the_docs_points_at_something_that_exists() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in documents() {
        let text = std::fs::read_to_string(&page).expect("read a doc");
        let mut has_title = false;
        for (event, range) in Parser::new(&text).into_offset_iter() {
            let destination = match &event {
                Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => dest_url.to_string(),
                Event::Start(Tag::Heading { level: HeadingLevel::H1, .. }) => {
                    has_title = true;
                    continue;
                }
                _ => continue,
            };
            if destination.contains("://") || destination.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let place = format!("{}:{}", relative(&page), text[..range.start].lines().count().max(1));
            let (file, fragment) = destination.split_once('#').unwrap_or((&destination, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().expect("a folder").join(file) };
            if !target.exists() {
                problems.push(format!("{place}: `{destination}` points at {}, which does not exist", target.display()));
                continue;
            }
            if !fragment.is_empty()
                && target.extension().is_some_and(|ext| ext == "md")
                && !anchors_of(&target).contains(fragment)
            {
                problems.push(format!("{place}: `{destination}`: {} has no heading #{fragment}", relative(&target)));
            }
        }
        if !has_title {
            problems.push(format!("{}: no `# title`", relative(&page)));
        }
    }
    assert!(checked > 20, "only {checked} relative links found: is the parser seeing the docs?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_stays_a_front_door() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("read README.md");
    let lines = readme.lines().count();
    assert!(lines < 250, "README.md has {lines} lines: move detail into docs/ and link to it");
    let commands: Vec<String> =
        commands_in(&workspace_root().join("README.md")).into_iter().map(|d| d.command).collect();
    // CI's .ci/run runs the test command the README gives a newcomer; both must stay exactly so.
    for first in ["bash scripts/drill.sh", "cargo test --workspace"] {
        assert!(commands.iter().any(|c| c == first), "the README no longer shows `{first}`");
    }
    assert!(ci_commands().iter().any(|c| c == "cargo test --workspace"), ".ci/run no longer runs the README's tests");
}

/// A documented command as the shell runs it, with `cargo run -p NAME --` as the binary the tests
/// built: `cargo run` of one package would rebuild it with other features, under the other tests.
fn as_built(command: &str) -> String {
    let mut rewritten = normalised(command);
    while let Some(at) = rewritten.find("cargo run -p ") {
        let rest = &rewritten[at + "cargo run -p ".len()..];
        let name = rest.split_whitespace().next().expect("a package after -p").to_owned();
        let after = &rest[name.len()..];
        let tail = match after.strip_prefix(" --") {
            Some(arguments) if arguments.is_empty() || arguments.starts_with(' ') => arguments.to_owned(),
            _ => after.to_owned(),
        };
        rewritten = format!("{}{}{tail}", &rewritten[..at], bin_dir().join(&name).display());
    }
    rewritten
}

async fn shell(command: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(as_built(command))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(workspace_root())
        .output()
        .await
        .expect("run bash")
}

fn text(command: &str, output: &Output) -> String {
    format!(
        "{command}\nexit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_mode_examples_run_as_documented() {
    // Nothing is started on 127.0.0.1:8081, the plan's service: the hook must still reach a verdict,
    // which shows the flags, files and environment in the docs are the ones the hook takes.
    for command in [CLI_DRY_RUN, CLI_STDIN] {
        let output = shell(command).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(matches!(output.status.code(), Some(0 | 1)), "{}", text(command, &output));
        assert!(stdout.starts_with("after-allow-test-traffic · deployment d-ECS000001"), "{}", text(command, &output));
        assert!(stdout.contains("report: skipped (dry run)"), "{}", text(command, &output));
    }

    let output = shell(CLI_MALFORMED).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(CLI_MALFORMED, &output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("event has no usable DeploymentId (ids are case-sensitive PascalCase;")
            && stderr.contains("keys present: deploymentId, lifecycleEventHookExecutionId"),
        "the docs show this message: {}",
        text(CLI_MALFORMED, &output)
    );

    // The local CodeDeploy generates its deployment's ids, so the sample event is given them.
    let aws = Held::ecs("AfterAllowTestTraffic").await;
    let event = aws.event_file("after-allow-test-traffic");
    let command = CLI_WHOLE_FLOW
        .replace("http://127.0.0.1:PORT", &aws.endpoint())
        .replace("events/after-allow-test-traffic.json", &event.display().to_string());
    assert_ne!(command, CLI_WHOLE_FLOW, "the documented command names the endpoint and the sample event");
    let output = shell(&command).await;
    let json: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&command, &output)));
    assert_eq!(json["deployment_id"], aws.deployment_id, "{}", text(&command, &output));
    assert_eq!(json["report"], "accepted", "{}", text(&command, &output));
    let accepted = aws.accepted();
    assert_eq!(accepted.len(), 1, "{}", text(&command, &output));
    assert_eq!(accepted[0].status, json["verdict"]["status"].as_str().expect("a verdict status"));
}
