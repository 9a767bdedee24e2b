//! Systems Manager Parameter Store (awsJson1_1, `X-Amz-Target: AmazonSSM.<Operation>`): the
//! parameters a hook reads its configuration from, such as a service's gate plan.
//!
//! - [`names`] holds the naming rules, selectors and hierarchy paths;
//! - [`store`] keeps each parameter's versions, and is the Rust API tests and the drill seed
//!   parameters through ([`Emulator::ssm`]);
//! - [`operations`] serves [`OPERATIONS`] on JSON values.
//!
//! A SecureString is kept in plain text here: a read without `WithDecryption` gets an opaque
//! base64 ciphertext in its place, as from KMS, and one with it gets the value. No KMS key is
//! checked. Labels, parameter policies, `AllowedPattern`, tags and `ParameterFilters` are not
//! served; a request that uses them is refused with a `ValidationException` that says so.

pub mod names;
pub mod operations;
pub mod store;

use serde_json::Value;

use crate::emulator::Emulator;
use crate::protocol::ApiError;
use store::{Parameters, Tier};

/// Every operation served, as named in `X-Amz-Target: AmazonSSM.<Operation>`.
pub const OPERATIONS: &[&str] =
    &["PutParameter", "GetParameter", "GetParameters", "GetParametersByPath", "DeleteParameter"];

/// The service of SSM's `X-Amz-Target`s (the model's `targetPrefix`).
pub const TARGET_SERVICE: &str = "AmazonSSM";

/// Why Parameter Store refuses a request; [`SsmError::code`] is the modelled exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsmError {
    /// PutParameter without `Overwrite` on a name that exists.
    #[error("The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")]
    AlreadyExists(String),
    /// No parameter of that name (or label).
    #[error("Parameter {0} not found.")]
    NotFound(String),
    /// The parameter exists, the version asked for does not (or is no longer kept).
    #[error("Systems Manager could not find version {version} of {name}. Verify the version and try again.")]
    VersionNotFound {
        /// The parameter.
        name: String,
        /// The version asked for.
        version: i64,
    },
    /// A value over its tier's limit.
    #[error(
        "{} tier parameters support a maximum parameter value of {} characters; this one has {length}.{}",
        .tier.as_str(), .tier.value_limit(), .tier.upgrade_hint()
    )]
    ValueTooLarge {
        /// The tier the version would go into.
        tier: Tier,
        /// The value's length in bytes.
        length: usize,
    },
    /// A name deeper than [`names::MAX_DEPTH`] levels.
    #[error("A hierarchy can have a maximum of {max} levels: {0}", max = names::MAX_DEPTH)]
    HierarchyTooDeep(String),
    /// A hierarchy under `/aws`, AWS's own public parameters.
    #[error("No access to reserved parameter name: {0}.")]
    ReservedName(String),
    /// A GetParametersByPath `NextToken` that no earlier page of the same query gave.
    #[error("The specified token isn't valid.")]
    InvalidNextToken,
    /// Any other request the model's constraints or the service's rules refuse.
    #[error("{0}")]
    Validation(String),
}

impl SsmError {
    /// The exception's name, as the model spells it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists(_) => "ParameterAlreadyExists",
            Self::NotFound(_) => "ParameterNotFound",
            Self::VersionNotFound { .. } => "ParameterVersionNotFound",
            Self::HierarchyTooDeep(_) => "HierarchyLevelLimitExceededException",
            Self::ReservedName(_) => "AccessDeniedException",
            Self::InvalidNextToken => "InvalidNextToken",
            Self::ValueTooLarge { .. } | Self::Validation(_) => "ValidationException",
        }
    }
}

impl From<SsmError> for ApiError {
    fn from(error: SsmError) -> Self {
        ApiError::client(error.code(), error.to_string())
    }
}

/// Serves one operation as a client called it: noted in the calls, and answered as an injected
/// fault says before the operation itself runs.
pub(crate) async fn serve(emulator: &Emulator, operation: &str, input: &Value) -> Result<Value, ApiError> {
    let resource =
        input.get("Name").or_else(|| input.get("Path")).and_then(Value::as_str).map(str::to_owned).or_else(|| {
            let names = input.get("Names")?.as_array()?;
            Some(names.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        });
    emulator.answer_faults(operation, resource.as_deref(), None).await?;
    let input = input.as_object().ok_or_else(|| ApiError::client("SerializationException", "expected an object"))?;
    let parameters = emulator.ssm();
    match operation {
        "PutParameter" => operations::put_parameter(parameters, input),
        "GetParameter" => operations::get_parameter(parameters, input),
        "GetParameters" => operations::get_parameters(parameters, input),
        "GetParametersByPath" => operations::get_parameters_by_path(parameters, input),
        "DeleteParameter" => operations::delete_parameter(parameters, input),
        other => Err(ApiError::client("UnknownOperationException", format!("{other} is not served locally"))),
    }
}

impl Emulator {
    /// Parameter Store's parameters, to seed from Rust: `emulator.ssm().put(name, value, kind)`.
    pub fn ssm(&self) -> &Parameters {
        &self.inner.ssm
    }
}
