//! The plan that judges a deployment, ready to run, and where a hook gets it.
//!
//! A hook has one plan for every deployment (`GREENLIGHT_PLAN`, `GREENLIGHT_PLAN_FILE`), or a
//! plan per deployment, chosen by the deployment's application and deployment group, in this
//! order:
//!
//! 1. the first matching entry of the plan catalog ([`CATALOG_FILE_ENV`], [`super::catalog`]);
//! 2. the parameter the deployment group's name gives ([`PARAMETER_ENV`], [`super::parameter`]);
//! 3. the catalog's default, when no entry matched and there is no such parameter.
//!
//! Anything else (no plan anywhere, a parameter that cannot be read, an invalid plan) reports
//! `Failed` naming the application, the deployment group and what to fix.
//!
//! Loading a plan (compiling the plan schema, validating the document against it, compiling the
//! checks) is most of a cold start's CPU time. So a Lambda function loads its plan on a thread of
//! its own while it starts, polls for the event and asks CodeDeploy about the deployment; an
//! invocation waits for the plan only when it gets that far before the plan is ready.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tracing::{error, info};

use super::catalog::{CATALOG_FILE_ENV, Catalog, Choice, Key};
use super::parameter::{CACHE_SECONDS_ENV, DEFAULT_CACHE, Lookup, PARAMETER_ENV, ParameterPlans};
use super::{MemoryLimit, PLAN_ENV, PLAN_FILE_ENV, Plan, PlanError, PlanSource};
use crate::checks::variables::DeploymentNames;

/// A plan and the HTTP client built for it.
#[derive(Debug)]
pub struct LoadedPlan {
    /// The validated, compiled plan.
    pub plan: Plan,
    /// TLS verification on, the plan's extra CAs added, no redirects followed.
    pub http: reqwest::Client,
}

impl LoadedPlan {
    /// Builds the plan's HTTP client; a plan whose client cannot be built cannot judge.
    pub fn new(plan: Plan) -> Result<Self, String> {
        let http = http_client(&plan.extra_roots).map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Self { plan, http })
    }
}

/// A plan ready to judge, or why there is none (every run then reports `Failed` with it).
pub type Loaded = Result<Arc<LoadedPlan>, String>;

/// Where a gate's plan comes from.
#[derive(Debug, Clone)]
pub struct Plans(Inner);

#[derive(Debug, Clone)]
enum Inner {
    /// Loaded, or refused, already.
    Ready(Loaded),
    /// Being loaded on its own thread.
    Loading(Background<Loaded>),
    /// Chosen per deployment.
    PerDeployment(Arc<PerDeployment>),
}

/// The plan sources of a hook that chooses a plan per deployment.
#[derive(Debug)]
struct PerDeployment {
    catalog: Option<Background<Result<Arc<Catalog>, String>>>,
    /// Parameters named by the template, if there is one, and by ECS lifecycle hooks.
    parameter: ParameterPlans,
}

/// An ECS-native deployment's names, which choose its plan: the cluster and service, and the
/// parameter its lifecycle hook names in `hookDetails.plan_parameter`, if it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNames {
    /// The ECS cluster's name.
    pub cluster: String,
    /// The ECS service's name.
    pub service: String,
    /// The Parameter Store parameter holding this hook's plan for the service.
    pub plan_parameter: Option<String>,
}

impl Plans {
    /// A plan loaded already (or the error that stopped it loading).
    pub fn ready(plan: Result<Plan, PlanError>) -> Self {
        Self(Inner::Ready(finish(plan)))
    }

