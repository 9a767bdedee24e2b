//! Where the window of a metric or alarms check starts: a moment of the deployment (from the
//! lifecycle events' start times discovery read), this hook's start, or a fixed duration back.

use std::time::SystemTime;

use super::ProbeContext;
use crate::plan::{Moment, Window};

/// When the window of a measurement made now starts.
pub(super) fn window_start(window: Window, context: &ProbeContext, now: SystemTime) -> Result<SystemTime, String> {
    let moment = match window {
        Window::Last(duration) => return Ok(now.checked_sub(duration).unwrap_or(SystemTime::UNIX_EPOCH)),
        Window::Since(moment) => moment,
    };
    if moment == Moment::Hook {
        return Ok(context.started_at);
    }
    let Some(deployment) = context.deployment.as_deref() else {
        return Err("the window starts at a moment of the deployment, and there was no discovery (use last_ms or since hook to rehearse)".to_owned());
    };
    match moment {
        Moment::Deployment => deployment
            .first_event_start()
            .ok_or_else(|| format!("no lifecycle event of {} has started, so the deployment's start is unknown", deployment.id)),
        _ => deployment.event_start("AllowTraffic").ok_or_else(|| {
            format!(
                "window since allow_traffic: AllowTraffic has not started in {}; before the shift, use since deployment or last_ms",
                deployment.id
            )
        }),
    }
}
