//! Smithy RPC v2 CBOR (rpcv2Cbor): `POST /service/<ServiceShapeName>/operation/<Operation>`
//! with a CBOR body, answered in CBOR with the `smithy-protocol: rpc-v2-cbor` header. Written once
//! for any service: the body is converted to the [`Value`] a service handler takes, and its
//! [`Value`] back to CBOR, so the same handler serves awsJson too.
//!
//! JSON has no timestamps: handlers give them as epoch seconds, and each service names the output
//! members that are timestamps ([`TimestampPath`]), which are written as CBOR tag 1 (epoch
//! seconds). Timestamps in requests (tag 1) arrive at the handler as epoch seconds. Blobs arrive
//! base64-encoded, as awsJson carries them.
//!
//! Errors carry `__type` (the exception's shape name) and `message` in the body, the HTTP status,
//! and, for awsQueryCompatible services, `x-amzn-query-error: <awsQueryError code>;Sender`
//! (`Receiver` for 5xx), which SDKs use to pick the modelled error.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use super::ApiError;
use crate::emulator::Emulator;

/// The content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/cbor";

/// The path of output members that are timestamps: member names from the output's top level,
/// with [`TimestampPath::EACH`] standing for every element of a list. For
/// `GetMetricData`'s `MetricDataResults[].Timestamps[]`:
/// `&["MetricDataResults", EACH, "Timestamps", EACH]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampPath(pub &'static [&'static str]);

impl TimestampPath {
    /// Every element of the list at this step.
    pub const EACH: &'static str = "[]";
}

/// Why a CBOR request body could not be read as a handler's input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not CBOR.
    #[error("request body is not CBOR: {0}")]
    Cbor(String),
    /// A value JSON cannot carry (a non-text map key, a non-finite number, an unknown tag).
    #[error("request body holds {0}, which no CloudWatch input member is")]
    Unsupported(&'static str),
}

/// Decodes a request body; an empty body is an empty input.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let cbor: Cbor = ciborium::from_reader(body).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    to_json(cbor)
}

fn to_json(cbor: Cbor) -> Result<Value, DecodeError> {
    Ok(match cbor {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(u) = u64::try_from(i) {
                Value::Number(u.into())
            } else if let Ok(s) = i64::try_from(i) {
                Value::Number(s.into())
            } else {
                return Err(DecodeError::Unsupported("an integer beyond 64 bits"));
            }
        }
        Cbor::Float(f) => Value::Number(Number::from_f64(f).ok_or(DecodeError::Unsupported("a non-finite number"))?),
        // Epoch seconds, as integer or float.
        Cbor::Tag(1, inner) => to_json(*inner)?,
        Cbor::Tag(..) => return Err(DecodeError::Unsupported("a CBOR tag other than 1 (timestamp)")),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let Cbor::Text(key) = key else { return Err(DecodeError::Unsupported("a map key that is not text")) };
                // Smithy: null members of a structure are absent members.
                if value.is_null() {
                    continue;
                }
                map.insert(key, to_json(value)?);
            }
            Value::Object(map)
        }
        _ => return Err(DecodeError::Unsupported("an unknown CBOR value")),
    })
}

/// Encodes a handler's output, writing the members at `timestamps` as tag 1.
pub fn encode(output: &Value, timestamps: &[TimestampPath]) -> Vec<u8> {
    let paths: Vec<&[&str]> = timestamps.iter().map(|p| p.0).collect();
    let cbor = to_cbor(output, &paths);
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(&cbor, &mut bytes);
    bytes
}

/// `value` as CBOR; `paths` are the timestamp paths relative to it (an empty path: it is one).
fn to_cbor(value: &Value, paths: &[&[&str]]) -> Cbor {
    if paths.iter().any(|p| p.is_empty())
        && let Some(seconds) = value.as_f64()
    {
        return Cbor::Tag(1, Box::new(Cbor::Float(seconds)));
    }
    let below = |step: &str| -> Vec<&[&str]> {
        paths
            .iter()
            .filter_map(|p| p.split_first())
            .filter(|(first, _)| **first == step)
            .map(|(_, rest)| rest)
            .collect()
    };
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if !n.is_f64() => Cbor::Integer(u.into()),
            (_, Some(i)) if !n.is_f64() => Cbor::Integer(i.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Value::Array(items) => {
            let inner = below(TimestampPath::EACH);
            Cbor::Array(items.iter().map(|item| to_cbor(item, &inner)).collect())
        }
        Value::Object(map) => Cbor::Map(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(v, &below(k))))
                .collect(),
        ),
    }
}

