//! Plans in SSM Parameter Store, one per deployment group, so each service's own stack can carry
//! its plan as an `AWS::SSM::Parameter`.
//!
//! The parameter's name comes from a template with `{application}` and `{deployment_group}` in
//! it, for example `/greenlight/plans/{application}/{deployment_group}`, and optionally `{hook}`
//! (the hook package's name, such as `after-allow-test-traffic`), so a fleet's hooks can share one
//! template and each service still give each hook a plan of its own. It is read with
//! decryption (a SecureString works) when a deployment needs it and kept per warm process for a
//! bounded time, so a fleet's hooks make one extra call per deployment group and minute, not one
//! per invocation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use tokio::time::Instant;

use super::MemoryLimit;
use super::select::LoadedPlan;

/// The parameter name template.
pub const PARAMETER_ENV: &str = "GREENLIGHT_PLAN_PARAMETER";
/// How long, in seconds, a plan read from a parameter is kept; 0 reads it for every invocation.
pub const CACHE_SECONDS_ENV: &str = "GREENLIGHT_PLAN_CACHE_SECONDS";
/// How long a plan read from a parameter is kept unless [`CACHE_SECONDS_ENV`] says otherwise.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(60);

/// What a template may name: the deployment's names, which make it a parameter per service, and
/// the hook's, which alone would not.
const PLACEHOLDERS: [&str; 3] = ["{application}", "{deployment_group}", "{hook}"];
const PER_SERVICE: [&str; 2] = ["{application}", "{deployment_group}"];

/// Plans read from parameters named by a template.
#[derive(Debug)]
pub struct ParameterPlans {
    /// Where the name comes from; `None` for plans read only by the names lifecycle hooks give
    /// ([`ParameterPlans::read`]).
    template: Option<String>,
    cache_for: Duration,
    package_dir: PathBuf,
    memory: Option<MemoryLimit>,
    cache: Mutex<HashMap<String, (Instant, Arc<LoadedPlan>)>>,
}

/// What reading a deployment group's parameter found.
#[derive(Debug)]
pub enum Lookup {
    /// A valid plan, and which parameter version it came from.
    Found(Arc<LoadedPlan>, String),
    /// The parameter does not exist (another source may still have a plan).
    NotFound(String),
    /// The parameter could not be read, or its plan is invalid: why, naming what to fix.
    Failed(String),
}

impl ParameterPlans {
    /// Plans from parameters named by `template`; a template without a placeholder, or with
    /// another `{...}`, is refused, since it would give every deployment group the same plan.
    pub fn new(
        template: &str,
        cache_for: Duration,
        package_dir: PathBuf,
        memory: Option<MemoryLimit>,
    ) -> Result<Self, String> {
        let mut rest = template.to_owned();
        for placeholder in PLACEHOLDERS {
            rest = rest.replace(placeholder, "");
        }
        if rest.contains('{') || rest.contains('}') {
            return Err(format!(
                "{PARAMETER_ENV}={template:?}: the only placeholders are {{application}}, {{deployment_group}} and {{hook}}"
            ));
        }
        if !PER_SERVICE.iter().any(|p| template.contains(p)) {
            return Err(format!(
                "{PARAMETER_ENV}={template:?} names one parameter for every deployment; put {{application}} and/or {{deployment_group}} in it, or use GREENLIGHT_PLAN"
            ));
        }
        Ok(Self { template: Some(template.to_owned()), cache_for, package_dir, memory, cache: Mutex::default() })
    }

    /// Plans read only by the exact names an ECS lifecycle hook's `hookDetails` gives.
    pub fn named(cache_for: Duration, package_dir: PathBuf, memory: Option<MemoryLimit>) -> Self {
        Self { template: None, cache_for, package_dir, memory, cache: Mutex::default() }
    }

    /// Whether a template names the parameters (else only exact names are read).
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The parameter that holds `hook`'s plan for `application`'s `deployment_group`.
    pub fn name(&self, hook: &str, application: &str, deployment_group: &str) -> String {
        self.template
            .as_deref()
            .unwrap_or_default()
            .replace("{application}", application)
            .replace("{deployment_group}", deployment_group)
            .replace("{hook}", hook)
    }

    /// `hook`'s plan for `application`'s `deployment_group`, from the cache while it is fresh.
    pub async fn get(
        &self,
        ssm: &aws_sdk_ssm::Client,
        hook: &str,
        application: &str,
        deployment_group: &str,
    ) -> Lookup {
        let name = self.name(hook, application, deployment_group);
        let whose = format!("application {application}, deployment group {deployment_group}");
        self.read(ssm, &name, &whose).await
    }

