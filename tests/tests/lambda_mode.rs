//! Hook binaries in Lambda mode: the real `lambda_runtime` loop behind the local runtime host's
//! Runtime API, the deadline taken from `Lambda-Runtime-Deadline-Ms` (the function timeout), and
//! reports to the local CodeDeploy, whose deployment is held in the hook's event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use codedeploy_local::emulator::Happening;
use codedeploy_local::faults::{Faults, ReportFault};
use codedeploy_local::lambda::runtime::InvokeOutcome;
use greenlight_tests::deployment::{Held, HeldTarget, function, process};
use greenlight_tests::hook_binary;
use greenlight_tests::targets::Target;
use serde_json::{Value, json};

const HOOK: &str = "CodeDeployHook_after-allow-test-traffic";

/// An ECS deployment held in AfterAllowTestTraffic, with `after-allow-test-traffic` hosted as a
/// function of `timeout_seconds` running `plan` with any `extra` environment.
async fn hosted(plan: &Value, extra: &[(&str, &str)], timeout_seconds: u64) -> Held {
    let plan = plan.to_string();
    let environment: Vec<(&str, &str)> =
        [("GREENLIGHT_PLAN", plan.as_str())].into_iter().chain(extra.iter().copied()).collect();
    let hook = process(vec![hook_binary("after-allow-test-traffic").display().to_string()], &environment);
    let mut hook = function([("$LATEST", hook)]);
    hook.timeout_seconds = timeout_seconds;
    let functions = BTreeMap::from([(HOOK.to_owned(), hook)]);
    Held::start(HeldTarget::Ecs, "AfterAllowTestTraffic", functions, Faults::default()).await
}

fn fail_reports(aws: &Held, faults: &[ReportFault]) {
    aws.set_faults(Faults { report_failures: faults.iter().copied().collect(), ..Faults::default() });
}

/// What the function answered: its response, or the error it posted; and its whole log so far.
struct Answered {
    result: Result<Value, Value>,
    log: String,
}

/// Invokes the hook synchronously with `payload`, as Lambda hands it an event.
async fn invoke(aws: &Held, payload: impl Into<Bytes>) -> Answered {
    let response = aws.emulator().invoke(HOOK, None, payload.into()).await.expect("the hook is hosted");
    // The runtime host writes the invocation's REPORT line before it answers, after the output.
    let log = std::fs::read_to_string(aws.log_path(HOOK)).unwrap_or_default();
    let payload = serde_json::from_slice(&response.invocation.payload).unwrap_or(Value::Null);
    let result = match response.invocation.outcome {
        InvokeOutcome::Response => Ok(payload),
        InvokeOutcome::FunctionError { .. } => Err(payload),
        other => panic!("the hook did not answer: {other:?}\n{log}"),
    };
    Answered { result, log }
}

