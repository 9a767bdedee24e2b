//! Parameter names as Parameter Store reads them: the constraints PutParameter enforces, the
//! `name:version` and `name:label` selectors (and ARNs) the reads accept, and the hierarchy
//! paths of GetParametersByPath.
//!
//! A name is one parameter with or without its leading slash: `/TestParam1` and `TestParam1` are
//! the same parameter, while `/Test/TestParam1` is another (the user guide's "Requirements and
//! constraints for parameter names"). So parameters are keyed by the name without its leading
//! slash, which is also the tail of the parameter's ARN.

use super::SsmError;
use crate::emulator::{ACCOUNT_ID, REGION};

/// The most levels a hierarchy has, the parameter's own name included: the user guide's
/// deepest valid example is `/Level-1/L2/…/L14/parameter-name`.
pub const MAX_DEPTH: usize = 15;

/// The longest name, counted as its ARN: "The maximum length for a parameter name, including the
/// full content of the parameter ARN, is 1011 characters."
pub const MAX_ARN_LENGTH: usize = 1011;

/// The key a name is stored under: the name without its leading slash.
pub fn key(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// The ARN of the parameter `name`: `arn:aws:ssm:<region>:<account>:parameter/<key>`.
pub fn arn(name: &str) -> String {
    format!("{}{}", arn_prefix(), key(name))
}

fn arn_prefix() -> String {
    format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/")
}

/// A name PutParameter accepts, with the spaces around it removed as the service removes them.
pub fn checked(name: &str) -> Result<&str, SsmError> {
    let name = name.trim_matches(' ');
    let invalid = |why: &str| Err(SsmError::Validation(format!("Parameter name {name:?}: {why}")));
    if name.is_empty() || name == "/" {
        return invalid("must not be empty");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        return Err(SsmError::Validation(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it \
             can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, \
             numbers and the following 3 symbols .-_"
                .to_owned(),
        ));
    }
    let bare = key(name);
    if bare.contains('/') && !name.starts_with('/') {
        return Err(SsmError::Validation("Parameter name must be a fully qualified name.".to_owned()));
    }
    if name.ends_with('/') {
        return Err(SsmError::Validation("Parameter name must not end with slash.".to_owned()));
    }
    if bare.split('/').any(str::is_empty) {
        return invalid("a hierarchy level must not be empty");
    }
    let lower = bare.to_ascii_lowercase();
    if name.starts_with('/') && lower.starts_with("aws") {
        // The reserved namespace of AWS's public parameters (`/aws/service/…`).
        return Err(SsmError::ReservedName(name.to_owned()));
    }
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Err(SsmError::Validation(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).".to_owned(),
        ));
    }
    if bare.split('/').count() > MAX_DEPTH {
        return Err(SsmError::HierarchyTooDeep(name.to_owned()));
    }
    if arn(name).len() > MAX_ARN_LENGTH {
        return invalid(&format!("its ARN is longer than {MAX_ARN_LENGTH} characters"));
    }
    Ok(name)
}

/// Which version of a parameter a read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The latest version.
    Latest,
    /// `name:<version>`.
    Version(i64),
    /// `name:<label>`. Labels start with a letter; no label is ever attached here.
    Label(String),
}

impl Selector {
    /// The selector as Parameter Store echoes it in `Parameter.Selector`: `:3`, `:prod`.
    pub fn as_output(&self) -> Option<String> {
        match self {
            Self::Latest => None,
            Self::Version(version) => Some(format!(":{version}")),
            Self::Label(label) => Some(format!(":{label}")),
        }
    }
}

/// A read's `Name`: a name or the parameter's ARN, with an optional `:version` or `:label`; as
/// the key it names and the selector. `None` when it cannot name a parameter at all (bad
/// characters, a hierarchy without its leading slash, an empty selector, another account's or
/// region's ARN).
pub fn parse_reference(reference: &str) -> Option<(String, Selector)> {
    let (bare, from_arn) = match reference.strip_prefix("arn:") {
        Some(_) => (reference.strip_prefix(&arn_prefix())?, true),
        None => (reference, false),
    };
    let (name, selector) = match bare.split_once(':') {
        None => (bare, Selector::Latest),
        Some((name, version)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Selector::Version(version.parse().ok()?))
        }
        Some((name, label))
            if label.starts_with(|c: char| c.is_ascii_alphabetic())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
        {
            (name, Selector::Label(label.to_owned()))
        }
        Some(_) => return None,
    };
    let key = if from_arn { name } else { key(name) };
    let fully_qualified = from_arn || name.starts_with('/') || !name.contains('/');
    let valid = fully_qualified
        && !key.is_empty()
        && key.split('/').all(|level| !level.is_empty())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    valid.then(|| (key.to_owned(), selector))
}

