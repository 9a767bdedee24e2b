//! The metrics AWS publishes on its own, written from what happens here: `AWS/ApplicationELB` for
//! every request through an ECS listener, `AWS/Lambda` for every invocation.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::store::{MetricKey, Metrics};
use crate::ecs::traffic::TaskSetLabel;

/// `AWS/ApplicationELB`.
pub const ALB_NAMESPACE: &str = "AWS/ApplicationELB";
/// `AWS/Lambda`.
pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";

/// Records the load balancer metrics of one ECS service's listeners, or of a configured load
/// balancer's.
#[derive(Debug, Clone)]
pub struct AlbRecorder {
    metrics: Metrics,
    load_balancer: String,
    /// The `TargetGroup` dimensions of the task sets the listeners call blue and green. A
    /// configured load balancer's blue is whichever target group served before the deployment,
    /// so they change places when a deployment succeeds.
    target_groups: Arc<RwLock<[String; 2]>>,
}

/// How a request through a listener ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerOutcome {
    /// The target answered with this status, after this long.
    Target {
        /// HTTP status.
        status: u16,
        /// Time to the target's response.
        elapsed: Duration,
    },
    /// The listener answered itself (502/504): the target was unreachable or hung.
    Listener,
}

impl AlbRecorder {
    /// The recorder of the ECS service `cluster:service`, dimensions named by [`crate::elbv2`].
    pub fn new(metrics: Metrics, service: &str) -> Self {
        let [blue, green] =
            [TaskSetLabel::Blue, TaskSetLabel::Green].map(|label| crate::elbv2::target_group(service, label));
        Self::with_target_groups(
            metrics,
            crate::elbv2::load_balancer(service).dimension,
            [blue.dimension, green.dimension],
        )
    }

    /// The recorder of the load balancer whose `LoadBalancer` dimension is `load_balancer`,
    /// with the `TargetGroup` dimensions of its blue and green task sets.
    pub fn with_target_groups(metrics: Metrics, load_balancer: String, target_groups: [String; 2]) -> Self {
        Self { metrics, load_balancer, target_groups: Arc::new(RwLock::new(target_groups)) }
    }

    /// Which target groups blue and green are from now on, for every clone of this recorder.
    pub fn set_target_groups(&self, target_groups: [String; 2]) {
        *self.target_groups.write().unwrap_or_else(PoisonError::into_inner) = target_groups;
    }

    /// Records one request the task set `label` was chosen for.
    pub fn request(&self, label: TaskSetLabel, outcome: ListenerOutcome) {
        let target_group = {
            let groups = self.target_groups.read().unwrap_or_else(PoisonError::into_inner);
            groups[usize::from(label == TaskSetLabel::Green)].clone()
        };
        let dimensions = [("TargetGroup", target_group.as_str()), ("LoadBalancer", self.load_balancer.as_str())];
        let key = |name: &str| MetricKey::new(ALB_NAMESPACE, name, &dimensions);
        match outcome {
            ListenerOutcome::Target { status, elapsed } => {
                self.metrics.record(key("RequestCount"), 1.0);
                self.metrics.record(key("TargetResponseTime"), elapsed.as_secs_f64());
                match status {
                    500..=599 => self.metrics.record(key("HTTPCode_Target_5XX_Count"), 1.0),
                    400..=499 => self.metrics.record(key("HTTPCode_Target_4XX_Count"), 1.0),
                    _ => {}
                }
            }
            ListenerOutcome::Listener => {
                let key =
                    MetricKey::new(ALB_NAMESPACE, "HTTPCode_ELB_5XX_Count", &[("LoadBalancer", &self.load_balancer)]);
                self.metrics.record(key, 1.0);
            }
        }
    }
}

/// Records one Lambda invocation of `function` as invoked with `qualifier` (an alias, a version,
/// or none), run by `executed_version`: `Invocations`, `Errors` (1 on a function error, else 0)
/// and `Duration` (ms), by `{FunctionName}`, `{FunctionName, Resource}` and, through an alias,
/// `{FunctionName, Resource, ExecutedVersion}`.
pub fn lambda_invocation(
    metrics: &Metrics,
    function: &str,
    qualifier: Option<&str>,
    executed_version: &str,
    through_alias: bool,
    failed: bool,
    duration: Duration,
) {
    let resource = qualifier.map_or_else(|| function.to_owned(), |q| format!("{function}:{q}"));
    let mut sets: Vec<Vec<(&str, &str)>> =
        vec![vec![("FunctionName", function)], vec![("FunctionName", function), ("Resource", &resource)]];
    if through_alias {
        sets.push(vec![("FunctionName", function), ("Resource", &resource), ("ExecutedVersion", executed_version)]);
    }
    for dimensions in &sets {
        let key = |name: &str| MetricKey::new(LAMBDA_NAMESPACE, name, dimensions);
        metrics.record(key("Invocations"), 1.0);
        metrics.record(key("Errors"), if failed { 1.0 } else { 0.0 });
        metrics.record(key("Duration"), duration.as_secs_f64() * 1000.0);
    }
}