    /// The plans the environment names: one plan, loaded on a thread of its own so start-up
    /// does not wait for it (the catalog too), or plans chosen per deployment. A configuration
    /// that cannot work is the error every run reports.
    pub fn from_env(package_dir: &Path, memory: Option<MemoryLimit>) -> Self {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let catalog = set(CATALOG_FILE_ENV).map(|path| package_dir.join(path));
        let parameter = set(PARAMETER_ENV);
        if catalog.is_none() && parameter.is_none() {
            return Self::load_in_background(PlanSource::from_env(package_dir), package_dir, memory);
        }
        if set(PLAN_ENV).is_some() || set(PLAN_FILE_ENV).is_some() {
            return Self::unusable(format!(
                "{PLAN_ENV} or {PLAN_FILE_ENV} gives every deployment one plan, so {CATALOG_FILE_ENV} and {PARAMETER_ENV} would never be read; set one or the other"
            ));
        }
        let cache_for = match set(CACHE_SECONDS_ENV).map(|v| v.trim().parse::<u64>()) {
            None => DEFAULT_CACHE,
            Some(Ok(seconds)) => Duration::from_secs(seconds),
            Some(Err(_)) => {
                return Self::unusable(format!("{CACHE_SECONDS_ENV} must be a whole number of seconds (0: no cache)"));
            }
        };
        Self::per_deployment(catalog.as_deref(), parameter.as_deref(), cache_for, package_dir, memory)
    }

    /// Plans chosen per deployment: from the catalog at `catalog` (loaded on a thread of its
    /// own), else the parameter `parameter` names (kept `cache_for`), else the catalog's default.
    /// Relative plan files in a parameter's plan resolve against `package_dir`.
    pub fn per_deployment(
        catalog: Option<&Path>,
        parameter: Option<&str>,
        cache_for: Duration,
        package_dir: &Path,
        memory: Option<MemoryLimit>,
    ) -> Self {
        let parameter = match parameter.map(|t| ParameterPlans::new(t, cache_for, package_dir.to_path_buf(), memory)) {
            Some(Err(err)) => return Self::unusable(err),
            Some(Ok(parameter)) => parameter,
            None => ParameterPlans::named(cache_for, package_dir.to_path_buf(), memory),
        };
        if parameter.has_template() {
            // The first plan read from a parameter is validated against the plan schema; compile
            // it meanwhile, so that invocation does not. Should no thread start, it compiles then.
            let _ = std::thread::Builder::new().name("plan-schema".to_owned()).spawn(super::warm_schema);
        }
        let catalog = match catalog.map(Path::to_path_buf) {
            Some(path) => match Background::spawn(move || load_catalog(&path, memory)) {
                Ok(loading) => Some(loading),
                Err(err) => return Self::unusable(err),
            },
            None => None,
        };
        Self(Inner::PerDeployment(Arc::new(PerDeployment { catalog, parameter })))
    }

    /// Loads `source` on a thread of its own, checked against the function's memory, so start-up
    /// does not wait for it.
    pub fn load_in_background(
        source: Result<PlanSource, PlanError>,
        package_dir: &Path,
        memory: Option<MemoryLimit>,
    ) -> Self {
        let package_dir = package_dir.to_path_buf();
        let load = move || {
            let loaded =
                finish(source.and_then(|source| super::load(&source, &package_dir)).and_then(|p| p.fit_memory(memory)));
            if let Err(err) = &loaded {
                error!(error = %err, "plan unusable: every invocation will report Failed");
            }
            loaded
        };
        match Background::spawn(load) {
            Ok(loading) => Self(Inner::Loading(loading)),
            Err(err) => Self::unusable(err),
        }
    }

    fn unusable(reason: String) -> Self {
        error!(error = %reason, "plan unusable: every invocation will report Failed");
        Self(Inner::Ready(Err(reason)))
    }

    /// Whether the plan depends on the deployment's application and deployment group.
    pub fn is_per_deployment(&self) -> bool {
        matches!(self.0, Inner::PerDeployment(_))
    }

    /// The plan if it is known already, without waiting or calling anything.
    pub fn now(&self) -> Option<Loaded> {
        match &self.0 {
            Inner::Ready(loaded) => Some(loaded.clone()),
            Inner::Loading(loading) => loading.now(),
            Inner::PerDeployment(_) => None,
        }
    }

    /// The plan for a deployment that `hook` (a hook package's name) judges: `names` are its
    /// application and deployment group, needed when plans are chosen per deployment
    /// ([`Plans::is_per_deployment`]).
    pub async fn get(
        &self,
        hook: &str,
        names: Option<&DeploymentNames>,
        ssm: impl FnOnce() -> aws_sdk_ssm::Client,
    ) -> Loaded {
        match &self.0 {
            Inner::Ready(loaded) => loaded.clone(),
            Inner::Loading(loading) => loading.get().await.and_then(|loaded| loaded),
            Inner::PerDeployment(sources) => match names {
                Some(names) => sources.choose(hook, names, ssm).await,
                None => Err("plans are chosen per deployment, but the deployment's application and deployment group are unknown".to_owned()),
            },
        }
    }

