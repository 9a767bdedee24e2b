//! The parameters: each one's versions (the last [`MAX_VERSIONS`], as Parameter Store keeps
//! them), with the checks PutParameter makes on a new version. Tests and the drill seed it
//! directly through [`Parameters::put`]; the API goes through [`Parameters::put_version`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use super::SsmError;
use super::names::{self, Selector};

/// How many versions of a parameter are kept; the oldest goes when a new one is made.
pub const MAX_VERSIONS: usize = 100;

/// The largest value of a Standard parameter, in bytes ("Standard parameters have a value limit
/// of 4 KB").
pub const STANDARD_VALUE_LIMIT: usize = 4096;

/// The largest value of an Advanced parameter, in bytes.
pub const ADVANCED_VALUE_LIMIT: usize = 8192;

/// The longest description.
pub const MAX_DESCRIPTION: usize = 1024;

/// The KMS key a SecureString is encrypted with when the request names none.
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

/// A parameter's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterType {
    /// One string.
    String,
    /// Comma-separated strings.
    StringList,
    /// A string encrypted with a KMS key; reads return it decrypted only `WithDecryption`.
    SecureString,
}

impl ParameterType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::StringList => "StringList",
            Self::SecureString => "SecureString",
        }
    }

    /// Parses the API's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::String, Self::StringList, Self::SecureString].into_iter().find(|t| t.as_str() == text)
    }
}

/// The tier a parameter version is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Values up to 4 KB.
    Standard,
    /// Values up to 8 KB.
    Advanced,
}

impl Tier {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Advanced => "Advanced",
        }
    }

    /// The largest value it holds, in bytes.
    pub fn value_limit(self) -> usize {
        match self {
            Self::Standard => STANDARD_VALUE_LIMIT,
            Self::Advanced => ADVANCED_VALUE_LIMIT,
        }
    }

    /// What a value too large for this tier can do instead.
    pub fn upgrade_hint(self) -> &'static str {
        match self {
            Self::Standard => {
                " To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier."
            }
            Self::Advanced => "",
        }
    }
}

/// The tier a PutParameter request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedTier {
    /// `Standard` or `Advanced`.
    Fixed(Tier),
    /// `Intelligent-Tiering`: Standard when the value fits, Advanced when it does not.
    Intelligent,
}

impl RequestedTier {
    /// Parses the API's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Standard" => Some(Self::Fixed(Tier::Standard)),
            "Advanced" => Some(Self::Fixed(Tier::Advanced)),
            "Intelligent-Tiering" => Some(Self::Intelligent),
            _ => None,
        }
    }
}

/// The data types Parameter Store accepts (`text` unless the request says otherwise).
const DATA_TYPES: &[&str] = &["text", "aws:ec2:image", "aws:ssm:integration"];

/// One PutParameter request, its members checked for shape.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// The parameter's name.
    pub name: String,
    /// The new value.
    pub value: String,
    /// Required for a new parameter; an overwrite without it keeps the type.
    pub kind: Option<ParameterType>,
    /// Whether an existing parameter gets a new version; without it, it is an error.
    pub overwrite: bool,
    /// The requested tier; without one, a new parameter is Standard and an overwrite keeps its tier.
    pub tier: Option<RequestedTier>,
    /// `text` when not given.
    pub data_type: Option<String>,
    /// The KMS key of a SecureString.
    pub key_id: Option<String>,
    /// At most [`MAX_DESCRIPTION`] characters.
    pub description: Option<String>,
}

impl PutRequest {
    /// A request that creates `name` or overwrites it with `value`, as `kind`.
    pub fn overwriting(name: &str, value: &str, kind: ParameterType) -> Self {
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            kind: Some(kind),
            overwrite: true,
            tier: None,
            data_type: None,
            key_id: None,
            description: None,
        }
    }
}

/// A parameter version as a read finds it, its value in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The name it was created with.
    pub name: String,
    /// Its type.
    pub kind: ParameterType,
    /// The value, decrypted.
    pub value: String,
    /// For a SecureString, what a read without decryption gets: the encrypted value, base64.
    pub ciphertext: Option<String>,
    /// Its version number.
    pub version: i64,
    /// When this version was made.
    pub last_modified: SystemTime,
    /// `text`, unless it was put with another data type.
    pub data_type: String,
    /// The tier of this version.
    pub tier: Tier,
    /// The selector the read named, if any.
    pub selector: Selector,
}

impl Found {
    /// The parameter's ARN.
    pub fn arn(&self) -> String {
        names::arn(&self.name)
    }

