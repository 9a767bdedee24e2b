//! ECS services: task sets as real processes (blue and, during a deployment, green) behind a
//! production and a test listener.
//!
//! Two kinds of service live here. Those of the config's `ecs_services` are deployed by
//! CodeDeploy ([`crate::codedeploy::lifecycle`]), which moves their task sets. Those created with
//! [`api`]'s CreateService behind one of the config's `load_balancers` are deployed by ECS itself
//! ([`service`] holds what they are, [`deployment`] runs their service deployments), with
//! BLUE_GREEN, LINEAR or CANARY strategies.

pub mod api;
pub mod deployment;
pub mod service;
pub mod traffic;

pub use api::{OPERATIONS, TARGET_SERVICE};

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::{EcsServiceConfig, ProcessConfig};
use crate::ecs::traffic::{Listener, TaskSetLabel};
use crate::protocol::ApiError;

/// How long a task gets to start listening.
const TASK_START_LIMIT: Duration = Duration::from_secs(15);

/// Why a task set or a service could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// No loopback port was free for a task.
    #[error("no free port: {0}")]
    NoFreePort(std::io::Error),
    /// The task definition's command is empty.
    #[error("task {0}: its command is empty")]
    EmptyCommand(String),
    /// The task's program could not be started.
    #[error("cannot start {program}: {source}")]
    CannotStart {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The task exited before it listened.
    #[error("task {task_definition} exited at start: {status}")]
    ExitedAtStart {
        /// The task definition.
        task_definition: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// The task did not listen in time.
    #[error("task {task_definition} did not listen on {addr} within {TASK_START_LIMIT:?}")]
    DidNotListen {
        /// The task definition.
        task_definition: String,
        /// Where it should have listened.
        addr: SocketAddr,
    },
    /// A listener could not bind.
    #[error("{label} listener: {source}")]
    Listener {
        /// Which listener.
        label: String,
        /// Why.
        source: std::io::Error,
    },
    /// The step needs a task set the service does not have.
    #[error("the service has no {0} task set")]
    NoTaskSet(TaskSetLabel),
}

impl crate::emulator::Emulator {
    /// Serves one ECS operation, as over the wire: the call is noted and its injected faults
    /// answered first.
    pub async fn ecs(&self, operation: &str, input: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        api::serve(self, operation, input).await
    }
}

/// One running task set: a process serving HTTP on a loopback port.
#[derive(Debug)]
pub struct TaskSet {
    /// The task definition it runs.
    pub task_definition: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

impl TaskSet {
    /// Starts `process` with `{port}` in its arguments replaced by a free port, and waits until
    /// it accepts connections.
    pub async fn start(task_definition: &str, process: &ProcessConfig) -> Result<Self, EcsError> {
        let port = free_port().map_err(EcsError::NoFreePort)?;
        let args: Vec<String> = process.command.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let (program, rest) = args.split_first().ok_or_else(|| EcsError::EmptyCommand(task_definition.to_owned()))?;
        let mut child = Command::new(program)
            .args(rest)
            .envs(&process.environment)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EcsError::CannotStart { program: program.clone(), source })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = tokio::time::Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Self { task_definition: task_definition.to_owned(), addr, child });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EcsError::ExitedAtStart { task_definition: task_definition.to_owned(), status });
            }
            if started.elapsed() > TASK_START_LIMIT {
                let _ = child.kill().await;
                return Err(EcsError::DidNotListen { task_definition: task_definition.to_owned(), addr });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops its process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// An ECS service: its listeners and task sets.
#[derive(Debug)]
pub struct EcsService {
    /// Production listener.
    pub production: Listener,
    /// Test listener.
    pub test: Listener,
    /// The task set serving production.
    pub blue: Option<TaskSet>,
    /// The replacement task set, during a deployment.
    pub green: Option<TaskSet>,
    /// Tasks per task set.
    pub desired_count: i64,
}

impl EcsService {
    /// Starts the blue task set and both listeners, all traffic on blue. Every request through
    /// either listener is recorded in `metrics` as the service's load balancer metrics.
    pub async fn start(
        name: &str,
        config: &EcsServiceConfig,
        blue: &ProcessConfig,
        metrics: &crate::cloudwatch::store::Metrics,
    ) -> Result<Self, EcsError> {
        let blue = TaskSet::start(&config.task_definition, blue).await?;
        let recorder = crate::cloudwatch::recording::AlbRecorder::new(metrics.clone(), name);
        let listener = |kind: &str, port: u16| {
            let label = format!("{name} {kind}");
            let addr = blue.addr;
            let recorder = recorder.clone();
            async move {
                Listener::bind_recording(&label, port, addr, Some(recorder))
                    .await
                    .map_err(|source| EcsError::Listener { label, source })
            }
        };
        let production = listener("production", config.production_port).await?;
        let test = listener("test", config.test_port).await?;
        Ok(Self { production, test, blue: Some(blue), green: None, desired_count: config.desired_count })
    }

    /// (production, test) listener addresses.
    pub fn listener_addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.production.addr(), self.test.addr())
    }

    fn blue_addr(&self) -> Result<SocketAddr, EcsError> {
        self.blue.as_ref().map(|b| b.addr).ok_or(EcsError::NoTaskSet(TaskSetLabel::Blue))
    }

    fn green_addr(&self) -> Result<SocketAddr, EcsError> {
        self.green.as_ref().map(|g| g.addr).ok_or(EcsError::NoTaskSet(TaskSetLabel::Green))
    }

    /// Install: the green task set joins the service. Traffic does not move yet.
    pub async fn install_green(&mut self, green: TaskSet) {
        if let Some(old) = self.green.replace(green) {
            old.stop().await;
        }
    }

    /// AllowTestTraffic: the test listener routes to green.
    pub fn allow_test_traffic(&self) -> Result<(), EcsError> {
        self.test.route(self.blue_addr()?, Some(self.green_addr()?), 100.0);
        Ok(())
    }

    /// AllowTraffic step: `green_percent` of production to green.
    pub fn shift_production(&self, green_percent: f64) -> Result<(), EcsError> {
        self.production.route(self.blue_addr()?, Some(self.green_addr()?), green_percent);
        Ok(())
    }

    /// Rollback: both listeners back on blue, green stopped.
    pub async fn roll_back(&mut self) -> Result<(), EcsError> {
        let blue = self.blue_addr()?;
        self.production.route(blue, None, 0.0);
        self.test.route(blue, None, 0.0);
        if let Some(green) = self.green.take() {
            green.stop().await;
        }
        Ok(())
    }

    /// Success: green becomes the blue of the next deployment; the old blue stops.
    pub async fn promote_green(&mut self) -> Result<(), EcsError> {
        let green = self.green.take().ok_or(EcsError::NoTaskSet(TaskSetLabel::Green))?;
        self.production.route(green.addr, None, 0.0);
        self.test.route(green.addr, None, 0.0);
        if let Some(old) = self.blue.replace(green) {
            old.stop().await;
        }
        Ok(())
    }

    /// Stops every task and both listeners.
    pub async fn shutdown(&mut self) {
        self.production.shutdown();
        self.test.shutdown();
        for task in [self.blue.take(), self.green.take()].into_iter().flatten() {
            task.stop().await;
        }
    }
}
