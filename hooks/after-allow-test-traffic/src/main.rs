//! ECS blue/green `AfterAllowTestTraffic` hook: the smoke test against green on the test listener, before any production traffic moves.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`after-allow-test-traffic --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::AFTER_ALLOW_TEST_TRAFFIC)
}
