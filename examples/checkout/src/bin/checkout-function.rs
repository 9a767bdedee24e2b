//! The checkout function for the Lambda drill: answers an API Gateway proxy event with a cart.
//!
//! `CHECKOUT_BEHAVIOUR` picks the behaviour, set per published version the way a real function's
//! configuration differs between versions:
//!
//! - `healthy` (the default): returns the cart with `total_cents`; version 1.
//! - `broken`: fails every invocation with a function error, as a release with a missing price
//!   table would; version 2. The drill expects its hooks or alarms to stop traffic shifting to it.
//!
//! Any other value stops the function at init, so a typo cannot pass for a healthy version.

use checkout_examples::{Shape, cart};
use lambda_runtime::tracing::{error, info};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

const BEHAVIOUR_ENV: &str = "CHECKOUT_BEHAVIOUR";

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Healthy,
    Broken,
}

impl Behaviour {
    fn from_env() -> Result<Self, String> {
        match std::env::var(BEHAVIOUR_ENV).as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("healthy") => Ok(Self::Healthy),
            Ok("broken") => Ok(Self::Broken),
            Ok(other) => Err(format!("{BEHAVIOUR_ENV}={other:?} is not one of: healthy, broken")),
            Err(err) => Err(format!("{BEHAVIOUR_ENV} unreadable: {err}")),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let behaviour = Behaviour::from_env().inspect_err(|err| error!("checkout: {err}"))?;
    info!(?behaviour, "checkout function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { handle(behaviour, &event.payload) }))
        .await
}

fn handle(behaviour: Behaviour, event: &Value) -> Result<Value, Diagnostic> {
    match behaviour {
        Behaviour::Healthy => {
            let path = event.get("path").and_then(Value::as_str).unwrap_or_default();
            let id = path.strip_prefix("/v2/cart/").filter(|id| !id.is_empty()).unwrap_or("demo");
            Ok(json!({
                "statusCode": 200,
                "headers": {"content-type": "application/json"},
                "body": cart(id, Shape::Cents).to_string(),
            }))
        }
        Behaviour::Broken => Err(Diagnostic {
            error_type: "checkout.PriceTableMissing".to_owned(),
            error_message: "checkout: price table missing for currency EUR".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_answers_with_the_cart_in_the_contract_shape() {
        let response = handle(Behaviour::Healthy, &json!({"httpMethod": "GET", "path": "/v2/cart/7"})).unwrap();
        assert_eq!(response["statusCode"], 200);
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, cart("7", Shape::Cents));
    }

    #[test]
    fn healthy_accepts_any_json() {
        let response = handle(Behaviour::Healthy, &json!(["not", "an", "api", "gateway", "event"])).unwrap();
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["cart_id"], "demo");
    }

    #[test]
    fn broken_fails_the_invocation() {
        let err = handle(Behaviour::Broken, &json!({})).unwrap_err();
        assert_eq!(err.error_message, "checkout: price table missing for currency EUR");
    }
}
