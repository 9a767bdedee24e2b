//! `${name}` variables in plan strings, filled from what discovery learned about the deployment.
//!
//! One plan can then serve every deployment of a service: a metric query names
//! `${green_target_group}` rather than a target group id that changes with every stack. The names
//! are fixed ([`KNOWN`]); a plan using any other is invalid at load. A known variable that this
//! deployment cannot fill (a Lambda variable in an ECS deployment, or any variable without
//! discovery) fails the check that uses it, saying which variable and why.

use std::fmt;

/// Every variable a plan may use, with what it becomes and a value of its form, which stands in
/// for it when a plan is validated at load.
pub const KNOWN: &[(&str, &str, &str)] = &[
    ("deployment_id", "the deployment's id", "d-EXAMPLE11"),
    ("application", "the deployment's CodeDeploy application", "application"),
    ("deployment_group", "the deployment's deployment group", "deployment-group"),
    ("function_name", "Lambda: the function whose alias shifts", "function"),
    ("alias", "Lambda: the alias whose traffic shifts", "live"),
    ("current_version", "Lambda: the version being replaced", "1"),
    ("target_version", "Lambda: the version being deployed", "2"),
    ("cluster", "ECS: the service's cluster", "cluster"),
    ("service", "ECS: the service", "service"),
    (
        "test_url",
        "ECS: the deployment group's test listener, <protocol>://<load balancer DNS name>:<port>",
        "http://test-listener.example:8080",
    ),
    (
        "production_url",
        "ECS: the deployment group's production listener, as test_url",
        "http://production-listener.example:80",
    ),
    (
        "green_target_group",
        "ECS: the green task set's target group, as CloudWatch's TargetGroup dimension (targetgroup/<name>/<id>)",
        "targetgroup/green/0123456789abcdef",
    ),
    (
        "blue_target_group",
        "ECS: the blue task set's target group, as CloudWatch's TargetGroup dimension",
        "targetgroup/blue/0123456789abcdef",
    ),
    (
        "load_balancer",
        "ECS: the target groups' load balancer, as CloudWatch's LoadBalancer dimension (app/<name>/<id>)",
        "app/load-balancer/0123456789abcdef",
    ),
];

/// The stand-in value of a known variable.
pub fn example(name: &str) -> Option<&'static str> {
    KNOWN.iter().find(|(known, _, _)| *known == name).map(|(_, _, example)| *example)
}

/// Why a string's variables are not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// `${` without its closing `}`.
    Unterminated,
    /// A name that is not in [`KNOWN`].
    Unknown(String),
}

impl fmt::Display for VariableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unterminated => f.write_str("\"${\" without a closing \"}\""),
            Self::Unknown(name) => {
                let names: Vec<String> = KNOWN.iter().map(|(known, _, _)| format!("${{{known}}}")).collect();
                write!(f, "unknown variable ${{{name}}}; the variables are {}", names.join(", "))
            }
        }
    }
}

/// The variables `text` uses, each once, in order; an error for an unknown or unterminated one.
pub fn used_in(text: &str) -> Result<Vec<&str>, VariableError> {
    let mut names = Vec::new();
    for piece in pieces(text) {
        if let Piece::Variable(name) = piece? {
            if !KNOWN.iter().any(|(known, _, _)| *known == name) {
                return Err(VariableError::Unknown(name.to_owned()));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// `text` with each variable replaced by `value(name)`; the first error `value` gives stops it.
/// Only strings [`used_in`] accepted reach here, so the syntax is known to be sound.
pub fn fill<E>(text: &str, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
    let mut filled = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Ok(Piece::Text(literal)) => filled.push_str(literal),
            Ok(Piece::Variable(name)) => filled.push_str(&value(name)?),
            // Unreachable after `used_in`; keep the text rather than lose it.
            Err(_) => filled.push_str(text),
        }
    }
    Ok(filled)
}

enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

fn pieces(text: &str) -> impl Iterator<Item = Result<Piece<'_>, VariableError>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find("${") {
            Some(0) => match rest[2..].find('}') {
                Some(end) => {
                    let name = &rest[2..2 + end];
                    rest = &rest[2 + end + 1..];
                    Some(Ok(Piece::Variable(name)))
                }
                None => {
                    rest = "";
                    Some(Err(VariableError::Unterminated))
                }
            },
            Some(start) => {
                let literal = &rest[..start];
                rest = &rest[start..];
                Some(Ok(Piece::Text(literal)))
            }
            None => {
                let literal = rest;
                rest = "";
                Some(Ok(Piece::Text(literal)))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_variables_are_found_once_each_and_filled() {
        let text = "${function_name}:${alias} v${target_version} of ${function_name}";
        assert_eq!(used_in(text).unwrap(), ["function_name", "alias", "target_version"]);
        let filled = fill(text, |name| Ok::<_, ()>(name.to_uppercase())).unwrap();
        assert_eq!(filled, "FUNCTION_NAME:ALIAS vTARGET_VERSION of FUNCTION_NAME");
        assert_eq!(used_in("no variables, $ and { and }").unwrap(), Vec::<&str>::new());
    }

    #[test]
    fn unknown_and_unterminated_variables_are_refused_with_the_known_names() {
        let unknown = used_in("targetgroup/${green_targetgroup}").unwrap_err();
        assert_eq!(unknown, VariableError::Unknown("green_targetgroup".into()));
        assert!(unknown.to_string().contains("${green_target_group}"), "{unknown}");
        assert_eq!(used_in("${alias").unwrap_err(), VariableError::Unterminated);
    }

    #[test]
    fn a_variable_that_cannot_be_filled_stops_the_fill_with_its_reason() {
        let result = fill("${alias}", |name| Err(format!("{name}: not a Lambda deployment")));
        assert_eq!(result.unwrap_err(), "alias: not a Lambda deployment");
    }
}