    /// The plan for an ECS-native deployment that `hook` judges, chosen by `names`: the
    /// parameter the lifecycle hook names, else the catalog's entry for the cluster and service,
    /// else the catalog's default. A hook with one plan for every deployment runs it, unless the
    /// lifecycle hook names a parameter: that it would not read, so it refuses.
    pub async fn get_for_service(
        &self,
        hook: &str,
        names: &ServiceNames,
        ssm: impl FnOnce() -> aws_sdk_ssm::Client,
    ) -> Loaded {
        match (&self.0, &names.plan_parameter) {
            (Inner::PerDeployment(sources), _) => sources.choose_for_service(names, ssm).await,
            (_, Some(parameter)) => Err(format!(
                "the lifecycle hook names plan_parameter {parameter} in its hookDetails, but {hook} runs one plan for every deployment ({PLAN_ENV} or {PLAN_FILE_ENV}); set {PARAMETER_ENV} or {CATALOG_FILE_ENV} on the function instead, or take plan_parameter out of hookDetails"
            )),
            (_, None) => self.get(hook, None, ssm).await,
        }
    }

    /// Why no deployment can be judged, once loading is done: a missing or invalid plan, or a
    /// catalog that cannot be read. `None` when some deployment can be.
    pub async fn why_unusable(&self) -> Option<String> {
        match &self.0 {
            Inner::Ready(loaded) => loaded.as_ref().err().cloned(),
            Inner::Loading(loading) => loading.get().await.and_then(|loaded| loaded).err(),
            Inner::PerDeployment(sources) => match &sources.catalog {
                Some(loading) => loading.get().await.and_then(|catalog| catalog).err(),
                None => None,
            },
        }
    }

    /// The report reserve of a plan known already; the default while none is.
    pub fn report_reserve_now(&self) -> Duration {
        match self.now() {
            Some(Ok(loaded)) => loaded.plan.report_reserve,
            _ => super::DEFAULT_REPORT_RESERVE,
        }
    }
}

impl PerDeployment {
    async fn choose(&self, hook: &str, names: &DeploymentNames, ssm: impl FnOnce() -> aws_sdk_ssm::Client) -> Loaded {
        let DeploymentNames { application, deployment_group } = names;
        let catalog = match &self.catalog {
            Some(loading) => Some(loading.get().await.and_then(|catalog| catalog)?),
            None => None,
        };
        let mut tried = Vec::new();
        if let Some(catalog) = &catalog {
            if let Choice::Entry(which, plan) = catalog.choose(application, deployment_group) {
                info!(application, deployment_group, plan = %which, "plan chosen");
                return plan.clone();
            }
            tried.push("no catalog entry matches".to_owned());
        }
        if self.parameter.has_template() {
            match self.parameter.get(&ssm(), hook, application, deployment_group).await {
                Lookup::Found(plan, which) => {
                    info!(application, deployment_group, plan = %which, "plan chosen");
                    return Ok(plan);
                }
                Lookup::NotFound(name) => tried.push(format!("parameter {name} does not exist")),
                Lookup::Failed(reason) => return Err(reason),
            }
        }
        if let Some(Choice::Default(plan)) = catalog.as_ref().map(|c| c.choose(application, deployment_group)) {
            info!(application, deployment_group, plan = "catalog default", "plan chosen");
            return plan.clone();
        }
        if catalog.is_some() {
            tried.push("the catalog has no default".to_owned());
        }
        Err(format!("no plan for application {application}, deployment group {deployment_group}: {}", tried.join(", ")))
    }
}

