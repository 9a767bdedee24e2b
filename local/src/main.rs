//! `codedeploy-local serve` runs the emulator for your own hooks and scripts; `codedeploy-local
//! drill` rehearses releases end to end and draws each one.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codedeploy_local::emulator::TimeScale;
use codedeploy_local::server::Server;

#[derive(Debug, Parser)]
#[command(name = "codedeploy-local", version, about = "A local CodeDeploy and Lambda for rehearsing deployments")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve CodeDeploy, Lambda and the control API on one loopback port until interrupted.
    Serve {
        /// The functions, task definitions and ECS services to host (JSON).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 4566)]
        port: u16,
        /// How many times faster than AWS waits run (60 turns minutes into seconds).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Where hosted functions' logs go, one file per function.
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
    /// Rehearse releases end to end and write a picture of each.
    Drill(codedeploy_local::drill::DrillArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CODEDEPLOY_LOCAL_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Command::Serve { config, port, time_scale, log_dir } => serve(config, port, time_scale, log_dir).await,
        Command::Drill(args) => codedeploy_local::drill::run(args).await,
    }
}

async fn serve(config: Option<PathBuf>, port: u16, time_scale: f64, log_dir: Option<PathBuf>) -> ExitCode {
    if time_scale <= 0.0 {
        eprintln!("codedeploy-local: --time-scale must be above 0");
        return ExitCode::from(2);
    }
    let (config, balancers) = match config.as_deref().map(codedeploy_local::config::load_serve_config).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(err) => {
            eprintln!("codedeploy-local: {err}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::start(config, TimeScale(time_scale), port, log_dir).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("codedeploy-local: {err}");
            return ExitCode::from(2);
        }
    };
    for (name, balancer) in &balancers {
        if let Err(err) = server.emulator.add_load_balancer(name, balancer).await {
            eprintln!("codedeploy-local: {err}");
            server.shutdown().await;
            return ExitCode::from(2);
        }
    }
    // Whoever started us may stop reading; the server keeps serving either way.
    let endpoint = server.endpoint();
    let banner = format!(
        "codedeploy-local serving CodeDeploy and Lambda on {endpoint}\n  export AWS_ENDPOINT_URL={endpoint} AWS_REGION=us-east-1\n"
    );
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}
