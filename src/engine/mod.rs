//! The engine: whether the kubelet will pull every image of an object, decided the way the
//! kubelet and the runtime decide it, and what the policy makes of the answer.
//!
//! - [`finding`]: the vocabulary of verdicts — findings, their classes, located findings;
//! - [`advice`]: the vocabulary of advice — what pulls today but is fragile (floating
//!   tags, `Always` against a rate-limited registry, moved tags, low pull budgets, giant
//!   images), by class, and the facts it is made of;
//! - [`image`]: one image (the try-each-credential loop through the cached registry, the
//!   platform match, kept verdicts), with [`facts`] gathering what advice needs;
//! - [`advisor`]: kept facts → advice for one use of an image, at review time;
//! - [`secrets`](self): a Pod's pull secrets, read from the cluster and parsed as the
//!   kubelet does;
//! - [`explain`]: registry errors and findings said in the user's terms;
//! - [`evaluate`]: one object → an [`Evaluation`] ([`Engine`]);
//! - [`policy`]: mode × finding class → deny, warn or record, and the words of the answer;
//! - [`scan`]: the cluster view — what runs, checked the same way, and Pods stuck pulling
//!   explained.
//!
//! Depends on: [`crate::registry`], [`crate::cluster`], [`crate::kubelet`],
//! [`crate::metrics`], [`crate::text`]. Never on `config`, `webhook` or `ci`: they build
//! the engine and turn its evaluations into answers.

pub mod advice;
pub mod advisor;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod finding;
pub mod image;
pub mod policy;
pub mod scan;
mod secrets;

pub use advice::{Advice, AdviceAction, AdviceClass, AdviceSettings};
pub use evaluate::{place, Engine, Evaluation, OwnedPods, Prepared, Settings, Subject};
pub use explain::Context;
pub use finding::{Finding, FindingClass, Located};
pub use image::{Checker, ImageCheck};
pub use policy::{Action, Actions, Decision, Mode};
