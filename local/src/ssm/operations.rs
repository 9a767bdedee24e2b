//! The Parameter Store operations on awsJson1_1 values: members read and checked as the model
//! has them, answers shaped as its output structures.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::SsmError;
use super::names;
use super::store::{Found, ParameterType, Parameters, PutRequest, RequestedTier};
use crate::protocol::{ApiError, epoch_seconds};

/// GetParameters takes at most this many names (the model's `ParameterNameList`).
const MAX_NAMES: usize = 10;

/// GetParametersByPath's `MaxResults` range and default.
const MAX_RESULTS: i64 = 10;

/// PutParameter members this emulator does not serve; a request that uses one is refused rather
/// than half-done.
const UNSERVED_PUT_MEMBERS: &[&str] = &["AllowedPattern", "Tags", "Policies"];

pub(crate) fn put_parameter(parameters: &Parameters, input: &Map<String, Value>) -> Result<Value, ApiError> {
    if let Some(member) = UNSERVED_PUT_MEMBERS.iter().find(|m| input.contains_key(**m)) {
        return Err(not_served(member));
    }
    let kind = match string(input, "Type")? {
        None => None,
        Some(text) => Some(
            ParameterType::parse(text)
                .ok_or_else(|| enum_violation(text, "type", "[SecureString, StringList, String]"))?,
        ),
    };
    let tier = match string(input, "Tier")? {
        None => None,
        Some(text) => Some(
            RequestedTier::parse(text)
                .ok_or_else(|| enum_violation(text, "tier", "[Standard, Advanced, Intelligent-Tiering]"))?,
        ),
    };
    let key_id = string(input, "KeyId")?;
    if let Some(key_id) = key_id
        && !((1..=256).contains(&key_id.len())
            && key_id.chars().all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c)))
    {
        return Err(SsmError::Validation(format!(
            "1 validation error detected: Value '{key_id}' at 'keyId' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: ^([a-zA-Z0-9:/_-]+)$"
        ))
        .into());
    }
    let request = PutRequest {
        name: required(input, "Name")?.to_owned(),
        value: required(input, "Value")?.to_owned(),
        kind,
        overwrite: boolean(input, "Overwrite")?,
        tier,
        data_type: string(input, "DataType")?.map(str::to_owned),
        key_id: key_id.map(str::to_owned),
        description: string(input, "Description")?.map(str::to_owned),
    };
    let (version, tier) = parameters.put_version(&request)?;
    Ok(json!({"Version": version, "Tier": tier.as_str()}))
}

pub(crate) fn get_parameter(parameters: &Parameters, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let found = parameters.get(required(input, "Name")?)?;
    Ok(json!({"Parameter": parameter(&found, boolean(input, "WithDecryption")?)}))
}

pub(crate) fn get_parameters(parameters: &Parameters, input: &Map<String, Value>) -> Result<Value, ApiError> {
    let names = match input.get("Names") {
        None | Some(Value::Null) => return Err(null_member("names")),
        Some(Value::Array(names)) => names,
        Some(_) => return Err(serialization("Names must be a list of strings")),
    };
    if names.is_empty() || names.len() > MAX_NAMES {
        return Err(SsmError::Validation(format!(
            "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length \
             between 1 and {MAX_NAMES}"
        ))
        .into());
    }
    let with_decryption = boolean(input, "WithDecryption")?;
    let mut found: Vec<Found> = Vec::new();
    let mut invalid: Vec<&str> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        let name = name.as_str().ok_or_else(|| serialization("Names must be a list of strings"))?;
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        match parameters.get(name) {
            Ok(parameter) => found.push(parameter),
            Err(SsmError::NotFound(_) | SsmError::VersionNotFound { .. }) => invalid.push(name),
            Err(other) => return Err(other.into()),
        }
    }
    // "The results for GetParameters requests are listed in alphabetical order."
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let listed: Vec<Value> = found.iter().map(|p| parameter(p, with_decryption)).collect();
    Ok(json!({"Parameters": listed, "InvalidParameters": invalid}))
}

