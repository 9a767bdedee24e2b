//! The values of a check's `${variables}` for this deployment ([`crate::variables`] names them).
//!
//! The Lambda ones and `${deployment_id}`, `${cluster}` and `${service}` come from discovery. The
//! rest cost a call and are looked up once per run, by the first check that needs them:
//! `${application}` and `${deployment_group}` with `GetDeployment` (unless the plan was chosen by
//! them), the target groups and load balancer with one ELBv2 `DescribeTargetGroups` ([`ecs`]),
//! and the listener URLs with `GetDeploymentGroup`, `DescribeListeners` and
//! `DescribeLoadBalancers` ([`listeners`]). Where an ECS plan is chosen per deployment, the group
//! is asked for as soon as its names are known, beside the plan's own read
//! ([`Lookups::prefetch_listeners`]), since a fleet's plans are written to use the URLs.

use std::collections::BTreeMap;

use tokio::sync::OnceCell;

use crate::checks::ProbeContext;
use crate::discover::DeploymentKind;

mod ecs;
mod listeners;
mod names;

pub use ecs::EcsDimensions;
use listeners::GroupListeners;
pub use listeners::ListenerUrls;
pub use names::{DeploymentNames, deployment_names};

/// What a run looked up to fill variables, each at most once.
#[derive(Debug, Default)]
pub struct Lookups {
    names: OnceCell<Result<DeploymentNames, String>>,
    ecs_dimensions: OnceCell<Result<EcsDimensions, String>>,
    listener_urls: OnceCell<Result<ListenerUrls, String>>,
    /// The group's listener ARNs, asked for before any check needs them.
    prefetched: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<GroupListeners, String>>>>,
}

impl Lookups {
    /// The deployment's application and group, once the run knows them.
    pub fn know_names(&self, names: DeploymentNames) {
        let _ = self.names.set(Ok(names));
    }

    /// Starts asking CodeDeploy for the group's listeners now, so a check that needs
    /// `${test_url}` or `${production_url}` waits one round trip less. The call runs on its own
    /// task, so a slow answer delays only the checks that need it; it is abandoned with the run.
    pub fn prefetch_listeners(&self, codedeploy: &aws_sdk_codedeploy::Client, names: &DeploymentNames) {
        let (codedeploy, names) = (codedeploy.clone(), names.clone());
        let asked = tokio::spawn(async move { listeners::group_listeners(&codedeploy, &names).await });
        if let Ok(mut prefetched) = self.prefetched.lock() {
            *prefetched = Some(asked);
        }
    }

    /// The prefetched listeners, if they were asked for and not taken yet.
    fn take_prefetched(&self) -> Option<tokio::task::JoinHandle<Result<GroupListeners, String>>> {
        self.prefetched.lock().ok()?.take()
    }
}

impl Drop for Lookups {
    fn drop(&mut self) {
        if let Some(asked) = self.prefetched.get_mut().ok().and_then(Option::take) {
            asked.abort();
        }
    }
}

/// The values of `names`, or why one cannot be filled for this deployment.
pub(crate) async fn variable_values(
    names: &[&str],
    context: &ProbeContext,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for &name in names {
        let value = variable(name, context).await.map_err(|why| format!("${{{name}}}: {why}"))?;
        values.insert(name.to_owned(), value);
    }
    Ok(values)
}

async fn variable(name: &str, context: &ProbeContext) -> Result<String, String> {
    let Some(deployment) = context.deployment.as_deref() else {
        return Err("no discovery ran, so the deployment cannot fill it".to_owned());
    };
    match name {
        "deployment_id" => return Ok(deployment.id.clone()),
        "application" | "deployment_group" if deployment.service_deployment.is_some() => {
            return Err(format!(
                "an ECS-native deployment has no CodeDeploy application or deployment group; use ${{cluster}} and ${{service}} (deployment {})",
                deployment.id
            ));
        }
        "application" | "deployment_group" => {
            let names = context.lookups.names.get_or_init(|| names(context, &deployment.id)).await.clone()?;
            return Ok(if name == "application" { names.application } else { names.deployment_group });
        }
        _ => {}
    }
    match &deployment.target {
        DeploymentKind::Lambda(lambda) => match name {
            "function_name" => Ok(lambda.function_name.clone()),
            "alias" => Ok(lambda.alias.clone()),
            "current_version" => Ok(lambda.current_version.clone()),
            "target_version" => Ok(lambda.target_version.clone()),
            _ => Err(format!("an ECS deployment's variable, and {} is a Lambda deployment", deployment.id)),
        },
        DeploymentKind::Ecs(ecs) => match name {
            "cluster" | "service" => {
                let (cluster, service) = ecs
                    .target_id
                    .split_once(':')
                    .ok_or_else(|| format!("the ECS target id {:?} is not <cluster>:<service>", ecs.target_id))?;
                Ok(if name == "cluster" { cluster } else { service }.to_owned())
            }
            "green_target_group" | "blue_target_group" | "load_balancer" => {
                let dimensions =
                    context.lookups.ecs_dimensions.get_or_init(|| ecs::ecs_dimensions(context)).await.clone()?;
                let value = match name {
                    "green_target_group" => dimensions.green_target_group,
                    "blue_target_group" => dimensions.blue_target_group,
                    _ => dimensions.load_balancer,
                };
                value.ok_or_else(|| format!("deployment {} has no such task set or target group", deployment.id))
            }
            "test_url" | "production_url" => {
                let urls = context
                    .lookups
                    .listener_urls
                    .get_or_init(|| async {
                        match &ecs.listeners {
                            // Discovery found them (an ECS-native deployment).
                            Some(known) => listeners::urls_of(context, known.clone()).await,
                            None => {
                                let names = context.lookups.names.get_or_init(|| names(context, &deployment.id)).await;
                                listeners::listener_urls(context, names.clone()?).await
                            }
                        }
                    })
                    .await
                    .clone()?;
                let (url, which) =
                    if name == "test_url" { (urls.test, "test") } else { (urls.production, "production") };
                url.ok_or_else(|| format!("{} names no {which} listener", urls.owner))
            }
            _ => Err(format!("a Lambda deployment's variable, and {} is an ECS deployment", deployment.id)),
        },
    }
}

async fn names(context: &ProbeContext, deployment_id: &str) -> Result<DeploymentNames, String> {
    deployment_names(&context.aws.codedeploy, deployment_id).await.map_err(|err| err.to_string())
}
