//! The images of a PodSpec as the kubelet pulls them (initContainers, containers,
//! ephemeralContainers, image volumes, with their pull policy), and the names that decide
//! their credentials: `imagePullSecrets` and the ServiceAccount.

use std::fmt;

use super::podspec::{Container, PodSpec};

/// Where an image is used in a PodSpec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageSlot {
    Container,
    InitContainer,
    EphemeralContainer,
    ImageVolume,
}

impl ImageSlot {
    /// The words of messages, as the PodSpec's fields say them: `"container"`,
    /// `"initContainer"`, `"ephemeralContainer"`, `"image volume"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::InitContainer => "initContainer",
            Self::EphemeralContainer => "ephemeralContainer",
            Self::ImageVolume => "image volume",
        }
    }
}

impl fmt::Display for ImageSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image the kubelet will pull (or not, with pullPolicy Never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    pub slot: ImageSlot,
    /// Container name, or the volume name for image volumes.
    pub name: String,
    /// As written (nothing trimmed); `""` when missing.
    pub image: String,
    /// `"Always" | "IfNotPresent" | "Never"` as written; `None` when absent (the API server
    /// defaults it before webhooks see it, but CI manifests often omit it).
    pub pull_policy: Option<String>,
}

impl ImageUse {
    /// `pull_policy == Some("Never")`: the kubelet never pulls this image.
    pub fn pull_never(&self) -> bool {
        self.pull_policy.as_deref() == Some("Never")
    }
}

/// Every image in spec order: initContainers, containers, ephemeralContainers, then image
/// volumes (`volumes[].image.reference`). Containers with an empty or missing image still
/// appear (image `""`) so the caller can report them; so do image volumes without a
/// reference.
pub fn images(spec: &PodSpec) -> Vec<ImageUse> {
    let container = |slot: ImageSlot, c: &Container| ImageUse {
        slot,
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        pull_policy: c.image_pull_policy.clone(),
    };
    let mut out = Vec::new();
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        out.push(container(ImageSlot::InitContainer, c));
    }
    for c in &spec.containers {
        out.push(container(ImageSlot::Container, c));
    }
    for c in spec.ephemeral_containers.as_deref().unwrap_or_default() {
        out.push(ImageUse {
            slot: ImageSlot::EphemeralContainer,
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            pull_policy: c.image_pull_policy.clone(),
        });
    }
    for v in spec.volumes.as_deref().unwrap_or_default() {
        if let Some(src) = &v.image {
            out.push(ImageUse {
                slot: ImageSlot::ImageVolume,
                name: v.name.clone(),
                image: src.reference.clone().unwrap_or_default(),
                pull_policy: src.pull_policy.clone(),
            });
        }
    }
    out
}

/// Names in `spec.imagePullSecrets` (skipping entries with an empty name), in order,
/// deduplicated keeping the first.
pub fn pull_secret_names(spec: &PodSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in spec.image_pull_secrets.as_deref().unwrap_or_default() {
        if !r.name.is_empty() && !out.contains(&r.name) {
            out.push(r.name.clone());
        }
    }
    out
}

/// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`, else `"default"`
/// (empty strings count as absent).
pub fn service_account(spec: &PodSpec) -> String {
    [&spec.service_account_name, &spec.service_account]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::workload::tests::{spec, C, E, I, V};
    use serde_json::json;

    #[test]
    fn images_order_empty_images_and_never() {
        let s = spec(json!({
            "containers": [{"name": "main"}, {"name": "side", "image": " spaced ", "imagePullPolicy": "Never"}],
            "initContainers": [{"name": "init", "image": "i:1"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "img", "image": {}},
                {"name": "model", "image": {"reference": "m:1", "pullPolicy": "Always"}}
            ]
        }));
        let got = images(&s);
        let short: Vec<_> = got
            .iter()
            .map(|u| (u.slot, u.name.as_str(), u.image.as_str()))
            .collect();
        assert_eq!(
            short,
            vec![
                (I, "init", "i:1"),
                (C, "main", ""),
                (C, "side", " spaced "),
                (E, "dbg", "busybox"),
                (V, "img", ""),
                (V, "model", "m:1"),
            ]
        );
        assert_eq!(got[0].pull_policy, None);
        assert!(got[2].pull_never());
        assert!(!got[5].pull_never());
    }

    #[test]
    fn pull_secrets_and_service_account_rules() {
        let s = spec(json!({
            "containers": [],
            "imagePullSecrets": [{"name": "a"}, {}, {"name": ""}, {"name": "b"}, {"name": "a"}],
            "serviceAccount": "legacy"
        }));
        assert_eq!(pull_secret_names(&s), vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(service_account(&s), "legacy");
        let s = spec(json!({"containers": [], "serviceAccountName": "", "serviceAccount": ""}));
        assert_eq!(service_account(&s), "default");
        let s =
            spec(json!({"containers": [], "serviceAccountName": "new", "serviceAccount": "old"}));
        assert_eq!(service_account(&s), "new");
    }
}