fn event(aws: &Held) -> Vec<u8> {
    aws.event_json().to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_target_is_reported_before_the_lambda_deadline() {
    let target = Target::start().await;
    let plan =
        json!({"checks": [{"name": "hangs", "http": {"url": format!("{}/hang", target.url)}, "timeout_ms": 600000}]});
    let aws = hosted(&plan, &[], 4).await;
    let started = Instant::now();
    let answered = invoke(&aws, event(&aws)).await;
    let elapsed = started.elapsed();
    let Ok(response) = answered.result else { panic!("no response: {:?}\n{}", answered.result, answered.log) };
    assert!(elapsed < Duration::from_secs(4), "answered after the deadline: {elapsed:?}");
    assert_eq!(response["verdict"]["status"], "Failed", "{response}");
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_an_invocation_error_and_reports_nothing() {
    let aws = hosted(&json!({"checks": []}), &[], 5).await;
    let Answered { result, log: logs } = invoke(&aws, r#"{"deploymentId": "d-ECS0000042"}"#).await;
    let Err(error) = result else { panic!("expected an error: {result:?}\n{logs}") };
    assert_eq!(error["errorType"], "greenlight.MalformedEvent", "{error}");
    assert!(error["errorMessage"].as_str().unwrap().contains("DeploymentId"), "{error}");
    assert!(logs.contains("raw=") && logs.contains("d-ECS0000042"), "the raw input is logged: {logs}");
    assert_eq!(aws.report_calls(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_fails_is_an_error_and_lambdas_retry_delivers_it() {
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let aws = hosted(&plan, &[("AWS_MAX_ATTEMPTS", "3")], 20).await;
    fail_reports(&aws, &[ReportFault::ServerError; 3]);
    let first = invoke(&aws, event(&aws)).await;
    // Lambda retries a failed asynchronous invocation with the same event.
    let retry = invoke(&aws, event(&aws)).await;
    let Err(error) = first.result else { panic!("expected an error: {:?}\n{}", first.result, retry.log) };
    assert_eq!(error["errorType"], "greenlight.ReportFailed", "{error}");
    assert!(retry.result.is_ok(), "{:?}\n{}", retry.result, retry.log);
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_throttled_twice_lands_before_the_deadline_with_the_sdks_real_backoff() {
    let target = Target::start().await;
    // The default SDK retry backs off up to 1 s and then 2 s (jittered): 3 s, which fits in a 4 s
    // reserve. The reserve is capped at a third of the time left, so the invocation gets 12 s.
    let plan = json!({"report_reserve_ms": 4000,
        "checks": [{"name": "hangs", "http": {"url": format!("{}/hang", target.url)}, "timeout_ms": 600000}]});
    let aws = hosted(&plan, &[], 12).await;
    fail_reports(&aws, &[ReportFault::Throttle, ReportFault::Throttle]);
    let started = Instant::now();
    let answered = invoke(&aws, event(&aws)).await;
    let elapsed = started.elapsed();
    assert!(answered.result.is_ok(), "{:?}\n{}", answered.result, answered.log);
    assert!(elapsed < Duration::from_secs(12), "answered after the deadline: {elapsed:?}");
    assert_eq!(aws.report_calls(), 3);
    assert_eq!(aws.accepted().len(), 1);
    assert_eq!(aws.accepted()[0].status, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_plan_reports_failed_on_every_invocation() {
    let aws = hosted(&json!({"checks": "none"}), &[], 5).await;
    let Answered { result, log: logs } = invoke(&aws, event(&aws)).await;
    let Ok(response) = result else { panic!("no response: {result:?}\n{logs}") };
    assert!(response["verdict"]["reason"].as_str().unwrap().contains("at /checks"), "{response}");
    assert_eq!(aws.accepted()[0].status, "Failed");
    let init_errors = aws
        .emulator()
        .state()
        .record
        .iter()
        .filter(|e| matches!(&e.what, Happening::Invocation { outcome: "init_error", .. }))
        .count();
    assert_eq!(init_errors, 0, "a bad plan must not crash init: {logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_one_line_per_check_and_a_summary() {
    let target = Target::start().await;
    let plan = json!({"checks": [
        {"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url),
            "headers": {"authorization": "Bearer very-secret-token"}}},
        {"name": "down", "http": {"url": format!("{}/status/503", target.url)}}
    ]});
    let aws = hosted(&plan, &[("AWS_LAMBDA_LOG_FORMAT", "JSON")], 10).await;
    let Answered { result, log: logs } = invoke(&aws, event(&aws)).await;
    assert!(result.is_ok(), "{result:?}\n{logs}");
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "no JSON log lines: {logs}");
    let checks: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "check").collect();
    assert_eq!(checks.len(), 2, "{logs}");
    let down = checks.iter().find(|l| l["fields"]["check"] == "down").expect("down line");
    assert_eq!(down["fields"]["outcome"], "failed");
    assert_eq!(down["fields"]["attempts"], 1);
    assert!(down["fields"]["reason"].as_str().unwrap().contains("status 503"));
    let summary = lines.iter().find(|l| l["fields"]["message"] == "verdict").expect("summary line");
    assert_eq!(summary["fields"]["deployment_id"], aws.deployment_id);
    assert_eq!(summary["fields"]["verdict"], "Failed");
    assert!(!logs.contains("very-secret-token"), "a secret reached the logs");
}

// ---- CloudWatch Embedded Metric Format -----------------------------------------------------------

/// The units CloudWatch accepts (`MetricDatum.Unit`).
const CLOUDWATCH_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Every rule of the Embedded Metric Format specification (and of CloudWatch's limits on what it
/// extracts) that `document` breaks; CloudWatch drops a document that breaks any of them.
fn emf_violations(document: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    let Some(root) = document.as_object() else { return vec!["the document is not a JSON object".into()] };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return vec!["no _aws metadata object".into()];
    };
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let (oldest, newest) = (now_ms - 14 * 24 * 3600 * 1000, now_ms + 2 * 3600 * 1000);
    match aws.get("Timestamp").and_then(Value::as_u64) {
        Some(ts) if (oldest..=newest).contains(&ts) => {}
        other => broken
            .push(format!("_aws.Timestamp must be epoch milliseconds within 14 days back, 2 hours ahead: {other:?}")),
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        broken.push("_aws.CloudWatchMetrics is not an array".into());
        return broken;
    };
    let printable = |s: &str| {
        (1..=1024).contains(&s.chars().count())
            && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            && !s.trim().is_empty()
    };
    for (i, directive) in directives.iter().enumerate() {
        let at = format!("CloudWatchMetrics[{i}]");
        if !directive["Namespace"].as_str().is_some_and(printable) {
            broken.push(format!("{at}.Namespace must be 1–1024 printable ASCII characters"));
        }
        let Some(sets) = directive["Dimensions"].as_array() else {
            broken.push(format!("{at}.Dimensions is not an array"));
            continue;
        };
        let mut dimension_keys = Vec::new();
        for (j, set) in sets.iter().enumerate() {
            let Some(keys) = set.as_array() else {
                broken.push(format!("{at}.Dimensions[{j}] is not an array"));
                continue;
            };
            if keys.len() > 30 {
                broken.push(format!("{at}.Dimensions[{j}] has {} dimensions, at most 30", keys.len()));
            }
            for key in keys {
                let Some(key) = key.as_str().filter(|k| (1..=255).contains(&k.len())) else {
                    broken
                        .push(format!("{at}.Dimensions[{j}]: a dimension name is not a 1–255 character string: {key}"));
                    continue;
                };
                match root.get(key) {
                    Some(Value::String(value)) if printable(value) => {}
                    other => broken.push(format!("dimension {key}: its value must be a member, a string of 1–1024 printable ASCII characters: {other:?}")),
                }
                dimension_keys.push(key);
            }
        }
        let Some(metrics) = directive["Metrics"].as_array() else {
            broken.push(format!("{at}.Metrics is not an array"));
            continue;
        };
        if metrics.len() > 100 {
            broken.push(format!("{at}.Metrics has {} metrics, at most 100", metrics.len()));
        }
        let mut names = std::collections::HashSet::new();
        for metric in metrics {
            let Some(name) = metric["Name"].as_str().filter(|n| (1..=1024).contains(&n.len())) else {
                broken.push(format!("{at}: a metric has no 1–1024 character Name: {metric}"));
                continue;
            };
            if !names.insert(name) || dimension_keys.contains(&name) {
                broken.push(format!("{at}: {name} names two metrics, or a metric and a dimension"));
            }
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| CLOUDWATCH_UNITS.contains(&u))
            {
                broken.push(format!("metric {name}: {unit} is not a CloudWatch unit"));
            }
            if let Some(resolution) = metric.get("StorageResolution")
                && *resolution != json!(1)
                && *resolution != json!(60)
            {
                broken.push(format!("metric {name}: StorageResolution must be 1 or 60"));
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if (1..=100).contains(&values.len()) && values.iter().all(Value::is_number) => {}
                other => broken
                    .push(format!("metric {name}: its value must be a member, a number or 1–100 numbers: {other:?}")),
            }
        }
    }
    broken
}

/// The EMF documents among a function's stdout lines.
fn emf_documents(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

fn metric_names(document: &Value) -> Vec<&str> {
    document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect()
}

#[test]
fn the_emf_checker_catches_each_broken_rule() {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let valid = json!({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": "greenlight", "Dimensions": [["hook"]],
            "Metrics": [{"Name": "Succeeded", "Unit": "Count"}]}]},
        "hook": "pre-traffic", "Succeeded": 1,
    });
    assert_eq!(emf_violations(&valid), Vec::<String>::new());
    type Breakage = Box<dyn Fn(&mut Value)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        ("no _aws", Box::new(|d| d["_aws"] = Value::Null)),
        ("no timestamp", Box::new(|d| d["_aws"]["Timestamp"] = Value::Null)),
        ("timestamp in seconds", Box::new(move |d| d["_aws"]["Timestamp"] = json!(now_ms / 1000))),
        ("metric value missing", Box::new(|d| d["Succeeded"] = Value::Null)),
        ("metric value a string", Box::new(|d| d["Succeeded"] = json!("1"))),
        ("101 values", Box::new(|d| d["Succeeded"] = json!(vec![1; 101]))),
        ("dimension value missing", Box::new(|d| d["hook"] = Value::Null)),
        ("dimension value a number", Box::new(|d| d["hook"] = json!(7))),
        ("dimension value not ASCII", Box::new(|d| d["hook"] = json!("café"))),
        ("bad unit", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Millis"))),
        ("no namespace", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = Value::Null)),
        (
            "31 dimensions",
            Box::new(|d| {
                let keys: Vec<String> = (0..31).map(|i| format!("d{i}")).collect();
                for key in &keys {
                    d[key.as_str()] = json!("x");
                }
                d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
            }),
        ),
        (
            "101 metrics",
            Box::new(|d| {
                let metrics: Vec<Value> = (0..101).map(|i| json!({"Name": format!("m{i}")})).collect();
                for i in 0..101 {
                    d[format!("m{i}").as_str()] = json!(1);
                }
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(metrics);
            }),
        ),
    ];
    for (what, breakage) in breakages {
        let mut broken = valid.clone();
        breakage(&mut broken);
        assert!(!emf_violations(&broken).is_empty(), "the checker missed: {what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_run_prints_metrics_cloudwatch_can_extract_per_check_and_per_run() {
    let target = Target::start().await;
    let plan = json!({"checks": [
        {"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}},
        {"name": "down", "http": {"url": format!("{}/status/503", target.url)}},
        {"name": "shadow café", "dry_run": true, "http": {"url": format!("{}/not-json", target.url)}, "expect": {"json_schema": {}}},
    ]});
    let aws = hosted(&plan, &[], 10).await;
    let Answered { result, log: stdout } = invoke(&aws, event(&aws)).await;
    assert!(result.is_ok(), "{result:?}\n{stdout}");

    let documents = emf_documents(&stdout);
    assert_eq!(documents.len(), 4, "one per check and one for the run: {stdout}");
    for document in &documents {
        assert_eq!(emf_violations(document), Vec::<String>::new(), "{document}");
        let directives = document["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert!(directives.iter().all(|d| d["Namespace"] == "greenlight"), "{document}");
        assert_eq!(document["hook"], "after-allow-test-traffic");
        assert_eq!(document["deployment_id"], aws.deployment_id);
    }
    let check = |name: &str| {
        documents.iter().find(|d| d["check"] == name).unwrap_or_else(|| panic!("no document for {name}: {stdout}"))
    };
    for name in ["cart", "down", "shadow caf\\u{e9}"] {
        let document = check(name);
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["hook", "check"]]), "{document}");
        assert_eq!(metric_names(document), ["CheckPassed", "CheckLatency"], "{document}");
        assert!(document["CheckLatency"].as_u64().is_some(), "{document}");
    }
    assert_eq!((&check("cart")["CheckPassed"], &check("cart")["dry_run"]), (&json!(1), &json!(false)));
    assert_eq!(check("down")["CheckPassed"], 0);
    assert_eq!(
        (&check("shadow caf\\u{e9}")["CheckPassed"], &check("shadow caf\\u{e9}")["dry_run"]),
        (&json!(0), &json!(true))
    );

    let run = documents.last().unwrap();
    assert_eq!(run["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["hook"]]), "{run}");
    assert_eq!(metric_names(run), ["Succeeded", "RunDuration", "ReportFailed"], "{run}");
    assert_eq!((&run["Succeeded"], &run["ReportFailed"], &run["verdict"]), (&json!(0), &json!(0), &json!("Failed")));
    assert!(run["RunDuration"].as_u64().is_some(), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_report_that_did_not_land() {
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let aws = hosted(&plan, &[("AWS_MAX_ATTEMPTS", "3")], 20).await;
    fail_reports(&aws, &[ReportFault::ServerError; 3]);
    let Answered { result, log: stdout } = invoke(&aws, event(&aws)).await;
    assert!(result.is_err(), "{result:?}\n{stdout}");
    let documents = emf_documents(&stdout);
    let run = documents.iter().find(|d| d.get("Succeeded").is_some()).unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(emf_violations(run), Vec::<String>::new(), "{run}");
    assert_eq!(
        (&run["Succeeded"], &run["ReportFailed"], &run["report"]),
        (&json!(1), &json!(1), &json!("not_delivered"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_switched_off() {
    let target = Target::start().await;
    let plan = json!({"checks": [{"name": "cart", "http": {"url": format!("{}/v2/cart/healthy", target.url)}}]});
    let aws = hosted(&plan, &[("GREENLIGHT_METRICS", "off")], 10).await;
    let Answered { result, log: stdout } = invoke(&aws, event(&aws)).await;
    assert!(result.is_ok(), "{result:?}\n{stdout}");
    assert!(stdout.contains("verdict"), "the logs still go out: {stdout}");
    assert!(emf_documents(&stdout).is_empty(), "{stdout}");
    assert!(!stdout.contains("_aws"), "{stdout}");
}
