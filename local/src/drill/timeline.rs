//! The record as it happens: markers for the picture, and the live timeline.

use super::*;

pub(super) fn markers(record: &[RecordEntry], started: Instant, emulator: &Emulator) -> Vec<Marker> {
    // Record times count from the emulator's start, which is a moment after the scenario's.
    let offset = (started.elapsed().as_millis() as u64).saturating_sub(emulator.now_ms());
    record
        .iter()
        .filter_map(|entry| {
            let (label, failed) = match &entry.what {
                Happening::EventStatus { event, status: EventStatus::InProgress } => ((*event).to_owned(), false),
                Happening::EventStatus { event, status: EventStatus::Failed } => (format!("{event} Failed"), true),
                Happening::Rollback { .. } => ("rollback".to_owned(), true),
                Happening::DeploymentStatus { status, .. }
                    if !matches!(status, DeploymentStatus::InProgress | DeploymentStatus::Created) =>
                {
                    (status.to_string(), *status != DeploymentStatus::Succeeded)
                }
                _ => return None,
            };
            Some(Marker { at_ms: entry.at_ms + offset, label, failed })
        })
        .chain(alarm_markers(emulator, offset))
        .collect()
}

pub(super) fn alarm_markers(emulator: &Emulator, offset: u64) -> Vec<Marker> {
    emulator
        .state()
        .record
        .iter()
        .filter_map(|entry| match &entry.what {
            Happening::Alarm { name, state: "ALARM" } => {
                Some(Marker { at_ms: entry.at_ms + offset, label: format!("alarm {name}"), failed: true })
            }
            _ => None,
        })
        .collect()
}

/// Which service each deployment is, for a scenario that deploys several; empty otherwise.
pub(super) type ServiceNames = Arc<std::sync::Mutex<BTreeMap<String, &'static str>>>;

/// Prints the record as it happens. `apps` are the functions the load generator calls, whose
/// invocations would drown the timeline; `services` name the deployments, when there are several.
pub(super) async fn print_timeline(
    mut events: tokio::sync::broadcast::Receiver<RecordEntry>,
    started: Instant,
    apps: Vec<&'static str>,
    services: ServiceNames,
) {
    loop {
        let entry = match events.recv().await {
            Ok(entry) => entry,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let at = started.elapsed().as_secs_f64();
        let line = match &entry.what {
            Happening::DeploymentStatus { status, error_code, message } => format!(
                "deployment {} {status}{}{}",
                entry.deployment_id.as_deref().unwrap_or_default(),
                error_code.map(|c| format!(" [{c}]")).unwrap_or_default(),
                message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ),
            Happening::EventStatus { event, status } => format!("{event:<22} {status}"),
            Happening::Invocation { function, version, invocation_type, attempt, outcome, duration_ms, .. } => format!(
                "  invoked {function}:{version} ({invocation_type}, attempt {attempt}) -> {outcome} in {duration_ms} ms"
            ),
            Happening::Report { event, status, result, .. } => format!("  report {status} for {event} -> {result}"),
            Happening::Weights { old, new, route } => format!("  {route} traffic: old {old}% / new {new}%"),
            Happening::Alarm { name, state } => format!("  alarm {name} -> {state}"),
            Happening::Rollback { message } => format!("  rollback: {message}"),
        };
        if matches!(&entry.what, Happening::Invocation { function, .. } if apps.contains(&function.as_str())) {
            continue;
        }
        let service = entry.deployment_id.as_ref().and_then(|id| {
            let services = services.lock().unwrap_or_else(|p| p.into_inner());
            services.get(id).map(|service| format!("{service:<9} "))
        });
        println!("{at:7.2}s  {}{line}", service.unwrap_or_default());
    }
}

/// A hook's verdict, as the hook logged it: CodeDeploy hears only Succeeded or Failed, the
/// reason (with the numbers a metric judge compared) is in the hook's log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HookVerdict {
    /// The hook package, e.g. `after-allow-traffic`.
    pub hook: String,
    /// `Succeeded` or `Failed`.
    pub status: String,
    /// The verdict's reason.
    pub reason: String,
    /// The checks that failed, with why: (check, reason).
    pub failed_checks: Vec<(String, String)>,
}

