//! Test harness for greenlight's integration tests, one module per fixture:
//!
//! - [`deployment`]: deployments on the local CodeDeploy (`codedeploy-local`), whole or held in
//!   one event, and real AWS SDK configuration pointed at it;
//! - [`targets`]: HTTP and HTTPS services for checks to judge;
//! - [`binaries`]: the hook binaries and sample apps, built once, and the sample events;
//! - [`python`]: the project's pinned Python tools.
//!
//! The most used items are also at the root, as the benches and older tests name them.

pub mod binaries;
pub mod deployment;
pub mod python;
pub mod targets;

pub use binaries::{bin_dir, event_file, hook_binary, workspace_root};
pub use deployment::sdk_config;
pub use targets::{Target, TlsTarget, healthy_cart, serve};