impl PerDeployment {
    async fn choose_for_service(&self, names: &ServiceNames, ssm: impl FnOnce() -> aws_sdk_ssm::Client) -> Loaded {
        let ServiceNames { cluster, service, plan_parameter } = names;
        let whose = format!("cluster {cluster}, service {service}");
        if let Some(name) = plan_parameter {
            // Named by the service's own lifecycle hook: it must be there.
            return match self.parameter.read(&ssm(), name, &whose).await {
                Lookup::Found(plan, which) => {
                    info!(cluster, service, plan = %which, "plan chosen");
                    Ok(plan)
                }
                Lookup::NotFound(name) => Err(format!(
                    "parameter {name}, which the lifecycle hook's hookDetails.plan_parameter names ({whose}), does not exist"
                )),
                Lookup::Failed(reason) => Err(reason),
            };
        }
        let catalog = match &self.catalog {
            Some(loading) => Some(loading.get().await.and_then(|catalog| catalog)?),
            None => None,
        };
        let key = Key::Service(cluster, service);
        match catalog.as_ref().map(|c| c.choose_by(key)) {
            Some(Choice::Entry(which, plan)) => {
                info!(cluster, service, plan = %which, "plan chosen");
                return plan.clone();
            }
            Some(Choice::Default(plan)) => {
                info!(cluster, service, plan = "catalog default", "plan chosen");
                return plan.clone();
            }
            _ => {}
        }
        let mut tried = vec!["the lifecycle hook's hookDetails names no plan_parameter".to_owned()];
        if catalog.is_some() {
            tried.push("no catalog entry matches and the catalog has no default".to_owned());
        }
        if self.parameter.has_template() {
            tried.push(format!(
                "{PARAMETER_ENV} names parameters by CodeDeploy application and deployment group, which an ECS-native deployment has none of"
            ));
        }
        Err(format!("no plan for {whose}: {}", tried.join(", ")))
    }
}

fn load_catalog(path: &Path, memory: Option<MemoryLimit>) -> Result<Arc<Catalog>, String> {
    let catalog = Catalog::load(path, memory).inspect_err(|err| error!(error = %err, "plan catalog unusable"))?;
    for err in catalog.errors() {
        error!(error = %err, "catalog plan unusable: the deployments it matches will report Failed");
    }
    Ok(Arc::new(catalog))
}

/// A value computed on a thread of its own.
#[derive(Debug, Clone)]
struct Background<T>(watch::Receiver<Option<T>>);

impl<T: Clone + Send + Sync + 'static> Background<T> {
    fn spawn(compute: impl FnOnce() -> T + Send + 'static) -> Result<Self, String> {
        let (sender, receiver) = watch::channel(None);
        std::thread::Builder::new()
            .name("plan-load".to_owned())
            .spawn(move || sender.send_replace(Some(compute())))
            .map_err(|err| format!("cannot start a thread to load the plan: {err}"))?;
        Ok(Self(receiver))
    }

    fn now(&self) -> Option<T> {
        self.0.borrow().clone()
    }

    async fn get(&self) -> Result<T, String> {
        let mut receiver = self.0.clone();
        match receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone().ok_or_else(|| "the plan was never loaded".to_owned()),
            // The thread ended without a value: it panicked.
            Err(_) => Err("loading the plan failed: its thread stopped without a result".to_owned()),
        }
    }
}

fn finish(plan: Result<Plan, PlanError>) -> Loaded {
    plan.map_err(|err| err.to_string()).and_then(LoadedPlan::new).map(Arc::new)
}