/// The verdicts on `deployment_id` in one hook's log (`<log_dir>/<function>.log`, JSON
/// lines as Lambda's JSON log format writes them), in order. Lines that are not the hook's JSON
/// are skipped.
pub(super) fn verdicts_in_log(hook: &str, log: &str, deployment_id: &str) -> Vec<HookVerdict> {
    let mut verdicts = Vec::new();
    let mut failed_checks = Vec::new();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else { continue };
        let fields = entry.get("fields").unwrap_or(&entry);
        let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        match fields.get("message").and_then(Value::as_str) {
            // Hooks serving several deployments at once share a log: a line is the
            // deployment's own by its id.
            _ if text("deployment_id") != deployment_id => {}
            Some("check") if text("outcome") == "failed" => failed_checks.push((text("check"), text("reason"))),
            Some("verdict" | "verdict not reported") => verdicts.push(HookVerdict {
                hook: hook.to_owned(),
                status: text("verdict"),
                reason: text("reason"),
                failed_checks: std::mem::take(&mut failed_checks),
            }),
            _ => {}
        }
    }
    verdicts
}

/// Every hook's verdicts on the release's deployment in the scenario's logs, in the order its hooks run.
pub(super) fn hook_verdicts(release: &Release, log_dir: &Path, deployment_id: &str) -> Vec<HookVerdict> {
    release
        .hooks()
        .iter()
        .flat_map(|(hook, _)| {
            let function = hook_function(release.ecs_native, hook);
            let log = std::fs::read_to_string(log_dir.join(format!("{function}.log"))).unwrap_or_default();
            verdicts_in_log(hook, &log, deployment_id)
        })
        .collect()
}

/// One line per failed check of a failed verdict: what the picture and the live timeline show.
pub(super) fn verdict_notes(verdicts: &[HookVerdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter(|v| v.status == "Failed")
        .flat_map(|v| {
            if v.failed_checks.is_empty() {
                vec![format!("{} Failed: {}", v.hook, v.reason)]
            } else {
                v.failed_checks.iter().map(|(check, reason)| format!("{} Failed: {check}: {reason}", v.hook)).collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployments_verdicts_are_read_with_their_failed_checks() {
        let log = [
            "START RequestId: 1 Version: $LATEST",
            r#"{"level":"INFO","fields":{"message":"check","deployment_id":"d-1","check":"smoke","outcome":"passed","reason":""}}"#,
            r#"{"level":"WARN","fields":{"message":"check","deployment_id":"d-1","check":"p99","outcome":"failed","reason":"higher: 0.03 vs 0.01"}}"#,
            r#"{"level":"WARN","fields":{"message":"check","deployment_id":"d-2","check":"health","outcome":"failed","reason":"another deployment's, logged in between"}}"#,
            r#"{"level":"WARN","fields":{"message":"verdict","deployment_id":"d-1","verdict":"Failed","reason":"1 of 2 checks failed: p99"}}"#,
            r#"{"level":"INFO","fields":{"message":"verdict","deployment_id":"d-0","verdict":"Failed","reason":"an earlier run"}}"#,
            r#"{"level":"INFO","fields":{"message":"verdict","deployment_id":"d-1","verdict":"Succeeded","reason":"2 checks passed"}}"#,
        ]
        .join("\n");
        let verdicts = verdicts_in_log("after-allow-traffic", &log, "d-1");
        assert_eq!(verdicts.len(), 2, "the other deployment's verdict is not this one's: {verdicts:?}");
        assert_eq!(verdicts[0].status, "Failed");
        assert_eq!(verdicts[0].failed_checks, [("p99".to_owned(), "higher: 0.03 vs 0.01".to_owned())]);
        assert!(verdicts[1].failed_checks.is_empty());
        assert_eq!(verdict_notes(&verdicts), ["after-allow-traffic Failed: p99: higher: 0.03 vs 0.01"]);
    }
}
