//! Lambda `BeforeAllowTraffic` hook (SAM `PreTraffic`): checks the new version before the alias shifts any traffic to it.
//!
//! Runs as a Lambda function when the Lambda Runtime API is present, else as a CLI
//! (`pre-traffic --help`). Everything else lives in the greenlight library.

fn main() -> std::process::ExitCode {
    greenlight::main(greenlight::Hook::PRE_TRAFFIC)
}
