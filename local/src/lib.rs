//! codedeploy-local: a local CodeDeploy (awsJson1_1) and Lambda (restJson1) that run whole
//! deployments against real processes, for end-to-end tests of lifecycle hooks and for the drill.
//!
//! It is a second, independent reading of the AWS contract: it shares no code with the hooks.
//!
//! - [`server`] serves both APIs and a small control API on one loopback port;
//! - [`codedeploy`] and [`lambda`] are the operations, over the state in [`emulator`];
//! - [`lifecycle`] runs each deployment; [`runtime`] runs functions as processes, under Lambda's
//!   CPU and memory [`limits`] where asked; [`ecs`] and
//!   [`traffic`] run task sets behind listeners;
//! - [`drill`] rehearses releases end to end and draws them with [`chart`].

#![deny(missing_docs)]

pub mod appspec;
pub mod chart;
pub mod codedeploy;
pub mod config;
pub mod deployment_config;
pub mod drill;
pub mod ecs;
pub mod emulator;
pub mod faults;
pub mod lambda;
pub mod lifecycle;
pub mod limits;
pub mod runtime;
pub mod server;
pub mod traffic;
pub mod wire;