fn http_client(extra_roots: &[CertificateDer<'static>]) -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config(extra_roots).map_err(|err| err.to_string())?;
    reqwest::Client::builder()
        .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|err| crate::checks::error_chain(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_ssm() -> aws_sdk_ssm::Client {
        panic!("no Parameter Store call expected")
    }

    fn catalog(text: &str) -> Plans {
        let text = text.to_owned();
        let catalog = Background::spawn(move || Catalog::parse(&text, Path::new("."), None).map(Arc::new)).unwrap();
        let parameter = ParameterPlans::named(Duration::ZERO, Path::new(".").to_path_buf(), None);
        Plans(Inner::PerDeployment(Arc::new(PerDeployment { catalog: Some(catalog), parameter })))
    }

    fn service(plan_parameter: Option<&str>) -> ServiceNames {
        ServiceNames {
            cluster: "shop".into(),
            service: "checkout".into(),
            plan_parameter: plan_parameter.map(Into::into),
        }
    }

    #[tokio::test]
    async fn an_ecs_native_deployment_is_chosen_by_cluster_and_service() {
        let plans = catalog(
            r#"{"plans":[{"application":"shop","plan":{"checks":[]}},{"cluster":"shop","service":"checkout","plan":{"checks":[],"report_reserve_ms":1234}}]}"#,
        );
        let chosen = plans.get_for_service("after-allow-test-traffic", &service(None), no_ssm).await.unwrap();
        assert_eq!(chosen.plan.report_reserve, Duration::from_millis(1234));
        let cart = ServiceNames { service: "cart".into(), ..service(None) };
        let err = plans.get_for_service("after-allow-test-traffic", &cart, no_ssm).await.unwrap_err();
        assert_eq!(
            err,
            "no plan for cluster shop, service cart: the lifecycle hook's hookDetails names no plan_parameter, no catalog entry matches and the catalog has no default"
        );
    }

    #[tokio::test]
    async fn a_hook_with_one_plan_refuses_a_plan_parameter_it_would_not_read() {
        let plans = Plans::ready(crate::plan::parse(r#"{"checks":[]}"#, Path::new(".")));
        assert!(plans.get_for_service("before-allow-traffic", &service(None), no_ssm).await.is_ok());
        let err =
            plans.get_for_service("before-allow-traffic", &service(Some("/plans/checkout")), no_ssm).await.unwrap_err();
        assert!(err.starts_with("the lifecycle hook names plan_parameter /plans/checkout in its hookDetails, but before-allow-traffic runs one plan for every deployment"), "{err}");
    }

    fn names(application: &str, deployment_group: &str) -> DeploymentNames {
        DeploymentNames { application: application.into(), deployment_group: deployment_group.into() }
    }

    #[tokio::test]
    async fn a_catalog_chooses_by_the_deployments_names_and_says_when_nothing_matches() {
        let plans = catalog(
            r#"{"plans":[{"application":"checkout","plan":{"checks":[{"name":"c","http":{"url":"http://127.0.0.1:9/"}}]}}]}"#,
        );
        assert!(plans.is_per_deployment() && plans.now().is_none());
        let chosen = plans.get("pre-traffic", Some(&names("checkout", "prod")), no_ssm).await.unwrap();
        assert_eq!(chosen.plan.checks[0].name, "c");
        let none = plans.get("pre-traffic", Some(&names("cart", "prod")), no_ssm).await.unwrap_err();
        assert_eq!(
            none,
            "no plan for application cart, deployment group prod: no catalog entry matches, the catalog has no default"
        );
        let unnamed = plans.get("pre-traffic", None, no_ssm).await.unwrap_err();
        assert!(unnamed.contains("application and deployment group are unknown"), "{unnamed}");
    }

    #[tokio::test]
    async fn a_broken_catalog_fails_every_deployment_with_its_error() {
        let plans = catalog(r#"{"plans":{}}"#);
        let err = plans.get("pre-traffic", Some(&names("checkout", "prod")), no_ssm).await.unwrap_err();
        assert!(err.starts_with("not a plan catalog: invalid type: map"), "{err}");
    }

    #[tokio::test]
    async fn a_plan_loaded_in_the_background_is_the_plan_loaded_at_once() {
        let source = Ok(PlanSource::Inline(r#"{"checks":[{"name":"a","http":{"url":"http://127.0.0.1:9/"}}]}"#.into()));
        let plans = Plans::load_in_background(source, Path::new("."), None);
        let loaded = plans.get("pre-traffic", None, no_ssm).await.expect("a valid plan loads");
        assert_eq!(loaded.plan.checks[0].name, "a");
        assert!(plans.now().is_some_and(|now| now.is_ok()), "once loaded, it is there without waiting");
    }

    #[tokio::test]
    async fn a_broken_plan_in_the_background_is_its_error() {
        let plans = Plans::load_in_background(Ok(PlanSource::Inline("{".into())), Path::new("."), None);
        let err = plans.get("pre-traffic", None, no_ssm).await.unwrap_err();
        assert!(err.starts_with("plan is not JSON"), "{err}");
        let missing = Plans::load_in_background(Err(PlanError::Missing), Path::new("."), None)
            .get("pre-traffic", None, no_ssm)
            .await
            .unwrap_err();
        assert!(missing.starts_with("no plan: set GREENLIGHT_PLAN"), "{missing}");
    }
}