/// What the protocol needs to know of a service served over it.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The service shape's name in the request path (`GraniteServiceVersion20100801`).
    pub shape_name: &'static str,
    /// The awsQueryError code of an exception shape name, for awsQueryCompatible services.
    pub query_error_code: fn(&str) -> Option<&'static str>,
    /// The timestamp members of an operation's output.
    pub timestamps: fn(&str) -> &'static [TimestampPath],
}

/// The services served over rpcv2Cbor.
const SERVICES: &[Service] = &[crate::cloudwatch::RPC_V2_CBOR];

/// A successful response.
pub fn ok(output: &Value, timestamps: &[TimestampPath]) -> Response {
    with_headers(StatusCode::OK, encode(output, timestamps))
}

/// An error response: `{"__type", "message"}` and, when the service has one for the error, its
/// `x-amzn-query-error`.
pub fn error(service: Option<&Service>, error: ApiError) -> Response {
    let body = serde_json::json!({"__type": error.code, "message": error.message});
    let mut response = with_headers(error.status, encode(&body, &[]));
    if let Some(code) = service.and_then(|s| (s.query_error_code)(error.code)) {
        let fault = if error.status.is_server_error() { "Receiver" } else { "Sender" };
        if let Ok(value) = HeaderValue::from_str(&format!("{code};{fault}")) {
            response.headers_mut().insert("x-amzn-query-error", value);
        }
    }
    response
}

fn with_headers(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    response
}

/// Serves `POST /service/{service}/operation/{operation}`.
pub async fn serve(
    State(emulator): State<Emulator>,
    Path((service_name, operation)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(service) = SERVICES.iter().find(|s| s.shape_name == service_name) else {
        let message = format!("service {service_name:?} is not served here over rpcv2Cbor");
        return error(None, ApiError::with_status(StatusCode::NOT_FOUND, "UnknownOperationException", message));
    };
    let input = match decode(&body) {
        Ok(input) => input,
        Err(err) => return error(Some(service), ApiError::client("SerializationException", err.to_string())),
    };
    match crate::cloudwatch::serve(&emulator, &operation, &input).await {
        Ok(output) => ok(&output, (service.timestamps)(&operation)),
        Err(err) => error(Some(service), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_at_their_paths_become_tag_1_and_come_back_as_seconds() {
        let output = serde_json::json!({"R": [{"T": [1.5, 2.0], "V": [1.5]}], "N": 3});
        let bytes = encode(&output, &[TimestampPath(&["R", TimestampPath::EACH, "T", TimestampPath::EACH])]);
        let cbor: Cbor = ciborium::from_reader(bytes.as_slice()).unwrap();
        let member = |map: &Cbor, key: &str| -> Cbor {
            let Cbor::Map(entries) = map else { panic!("{map:?} is not a map") };
            entries.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v.clone()).unwrap()
        };
        let Cbor::Array(results) = member(&cbor, "R") else { panic!("{cbor:?}") };
        let tag = |seconds: f64| Cbor::Tag(1, Box::new(Cbor::Float(seconds)));
        assert_eq!(member(&results[0], "T"), Cbor::Array(vec![tag(1.5), tag(2.0)]));
        assert_eq!(member(&results[0], "V"), Cbor::Array(vec![Cbor::Float(1.5)]), "values are not timestamps");
        assert_eq!(member(&cbor, "N"), Cbor::Integer(3.into()));
        assert_eq!(decode(&bytes).unwrap(), output);
    }

    #[test]
    fn nulls_are_absent_and_other_tags_are_refused() {
        let mut bytes = Vec::new();
        ciborium::into_writer(&Cbor::Map(vec![(Cbor::Text("a".into()), Cbor::Null)]), &mut bytes).unwrap();
        assert_eq!(decode(&bytes).unwrap(), serde_json::json!({}));
        bytes.clear();
        ciborium::into_writer(&Cbor::Tag(4, Box::new(Cbor::Null)), &mut bytes).unwrap();
        assert!(matches!(decode(&bytes), Err(DecodeError::Unsupported(_))));
        assert!(matches!(decode(b"\xff\xff"), Err(DecodeError::Cbor(_))));
    }
}
