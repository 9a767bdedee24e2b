//! ECS blue/green `AfterAllowTraffic` hook: checks production after all traffic has moved to green.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`after-allow-traffic --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::AFTER_ALLOW_TRAFFIC)
}