    /// The value a read returns: the ciphertext of a SecureString read without decryption.
    pub fn value_read(&self, with_decryption: bool) -> &str {
        match &self.ciphertext {
            Some(ciphertext) if !with_decryption => ciphertext,
            _ => &self.value,
        }
    }
}

#[derive(Debug, Clone)]
struct Version {
    number: i64,
    kind: ParameterType,
    value: String,
    ciphertext: Option<String>,
    tier: Tier,
    data_type: String,
    modified: SystemTime,
}

#[derive(Debug, Clone)]
struct Parameter {
    /// The name as created (with or without its leading slash).
    name: String,
    /// Oldest first, at most [`MAX_VERSIONS`].
    versions: VecDeque<Version>,
}

impl Parameter {
    fn latest(&self) -> &Version {
        self.versions.back().expect("a parameter has at least one version")
    }

    fn found(&self, version: &Version, selector: Selector) -> Found {
        Found {
            name: self.name.clone(),
            kind: version.kind,
            value: version.value.clone(),
            ciphertext: version.ciphertext.clone(),
            version: version.number,
            last_modified: version.modified,
            data_type: version.data_type.clone(),
            tier: version.tier,
            selector,
        }
    }
}

/// Every parameter, by its key (the name without a leading slash).
#[derive(Debug, Default)]
pub struct Parameters {
    parameters: Mutex<BTreeMap<String, Parameter>>,
}

impl Parameters {
    /// Seeds `name` with `value` as `kind`: a new parameter, or the next version of an existing
    /// one, checked as PutParameter with `Overwrite` checks it. Returns the version made.
    pub fn put(&self, name: &str, value: &str, kind: ParameterType) -> Result<i64, SsmError> {
        self.put_version(&PutRequest::overwriting(name, value, kind)).map(|(version, _)| version)
    }

    /// PutParameter: makes the next version of `request.name`, or its first. Returns the version
    /// and the tier it went into.
    pub fn put_version(&self, request: &PutRequest) -> Result<(i64, Tier), SsmError> {
        let name = names::checked(&request.name)?;
        let value = &request.value;
        if value.is_empty() {
            return Err(SsmError::Validation(
                "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have \
                 length greater than or equal to 1"
                    .to_owned(),
            ));
        }
        if value.find("{{").is_some_and(|open| value[open..].contains("}}")) {
            return Err(SsmError::Validation(
                "Parameter value can't nest another parameter. Do not use \"{{}}\" in the value.".to_owned(),
            ));
        }
        if request.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            return Err(SsmError::Validation(format!("Description is longer than {MAX_DESCRIPTION} characters")));
        }
        let data_type = request.data_type.clone().unwrap_or_else(|| "text".to_owned());
        if !DATA_TYPES.contains(&data_type.as_str()) {
            return Err(SsmError::Validation(format!(
                "The following data type is not supported: {data_type} (Data type names are all lowercase.)"
            )));
        }

