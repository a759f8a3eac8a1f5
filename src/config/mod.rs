//! Configuration: the command line ([`args`], the only place that knows clap), the YAML
//! file ([`file`](mod@file), read with the budgets of [`yaml`]), the resolved settings `serve` and
//! `check` run with ([`resolved`]) and `scan`'s ([`scan`](mod@scan)), and the one function that builds the engine from them
//! ([`assemble::engine`]).
//!
//! Depends on: [`crate::engine`] and everything below it (`registry`, `cluster`,
//! `kubelet`, `metrics`, `text`). Never on `webhook` or `ci`: they read their settings here.

pub mod args;
pub mod assemble;
pub mod file;
pub mod node;
pub mod resolved;
pub mod scan;
pub mod yaml;

pub use args::{
    AdviceArgs, CertsArgs, CheckArgs, Cli, Command, Format, LogFormat, ReferenceArgs, RegistryArgs,
    ScanArgs, ScanFormat, ScanLimitArgs, ServeArgs, ServerArgs, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE,
};

pub use assemble::{Assembled, ClusterWiring, Wiring};
pub use file::FileConfig;
pub use resolved::{
    CheckConfig, ClusterConfig, Deadline, EngineConfig, Limits, ScanSettings, ServeConfig,
};
pub use scan::ScanConfig;
