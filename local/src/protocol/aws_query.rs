//! awsQuery (Elastic Load Balancing v2): `POST /` with a form-encoded body,
//! `Action=<Operation>&Version=<API version>` and the input's members flattened into keys; the
//! answer is XML. Written once here for any service; the service is the one whose API version
//! the request names.
//!
//! # Requests
//!
//! Keys are member paths joined with `.`: a structure's member `A.B`, a list's items
//! `A.member.1`, `A.member.2` (or `A.1` for a flattened list), a map's entries `A.entry.1.key`
//! and `A.entry.1.value`. [`decode`] turns them back into the JSON value a service handler
//! takes: lists become arrays in index order, maps objects, structures objects. An empty list is
//! sent as a bare key (`Names=`) and so arrives as the empty string; [`string_list`] reads it as
//! no items. Member names are PascalCase in every AWS model, so `member` and `entry` as path
//! segments are always the protocol's own.
//!
//! The decoder knows no shapes: every value arrives as a string, as it was on the wire, and the
//! handler reads numbers and booleans from strings with [`integer`] (and lists with
//! [`string_list`]), answering `ValidationError` for a value that does not parse, as AWS does.
//!
//! # Responses
//!
//! `<{Action}Response xmlns="…"><{Action}Result>…</{Action}Result><ResponseMetadata><RequestId>…`:
//! the handler's JSON object becomes elements, arrays become `<member>` items, numbers and
//! booleans their text. The handlers of this protocol answer no maps, so a JSON object is always
//! a structure. Errors are `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…`
//! with the error's HTTP status; every response also carries `x-amzn-RequestId`.

use std::collections::BTreeMap;
use std::io;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_xml::Writer;
use quick_xml::events::BytesText;
use serde_json::{Map, Value};

use super::ApiError;
use crate::emulator::Emulator;

/// The content type of awsQuery requests (botocore adds `; charset=utf-8`).
pub const REQUEST_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The content type of awsQuery responses.
pub const RESPONSE_CONTENT_TYPE: &str = "text/xml";

/// An awsQuery request, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The `Action` parameter: the operation.
    pub action: String,
    /// The `Version` parameter: the API version, which names the service.
    pub version: String,
    /// Every other parameter, as the JSON value described in the module documentation.
    pub input: Value,
}

/// Whether `headers` say the body is a form, and so an awsQuery request.
pub fn is_query(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(REQUEST_CONTENT_TYPE))
}

/// A parameter path as the decoder assembles it before it knows which parts are lists.
#[derive(Debug)]
enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

/// Decodes a form body: `MissingAction` without `Action`, `ValidationError` for keys that
/// contradict each other (a key given twice, a value that is also a structure, an empty path
/// segment).
pub fn decode(body: &[u8]) -> Result<Request, ApiError> {
    let mut action = None;
    let mut version = String::new();
    let mut root = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "Action" => action = Some(value.into_owned()),
            "Version" => version = value.into_owned(),
            path => insert(&mut root, path, value.into_owned())?,
        }
    }
    let action = action
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::client("MissingAction", "The request must contain the parameter Action."))?;
    Ok(Request { action, version, input: branch_value(root) })
}

/// Puts `value` at `path` (`A.member.1.B`) in `root`.
fn insert(root: &mut BTreeMap<String, Node>, path: &str, value: String) -> Result<(), ApiError> {
    let conflict = || ApiError::client("ValidationError", format!("parameter {path:?} conflicts with another"));
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::client("ValidationError", format!("parameter {path:?} has an empty part")));
    }
    let Some((last, parents)) = segments.split_last() else {
        return Err(conflict());
    };
    let mut level = root;
    for segment in parents {
        let node = level.entry((*segment).to_owned()).or_insert_with(|| Node::Branch(BTreeMap::new()));
        level = match node {
            Node::Branch(children) => children,
            Node::Leaf(_) => return Err(conflict()),
        };
    }
    if level.insert((*last).to_owned(), Node::Leaf(value)).is_some() {
        return Err(conflict());
    }
    Ok(())
}

fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

