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

pub(super) async fn print_timeline(mut events: tokio::sync::broadcast::Receiver<RecordEntry>, started: Instant) {
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
        // Load-generator invocations of the app would drown the timeline.
        if matches!(&entry.what, Happening::Invocation { function, .. } if function == FUNCTION) {
            continue;
        }
        println!("{at:7.2}s  {line}");
    }
}
