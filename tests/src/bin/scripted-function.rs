//! A Lambda function that answers as its environment scripts it, for tests that need a function
//! version to answer something particular, behind the local runtime host's Runtime API:
//!
//! - `SCRIPTED_ANSWER` (JSON): the response to every event;
//! - `SCRIPTED_ERROR` (JSON with `errorType` and `errorMessage`): the function error every
//!   invocation posts instead;
//! - neither: it answers `{}`, as a hook function that never reports does, for tests that act as
//!   the hook themselves.
//!
//! Every event is logged first as one `event <JSON>` line, so a test can read what was sent.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[derive(Debug, Clone)]
enum Script {
    Answer(Value),
    Error(Diagnostic),
}

fn script() -> Result<Script, String> {
    let read = |name: &str| -> Result<Option<Value>, String> {
        match std::env::var(name) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| format!("{name} is not JSON: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(err) => Err(format!("{name}: {err}")),
        }
    };
    if let Some(error) = read("SCRIPTED_ERROR")? {
        let field = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        return Ok(Script::Error(Diagnostic { error_type: field("errorType"), error_message: field("errorMessage") }));
    }
    Ok(Script::Answer(read("SCRIPTED_ANSWER")?.unwrap_or_else(|| Value::Object(serde_json::Map::new()))))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let script = script()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let script = script.clone();
        async move {
            println!("event {}", event.payload);
            match script {
                Script::Answer(answer) => Ok(answer),
                Script::Error(error) => Err(error),
            }
        }
    }))
    .await
}
