//! What is measured: the subjects (hooks with their inputs), the local targets they check, and the
//! CPU quota some of them run under.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codedeploy_local::config::{AliasConfig, FunctionConfig, LocalConfig, ProcessConfig};
use codedeploy_local::limits::Cgroup;
use greenlight_tests::{Target, TlsTarget, workspace_root};
use serde_json::json;

/// The function whose alias every benchmark deployment shifts.
pub const CHECKOUT: &str = "checkout";
/// The route both sides check: a 200 with a small JSON body.
const ROUTE: &str = "/v2/cart/healthy";
/// How many checks the concurrency subject runs, and how long each takes.
const MANY_CHECKS: usize = 50;
const SLOW_CHECK_MS: u64 = 200;

/// Which hook a subject runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The greenlight `pre-traffic` hook.
    Greenlight,
    /// The Python reference hook.
    Reference,
    /// The std-only floor (`floor-hook`): the same four requests and nothing else.
    Floor,
}

/// One hook configuration, deployed as its own Lambda function.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Short name, as in the table.
    pub name: &'static str,
    /// Which hook.
    pub side: Side,
    /// The Lambda function name (`CodeDeployHook_…`).
    pub function: String,
    /// What the runtime host starts.
    pub process: ProcessConfig,
}

/// The targets, the subjects, and the binaries they run.
#[derive(Debug)]
pub struct World {
    /// In the order they take turns.
    pub subjects: Vec<Subject>,
    checkout: ProcessConfig,
    _target: Target,
    _tls: TlsTarget,
    scratch: PathBuf,
}