        let mut parameters = self.parameters.lock().unwrap_or_else(|p| p.into_inner());
        let existing = parameters.get(names::key(name));
        if existing.is_some() && !request.overwrite {
            return Err(SsmError::AlreadyExists(name.to_owned()));
        }
        let previous = existing.map(Parameter::latest);
        let kind = request.kind.or(previous.map(|v| v.kind)).ok_or_else(|| {
            SsmError::Validation("A parameter type is required when you create a parameter.".to_owned())
        })?;
        let key_id = match (&request.key_id, kind) {
            (Some(_), ParameterType::String | ParameterType::StringList) => {
                return Err(SsmError::Validation("KeyId is required for SecureString type parameter only.".to_owned()));
            }
            (Some(key_id), ParameterType::SecureString) => key_id.as_str(),
            (None, _) => DEFAULT_KEY_ID,
        };
        let tier = tier_for(request.tier, previous.map(|v| v.tier), value.len())?;
        if value.len() > tier.value_limit() {
            return Err(SsmError::ValueTooLarge { tier, length: value.len() });
        }
        let number = previous.map_or(1, |v| v.number + 1);
        let version = Version {
            number,
            kind,
            ciphertext: (kind == ParameterType::SecureString).then(|| ciphertext(key_id, value)),
            value: value.clone(),
            tier,
            data_type,
            modified: SystemTime::now(),
        };
        let parameter = parameters
            .entry(names::key(name).to_owned())
            .or_insert_with(|| Parameter { name: name.to_owned(), versions: VecDeque::new() });
        parameter.versions.push_back(version);
        while parameter.versions.len() > MAX_VERSIONS {
            parameter.versions.pop_front();
        }
        Ok((number, tier))
    }

    /// GetParameter: the version `reference` names (a name or ARN, with an optional `:version`).
    /// Labels are never attached here, so a `:label` finds nothing.
    pub fn get(&self, reference: &str) -> Result<Found, SsmError> {
        let not_found = || SsmError::NotFound(reference.to_owned());
        let (key, selector) = names::parse_reference(reference).ok_or_else(not_found)?;
        let parameters = self.parameters.lock().unwrap_or_else(|p| p.into_inner());
        let parameter = parameters.get(&key).ok_or_else(not_found)?;
        let version = match &selector {
            Selector::Latest => parameter.latest(),
            Selector::Version(number) => parameter
                .versions
                .iter()
                .find(|v| v.number == *number)
                .ok_or_else(|| SsmError::VersionNotFound { name: parameter.name.clone(), version: *number })?,
            Selector::Label(_) => return Err(not_found()),
        };
        Ok(parameter.found(version, selector))
    }

    /// DeleteParameter: removes `name` and all its versions.
    pub fn delete(&self, name: &str) -> Result<(), SsmError> {
        let mut parameters = self.parameters.lock().unwrap_or_else(|p| p.into_inner());
        parameters.remove(names::key(name)).map(|_| ()).ok_or_else(|| SsmError::NotFound(name.to_owned()))
    }

    /// The latest versions of the parameters below the path whose key prefix is `prefix`
    /// ([`names::path_prefix`]), in key order, starting after the key `after`, at most `limit`;
    /// and whether more follow.
    pub fn below(&self, prefix: &str, recursive: bool, after: Option<&str>, limit: usize) -> (Vec<Found>, bool) {
        let parameters = self.parameters.lock().unwrap_or_else(|p| p.into_inner());
        let mut matching = parameters
            .iter()
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
            .filter(|(key, _)| names::is_below(key, prefix, recursive))
            .map(|(_, parameter)| parameter.found(parameter.latest(), Selector::Latest));
        let page: Vec<Found> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        (page, more)
    }
}

/// The tier of a new version: the one asked for (Intelligent-Tiering choosing by size), else the
/// previous version's, else Standard. An Advanced parameter never goes back to Standard.
fn tier_for(requested: Option<RequestedTier>, previous: Option<Tier>, length: usize) -> Result<Tier, SsmError> {
    let tier = match requested {
        Some(RequestedTier::Fixed(tier)) => tier,
        Some(RequestedTier::Intelligent) if length > STANDARD_VALUE_LIMIT => Tier::Advanced,
        Some(RequestedTier::Intelligent) => previous.unwrap_or(Tier::Standard),
        None => previous.unwrap_or(Tier::Standard),
    };
    if previous == Some(Tier::Advanced) && tier == Tier::Standard {
        return Err(SsmError::Validation(
            "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the \
             advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced \
             parameter and recreate it as a standard parameter."
                .to_owned(),
        ));
    }
    Ok(tier)
}