    /// The plan in parameter `name` (`whose` it is, for messages), from the cache while it is
    /// fresh.
    pub async fn read(&self, ssm: &aws_sdk_ssm::Client, name: &str, whose: &str) -> Lookup {
        let (name, whose) = (name.to_owned(), whose);
        if let Some(plan) = self.cached(&name) {
            return Lookup::Found(plan, format!("parameter {name} (cached)"));
        }
        let read = ssm.get_parameter().name(&name).with_decryption(true).send().await;
        let parameter = match read {
            Ok(output) => output.parameter,
            Err(err) => return read_error(&name, whose, err),
        };
        let Some((value, version)) = parameter.and_then(|p| Some((p.value?, p.version))) else {
            return Lookup::Failed(format!("parameter {name} ({whose}) came back without a value"));
        };
        // Validating and compiling is CPU work, and may read the plan's schema and CA files.
        let (package_dir, memory) = (self.package_dir.clone(), self.memory);
        let loaded = tokio::task::spawn_blocking(move || {
            super::parse(&value, &package_dir)
                .and_then(|plan| plan.fit_memory(memory))
                .map_err(|err| err.to_string())
                .and_then(LoadedPlan::new)
        })
        .await
        .unwrap_or_else(|err| Err(format!("loading the plan failed: {err}")));
        match loaded {
            Ok(plan) => {
                let plan = Arc::new(plan);
                if !self.cache_for.is_zero()
                    && let Ok(mut cache) = self.cache.lock()
                {
                    cache.insert(name.clone(), (Instant::now(), Arc::clone(&plan)));
                }
                Lookup::Found(plan, format!("parameter {name} version {version}"))
            }
            Err(err) => Lookup::Failed(format!("the plan in parameter {name} version {version} ({whose}): {err}")),
        }
    }

    fn cached(&self, name: &str) -> Option<Arc<LoadedPlan>> {
        let cache = self.cache.lock().ok()?;
        let (at, plan) = cache.get(name)?;
        (at.elapsed() < self.cache_for).then(|| Arc::clone(plan))
    }
}

fn read_error(name: &str, whose: &str, err: SdkError<GetParameterError, impl std::fmt::Debug>) -> Lookup {
    if let Some(GetParameterError::ParameterNotFound(_)) = err.as_service_error() {
        return Lookup::NotFound(name.to_owned());
    }
    let code = err.as_service_error().and_then(|e| e.code());
    if crate::is_access_denied(code) {
        return Lookup::Failed(format!(
            "access denied reading parameter {name} ({whose}): grant the hook's role ssm:GetParameter on arn:aws:ssm:<region>:<account>:parameter{}{name} (and kms:Decrypt on its key if it is a SecureString under a customer managed key)",
            if name.starts_with('/') { "" } else { "/" }
        ));
    }
    Lookup::Failed(format!(
        "ssm:GetParameter for parameter {name} ({whose}) failed: {}",
        crate::aws_http::call_failure(&err)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(template: &str) -> Result<ParameterPlans, String> {
        ParameterPlans::new(template, DEFAULT_CACHE, PathBuf::from("."), None)
    }

    #[test]
    fn the_name_is_filled_from_the_deployment() {
        let per_group = plans("/greenlight/plans/{application}/{deployment_group}").unwrap();
        assert_eq!(
            per_group.name("pre-traffic", "checkout", "checkout-prod"),
            "/greenlight/plans/checkout/checkout-prod"
        );
        let per_hook = plans("/greenlight/plans/{application}/{deployment_group}/{hook}").unwrap();
        assert_eq!(
            per_hook.name("after-allow-test-traffic", "checkout", "prod"),
            "/greenlight/plans/checkout/prod/after-allow-test-traffic"
        );
    }

    #[test]
    fn a_template_must_name_the_group_and_only_known_placeholders() {
        let fixed = plans("/greenlight/plan").unwrap_err();
        assert!(fixed.contains("names one parameter for every deployment"), "{fixed}");
        let per_hook_only = plans("/greenlight/plans/{hook}").unwrap_err();
        assert!(per_hook_only.contains("names one parameter for every deployment"), "{per_hook_only}");
        let unknown = plans("/greenlight/{service}").unwrap_err();
        assert!(
            unknown.contains("the only placeholders are {application}, {deployment_group} and {hook}"),
            "{unknown}"
        );
    }
}
