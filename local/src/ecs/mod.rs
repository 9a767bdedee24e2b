//! ECS services: task sets as real processes (blue and, during a deployment, green) behind a
//! production and a test listener.

pub mod traffic;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::{EcsServiceConfig, ProcessConfig};
use crate::ecs::traffic::Listener;

/// How long a task gets to start listening.
const TASK_START_LIMIT: Duration = Duration::from_secs(15);

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
    pub async fn start(task_definition: &str, process: &ProcessConfig) -> Result<Self, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let args: Vec<String> = process.command.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let (program, rest) = args.split_first().ok_or("empty command")?;
        let mut child = Command::new(program)
            .args(rest)
            .envs(&process.environment)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = tokio::time::Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(Self { task_definition: task_definition.to_owned(), addr, child });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("task {task_definition} exited at start: {status}"));
            }
            if started.elapsed() > TASK_START_LIMIT {
                let _ = child.kill().await;
                return Err(format!("task {task_definition} did not listen on {addr} within {TASK_START_LIMIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
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
    /// Starts the blue task set and both listeners, all traffic on blue.
    pub async fn start(name: &str, config: &EcsServiceConfig, blue: &ProcessConfig) -> Result<Self, String> {
        let blue = TaskSet::start(&config.task_definition, blue).await?;
        let listener = |kind: &str, port: u16| {
            let label = format!("{name} {kind}");
            let addr = blue.addr;
            async move { Listener::bind(&label, port, addr).await.map_err(|e| format!("{label} listener: {e}")) }
        };
        let production = listener("production", config.production_port).await?;
        let test = listener("test", config.test_port).await?;
        Ok(Self { production, test, blue: Some(blue), green: None, desired_count: config.desired_count })
    }

    /// (production, test) listener addresses.
    pub fn listener_addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.production.addr(), self.test.addr())
    }

    fn blue_addr(&self) -> Result<SocketAddr, String> {
        self.blue.as_ref().map(|b| b.addr).ok_or_else(|| "the service has no blue task set".to_owned())
    }

    /// Install: the green task set joins the service. Traffic does not move yet.
    pub async fn install_green(&mut self, green: TaskSet) {
        if let Some(old) = self.green.replace(green) {
            old.stop().await;
        }
    }

    /// AllowTestTraffic: the test listener routes to green.
    pub fn allow_test_traffic(&self) -> Result<(), String> {
        let green = self.green.as_ref().ok_or("no green task set to route test traffic to")?;
        self.test.route(self.blue_addr()?, Some(green.addr), 100.0);
        Ok(())
    }

    /// AllowTraffic step: `green_percent` of production to green.
    pub fn shift_production(&self, green_percent: f64) -> Result<(), String> {
        let green = self.green.as_ref().ok_or("no green task set to shift production traffic to")?;
        self.production.route(self.blue_addr()?, Some(green.addr), green_percent);
        Ok(())
    }

    /// Rollback: both listeners back on blue, green stopped.
    pub async fn roll_back(&mut self) -> Result<(), String> {
        let blue = self.blue_addr()?;
        self.production.route(blue, None, 0.0);
        self.test.route(blue, None, 0.0);
        if let Some(green) = self.green.take() {
            green.stop().await;
        }
        Ok(())
    }

    /// Success: green becomes the blue of the next deployment; the old blue stops.
    pub async fn promote_green(&mut self) -> Result<(), String> {
        let green = self.green.take().ok_or("no green task set to promote")?;
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
