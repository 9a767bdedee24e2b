//! codedeploy-local: a local AWS for rehearsing deployments. CodeDeploy and Lambda run whole
//! deployments against real processes, ECS task sets serve behind real listeners, for end-to-end
//! tests of lifecycle hooks and for the drill.
//!
//! It is a second, independent reading of the AWS contract: it shares no code with the hooks.
//! One folder per AWS service, one module per wire protocol:
//!
//! - [`server`] serves every service and the [`control`] API on one loopback port;
//! - [`protocol`] writes each wire protocol once: [`protocol::aws_json`] (CodeDeploy's, SSM's and
//!   ECS's awsJson1_1), [`protocol::rest_json`] (Lambda's restJson1) and
//!   [`protocol::rpc_v2_cbor`] (CloudWatch's rpcv2Cbor), with AWS's error shapes;
//! - [`codedeploy`]: its operations, the AppSpec, deployment configurations, and the
//!   [`codedeploy::lifecycle`] that runs each deployment;
//! - [`cloudwatch`]: metrics, metric math and alarms, over [`protocol::rpc_v2_cbor`] and awsJson1_0;
//!   the ECS listeners and Lambda invocations record the metrics AWS would publish;
//! - [`lambda`]: its operations, and the [`lambda::runtime`] host that runs functions as processes
//!   behind a Runtime API, under Lambda's CPU and memory [`limits`] where asked;
//! - [`ecs`]: task sets, behind the listeners of [`ecs::traffic`], deployed by CodeDeploy; and
//!   services ECS deploys itself ([`ecs::api`], [`ecs::deployment`]), behind the load balancers
//!   of [`elbv2::balancer`];
//! - [`ssm`]: Parameter Store, where hooks read their configuration;
//! - [`emulator`] holds the state they share, [`faults`] what a test injects into it;
//! - [`drill`] rehearses releases end to end and draws them with [`drill::chart`].

#![deny(missing_docs)]

pub mod cloudwatch;
pub mod codedeploy;
pub mod config;
pub mod control;
pub mod drill;
pub mod ecs;
pub mod elbv2;
pub mod emulator;
pub mod faults;
pub mod lambda;
pub mod limits;
pub mod protocol;
pub mod server;
pub mod ssm;