impl World {
    /// Starts the HTTP and HTTPS targets and lays out the subjects. `quota`, when set, adds a
    /// throttled copy of the one-check subjects.
    pub async fn start(hook_dir: &Path, quota: Option<&Cgroup>) -> Result<Self, String> {
        let hook = existing(hook_dir.join("pre-traffic"))?;
        let floor_hook = existing(hook_dir.join("floor-hook"))?;
        let checkout = existing(hook_dir.join("checkout-function"))?;
        let python = greenlight_tests::python::venv_python();
        let reference_dir = workspace_root().join("bench").join("reference");
        existing(reference_dir.join("hook.py"))?;

        let target = Target::start().await;
        let tls = TlsTarget::start().await;
        let scratch = std::env::temp_dir().join(format!("greenlight-bench-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let ca_file = scratch.join("test-ca.pem");
        std::fs::write(&ca_file, &tls.ca_pem).map_err(|e| format!("cannot write {}: {e}", ca_file.display()))?;
        let ca = ca_file.display().to_string();

        let http_url = format!("{}{ROUTE}", target.url);
        let https_url = format!("{}{ROUTE}", tls.url);
        let slow_url = format!("{}/slow/{SLOW_CHECK_MS}", target.url);
        let greenlight_with = |checks: Vec<String>, ca: Option<&str>, extra: Option<serde_json::Value>| {
            let mut checks: Vec<_> = checks
                .iter()
                .enumerate()
                .map(|(i, url)| json!({"name": format!("check {}", i + 1), "http": {"url": url}, "expect": {"status": [200]}}))
                .collect();
            checks.extend(extra);
            let mut plan = json!({"checks": checks});
            if let Some(ca) = ca {
                plan["ca_bundle_file"] = json!(ca);
            }
            ProcessConfig {
                command: vec![hook.display().to_string()],
                environment: BTreeMap::from([("GREENLIGHT_PLAN".to_owned(), plan.to_string())]),
            }
        };
        let greenlight = |checks: Vec<String>, ca: Option<&str>| greenlight_with(checks, ca, None);
        let reference = |url: &str, ca: Option<&str>| {
            let mut environment = BTreeMap::from([
                ("TARGET_URL".to_owned(), url.to_owned()),
                ("PYTHONPATH".to_owned(), reference_dir.display().to_string()),
            ]);
            if let Some(ca) = ca {
                environment.insert("CA_BUNDLE".to_owned(), ca.to_owned());
            }
            ProcessConfig {
                command: vec![
                    python.display().to_string(),
                    "-m".to_owned(),
                    "awslambdaric".to_owned(),
                    "hook.handler".to_owned(),
                ],
                environment,
            }
        };
        let floor = |url: &str| ProcessConfig {
            command: vec![floor_hook.display().to_string()],
            environment: BTreeMap::from([("TARGET_URL".to_owned(), url.to_owned())]),
        };
        let subject = |name: &'static str, side, process| Subject {
            name,
            side,
            function: format!("CodeDeployHook_bench-{name}"),
            process,
        };
        let mut subjects = vec![
            subject("floor-http", Side::Floor, floor(&http_url)),
            subject("reference-http", Side::Reference, reference(&http_url, None)),
            subject("greenlight-http", Side::Greenlight, greenlight(vec![http_url.clone()], None)),
            subject("reference-https", Side::Reference, reference(&https_url, Some(&ca))),
            subject("greenlight-https", Side::Greenlight, greenlight(vec![https_url.clone()], Some(&ca))),
            // The HTTP subject plus a metric check: what building the CloudWatch client and one
            // GetMetricData call (rpcv2Cbor) add. Without such a check no client is built.
            subject(
                "greenlight-http-metric",
                Side::Greenlight,
                greenlight_with(vec![http_url.clone()], None, Some(metric_check())),
            ),
            subject("greenlight-1x200ms", Side::Greenlight, greenlight(vec![slow_url.clone()], None)),
            subject("greenlight-50x200ms", Side::Greenlight, greenlight(vec![slow_url; MANY_CHECKS], None)),
        ];
        if let Some(quota) = quota {
            subjects.push(subject("floor-http-throttled", Side::Floor, quota.wrap(floor(&http_url))));
            subjects.push(subject("reference-http-throttled", Side::Reference, quota.wrap(reference(&http_url, None))));
            subjects.push(subject(
                "greenlight-http-throttled",
                Side::Greenlight,
                quota.wrap(greenlight(vec![http_url], None)),
            ));
        }
        let checkout = ProcessConfig { command: vec![checkout.display().to_string()], environment: BTreeMap::new() };
        Ok(Self { subjects, checkout, _target: target, _tls: tls, scratch })
    }

    /// The emulator's functions: the checkout function with versions 1 and 2 behind `live`, and
    /// one function per subject. Memory is 128 MB, the size the throttled runs imitate.
    pub fn local_config(&self) -> LocalConfig {
        let mut functions = BTreeMap::new();
        functions.insert(
            CHECKOUT.to_owned(),
            FunctionConfig {
                timeout_seconds: 30,
                memory_mb: 128,
                versions: BTreeMap::from([
                    ("1".to_owned(), self.checkout.clone()),
                    ("2".to_owned(), self.checkout.clone()),
                ]),
                aliases: BTreeMap::from([(
                    "live".to_owned(),
                    AliasConfig { version: "1".to_owned(), additional_version_weights: BTreeMap::new() },
                )]),
            },
        );
        for subject in &self.subjects {
            functions.insert(
                subject.function.clone(),
                FunctionConfig {
                    timeout_seconds: 60,
                    memory_mb: 128,
                    versions: BTreeMap::from([("$LATEST".to_owned(), subject.process.clone())]),
                    aliases: BTreeMap::new(),
                },
            );
        }
        LocalConfig { functions, ..LocalConfig::default() }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A metric check on the deployed function's errors: it passes without data, so the subject
/// measures the call, not the traffic.
fn metric_check() -> serde_json::Value {
    json!({"name": "errors", "metric": {
        "candidate": [{"Id": "errors", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": "${function_name}"}]}, "Period": 60, "Stat": "Sum"}}],
        "window": {"last_ms": 600_000},
        "judge": {"threshold": {"max": 0}},
        "no_data": "pass"
    }})
}

fn existing(path: PathBuf) -> Result<PathBuf, String> {
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing: build it first (scripts/bench.sh does)", path.display()))
    }
}
