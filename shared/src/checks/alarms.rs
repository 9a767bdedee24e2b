//! One measurement of an alarms check: the named alarms (by name, by prefix, or the deployment
//! group's own) must exist, be `OK` now, and, with a window, must not have gone to `ALARM` during it.
//!
//! An alarm that fired and cleared inside the window is caught from its history
//! (`DescribeAlarmHistory`), which a look at the state alone would miss.

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_cloudwatch::types::{AlarmType, HistoryItemType, StateValue};
use aws_smithy_types::DateTime;
use serde_json::Value;

use super::metric::cloudwatch_error;
use super::{ProbeContext, window};
use crate::plan::{AlarmsProbe, Check, Probe};

/// `DescribeAlarms` takes at most this many names per call.
const NAMES_PER_CALL: usize = 100;
/// Pages of one listing read at most.
const MAX_PAGES: usize = 20;

/// An alarm as the check sees it.
#[derive(Debug)]
struct Alarm {
    name: String,
    state: StateValue,
    reason: Option<String>,
}

pub(super) async fn measure(check: Arc<Check>, context: &ProbeContext) -> Result<(), String> {
    let Probe::Alarms(probe) = &check.probe else {
        return Err("not an alarms check".to_owned());
    };
    let now = SystemTime::now();
    let start = probe.window.map(|window| window::window_start(window, context, now)).transpose()?;
    let mut names = probe.names.clone();
    if probe.deployment_group {
        names.extend(group_alarms(context).await?);
    }
    names.sort();
    names.dedup();

    let mut alarms = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        alarms.extend(describe(context, Some(chunk), None).await?);
    }
    let missing: Vec<&str> =
        names.iter().filter(|name| !alarms.iter().any(|a| &a.name == *name)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(format!("no such alarm: {} (DescribeAlarms found none by that name)", missing.join(", ")));
    }
    if let Some(prefix) = &probe.prefix {
        let found = describe(context, None, Some(prefix)).await?;
        if found.is_empty() {
            return Err(format!("no alarm's name starts with {prefix:?}"));
        }
        for alarm in found {
            if !alarms.iter().any(|a| a.name == alarm.name) {
                alarms.push(alarm);
            }
        }
    }
    judge_states(&alarms, probe)?;
    if let Some(start) = start {
        for alarm in &alarms {
            if let Some(when) = went_to_alarm(context, &alarm.name, start, now).await? {
                return Err(format!(
                    "alarm {} went to ALARM during the window ({when}), though it is {} now",
                    alarm.name,
                    alarm.state.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// The state now: `ALARM` fails; `INSUFFICIENT_DATA` fails unless the check lets it pass.
fn judge_states(alarms: &[Alarm], probe: &AlarmsProbe) -> Result<(), String> {
    let bad: Vec<String> = alarms
        .iter()
        .filter(|alarm| match alarm.state {
            StateValue::Ok => false,
            StateValue::InsufficientData => !probe.insufficient_data_passes,
            _ => true,
        })
        .map(|alarm| match &alarm.reason {
            Some(reason) => format!("{} is {} ({reason})", alarm.name, alarm.state.as_str()),
            None => format!("{} is {}", alarm.name, alarm.state.as_str()),
        })
        .collect();
    match bad.as_slice() {
        [] => Ok(()),
        _ => Err(format!("alarm {}", bad.join("; "))),
    }
}

/// Metric and composite alarms by names or by prefix.
async fn describe(
    context: &ProbeContext,
    names: Option<&[String]>,
    prefix: Option<&str>,
) -> Result<Vec<Alarm>, String> {
    let mut alarms = Vec::new();
    let mut next_token = None;
    for _ in 0..MAX_PAGES {
        let output = context
            .aws
            .cloudwatch()
            .describe_alarms()
            .set_alarm_names(names.map(<[String]>::to_vec))
            .set_alarm_name_prefix(prefix.map(str::to_owned))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|err| cloudwatch_error("DescribeAlarms", err))?;
        for alarm in output.metric_alarms() {
            alarms.push(Alarm {
                name: alarm.alarm_name().unwrap_or_default().to_owned(),
                state: alarm.state_value().cloned().unwrap_or(StateValue::InsufficientData),
                reason: alarm.state_reason().map(str::to_owned),
            });
        }
        for alarm in output.composite_alarms() {
            alarms.push(Alarm {
                name: alarm.alarm_name().unwrap_or_default().to_owned(),
                state: alarm.state_value().cloned().unwrap_or(StateValue::InsufficientData),
                reason: alarm.state_reason().map(str::to_owned),
            });
        }
        next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
        if next_token.is_none() {
            return Ok(alarms);
        }
    }
    Err(format!("DescribeAlarms answered in more than {MAX_PAGES} pages; name fewer alarms"))
}

/// When `name` went to `ALARM` between `start` and `end`, if it did.
async fn went_to_alarm(
    context: &ProbeContext,
    name: &str,
    start: SystemTime,
    end: SystemTime,
) -> Result<Option<String>, String> {
    if start >= end {
        return Ok(None);
    }
    let mut next_token = None;
    for _ in 0..MAX_PAGES {
        let output = context
            .aws
            .cloudwatch()
            .describe_alarm_history()
            .alarm_name(name)
            .history_item_type(HistoryItemType::StateUpdate)
            .start_date(DateTime::from(start))
            .end_date(DateTime::from(end))
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|err| cloudwatch_error("DescribeAlarmHistory", err))?;
        for item in output.alarm_history_items() {
            if to_alarm(item.history_data(), item.history_summary()) {
                let when = item.timestamp().map_or_else(|| "at an unknown time".to_owned(), |t| format!("at {t}"));
                return Ok(Some(when));
            }
        }
        next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
        if next_token.is_none() {
            return Ok(None);
        }
    }
    Err(format!("DescribeAlarmHistory for {name} answered in more than {MAX_PAGES} pages"))
}

/// Whether a state update moved the alarm to `ALARM`: from its data (`newState.stateValue`), or
/// from its summary ("Alarm updated from OK to ALARM") when the data is not JSON.
fn to_alarm(data: Option<&str>, summary: Option<&str>) -> bool {
    let parsed = data.and_then(|d| serde_json::from_str::<Value>(d).ok());
    match parsed.as_ref().and_then(|d| d.pointer("/newState/stateValue")).and_then(Value::as_str) {
        Some(state) => state == "ALARM",
        None => summary.is_some_and(|s| s.trim_end().ends_with("to ALARM")),
    }
}

/// The alarms configured on the deployment's own deployment group.
async fn group_alarms(context: &ProbeContext) -> Result<Vec<String>, String> {
    let Some(deployment) = context.deployment.as_deref() else {
        return Err("the deployment group's alarms need discovery, and none ran".to_owned());
    };
    let codedeploy = &context.aws.codedeploy;
    let info = codedeploy
        .get_deployment()
        .deployment_id(&deployment.id)
        .send()
        .await
        .map_err(|err| codedeploy_error("GetDeployment", &err, crate::aws_http::call_failure(&err)))?;
    let info = info.deployment_info().ok_or("GetDeployment returned no deploymentInfo")?;
    let (Some(application), Some(group)) = (info.application_name(), info.deployment_group_name()) else {
        return Err(format!("GetDeployment gave no application or deployment group for {}", deployment.id));
    };
    let output = codedeploy
        .get_deployment_group()
        .application_name(application)
        .deployment_group_name(group)
        .send()
        .await
        .map_err(|err| codedeploy_error("GetDeploymentGroup", &err, crate::aws_http::call_failure(&err)))?;
    let names: Vec<String> = output
        .deployment_group_info()
        .and_then(|g| g.alarm_configuration())
        .map(|c| c.alarms().iter().filter_map(|a| a.name().map(str::to_owned)).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return Err(format!("deployment group {group} of {application} has no alarms configured"));
    }
    Ok(names)
}

fn codedeploy_error<E, R>(operation: &str, err: &aws_sdk_codedeploy::error::SdkError<E, R>, shown: String) -> String
where
    E: aws_sdk_codedeploy::error::ProvideErrorMetadata,
{
    if crate::is_access_denied(err.as_service_error().and_then(|e| e.code())) {
        return format!(
            "access denied calling codedeploy:{operation}: grant the hook's role codedeploy:{operation} on \"*\""
        );
    }
    format!("codedeploy:{operation} failed: {shown}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_update_to_alarm_is_read_from_its_data_or_its_summary() {
        let data = r#"{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM"}}"#;
        assert!(to_alarm(Some(data), None));
        let back = r#"{"oldState":{"stateValue":"ALARM"},"newState":{"stateValue":"OK"}}"#;
        assert!(!to_alarm(Some(back), Some("Alarm updated from ALARM to OK")));
        assert!(to_alarm(Some("not json"), Some("Alarm updated from OK to ALARM")));
        assert!(!to_alarm(None, None));
    }

    #[test]
    fn insufficient_data_fails_unless_allowed_and_alarm_always_fails() {
        let alarm = |name: &str, state| Alarm { name: name.into(), state, reason: None };
        let mut probe = AlarmsProbe {
            names: vec![],
            prefix: None,
            deployment_group: true,
            window: None,
            insufficient_data_passes: false,
        };
        let quiet = [alarm("a", StateValue::Ok), alarm("b", StateValue::InsufficientData)];
        assert_eq!(judge_states(&quiet, &probe).unwrap_err(), "alarm b is INSUFFICIENT_DATA");
        probe.insufficient_data_passes = true;
        assert_eq!(judge_states(&quiet, &probe), Ok(()));
        let firing = [alarm("a", StateValue::Alarm)];
        assert_eq!(judge_states(&firing, &probe).unwrap_err(), "alarm a is ALARM");
    }
}
