//! The local world the emulator hosts: Lambda functions with their versions and aliases, and ECS
//! task definitions and services. AWS keeps these in other services; locally they come from one
//! JSON file (`codedeploy-local serve --config`) or are built by the drill.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the emulator hosts besides CodeDeploy's own resources.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Lambda functions by name.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionConfig>,
    /// ECS task definitions by name (`family:revision`, or a full ARN as an appspec names it).
    #[serde(default)]
    pub task_definitions: BTreeMap<String, ProcessConfig>,
    /// ECS services by `cluster:service`, the target id CodeDeploy gives an ECS deployment.
    #[serde(default)]
    pub ecs_services: BTreeMap<String, EcsServiceConfig>,
}

/// An application load balancer for a service that ECS deploys itself (CreateService with a
/// BLUE_GREEN, LINEAR or CANARY strategy): a production and a test listener, one rule on each,
/// and two target groups, `<name>-1` and `<name>-2`, which the service's revisions take turns in.
/// The listeners are loopback HTTP proxies. A serve config lists them under `load_balancers`
/// ([`load_serve_config`]); tests and the drill add them with
/// [`crate::emulator::Emulator::add_load_balancer`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// Port of the production listener on 127.0.0.1 (0 picks a free one).
    #[serde(default)]
    pub production_port: u16,
    /// Port of the test listener on 127.0.0.1 (0 picks a free one).
    #[serde(default)]
    pub test_port: u16,
}

/// A Lambda function: what each version runs, and its aliases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The function timeout, as in Lambda (1..=900 s).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Reported to the function as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Versions by name: `$LATEST` and published numbers.
    pub versions: BTreeMap<String, ProcessConfig>,
    /// Aliases by name.
    #[serde(default)]
    pub aliases: BTreeMap<String, AliasConfig>,
}

/// A program to run: a Lambda function version (speaking the Runtime API) or an ECS task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Program and arguments. For ECS tasks, `{port}` in an argument becomes the port the task
    /// must listen on (127.0.0.1).
    pub command: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// A Lambda alias: a version and, while traffic shifts, weights for other versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// The version the alias points at.
    pub version: String,
    /// Other versions and the share (0..1) of invocations they get.
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

/// An ECS service behind a production and a test listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsServiceConfig {
    /// The task definition the service runs before any deployment (blue).
    pub task_definition: String,
    /// Port of the production listener on 127.0.0.1 (0 picks a free one).
    #[serde(default)]
    pub production_port: u16,
    /// Port of the test listener on 127.0.0.1 (0 picks a free one).
    #[serde(default)]
    pub test_port: u16,
    /// Tasks each task set runs (reported as desired and running counts).
    #[serde(default = "default_desired_count")]
    pub desired_count: i64,
}

fn default_timeout_seconds() -> u64 {
    3
}

fn default_memory_mb() -> u32 {
    128
}

fn default_desired_count() -> i64 {
    1
}

impl FunctionConfig {
    /// The function timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{path} is not a valid codedeploy-local config: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The config is well formed but inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl LocalConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let config: Self = serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path: shown, source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: aliases name existing versions, services name existing task
    /// definitions, timeouts are in Lambda's range, commands are not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, function) in &self.functions {
            if !(1..=900).contains(&function.timeout_seconds) {
                return Err(ConfigError::Invalid(format!("function {name}: timeout_seconds must be 1..=900")));
            }
            for (version, process) in &function.versions {
                if process.command.is_empty() {
                    return Err(ConfigError::Invalid(format!("function {name} version {version}: empty command")));
                }
            }
            for (alias, config) in &function.aliases {
                let versions = std::iter::once(&config.version).chain(config.additional_version_weights.keys());
                for version in versions {
                    if !function.versions.contains_key(version) {
                        return Err(ConfigError::Invalid(format!(
                            "function {name} alias {alias}: no version {version}"
                        )));
                    }
                }
            }
        }
        for (name, process) in &self.task_definitions {
            if process.command.is_empty() {
                return Err(ConfigError::Invalid(format!("task definition {name}: empty command")));
            }
        }
        for (name, service) in &self.ecs_services {
            if !name.contains(':') {
                return Err(ConfigError::Invalid(format!("ECS service {name}: name it cluster:service")));
            }
            if !self.task_definitions.contains_key(&service.task_definition) {
                return Err(ConfigError::Invalid(format!(
                    "ECS service {name}: no task definition {}",
                    service.task_definition
                )));
            }
        }
        Ok(())
    }

    /// Checks that `name` can name a load balancer beside this config's ECS services' own.
    pub fn check_load_balancer_name(&self, name: &str) -> Result<(), ConfigError> {
        let valid = (1..=30).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !valid {
            return Err(ConfigError::Invalid(format!(
                "load balancer {name}: use 1 to 30 of [A-Za-z0-9-], not starting or ending with -"
            )));
        }
        if self.ecs_services.keys().any(|service| crate::elbv2::load_balancer(service).name == name) {
            return Err(ConfigError::Invalid(format!(
                "load balancer {name}: an ECS service's load balancer has that name"
            )));
        }
        Ok(())
    }
}

/// Reads a serve config: a [`LocalConfig`] and, beside its members, `load_balancers` by name.
pub fn load_serve_config(path: &Path) -> Result<(LocalConfig, BTreeMap<String, LoadBalancerConfig>), ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    let parse = |source| ConfigError::Parse { path: shown.clone(), source };
    let mut document: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).map_err(parse)?;
    let balancers: BTreeMap<String, LoadBalancerConfig> = match document.remove("load_balancers") {
        Some(value) => serde_json::from_value(value).map_err(parse)?,
        None => BTreeMap::new(),
    };
    let config: LocalConfig = serde_json::from_value(serde_json::Value::Object(document)).map_err(parse)?;
    config.validate()?;
    for name in balancers.keys() {
        config.check_load_balancer_name(name)?;
    }
    Ok((config, balancers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_config(text: &str) -> Result<(LocalConfig, BTreeMap<String, LoadBalancerConfig>), ConfigError> {
        let path = std::env::temp_dir().join(format!("codedeploy-local-config-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("a temporary file");
        let loaded = load_serve_config(&path);
        let _ = std::fs::remove_file(&path);
        loaded
    }

    #[test]
    fn a_serve_config_holds_load_balancers_beside_the_rest() {
        let (config, balancers) = serve_config(
            r#"{"task_definitions": {"web:1": {"command": ["web"]}},
                "load_balancers": {"shop": {"production_port": 8090}}}"#,
        )
        .expect("valid");
        assert!(config.task_definitions.contains_key("web:1"));
        assert_eq!((balancers["shop"].production_port, balancers["shop"].test_port), (8090, 0));
        assert!(serve_config(r#"{"load_balancers": {"-shop": {}}}"#).is_err(), "not an ELB name");
        assert!(serve_config(r#"{"load_balancers": {"shop": {"port": 1}}}"#).is_err(), "unknown member");
        assert!(serve_config(r#"{"balancers": {}}"#).is_err(), "unknown section");
        let clash = r#"{"task_definitions": {"web:1": {"command": ["web"]}},
            "ecs_services": {"c:shop": {"task_definition": "web:1"}}, "load_balancers": {"shop": {}}}"#;
        assert!(serve_config(clash).is_err(), "the ECS service's load balancer is named shop");
    }
}
