//! A configured load balancer at work: its production and test listeners (loopback proxies) and
//! the tasks registered in its two target groups. ECS-native deployments move its weights. Every
//! request through a listener is recorded as the load balancer's CloudWatch metrics, by the
//! target group that answered, as ALB publishes them.
//!
//! A listener proxies to at most two task sets; here the one in the target group that serves
//! production before a deployment is the proxy's "blue" (answers say
//! `x-codedeploy-local-task-set: Blue`), the other one "green".

use std::net::SocketAddr;

use super::ListenerRole;
use crate::cloudwatch::recording::AlbRecorder;
use crate::cloudwatch::store::Metrics;
use crate::config::LoadBalancerConfig;
use crate::ecs::traffic::Listener;
use crate::ecs::{EcsError, TaskSet};

/// Where a listener with no registered target sends requests: the discard port, which refuses
/// connections on loopback, so the listener answers 502 as a load balancer with no healthy
/// target answers with an error.
const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

/// One configured load balancer and what is registered behind it.
#[derive(Debug)]
pub struct Balancer {
    /// Production listener.
    pub production: Listener,
    /// Test listener.
    pub test: Listener,
    /// Tasks registered in each target group: index 0 is `<name>-1`, 1 is `<name>-2`.
    pub targets: [Option<TaskSet>; 2],
    /// Percent of each listener's requests to each target group.
    weights: [[f64; 2]; 2],
    /// The target group shown as blue by the listeners (the one serving before a deployment).
    primary: usize,
    /// Records every request through either listener as this load balancer's metrics.
    recorder: AlbRecorder,
    /// The `TargetGroup` dimensions of `<name>-1` and `<name>-2`.
    group_dimensions: [String; 2],
}

impl Balancer {
    /// Binds both listeners, recording every request through them in `metrics` as this load
    /// balancer's `AWS/ApplicationELB` metrics by target group; nothing is registered yet.
    pub async fn start(name: &str, config: &LoadBalancerConfig, metrics: &Metrics) -> Result<Self, EcsError> {
        let group_dimensions = [1, 2].map(|number| super::numbered_target_group(name, number).dimension);
        let recorder = AlbRecorder::with_target_groups(
            metrics.clone(),
            super::load_balancer(name).dimension,
            group_dimensions.clone(),
        );
        let listener = |role: ListenerRole, port: u16| {
            let label = format!("{name} {}", role.as_str());
            let recorder = recorder.clone();
            async move {
                Listener::bind_recording(&label, port, NOWHERE, Some(recorder))
                    .await
                    .map_err(|source| EcsError::Listener { label, source })
            }
        };
        let production = listener(ListenerRole::Production, config.production_port).await?;
        let test = listener(ListenerRole::Test, config.test_port).await?;
        let weights = [[100.0, 0.0], [100.0, 0.0]];
        Ok(Self { production, test, targets: [None, None], weights, primary: 0, recorder, group_dimensions })
    }

    /// The listener of `role`.
    pub fn listener(&self, role: ListenerRole) -> &Listener {
        match role {
            ListenerRole::Production => &self.production,
            ListenerRole::Test => &self.test,
        }
    }

    /// Percent of `role`'s requests to target groups 1 and 2.
    pub fn weights(&self, role: ListenerRole) -> [f64; 2] {
        self.weights[role as usize]
    }

    /// The port each target group's tasks listen on, where tasks are registered.
    pub fn target_ports(&self) -> [Option<u16>; 2] {
        [0, 1].map(|i| self.targets[i].as_ref().map(|task| task.addr.port()))
    }

    /// Registers `tasks` in target group `group` (0 or 1), stopping what was there.
    pub async fn register(&mut self, group: usize, tasks: TaskSet) {
        if let Some(old) = self.targets[group].replace(tasks) {
            old.stop().await;
        }
        self.apply();
    }

    /// Deregisters and stops the tasks of target group `group`; its weights go to the other.
    pub async fn deregister(&mut self, group: usize) {
        if let Some(old) = self.targets[group].take() {
            old.stop().await;
        }
        for weights in &mut self.weights {
            weights[1 - group] += weights[group];
            weights[group] = 0.0;
        }
        self.apply();
    }

    /// Which target group the listeners show as blue.
    pub fn set_primary(&mut self, group: usize) {
        self.primary = group;
        self.apply();
    }

    /// Sends `percent` of `role`'s requests to target group `group` and the rest to the other.
    pub fn shift(&mut self, role: ListenerRole, group: usize, percent: f64) {
        let percent = percent.clamp(0.0, 100.0);
        let weights = &mut self.weights[role as usize];
        weights[group] = percent;
        weights[1 - group] = 100.0 - percent;
        self.apply();
    }

    /// Routes both listeners as the weights say.
    fn apply(&self) {
        let blue = self.primary;
        let green = 1 - blue;
        self.recorder.set_target_groups([blue, green].map(|group| self.group_dimensions[group].clone()));
        let addr = |group: usize| self.targets[group].as_ref().map(|task| task.addr);
        for role in [ListenerRole::Production, ListenerRole::Test] {
            let weights = self.weights[role as usize];
            match (addr(blue), addr(green)) {
                (Some(b), Some(g)) => self.listener(role).route(b, Some(g), weights[green]),
                (Some(only), None) | (None, Some(only)) => self.listener(role).route(only, None, 0.0),
                (None, None) => self.listener(role).route(NOWHERE, None, 0.0),
            }
        }
    }

    /// Stops both listeners and every task.
    pub async fn shutdown(&mut self) {
        self.production.shutdown();
        self.test.shutdown();
        for tasks in self.targets.iter_mut().filter_map(Option::take) {
            tasks.stop().await;
        }
    }
}
