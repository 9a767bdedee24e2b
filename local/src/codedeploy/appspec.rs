//! AppSpec content for Lambda and ECS deployments (JSON or YAML), read the way CodeDeploy's
//! documentation writes it. Keys are matched case-insensitively: the docs use both `Hooks` and
//! `hooks`. Lambda versions are accepted as strings or numbers.

use serde_json::Value;

use crate::emulator::ComputePlatform;

/// What an appspec deploys and which hook function serves each lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    /// What moves.
    pub resource: Resource,
    /// (lifecycle event, function name), in the appspec's order.
    pub hooks: Vec<(String, String)>,
}

/// The one resource of a Lambda or ECS appspec.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `AWS::Lambda::Function`.
    Lambda {
        /// Function name.
        name: String,
        /// Alias to shift.
        alias: String,
        /// Version the alias points at now.
        current_version: String,
        /// Version to deploy.
        target_version: String,
    },
    /// `AWS::ECS::Service`.
    Ecs {
        /// Task definition of the green task set.
        task_definition: String,
        /// Container that receives traffic.
        container_name: String,
        /// Its port.
        container_port: i64,
    },
}

impl AppSpec {
    /// Parses appspec content (YAML, of which JSON is a subset).
    pub fn parse(content: &str) -> Result<Self, String> {
        let doc: Value = yaml_serde::from_str(content).map_err(|e| format!("the AppSpec is not YAML or JSON: {e}"))?;
        let resources =
            member(&doc, "Resources").and_then(Value::as_array).ok_or("the AppSpec has no Resources list")?;
        let [resource] = resources.as_slice() else {
            return Err(format!("the AppSpec must list exactly one resource, not {}", resources.len()));
        };
        let (_, resource) = resource
            .as_object()
            .and_then(|m| m.iter().next())
            .ok_or("the AppSpec resource must be a map of one named resource")?;
        let kind = member(resource, "Type").and_then(Value::as_str).ok_or("the AppSpec resource has no Type")?;
        let properties = member(resource, "Properties").ok_or("the AppSpec resource has no Properties")?;
        let text = |key: &str| -> Result<String, String> {
            match member(properties, key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(format!("the AppSpec resource has no {key}")),
            }
        };
        let resource = match kind {
            "AWS::Lambda::Function" => Resource::Lambda {
                name: text("Name")?,
                alias: text("Alias")?,
                current_version: text("CurrentVersion")?,
                target_version: text("TargetVersion")?,
            },
            "AWS::ECS::Service" => {
                let load_balancer =
                    member(properties, "LoadBalancerInfo").ok_or("the ECS resource has no LoadBalancerInfo")?;
                Resource::Ecs {
                    task_definition: text("TaskDefinition")?,
                    container_name: member(load_balancer, "ContainerName")
                        .and_then(Value::as_str)
                        .ok_or("LoadBalancerInfo has no ContainerName")?
                        .to_owned(),
                    container_port: member(load_balancer, "ContainerPort")
                        .and_then(Value::as_i64)
                        .ok_or("LoadBalancerInfo has no ContainerPort")?,
                }
            }
            other => return Err(format!("resource type {other} is not a Lambda function or an ECS service")),
        };
        let mut hooks = Vec::new();
        if let Some(list) = member(&doc, "Hooks") {
            let list = list.as_array().ok_or("Hooks must be a list of {Event: FunctionName} maps")?;
            for entry in list {
                let map = entry.as_object().ok_or("each Hooks entry must be a map")?;
                for (event, function) in map {
                    let function = function.as_str().ok_or(format!("hook {event} must name a function"))?;
                    hooks.push((event.clone(), function.to_owned()));
                }
            }
        }
        let spec = Self { resource, hooks };
        let platform = spec.platform();
        for (event, _) in &spec.hooks {
            let known = platform.lifecycle().iter().any(|(name, is_hook)| *is_hook && name == event);
            if !known {
                return Err(format!("{event} is not a hook event of a {} deployment", platform.as_str()));
            }
        }
        Ok(spec)
    }

    /// The platform the resource belongs to.
    pub fn platform(&self) -> ComputePlatform {
        match self.resource {
            Resource::Lambda { .. } => ComputePlatform::Lambda,
            Resource::Ecs { .. } => ComputePlatform::Ecs,
        }
    }

    /// The function serving `event`, if the appspec names one.
    pub fn hook_for(&self, event: &str) -> Option<&str> {
        self.hooks.iter().find(|(name, _)| name == event).map(|(_, function)| function.as_str())
    }
}

fn member<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_appspec_in_yaml_with_numeric_versions() {
        let spec = AppSpec::parse(
            "version: 0.0\nResources:\n  - checkout:\n      Type: AWS::Lambda::Function\n      Properties:\n        Name: checkout\n        Alias: live\n        CurrentVersion: 1\n        TargetVersion: '2'\nHooks:\n  - BeforeAllowTraffic: CodeDeployHook_pre\n",
        )
        .unwrap();
        assert_eq!(
            spec.resource,
            Resource::Lambda {
                name: "checkout".into(),
                alias: "live".into(),
                current_version: "1".into(),
                target_version: "2".into()
            }
        );
        assert_eq!(spec.hook_for("BeforeAllowTraffic"), Some("CodeDeployHook_pre"));
        assert_eq!(spec.hook_for("AfterAllowTraffic"), None);
    }

    #[test]
    fn lowercase_keys_and_json_are_accepted() {
        let spec = AppSpec::parse(
            r#"{"version":0.0,"resources":[{"svc":{"type":"AWS::ECS::Service","properties":{"taskDefinition":"checkout:2","loadBalancerInfo":{"containerName":"app","containerPort":8080}}}}],"hooks":[{"AfterAllowTestTraffic":"smoke"}]}"#,
        )
        .unwrap();
        assert_eq!(spec.platform(), ComputePlatform::Ecs);
        assert_eq!(spec.hook_for("AfterAllowTestTraffic"), Some("smoke"));
    }

    #[test]
    fn hooks_of_the_wrong_platform_are_refused() {
        let err = AppSpec::parse(
            r#"{"Resources":[{"f":{"Type":"AWS::Lambda::Function","Properties":{"Name":"f","Alias":"a","CurrentVersion":"1","TargetVersion":"2"}}}],"Hooks":[{"AfterAllowTestTraffic":"smoke"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("AfterAllowTestTraffic is not a hook event of a Lambda deployment"), "{err}");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(AppSpec::parse("Resources: 3").unwrap_err().contains("no Resources list"));
        assert!(AppSpec::parse("{").unwrap_err().contains("not YAML or JSON"));
    }
}