/// The items of a branch whose keys are all list indexes, in index order.
fn indexed(children: BTreeMap<String, Node>) -> Vec<Node> {
    let mut items: Vec<(u64, Node)> =
        children.into_iter().map(|(index, node)| (index.parse().unwrap_or(u64::MAX), node)).collect();
    items.sort_by_key(|(index, _)| *index);
    items.into_iter().map(|(_, node)| node).collect()
}

fn node_value(node: Node) -> Value {
    match node {
        Node::Leaf(text) => Value::String(text),
        Node::Branch(children) => branch_value(children),
    }
}

/// A branch as JSON: a list (`member.N`, or flattened `N`), a map (`entry.N.key/value`), or a
/// structure.
fn branch_value(mut children: BTreeMap<String, Node>) -> Value {
    if children.len() == 1 {
        let wrapper = children.keys().next().map(String::as_str);
        if matches!(wrapper, Some("member" | "entry"))
            && let Some((wrapper, Node::Branch(items))) = children.pop_first()
        {
            if items.keys().all(|k| is_index(k)) && !items.is_empty() {
                let items = indexed(items);
                if wrapper == "member" {
                    return Value::Array(items.into_iter().map(node_value).collect());
                }
                if items.iter().all(is_map_entry) {
                    return Value::Object(items.into_iter().filter_map(map_entry).collect());
                }
                return Value::Array(items.into_iter().map(node_value).collect());
            }
            children.insert(wrapper, Node::Branch(items));
        }
    }
    if !children.is_empty() && children.keys().all(|k| is_index(k)) {
        return Value::Array(indexed(children).into_iter().map(node_value).collect());
    }
    Value::Object(children.into_iter().map(|(k, node)| (k, node_value(node))).collect())
}

/// Whether `node` is a map entry: a `key` and a `value`, the key a string.
fn is_map_entry(node: &Node) -> bool {
    matches!(node, Node::Branch(entry) if entry.len() == 2
        && matches!(entry.get("key"), Some(Node::Leaf(_))) && entry.contains_key("value"))
}

/// A map entry's key and value (see [`is_map_entry`]).
fn map_entry(node: Node) -> Option<(String, Value)> {
    let Node::Branch(mut entry) = node else { return None };
    match (entry.remove("key"), entry.remove("value")) {
        (Some(Node::Leaf(key)), Some(value)) => Some((key, node_value(value))),
        _ => None,
    }
}

/// A string member of `input`, if given.
pub fn string<'a>(input: &'a Value, member: &str) -> Result<Option<&'a str>, ApiError> {
    match input.get(member) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::client("ValidationError", format!("{member} must be a string"))),
    }
}

/// A list-of-strings member of `input`, if given (`Names=` is the empty list).
pub fn string_list(input: &Value, member: &str) -> Result<Option<Vec<String>>, ApiError> {
    match input.get(member) {
        None => Ok(None),
        Some(Value::String(empty)) if empty.is_empty() => Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| ApiError::client("ValidationError", format!("{member} must be a list of strings"))),
        Some(_) => Err(ApiError::client("ValidationError", format!("{member} must be a list"))),
    }
}

/// An integer member of `input`, read from its text, if given.
pub fn integer(input: &Value, member: &str) -> Result<Option<i64>, ApiError> {
    let invalid = || ApiError::client("ValidationError", format!("{member} must be an integer"));
    match string(input, member).map_err(|_| invalid())? {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| invalid()),
    }
}

/// The XML document of a successful response to `action`, in the service's `namespace`.
pub fn response_document(action: &str, namespace: &str, result: &Value, request_id: &str) -> io::Result<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    writer.create_element(format!("{action}Response")).with_attribute(("xmlns", namespace)).write_inner_content(
        |w| {
            let result_name = format!("{action}Result");
            match result {
                Value::Object(members) => {
                    w.create_element(result_name.as_str()).write_inner_content(|w| write_members(w, members))?;
                }
                _ => {
                    w.create_element(result_name.as_str()).write_empty()?;
                }
            }
            w.create_element("ResponseMetadata").write_inner_content(|w| {
                w.create_element("RequestId").write_text_content(BytesText::new(request_id))?;
                Ok(())
            })?;
            Ok(())
        },
    )?;
    Ok(writer.into_inner())
}

