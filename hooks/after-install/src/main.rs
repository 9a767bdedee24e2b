//! ECS blue/green `AfterInstall` hook: waits for the green task set to run its desired count, then runs its checks.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`after-install --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::AFTER_INSTALL)
}
