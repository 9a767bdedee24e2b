//! Lambda `AfterAllowTraffic` hook (SAM `PostTraffic`): checks the alias after all traffic has shifted.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`post-traffic --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::POST_TRAFFIC)
}