/// What a SecureString read without decryption returns in place of the value: base64 of a KMS-like
/// envelope (a version header, a random data key id, a digest of key, value and id), which looks
/// like KMS's ciphertexts and says nothing about the value.
fn ciphertext(key_id: &str, value: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let nonce = uuid::Uuid::new_v4();
    let digest = sha2::Sha256::new()
        .chain_update(key_id.as_bytes())
        .chain_update(nonce.as_bytes())
        .chain_update(value.as_bytes())
        .finalize();
    let mut envelope = vec![0x01, 0x02, 0x02, 0x00, 0x78];
    envelope.extend_from_slice(nonce.as_bytes());
    envelope.extend_from_slice(&digest);
    base64::engine::general_purpose::STANDARD.encode(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(result: Result<T, SsmError>) -> &'static str {
        result.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn versions_count_up_and_the_oldest_go() {
        let store = Parameters::default();
        for n in 1..=(MAX_VERSIONS as i64 + 2) {
            assert_eq!(store.put("/app/v", &n.to_string(), ParameterType::String), Ok(n));
        }
        assert_eq!(store.get("/app/v").expect("latest").value, (MAX_VERSIONS + 2).to_string());
        assert_eq!(code(store.get("/app/v:2")), "ParameterVersionNotFound", "dropped with the oldest");
        assert_eq!(store.get("/app/v:3").expect("kept").value, "3");
        assert_eq!(store.get("app/v").map(|f| f.name), Err(SsmError::NotFound("app/v".to_owned())));
    }

    #[test]
    fn a_name_with_or_without_its_slash_is_one_parameter() {
        let store = Parameters::default();
        store.put("/TestParam1", "a", ParameterType::String).expect("created");
        let mut request = PutRequest::overwriting("TestParam1", "b", ParameterType::String);
        request.overwrite = false;
        assert_eq!(code(store.put_version(&request)), "ParameterAlreadyExists");
        assert_eq!(store.get("TestParam1").expect("found").name, "/TestParam1");
        store.delete("TestParam1").expect("deleted");
        assert_eq!(code(store.get("/TestParam1")), "ParameterNotFound");
    }

    #[test]
    fn tiers_bound_the_value_and_never_go_down() {
        let store = Parameters::default();
        let big = "x".repeat(STANDARD_VALUE_LIMIT + 1);
        assert_eq!(code(store.put("/big", &big, ParameterType::String)), "ValidationException");
        assert!(store.put("/big", &"x".repeat(STANDARD_VALUE_LIMIT), ParameterType::String).is_ok());
        let mut request = PutRequest::overwriting("/big", &big, ParameterType::String);
        request.tier = Some(RequestedTier::Intelligent);
        assert_eq!(store.put_version(&request), Ok((2, Tier::Advanced)));
        request.value = "small".to_owned();
        assert_eq!(store.put_version(&request), Ok((3, Tier::Advanced)), "stays Advanced");
        request.tier = Some(RequestedTier::Fixed(Tier::Standard));
        assert_eq!(code(store.put_version(&request)), "ValidationException");
        request.tier = None;
        request.value = "x".repeat(ADVANCED_VALUE_LIMIT + 1);
        assert_eq!(code(store.put_version(&request)), "ValidationException");
    }

    #[test]
    fn secure_strings_keep_a_ciphertext_that_hides_the_value() {
        let store = Parameters::default();
        store.put("/db/password", "hunter2", ParameterType::SecureString).expect("created");
        let found = store.get("/db/password").expect("found");
        let ciphertext = found.value_read(false);
        assert_ne!(ciphertext, "hunter2");
        assert!(!ciphertext.contains("hunter2"));
        assert!(ciphertext.starts_with("AQICAH"), "{ciphertext}");
        assert_eq!(found.value_read(true), "hunter2");
        assert_eq!(store.get("/db/password").expect("again").value_read(false), ciphertext, "one per version");
        let plain = store.put("/db/host", "db.local", ParameterType::String).and_then(|_| store.get("/db/host"));
        assert_eq!(plain.expect("found").value_read(false), "db.local");
    }

    #[test]
    fn puts_are_checked_as_parameter_store_checks_them() {
        let store = Parameters::default();
        let mut request = PutRequest::overwriting("/new", "v", ParameterType::String);
        request.kind = None;
        assert_eq!(code(store.put_version(&request)), "ValidationException", "a new parameter needs a type");
        request.kind = Some(ParameterType::String);
        request.key_id = Some("alias/mine".to_owned());
        assert_eq!(code(store.put_version(&request)), "ValidationException", "KeyId is for SecureString");
        request.key_id = None;
        request.data_type = Some("TEXT".to_owned());
        assert_eq!(code(store.put_version(&request)), "ValidationException");
        request.data_type = None;
        assert_eq!(code(store.put("/nested", "{{ssm:/other}}", ParameterType::String)), "ValidationException");
        assert_eq!(code(store.put("/empty", "", ParameterType::String)), "ValidationException");
        store.put("/typed", "a,b", ParameterType::StringList).expect("created");
        let mut keep = PutRequest::overwriting("/typed", "c", ParameterType::String);
        keep.kind = None;
        store.put_version(&keep).expect("overwritten");
        assert_eq!(store.get("/typed").expect("found").kind, ParameterType::StringList, "the type is kept");
    }

    #[test]
    fn paths_page_in_key_order() {
        let store = Parameters::default();
        for name in ["/app/a", "/app/b", "/app/c/deep", "/apple", "/top"] {
            store.put(name, "v", ParameterType::String).expect("created");
        }
        let names = |(found, more): (Vec<Found>, bool)| (found.into_iter().map(|f| f.name).collect::<Vec<_>>(), more);
        assert_eq!(
            names(store.below("app/", false, None, 10)),
            (vec!["/app/a".to_owned(), "/app/b".to_owned()], false)
        );
        assert_eq!(names(store.below("app/", true, None, 2)), (vec!["/app/a".to_owned(), "/app/b".to_owned()], true));
        assert_eq!(names(store.below("app/", true, Some("app/b"), 2)), (vec!["/app/c/deep".to_owned()], false));
        assert_eq!(names(store.below("", false, None, 10)), (vec!["/apple".to_owned(), "/top".to_owned()], false));
    }
}
