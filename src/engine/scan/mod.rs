//! The cluster view's engine: `pullcheck scan` and the background scan of `serve`.
//!
//! - [`inventory`]: what runs, listed page by page and folded to the templates that decide
//!   it (ReplicaSets into Deployments, Jobs into CronJobs, Pods into their controllers);
//! - [`throttle`]: each distinct image × credential asked once per scan, per-registry
//!   concurrency and rate;
//! - [`run`]: one scan — prepare, check each distinct image × keyring × platforms once,
//!   conclude with the engine (admission's words) — and Pods stuck pulling explained;
//! - [`diagnose`]: the kubelet's message next to pullcheck's verdict, and what a
//!   disagreement means;
//! - [`recorder`]: Events, one per object and cause, refreshed as a series;
//! - [`metrics`]: the workload image series (capped), scan duration and time;
//! - [`background`]: `serve`'s scan — a Lease elects the replica that scans, writes and
//!   watches Pods.
//!
//! Depends on: [`crate::engine`] (prepare / conclude), [`crate::cluster`] (the view),
//! [`crate::registry`] (the `Registry` trait it throttles), [`crate::kubelet`].

pub mod background;
pub mod diagnose;
pub mod inventory;
pub mod metrics;
pub mod recorder;
pub mod run;
pub mod throttle;

pub use background::{Background, LeaseConfig};
pub use diagnose::Agreement;
pub use inventory::{StuckPod, Target};
pub use metrics::ScanMetrics;
pub use recorder::Recorder;
pub use run::{Progress, Report, Scanner, Settings, Silent, Stats, StuckLine, WorkloadLine};
pub use throttle::{Limits, ScanRegistry, Throttle};
