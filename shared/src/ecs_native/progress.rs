//! Long gates across ECS invocations: a check whose measurement model outlasts one invocation (a
//! 30-minute bake, many attempts at a long interval) stops at a pause, the hook answers
//! `IN_PROGRESS` with `callBackDelay` set to the pause, and its state rides in `hookDetails` to the
//! next invocation of the same hook for the same service deployment.
//!
//! The state names the hook, the service deployment, the stage and the plan's identity, when the
//! gate started and how many invocations it has taken, and each check's counters. It is bounded in
//! size ([`STATE_LIMIT`]) and carries a SHA-256 digest of its content. When it comes back it must
//! be this hook's, this deployment's and this stage's, for this very plan, intact, no older than
//! [`LONGEST_GATE`], with counters the plan's models allow: anything else fails closed. The digest
//! catches a state edited or cut short on the way; it is not a secret, so it does not stop someone
//! who can change the service's configuration, who could change the plan anyway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest;

use crate::event::EcsHookEvent;
use crate::plan::Plan;
use crate::runner::{Progress, Resume, epoch_ms};

/// The `hookDetails` key that carries the state.
pub const STATE_KEY: &str = "greenlight_state";

/// The most the serialized state may take.
pub const STATE_LIMIT: usize = 8 * 1024;

/// The longest a gate may stay in progress: ECS's default hook timeout (1440 minutes).
pub const LONGEST_GATE: Duration = Duration::from_secs(24 * 60 * 60);

/// A pause at least this long ends the invocation (ECS's default `callBackDelay`): the next
/// measurement is made by the next invocation rather than by a function waiting idle.
pub const SUSPEND_AT: Duration = Duration::from_secs(30);

/// The state's format version.
const VERSION: u32 = 1;

/// The gate's state between two invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    version: u32,
    hook: String,
    deployment: String,
    stage: String,
    plan: String,
    started_at_ms: u64,
    invocations: u32,
    checks: Vec<CheckState>,
    #[serde(default)]
    digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckState {
    name: String,
    /// Passed in an earlier invocation; not measured again.
    passed: bool,
    #[serde(flatten)]
    progress: Progress,
}

