//! `${application}` and `${deployment_group}`, which also choose a plan per deployment: the
//! deployment's own names, from `GetDeployment`.

use aws_sdk_codedeploy::Client;

use crate::discover::{DiscoveryError, call_error};

/// A deployment's application and deployment group: what a plan per deployment is chosen by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentNames {
    /// The CodeDeploy application.
    pub application: String,
    /// The deployment group.
    pub deployment_group: String,
}

/// The application and deployment group of `deployment_id` (`GetDeployment`).
pub async fn deployment_names(client: &Client, deployment_id: &str) -> Result<DeploymentNames, DiscoveryError> {
    let output = client
        .get_deployment()
        .deployment_id(deployment_id)
        .send()
        .await
        .map_err(|e| call_error("GetDeployment", e))?;
    let info = output.deployment_info();
    let name = |value: Option<&str>, field: &str| {
        value.filter(|v| !v.is_empty()).map(str::to_owned).ok_or_else(|| {
            DiscoveryError::Unexpected(format!("GetDeployment gave deployment {deployment_id} no {field}"))
        })
    };
    Ok(DeploymentNames {
        application: name(info.and_then(|i| i.application_name()), "applicationName")?,
        deployment_group: name(info.and_then(|i| i.deployment_group_name()), "deploymentGroupName")?,
    })
}