/// A GetParametersByPath `Path`, as the prefix of the keys below it (`""` for the root).
pub fn path_prefix(path: &str) -> Result<String, SsmError> {
    if !path.starts_with('/') {
        return Err(SsmError::Validation(format!("Path {path:?}: a hierarchy path must begin with a slash (/)")));
    }
    let bare = path.trim_matches('/');
    if bare.is_empty() {
        return Ok(String::new());
    }
    let levels: Vec<&str> = bare.split('/').collect();
    if levels
        .iter()
        .any(|level| level.is_empty() || !level.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    {
        return Err(SsmError::Validation(format!(
            "Path {path:?}: each level is a mix of letters, numbers and the symbols .-_"
        )));
    }
    if levels.len() > MAX_DEPTH {
        return Err(SsmError::Validation(format!("Path {path:?}: a hierarchy has at most {MAX_DEPTH} levels")));
    }
    Ok(format!("{bare}/"))
}

/// Whether the parameter keyed `key` is below the path whose prefix is `prefix`: directly, or at
/// any depth when `recursive`.
pub fn is_below(key: &str, prefix: &str, recursive: bool) -> bool {
    key.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &str) -> &'static str {
        checked(name).map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn names_follow_the_user_guides_constraints() {
        assert_eq!(code("MyParameter1"), "ok");
        assert_eq!(code("/MyParameter2"), "ok");
        assert_eq!(code("/Dev/Production/East/Project-ABC/MyParameter"), "ok");
        assert_eq!(checked("  /padded  ").expect("trimmed"), "/padded");
        assert_eq!(code("MyParameter3/L1"), "ValidationException", "not fully qualified");
        assert_eq!(code("/has space"), "ValidationException");
        assert_eq!(code("/a//b"), "ValidationException");
        assert_eq!(code("/a/"), "ValidationException");
        assert_eq!(code("/a:1"), "ValidationException");
        assert_eq!(code(""), "ValidationException");
        assert_eq!(code("awsTestParameter"), "ValidationException");
        assert_eq!(code("SSM-testparameter"), "ValidationException");
        assert_eq!(code("/SSM/x"), "ValidationException");
        assert_eq!(code("/aws/testparam1"), "AccessDeniedException");
        let fifteen = "/Level-1/L2/L3/L4/L5/L6/L7/L8/L9/L10/L11/L12/L13/L14/parameter-name";
        assert_eq!(code(fifteen), "ok");
        assert_eq!(code(&fifteen.replace("L14/", "L14/L15/")), "HierarchyLevelLimitExceededException");
        let longest = format!("/{}", "x".repeat(MAX_ARN_LENGTH - arn("").len()));
        assert_eq!(code(&longest), "ok");
        assert_eq!(code(&format!("{longest}x")), "ValidationException");
    }

    #[test]
    fn keys_and_arns_drop_the_leading_slash() {
        assert_eq!(key("/TestParam1"), key("TestParam1"));
        assert_ne!(key("/Test/TestParam1"), key("/TestParam1"));
        assert_eq!(arn("/a/b"), format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/a/b"));
    }

    #[test]
    fn references_carry_versions_labels_or_arns() {
        assert_eq!(parse_reference("/a/b"), Some(("a/b".to_owned(), Selector::Latest)));
        assert_eq!(parse_reference("top"), Some(("top".to_owned(), Selector::Latest)));
        assert_eq!(parse_reference("/a/b:3"), Some(("a/b".to_owned(), Selector::Version(3))));
        assert_eq!(parse_reference("/a/b:prod"), Some(("a/b".to_owned(), Selector::Label("prod".to_owned()))));
        assert_eq!(parse_reference("a/b"), None, "not fully qualified");
        assert_eq!(parse_reference(&format!("{}:2", arn("/a/b"))), Some(("a/b".to_owned(), Selector::Version(2))));
        assert_eq!(parse_reference("arn:aws:ssm:eu-west-1:111122223333:parameter/a"), None);
        assert_eq!(parse_reference("/a/b:"), None);
        assert_eq!(parse_reference("/a b"), None);
        assert_eq!(Selector::Version(3).as_output().as_deref(), Some(":3"));
    }

    #[test]
    fn paths_select_children_or_descendants() {
        assert_eq!(path_prefix("/").expect("root"), "");
        assert_eq!(path_prefix("/app/").expect("trailing slash"), "app/");
        assert!(path_prefix("app").is_err());
        assert!(path_prefix("/a b").is_err());
        let prefix = path_prefix("/app").expect("valid");
        assert!(is_below("app/db", &prefix, false));
        assert!(!is_below("app/db/url", &prefix, false));
        assert!(is_below("app/db/url", &prefix, true));
        assert!(!is_below("app", &prefix, true), "the path itself is not below it");
        assert!(!is_below("apple/x", &prefix, true));
        assert!(is_below("top", "", false));
        assert!(!is_below("a/b", "", false));
    }
}