/// The XML document of an error: `Sender` for a client's error, `Receiver` for the service's.
pub fn error_document(namespace: Option<&str>, error: &ApiError, request_id: &str) -> io::Result<Vec<u8>> {
    let fault = if error.status.is_server_error() { "Receiver" } else { "Sender" };
    let mut writer = Writer::new(Vec::new());
    let mut root = writer.create_element("ErrorResponse");
    if let Some(namespace) = namespace {
        root = root.with_attribute(("xmlns", namespace));
    }
    root.write_inner_content(|w| {
        w.create_element("Error").write_inner_content(|w| {
            w.create_element("Type").write_text_content(BytesText::new(fault))?;
            w.create_element("Code").write_text_content(BytesText::new(error.code))?;
            w.create_element("Message").write_text_content(BytesText::new(&error.message))?;
            Ok(())
        })?;
        w.create_element("RequestId").write_text_content(BytesText::new(request_id))?;
        Ok(())
    })?;
    Ok(writer.into_inner())
}

fn write_members(writer: &mut Writer<Vec<u8>>, members: &Map<String, Value>) -> io::Result<()> {
    members.iter().try_for_each(|(name, value)| write_value(writer, name, value))
}

/// One member: nothing for null, text for a scalar, `<member>` items for a list, elements for a
/// structure.
fn write_value(writer: &mut Writer<Vec<u8>>, name: &str, value: &Value) -> io::Result<()> {
    let element = writer.create_element(name);
    match value {
        Value::Null => {}
        Value::Bool(flag) => {
            element.write_text_content(BytesText::new(if *flag { "true" } else { "false" }))?;
        }
        Value::Number(number) => {
            element.write_text_content(BytesText::new(&number.to_string()))?;
        }
        Value::String(text) => {
            element.write_text_content(BytesText::new(text))?;
        }
        Value::Array(items) if items.is_empty() => {
            element.write_empty()?;
        }
        Value::Array(items) => {
            element.write_inner_content(|w| items.iter().try_for_each(|item| write_value(w, "member", item)))?;
        }
        Value::Object(members) => {
            element.write_inner_content(|w| write_members(w, members))?;
        }
    }
    Ok(())
}

/// An XML response with its status and request id.
fn xml_response(status: StatusCode, document: Vec<u8>, request_id: &str) -> Response {
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(RESPONSE_CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// A successful response to `action`.
pub fn ok(action: &str, namespace: &str, result: &Value) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match response_document(action, namespace, result, &request_id) {
        Ok(document) => xml_response(StatusCode::OK, document, &request_id),
        Err(err) => error(Some(namespace), internal(&err)),
    }
}

/// An error response, in the service's `namespace` when the request named a service.
pub fn error(namespace: Option<&str>, error: ApiError) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match error_document(namespace, &error, &request_id) {
        Ok(document) => xml_response(error.status, document, &request_id),
        // Writing to memory does not fail; if it ever did, the status still tells the client.
        Err(_) => (error.status, String::new()).into_response(),
    }
}

fn internal(err: &io::Error) -> ApiError {
    ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", format!("cannot write XML: {err}"))
}