pub(crate) fn get_parameters_by_path(parameters: &Parameters, input: &Map<String, Value>) -> Result<Value, ApiError> {
    if input.get("ParameterFilters").and_then(Value::as_array).is_some_and(|filters| !filters.is_empty()) {
        return Err(not_served("ParameterFilters"));
    }
    let path = required(input, "Path")?;
    let prefix = names::path_prefix(path)?;
    let recursive = boolean(input, "Recursive")?;
    let with_decryption = boolean(input, "WithDecryption")?;
    let limit = match input.get("MaxResults") {
        None | Some(Value::Null) => MAX_RESULTS,
        Some(value) => match value.as_i64() {
            Some(n @ 1..=MAX_RESULTS) => n,
            Some(n) => {
                return Err(SsmError::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member \
                     must have value between 1 and {MAX_RESULTS}"
                ))
                .into());
            }
            None => return Err(serialization("MaxResults must be an integer")),
        },
    };
    let after = match string(input, "NextToken")? {
        None => None,
        Some(token) => Some(PageToken::parse(token, &prefix, recursive)?),
    };
    let (page, more) = parameters.below(&prefix, recursive, after.as_deref(), limit as usize);
    let mut output = json!({"Parameters": page.iter().map(|p| parameter(p, with_decryption)).collect::<Vec<_>>()});
    if more && let Some(last) = page.last() {
        output["NextToken"] = json!(PageToken::after(&prefix, recursive, names::key(&last.name)));
    }
    Ok(output)
}

pub(crate) fn delete_parameter(parameters: &Parameters, input: &Map<String, Value>) -> Result<Value, ApiError> {
    parameters.delete(required(input, "Name")?)?;
    Ok(json!({}))
}

/// The model's `Parameter` structure for one version.
fn parameter(found: &Found, with_decryption: bool) -> Value {
    let mut parameter = json!({
        "Name": found.name,
        "Type": found.kind.as_str(),
        "Value": found.value_read(with_decryption),
        "Version": found.version,
        "LastModifiedDate": epoch_seconds(found.last_modified),
        "ARN": found.arn(),
        "DataType": found.data_type,
    });
    if let Some(selector) = found.selector.as_output() {
        parameter["Selector"] = json!(selector);
    }
    parameter
}

/// GetParametersByPath's `NextToken`: where the next page starts (after the key of the last
/// parameter given), bound to the query it pages, base64 so clients treat it as opaque.
struct PageToken;

impl PageToken {
    fn after(prefix: &str, recursive: bool, key: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}\n{prefix}\n{key}", u8::from(recursive)))
    }

    /// The key to go on after, if `token` is one this query gave.
    fn parse(token: &str, prefix: &str, recursive: bool) -> Result<String, SsmError> {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| SsmError::InvalidNextToken)?;
        let text = String::from_utf8(decoded).map_err(|_| SsmError::InvalidNextToken)?;
        let mut parts = text.splitn(3, '\n');
        let query = (parts.next(), parts.next());
        match (query, parts.next()) {
            ((Some(flag), Some(of)), Some(key)) if flag == u8::from(recursive).to_string() && of == prefix => {
                Ok(key.to_owned())
            }
            _ => Err(SsmError::InvalidNextToken),
        }
    }
}

/// An optional string member.
fn string<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(serialization(&format!("{member} must be a string"))),
    }
}

/// A required string member; a missing one is the model's constraint violation.
fn required<'a>(input: &'a Map<String, Value>, member: &str) -> Result<&'a str, ApiError> {
    string(input, member)?.ok_or_else(|| null_member(&lower_first(member)))
}

/// An optional boolean member, false when absent.
fn boolean(input: &Map<String, Value>, member: &str) -> Result<bool, ApiError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(serialization(&format!("{member} must be a boolean"))),
    }
}

/// The message AWS's request validation gives, which names members in lower camel case.
fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn null_member(wire: &str) -> ApiError {
    SsmError::Validation(format!(
        "1 validation error detected: Value null at '{wire}' failed to satisfy constraint: Member must not be null"
    ))
    .into()
}

fn enum_violation(value: &str, wire: &str, allowed: &str) -> ApiError {
    SsmError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{wire}' failed to satisfy constraint: Member must satisfy \
         enum value set: {allowed}"
    ))
    .into()
}

fn not_served(member: &str) -> ApiError {
    SsmError::Validation(format!("{member} is not served by the local Parameter Store")).into()
}

fn serialization(message: &str) -> ApiError {
    ApiError::client("SerializationException", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_belong_to_their_query() {
        let token = PageToken::after("app/", true, "app/b");
        assert_eq!(PageToken::parse(&token, "app/", true).as_deref(), Ok("app/b"));
        assert_eq!(PageToken::parse(&token, "app/", false), Err(SsmError::InvalidNextToken));
        assert_eq!(PageToken::parse(&token, "other/", true), Err(SsmError::InvalidNextToken));
        assert_eq!(PageToken::parse("forged", "app/", true), Err(SsmError::InvalidNextToken));
    }

    #[test]
    fn missing_members_are_named_as_aws_names_them() {
        let error = put_parameter(&Parameters::default(), &Map::new()).expect_err("no name");
        assert_eq!(error.code, "ValidationException");
        assert!(error.message.contains("at 'name'"), "{}", error.message);
    }
}