impl State {
    fn digest(&self) -> String {
        let unsigned = State { digest: String::new(), ..self.clone() };
        let text = serde_json::to_string(&unsigned).unwrap_or_default();
        sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What earlier invocations left: when the gate started, how many invocations it took, and where
/// each check of the plan starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    /// When the first invocation started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Invocations before this one.
    pub invocations: u32,
    /// Where each check starts, in plan order.
    pub resume: Vec<Resume>,
}

impl Carried {
    /// A gate's first invocation.
    pub fn fresh(plan: &Plan, now: SystemTime) -> Self {
        Self { started_at_ms: epoch_ms(now), invocations: 0, resume: vec![Resume::Fresh; plan.checks.len()] }
    }
}

/// What the event's `hookDetails` carry for `hook` judging `event` with `plan`: a fresh start when
/// nothing, else the validated state, or why it cannot be used.
pub fn read(hook: &str, event: &EcsHookEvent, plan: &Plan, now: SystemTime) -> Result<Carried, String> {
    let Some(value) = event.hook_details.get(STATE_KEY) else {
        return Ok(Carried::fresh(plan, now));
    };
    let refuse = |why: String| format!("hookDetails.{STATE_KEY} cannot be resumed: {why}");
    let size = value.to_string().len();
    if size > STATE_LIMIT {
        return Err(refuse(format!("it is {size} bytes, over the {STATE_LIMIT}-byte bound")));
    }
    let state: State =
        serde_json::from_value(value.clone()).map_err(|err| refuse(format!("it is not greenlight's state ({err})")))?;
    if state.version != VERSION {
        return Err(refuse(format!("format version {} is not {VERSION}", state.version)));
    }
    if state.digest != state.digest() {
        return Err(refuse("its digest does not match its content: it was changed on the way".to_owned()));
    }
    let foreign = [
        ("hook", &state.hook, hook),
        ("service deployment", &state.deployment, event.resource_arn.as_str()),
        ("stage", &state.stage, event.stage.as_str()),
        ("plan", &state.plan, plan.identity.as_str()),
    ];
    for (what, carried, own) in foreign {
        if carried != own {
            return Err(refuse(format!("it belongs to {what} {carried}, not {own}")));
        }
    }
    let started = UNIX_EPOCH + Duration::from_millis(state.started_at_ms);
    match now.duration_since(started) {
        Err(_) => return Err(refuse("it says the gate started in the future".to_owned())),
        Ok(age) if age > LONGEST_GATE => {
            return Err(format!(
                "the gate has been in progress for {} minutes, longer than the {} ECS waits for a hook by default",
                age.as_secs() / 60,
                LONGEST_GATE.as_secs() / 60
            ));
        }
        Ok(_) => {}
    }
    if state.checks.len() != plan.checks.len() {
        return Err(refuse(format!("it has {} checks, the plan {}", state.checks.len(), plan.checks.len())));
    }
    let mut resume = Vec::with_capacity(plan.checks.len());
    for (carried, check) in state.checks.into_iter().zip(&plan.checks) {
        let model = check.measurement;
        let Progress { attempts, failures, streak, .. } = carried.progress;
        let possible = carried.name == check.name
            && attempts <= model.attempts
            && failures <= attempts
            && streak <= attempts
            && model.failure_limit.is_none_or(|limit| failures <= limit)
            && (!carried.passed || streak >= model.consecutive_successes);
        if !possible {
            return Err(refuse(format!("its counters for check {:?} are not ones the plan allows", carried.name)));
        }
        resume.push(match carried.passed {
            true => Resume::Passed(attempts),
            false => Resume::Going(carried.progress),
        });
    }
    Ok(Carried { started_at_ms: state.started_at_ms, invocations: state.invocations, resume })
}

/// The `hookDetails` to answer with: the state for the next invocation, given where each check
/// now stands (in plan order; `None` for a check not carried on, such as a dry-run one).
pub fn write(
    hook: &str,
    event: &EcsHookEvent,
    plan: &Plan,
    carried: &Carried,
    now_standing: &[Resume],
) -> Result<Map<String, Value>, String> {
    let checks = plan
        .checks
        .iter()
        .zip(now_standing)
        .map(|(check, standing)| {
            let (passed, progress) = match standing {
                // A pass is a full streak: read back, the counters must say so.
                Resume::Passed(attempts) => {
                    let streak = check.measurement.consecutive_successes;
                    (true, Progress { attempts: *attempts, streak, ..fresh_progress() })
                }
                Resume::Going(progress) => (false, progress.clone()),
                Resume::Fresh => (false, fresh_progress()),
            };
            CheckState { name: check.name.clone(), passed, progress }
        })
        .collect();
    let mut state = State {
        version: VERSION,
        hook: hook.to_owned(),
        deployment: event.resource_arn.clone(),
        stage: event.stage.clone(),
        plan: plan.identity.clone(),
        started_at_ms: carried.started_at_ms,
        invocations: carried.invocations + 1,
        checks,
        digest: String::new(),
    };
    state.digest = state.digest();
    let value = serde_json::to_value(&state).map_err(|err| format!("cannot write the gate's state: {err}"))?;
    let size = value.to_string().len();
    if size > STATE_LIMIT {
        return Err(format!(
            "the gate's state for the next invocation would be {size} bytes, over the {STATE_LIMIT}-byte bound; a plan that goes on across invocations needs fewer checks"
        ));
    }
    let mut details = Map::new();
    details.insert(STATE_KEY.to_owned(), value);
    Ok(details)
}

fn fresh_progress() -> Progress {
    Progress { attempts: 0, failures: 0, streak: 0, last: String::new(), next_at_ms: 0 }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn plan() -> Plan {
        crate::plan::parse(
            r#"{"checks":[{"name":"bake","http":{"url":"http://127.0.0.1:9/"},"attempts":30,"interval_ms":60000,"consecutive_successes":30},
                          {"name":"health","http":{"url":"http://127.0.0.1:9/health"}}]}"#,
            Path::new("."),
        )
        .unwrap()
    }

    fn event(details: Map<String, Value>) -> EcsHookEvent {
        EcsHookEvent {
            execution_id: "e".into(),
            stage: "PRE_PRODUCTION_TRAFFIC_SHIFT".into(),
            resource_arn: "arn:aws:ecs:us-east-1:1:service-deployment/shop/checkout/d1".into(),
            service_arn: None,
            target_revision_arn: None,
            test_weights: Default::default(),
            production_weights: Default::default(),
            hook_details: details,
        }
    }

    fn going(attempts: u32) -> Resume {
        Resume::Going(Progress { attempts, failures: 0, streak: attempts, last: String::new(), next_at_ms: 5 })
    }

    fn written(now: SystemTime) -> Map<String, Value> {
        let plan = plan();
        let carried = Carried::fresh(&plan, now);
        write("before-allow-traffic", &event(Map::new()), &plan, &carried, &[going(3), Resume::Passed(1)]).unwrap()
    }

    #[test]
    fn a_state_written_is_read_back_as_it_was() {
        let now = SystemTime::now();
        let back = read("before-allow-traffic", &event(written(now)), &plan(), now).unwrap();
        assert_eq!(back.invocations, 1);
        assert_eq!(back.resume, [going(3), Resume::Passed(1)]);
    }

    #[test]
    fn a_tampered_foreign_or_stale_state_fails_closed() {
        let now = SystemTime::now();
        let details = written(now);
        let mut tampered = details.clone();
        tampered[STATE_KEY]["checks"][0]["streak"] = Value::from(29);
        let err = read("before-allow-traffic", &event(tampered), &plan(), now).unwrap_err();
        assert!(err.contains("digest does not match"), "{err}");
        let err = read("after-allow-traffic", &event(details.clone()), &plan(), now).unwrap_err();
        assert!(err.contains("belongs to hook before-allow-traffic, not after-allow-traffic"), "{err}");
        let mut other_stage = event(details.clone());
        other_stage.stage = "POST_TEST_TRAFFIC_SHIFT".into();
        assert!(read("before-allow-traffic", &other_stage, &plan(), now).unwrap_err().contains("stage"));
        let other_plan =
            crate::plan::parse(r#"{"checks":[{"name":"bake","http":{"url":"http://x/"}}]}"#, Path::new("."));
        let err = read("before-allow-traffic", &event(details.clone()), &other_plan.unwrap(), now).unwrap_err();
        assert!(err.contains("belongs to plan"), "{err}");
        let err = read("before-allow-traffic", &event(details), &plan(), now + LONGEST_GATE * 2).unwrap_err();
        assert!(err.contains("longer than the 1440 ECS waits"), "{err}");
        let mut junk = Map::new();
        junk.insert(STATE_KEY.into(), Value::from("resume please"));
        let err = read("before-allow-traffic", &event(junk), &plan(), now).unwrap_err();
        assert!(err.contains("not greenlight's state"), "{err}");
    }

    #[test]
    fn counters_the_plan_cannot_reach_are_refused_even_with_a_good_digest() {
        let plan = plan();
        let now = SystemTime::now();
        let carried = Carried::fresh(&plan, now);
        let details = write("h", &event(Map::new()), &plan, &carried, &[going(31), Resume::Fresh]).unwrap();
        let err = read("h", &event(details), &plan, now).unwrap_err();
        assert!(err.contains("counters for check \"bake\""), "{err}");
    }

    #[test]
    fn an_oversized_state_is_refused() {
        let mut big = Map::new();
        big.insert(STATE_KEY.into(), Value::from("x".repeat(STATE_LIMIT)));
        let err = read("h", &event(big), &plan(), SystemTime::now()).unwrap_err();
        assert!(err.contains("over the 8192-byte bound"), "{err}");
    }
}