/// Serves a form-encoded `POST /`: the service is the one whose API version `Version` names,
/// and whose operations include `Action`.
pub async fn serve(emulator: Emulator, body: Bytes) -> Response {
    let request = match decode(&body) {
        Ok(request) => request,
        Err(err) => return error(None, err),
    };
    let action = request.action.as_str();
    if request.version == crate::elbv2::API_VERSION && crate::elbv2::OPERATIONS.contains(&action) {
        let namespace = crate::elbv2::XML_NAMESPACE;
        return match crate::elbv2::serve(&emulator, action, &request.input).await {
            Ok(result) => ok(action, namespace, &result),
            Err(err) => error(Some(namespace), err),
        };
    }
    let message =
        format!("The action {action} with version {:?} is not valid for any service served here", request.version);
    error(None, ApiError::client("InvalidAction", message))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(body: &str) -> Value {
        decode(body.as_bytes()).expect("a valid query").input
    }

    #[test]
    fn lists_maps_and_structures_come_back_as_json() {
        let request = decode(
            b"Action=DescribeTargetGroups&Version=2015-12-01&Names.member.2=b%20c&Names.member.1=a\
              &Names.member.10=j&Tags.entry.1.key=team&Tags.entry.1.value=green%26light\
              &Config.Port=80&Config.Inner.Flag=true&Flat.1=x&Flat.2=y",
        )
        .expect("decodes");
        assert_eq!((request.action.as_str(), request.version.as_str()), ("DescribeTargetGroups", "2015-12-01"));
        assert_eq!(
            request.input,
            json!({"Names": ["a", "b c", "j"], "Tags": {"team": "green&light"},
                   "Config": {"Port": "80", "Inner": {"Flag": "true"}}, "Flat": ["x", "y"]})
        );
    }

    #[test]
    fn an_empty_list_and_scalars_are_read_from_strings() {
        let given = input("Action=A&Names=&PageSize=20&Bad=x");
        assert_eq!(string_list(&given, "Names"), Ok(Some(Vec::new())));
        assert_eq!(integer(&given, "PageSize"), Ok(Some(20)));
        assert_eq!(integer(&given, "Missing"), Ok(None));
        assert_eq!(integer(&given, "Bad").map_err(|e| e.code), Err("ValidationError"));
        assert_eq!(string_list(&given, "PageSize").map_err(|e| e.code), Err("ValidationError"));
    }

    #[test]
    fn contradictory_or_actionless_requests_are_refused() {
        let code = |body: &str| decode(body.as_bytes()).map(|_| ()).map_err(|e| e.code);
        assert_eq!(code("Version=1&Names.member.1=a"), Err("MissingAction"));
        assert_eq!(code("Action=A&Names=a&Names.member.1=b"), Err("ValidationError"));
        assert_eq!(code("Action=A&Names.member.1=a&Names.member.1=b"), Err("ValidationError"));
        assert_eq!(code("Action=A&Names..1=a"), Err("ValidationError"));
        assert_eq!(code("Action=A"), Ok(()));
    }

    #[test]
    fn responses_are_escaped_xml_with_member_lists() {
        let result = json!({"Items": [{"Name": "a<b>&\"c\"", "Port": 8080, "On": true}], "Empty": [], "Gone": null});
        let xml = response_document("DescribeThings", "http://example.com/doc/", &result, "req-1").expect("XML");
        let xml = String::from_utf8(xml).expect("UTF-8");
        assert_eq!(
            xml,
            "<DescribeThingsResponse xmlns=\"http://example.com/doc/\"><DescribeThingsResult><Empty/>\
             <Items><member><Name>a&lt;b&gt;&amp;&quot;c&quot;</Name><On>true</On><Port>8080</Port></member></Items>\
             </DescribeThingsResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\
             </DescribeThingsResponse>"
        );
    }

    #[test]
    fn errors_say_who_is_at_fault() {
        let sender = ApiError::client("LoadBalancerNotFound", "one <missing>");
        let xml = String::from_utf8(error_document(Some("urn:x"), &sender, "r").expect("XML")).expect("UTF-8");
        assert_eq!(
            xml,
            "<ErrorResponse xmlns=\"urn:x\"><Error><Type>Sender</Type><Code>LoadBalancerNotFound</Code>\
             <Message>one &lt;missing&gt;</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        let receiver = ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "x");
        let xml = String::from_utf8(error_document(None, &receiver, "r").expect("XML")).expect("UTF-8");
        assert!(xml.starts_with("<ErrorResponse><Error><Type>Receiver</Type>"), "{xml}");
    }

    #[test]
    fn form_bodies_are_recognised_by_their_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_query(&headers));
        headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
        assert!(is_query(&headers));
        headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        assert!(!is_query(&headers));
    }
}
