//! ECS blue/green `BeforeInstall` hook: checks run before the green task set exists (a failure fails the deployment without rollback).
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`before-install --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::BEFORE_INSTALL)
}
