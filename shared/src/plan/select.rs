//! The plan that judges a deployment, ready to run, and how a hook gets it.
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
use tracing::error;

use super::{MemoryLimit, Plan, PlanError, PlanSource};

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
    /// Being loaded on its own thread; `None` until it is done.
    Loading(watch::Receiver<Option<Loaded>>),
}

impl Plans {
    /// A plan loaded already (or the error that stopped it loading).
    pub fn ready(plan: Result<Plan, PlanError>) -> Self {
        Self(Inner::Ready(finish(plan)))
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
        let (sender, receiver) = watch::channel(None);
        match std::thread::Builder::new().name("plan-load".to_owned()).spawn(move || sender.send_replace(Some(load())))
        {
            Ok(_) => Self(Inner::Loading(receiver)),
            Err(err) => Self(Inner::Ready(Err(format!("cannot start a thread to load the plan: {err}")))),
        }
    }

    /// The plan if it is loaded already, without waiting.
    pub fn now(&self) -> Option<Loaded> {
        match &self.0 {
            Inner::Ready(loaded) => Some(loaded.clone()),
            Inner::Loading(receiver) => receiver.borrow().clone(),
        }
    }

    /// The plan, once it is loaded.
    pub async fn get(&self) -> Loaded {
        match &self.0 {
            Inner::Ready(loaded) => loaded.clone(),
            Inner::Loading(receiver) => {
                let mut receiver = receiver.clone();
                match receiver.wait_for(Option::is_some).await {
                    Ok(loaded) => loaded.clone().unwrap_or_else(|| Err("the plan was never loaded".to_owned())),
                    // The loading thread ended without a plan: it panicked.
                    Err(_) => Err("loading the plan failed: its thread stopped without a result".to_owned()),
                }
            }
        }
    }

    /// The report reserve of a plan loaded already; the default while none is.
    pub fn report_reserve_now(&self) -> Duration {
        match self.now() {
            Some(Ok(loaded)) => loaded.plan.report_reserve,
            _ => super::DEFAULT_REPORT_RESERVE,
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

    #[tokio::test]
    async fn a_plan_loaded_in_the_background_is_the_plan_loaded_at_once() {
        let source = Ok(PlanSource::Inline(r#"{"checks":[{"name":"a","http":{"url":"http://127.0.0.1:9/"}}]}"#.into()));
        let plans = Plans::load_in_background(source, Path::new("."), None);
        let loaded = plans.get().await.expect("a valid plan loads");
        assert_eq!(loaded.plan.checks[0].name, "a");
        assert!(plans.now().is_some_and(|now| now.is_ok()), "once loaded, it is there without waiting");
    }

    #[tokio::test]
    async fn a_broken_plan_in_the_background_is_its_error() {
        let plans = Plans::load_in_background(Ok(PlanSource::Inline("{".into())), Path::new("."), None);
        let err = plans.get().await.unwrap_err();
        assert!(err.starts_with("plan is not JSON"), "{err}");
        let missing = Plans::load_in_background(Err(PlanError::Missing), Path::new("."), None).get().await.unwrap_err();
        assert!(missing.starts_with("no plan: set GREENLIGHT_PLAN"), "{missing}");
    }
}
