//! ECS blue/green `BeforeAllowTraffic` hook: the last gate before production traffic moves to green.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`before-allow-traffic --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::BEFORE_ALLOW_TRAFFIC)
}
