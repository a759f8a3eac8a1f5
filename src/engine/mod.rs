//! The engine: whether the kubelet will pull every image of an object, decided the way the
//! kubelet and the runtime decide it, and what the policy makes of the answer.
//!
//! - [`finding`]: the vocabulary of verdicts — findings, their classes, located findings;
//! - [`image`]: one image (the try-each-credential loop through the cached registry, the
//!   platform match, kept verdicts);
//! - [`secrets`](self): a Pod's pull secrets, read from the cluster and parsed as the
//!   kubelet does;
//! - [`explain`]: registry errors and findings said in the user's terms;
//! - [`evaluate`]: one object → an [`Evaluation`] ([`Engine`]);
//! - [`policy`]: mode × finding class → deny, warn or record, and the words of the answer.
//!
//! Depends on: [`crate::registry`], [`crate::cluster`], [`crate::kubelet`],
//! [`crate::metrics`], [`crate::text`]. Never on `config`, `webhook` or `ci`: they build
//! the engine and turn its evaluations into answers.

pub mod evaluate;
pub mod explain;
pub mod finding;
pub mod image;
pub mod policy;
mod secrets;

pub use evaluate::{place, Engine, Evaluation, OwnedPods, Settings, Subject};
pub use explain::Context;
pub use finding::{Finding, FindingClass, Located};
pub use image::{Checker, ImageCheck};
pub use policy::{Action, Actions, Decision, Mode};
