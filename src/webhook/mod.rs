//! The admission webhook.

pub mod review;
