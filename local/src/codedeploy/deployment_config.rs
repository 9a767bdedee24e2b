//! CodeDeploy's predefined deployment configurations for Lambda and ECS: how traffic moves
//! during AllowTraffic.

use std::time::Duration;

use crate::emulator::ComputePlatform;

/// How traffic moves from the old version to the new one.
#[derive(Debug, Clone, PartialEq)]
pub enum TrafficRouting {
    /// Everything at once.
    AllAtOnce,
    /// `percent` first, the rest after `interval`.
    Canary {
        /// First step, percent.
        percent: f64,
        /// Wait before the rest.
        interval: Duration,
    },
    /// `percent` more every `interval` until all of it.
    Linear {
        /// Step, percent.
        percent: f64,
        /// Wait between steps.
        interval: Duration,
    },
}

/// A named deployment configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfig {
    /// Its name, e.g. `CodeDeployDefault.LambdaCanary10Percent5Minutes`.
    pub name: String,
    /// The platform it is for.
    pub platform: ComputePlatform,
    /// How traffic moves.
    pub routing: TrafficRouting,
}

const PREDEFINED: &[(&str, ComputePlatform, Shape)] = &[
    ("CodeDeployDefault.LambdaAllAtOnce", ComputePlatform::Lambda, Shape::AllAtOnce),
    ("CodeDeployDefault.LambdaCanary10Percent5Minutes", ComputePlatform::Lambda, Shape::Canary(10, 5)),
    ("CodeDeployDefault.LambdaCanary10Percent10Minutes", ComputePlatform::Lambda, Shape::Canary(10, 10)),
    ("CodeDeployDefault.LambdaCanary10Percent15Minutes", ComputePlatform::Lambda, Shape::Canary(10, 15)),
    ("CodeDeployDefault.LambdaCanary10Percent30Minutes", ComputePlatform::Lambda, Shape::Canary(10, 30)),
    ("CodeDeployDefault.LambdaLinear10PercentEvery1Minute", ComputePlatform::Lambda, Shape::Linear(10, 1)),
    ("CodeDeployDefault.LambdaLinear10PercentEvery2Minutes", ComputePlatform::Lambda, Shape::Linear(10, 2)),
    ("CodeDeployDefault.LambdaLinear10PercentEvery3Minutes", ComputePlatform::Lambda, Shape::Linear(10, 3)),
    ("CodeDeployDefault.LambdaLinear10PercentEvery10Minutes", ComputePlatform::Lambda, Shape::Linear(10, 10)),
    ("CodeDeployDefault.ECSAllAtOnce", ComputePlatform::Ecs, Shape::AllAtOnce),
    ("CodeDeployDefault.ECSCanary10Percent5Minutes", ComputePlatform::Ecs, Shape::Canary(10, 5)),
    ("CodeDeployDefault.ECSCanary10Percent15Minutes", ComputePlatform::Ecs, Shape::Canary(10, 15)),
    ("CodeDeployDefault.ECSLinear10PercentEvery1Minutes", ComputePlatform::Ecs, Shape::Linear(10, 1)),
    ("CodeDeployDefault.ECSLinear10PercentEvery3Minutes", ComputePlatform::Ecs, Shape::Linear(10, 3)),
];

#[derive(Debug, Clone, Copy)]
enum Shape {
    AllAtOnce,
    Canary(u32, u64),
    Linear(u32, u64),
}

impl DeploymentConfig {
    /// The predefined configuration called `name`, if there is one.
    pub fn predefined(name: &str) -> Option<Self> {
        let (name, platform, shape) = PREDEFINED.iter().find(|(known, ..)| *known == name)?;
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let routing = match *shape {
            Shape::AllAtOnce => TrafficRouting::AllAtOnce,
            Shape::Canary(percent, m) => TrafficRouting::Canary { percent: f64::from(percent), interval: minutes(m) },
            Shape::Linear(percent, m) => TrafficRouting::Linear { percent: f64::from(percent), interval: minutes(m) },
        };
        Some(Self { name: (*name).to_owned(), platform: *platform, routing })
    }

    /// The configuration a deployment gets when neither it nor its group names one.
    pub fn default_for(platform: ComputePlatform) -> Self {
        let name = match platform {
            ComputePlatform::Lambda => "CodeDeployDefault.LambdaAllAtOnce",
            ComputePlatform::Ecs => "CodeDeployDefault.ECSAllAtOnce",
        };
        Self::predefined(name).unwrap_or(Self { name: name.to_owned(), platform, routing: TrafficRouting::AllAtOnce })
    }

    /// The steps of AllowTraffic: the new version's share after each step, and the wait after it
    /// (in AWS time) before the next one.
    pub fn steps(&self) -> Vec<(f64, Duration)> {
        match self.routing {
            TrafficRouting::AllAtOnce => vec![(100.0, Duration::ZERO)],
            TrafficRouting::Canary { percent, interval } => vec![(percent, interval), (100.0, Duration::ZERO)],
            TrafficRouting::Linear { percent, interval } => {
                let mut steps = Vec::new();
                let mut share = percent;
                while share < 100.0 {
                    steps.push((share, interval));
                    share += percent;
                }
                steps.push((100.0, Duration::ZERO));
                steps
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_is_one_step_then_the_rest() {
        let config = DeploymentConfig::predefined("CodeDeployDefault.LambdaCanary10Percent5Minutes").unwrap();
        assert_eq!(config.steps(), vec![(10.0, Duration::from_secs(300)), (100.0, Duration::ZERO)]);
    }

    #[test]
    fn linear_moves_ten_percent_each_interval() {
        let config = DeploymentConfig::predefined("CodeDeployDefault.ECSLinear10PercentEvery1Minutes").unwrap();
        let steps = config.steps();
        assert_eq!(steps.len(), 10);
        assert_eq!(steps[0], (10.0, Duration::from_secs(60)));
        assert_eq!(steps[9], (100.0, Duration::ZERO));
    }

    #[test]
    fn unknown_names_are_not_guessed() {
        assert!(DeploymentConfig::predefined("CodeDeployDefault.LambdaCanary50Percent1Minute").is_none());
        assert!(DeploymentConfig::predefined("CodeDeployDefault.OneAtATime").is_none());
    }
}
