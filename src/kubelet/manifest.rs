//! What a registry serves, read for platforms and sizes: image indexes / manifest lists,
//! image manifests and image config blobs, with their media types; containerd's rules
//! decide which documents are accepted (schema 1 is refused).
//!
//! The documents are `oci-client`'s types ([`OciImageIndex`], [`ImageIndexEntry`] and its
//! [`oci_client::manifest::Platform`], [`OciImageManifest`] and its [`OciDescriptor`]s) and
//! media-type constants. pullcheck keeps around them what they do not do:
//!
//! - the media-type decision (`Content-Type` over the body's `mediaType` over the shape),
//!   schema 1 refusal and containerd's index/manifest mismatch check, on the JSON first;
//! - digest validation (a config digest goes into a URL), non-negative sizes;
//! - runnable entries only: attestations, `unknown/unknown` and artifact entries skipped;
//! - the image config is read by a thin struct of our own: `oci-client`'s `ConfigFile` has
//!   no `variant`, `os.version` or `os.features`, requires `rootfs`, and refuses a config
//!   whose `created` is not RFC 3339 (containerd reads only the platform fields).
//!
//! `oci-client`'s types are stricter than containerd in one way: an index entry missing a
//! required descriptor field (`mediaType`, `digest`, `size`, a platform's `os` or
//! `architecture`) makes the whole index invalid, where containerd would only fail if it
//! picked that entry. An invalid manifest is a transient finding (admitted with a warning
//! naming the field), never a denial. Its `Arch` also reads `armbe` as `arm64be` (no
//! Kubernetes node runs either).
//!
//! Pure code over bytes: no I/O. Nothing here panics on any input, and error messages
//! echo at most [`super::platform::MAX_ECHO`] bytes of what they were given.

use std::collections::{BTreeMap, HashSet};

use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest, IMAGE_CONFIG_MEDIA_TYPE,
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use serde::Deserialize;
use serde_json::Value;

use super::platform::{clip_echo, Platform, PlatformError};

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = OCI_IMAGE_INDEX_MEDIA_TYPE;
/// Docker manifest list (schema 2).
pub const MEDIA_DOCKER_LIST: &str = IMAGE_MANIFEST_LIST_MEDIA_TYPE;
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = OCI_IMAGE_MEDIA_TYPE;
/// Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = IMAGE_MANIFEST_MEDIA_TYPE;
/// OCI image config blob.
pub const MEDIA_OCI_CONFIG: &str = IMAGE_CONFIG_MEDIA_TYPE;
/// Docker image config blob.
pub const MEDIA_DOCKER_CONFIG: &str = IMAGE_DOCKER_CONFIG_MEDIA_TYPE;

// Schema 1: not in oci-client (it never reads them), refused by containerd 2.
const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a manifest body is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// Image index / manifest list: the platforms of its runnable entries (entries with a
    /// platform, minus attestations and `unknown` platforms), as written (not normalized),
    /// in document order, without duplicates; and, for each, the digest of the first entry
    /// with that platform (empty when it is not a valid digest: never fetched).
    Index {
        platforms: Vec<Platform>,
        manifests: Vec<String>,
    },
    /// Single image manifest: digest of its config blob (fetch it to learn the platform),
    /// the config media type, and the compressed size of the image (config + layers).
    Image {
        config_digest: String,
        config_media_type: String,
        size: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaClass {
    Index,
    Image,
    Schema1,
    /// Missing or too generic to say (`application/json`, `text/plain`, ...).
    Generic,
    Other,
}

fn classify(media_type: &str) -> MediaClass {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    match essence.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => MediaClass::Index,
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => MediaClass::Image,
        MEDIA_DOCKER_SCHEMA1 | MEDIA_DOCKER_SCHEMA1_SIGNED => MediaClass::Schema1,
        ""
        | "application/json"
        | "text/plain"
        | "application/octet-stream"
        | "binary/octet-stream" => MediaClass::Generic,
        _ => MediaClass::Other,
    }
}

/// Our platform from `oci-client`'s: `None` unless both os and architecture are non-empty.
fn platform_of(p: &oci_client::manifest::Platform) -> Option<Platform> {
    let os = p.os.to_string();
    let architecture = p.architecture.to_string();
    if os.is_empty() || architecture.is_empty() {
        return None;
    }
    Some(Platform {
        os,
        architecture,
        variant: p.variant.clone().filter(|s| !s.is_empty()),
        os_version: p.os_version.clone().filter(|s| !s.is_empty()),
        os_features: p.os_features.clone().unwrap_or_default(),
    })
}

/// The platform fields of an image config (see the module's notes on `ConfigFile`).
#[derive(Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default, rename = "os.version")]
    os_version: Option<String>,
    #[serde(default, rename = "os.features")]
    os_features: Option<Vec<String>>,
}

/// Classifies a manifest body. The `Content-Type` header (parameters such as
/// `; charset=utf-8` ignored) decides when it names an index, image manifest or schema 1
/// manifest, as in containerd's resolver; when it is missing or generic
/// (`application/json`, `text/plain`, `application/octet-stream`) the body's `mediaType`
/// decides, and without one its shape (`manifests` array: index, `config` object: image).
/// Any other content type is refused, as containerd cannot unpack it.
///
/// Errors for bodies that are not JSON objects, schema 1 manifests (by media type,
/// `"schemaVersion": 1` or `fsLayers`), bodies that contradict the declared kind
/// (containerd's `validateMediaType`), unknown shapes, documents `oci-client`'s types do
/// not read, bad config digests and negative sizes.
pub fn parse_manifest(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ManifestKind, PlatformError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| PlatformError::ManifestJson(clip_echo(&e.to_string())))?;
    let Value::Object(obj) = &doc else {
        return Err(PlatformError::ManifestJson(
            "expected a JSON object".to_owned(),
        ));
    };
    let body_media_type = match obj.get("mediaType") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(PlatformError::InvalidManifest(
                "\"mediaType\" is not a string".to_owned(),
            ))
        }
    };
    let header_class = content_type.map_or(MediaClass::Generic, classify);
    let body_class = classify(body_media_type);
    let schema_version_1 = obj.get("schemaVersion").and_then(Value::as_f64) == Some(1.0);
    if header_class == MediaClass::Schema1
        || body_class == MediaClass::Schema1
        || schema_version_1
        || obj.contains_key("fsLayers")
    {
        return Err(PlatformError::Schema1);
    }

    let has_manifests = obj.get("manifests").is_some_and(Value::is_array);
    let has_config = obj.get("config").is_some_and(Value::is_object);
    let (class, declared) = match (header_class, body_class) {
        (MediaClass::Index | MediaClass::Image, _) => {
            (header_class, content_type.unwrap_or_default())
        }
        (MediaClass::Other, _) => {
            return Err(PlatformError::UnsupportedMediaType(clip_echo(
                content_type.unwrap_or_default(),
            )))
        }
        (_, MediaClass::Index | MediaClass::Image) => (body_class, body_media_type),
        (_, MediaClass::Other) => {
            return Err(PlatformError::UnsupportedMediaType(clip_echo(
                body_media_type,
            )))
        }
        _ => match (has_manifests, has_config) {
            (true, false) => (MediaClass::Index, ""),
            (false, true) => (MediaClass::Image, ""),
            _ => return Err(PlatformError::UnknownManifest),
        },
    };

    // containerd's validateMediaType: the body must not be the other kind.
    let non_empty = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    let mismatch = |found: &str| PlatformError::MediaTypeMismatch {
        declared: clip_echo(declared),
        found: found.to_owned(),
    };
    if class == MediaClass::Image && (non_empty("manifests") || body_class == MediaClass::Index) {
        return Err(mismatch("an image index"));
    }
    if class == MediaClass::Index
        && (non_empty("config") || non_empty("layers") || body_class == MediaClass::Image)
    {
        return Err(mismatch("an image manifest"));
    }

    let invalid = |e: serde_json::Error| PlatformError::InvalidManifest(clip_echo(&e.to_string()));
    if class == MediaClass::Index {
        let index: OciImageIndex = serde_json::from_value(doc).map_err(invalid)?;
        let (platforms, manifests) = index_platforms(index.manifests);
        return Ok(ManifestKind::Index {
            platforms,
            manifests,
        });
    }
    let image: OciImageManifest = serde_json::from_value(doc).map_err(invalid)?;
    validate_digest(&image.config.digest)?;
    let size = compressed_size(&image)?;
    Ok(ManifestKind::Image {
        config_digest: image.config.digest,
        config_media_type: image.config.media_type,
        size,
    })
}

/// Σ `layers[].size` + `config.size`: what a node downloads for the image (foreign layers
/// with `urls` included: they are downloaded too, from elsewhere).
fn compressed_size(image: &OciImageManifest) -> Result<u64, PlatformError> {
    let size = |d: &OciDescriptor| {
        u64::try_from(d.size).map_err(|_| {
            PlatformError::InvalidManifest(format!(
                "negative size {} of {}",
                d.size,
                clip_echo(&d.digest)
            ))
        })
    };
    std::iter::once(&image.config)
        .chain(&image.layers)
        .try_fold(0u64, |sum, d| Ok(sum.saturating_add(size(d)?)))
}

/// Runnable entries' platforms, in order, without duplicates, with the digest of the first
/// entry of each. Skipped: entries without a platform (or without os/architecture),
/// BuildKit attestations (`unknown/unknown`, `vnd.docker.reference.type:
/// attestation-manifest`) and entries whose media type is neither a manifest nor an index
/// (artifacts).
fn index_platforms(entries: Vec<ImageIndexEntry>) -> (Vec<Platform>, Vec<String>) {
    let mut platforms: Vec<Platform> = Vec::new();
    let mut digests: Vec<String> = Vec::new();
    // Linear in the number of entries: a registry controls this list (a 4 MB index holds
    // ~60k entries, and `out.contains` made that minutes of CPU).
    let mut seen: HashSet<Platform> = HashSet::new();
    for entry in entries {
        let runnable_type = matches!(
            classify(&entry.media_type),
            MediaClass::Index | MediaClass::Image
        );
        let attestation = entry
            .annotations
            .as_ref()
            .is_some_and(|a: &BTreeMap<_, _>| {
                a.get("vnd.docker.reference.type")
                    .is_some_and(|t| t == "attestation-manifest")
            });
        if !runnable_type || attestation {
            continue;
        }
        let Some(platform) = entry.platform.as_ref().and_then(platform_of) else {
            continue;
        };
        if platform.os.eq_ignore_ascii_case("unknown")
            || platform.architecture.eq_ignore_ascii_case("unknown")
        {
            continue;
        }
        if seen.insert(platform.clone()) {
            platforms.push(platform);
            digests.push(if validate_digest(&entry.digest).is_ok() {
                entry.digest
            } else {
                String::new()
            });
        }
    }
    (platforms, digests)
}

/// OCI digest grammar (`algorithm:encoded`), with the registered algorithms' exact
/// lengths. The digest goes into a registry URL, so nothing else may pass.
fn validate_digest(digest: &str) -> Result<(), PlatformError> {
    let bad = |why: &str| {
        Err(PlatformError::InvalidManifest(format!(
            "config digest {:?} {why}",
            clip_echo(digest)
        )))
    };
    if digest.is_empty() {
        return Err(PlatformError::InvalidManifest(
            "image manifest config has no digest".to_owned(),
        ));
    }
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return bad("is not algorithm:hex");
    };
    let algo_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    if !algo_ok || !encoded_ok || digest.len() > 1024 {
        return bad("is not a valid digest");
    }
    let hex_len = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    if let Some(len) = hex_len {
        let lower_hex = encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if encoded.len() != len || !lower_hex {
            return bad(&format!("is not {len} lowercase hex digits"));
        }
    }
    Ok(())
}

/// The platform in an image config blob: top-level `os`, `architecture`, `variant` and
/// `os.version` (other fields are ignored). Missing or empty os/architecture is an error.
pub fn platform_from_config(body: &[u8]) -> Result<Platform, PlatformError> {
    let json_err = |e: serde_json::Error| PlatformError::ConfigJson(clip_echo(&e.to_string()));
    let doc: Value = serde_json::from_slice(body).map_err(json_err)?;
    if !doc.is_object() {
        // serde would also accept a JSON array as a struct.
        return Err(PlatformError::ConfigJson(
            "expected a JSON object".to_owned(),
        ));
    }
    let raw: ConfigPlatform = serde_json::from_value(doc).map_err(json_err)?;
    let os = raw.os.filter(|s| !s.is_empty());
    let architecture = raw.architecture.filter(|s| !s.is_empty());
    let (Some(os), Some(architecture)) = (os, architecture) else {
        return Err(PlatformError::ConfigNoPlatform);
    };
    Ok(Platform {
        os,
        architecture,
        variant: raw.variant.filter(|s| !s.is_empty()),
        os_version: raw.os_version.filter(|s| !s.is_empty()),
        os_features: raw.os_features.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn errors_echo_at_most_200_chars() {
        let long = "x".repeat(10_000);
        let msg = Platform::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        let ct = format!("application/vnd.{long}");
        let msg = parse_manifest(Some(&ct), br#"{"schemaVersion":2}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        let body = format!(r#"{{"config": "{long}"}}"#);
        let msg = parse_manifest(Some(MEDIA_OCI_MANIFEST), body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 300, "{msg}");
    }

    const OCI_INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:0b7a4a4d1c7d3e2c9a3b1b1f86b6b7c4f2b5a9e1f0b1f1a2c3d4e5f60718293a",
          "size": 1020,
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:1c8b5b5e2d8e4f3d0b4c2c2097c7c8d5f3c6b0f2f1c2f2b3d4e5f60718293a4b",
          "size": 1020,
          "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:2d9c6c6f3e9f5a4e1c5d3d31a8d8d9e6a4d7c1a3a2d3a3c4e5f60718293a4b5c",
          "size": 839,
          "annotations": {
            "vnd.docker.reference.digest": "sha256:0b7a4a4d1c7d3e2c9a3b1b1f86b6b7c4f2b5a9e1f0b1f1a2c3d4e5f60718293a",
            "vnd.docker.reference.type": "attestation-manifest"
          },
          "platform": { "architecture": "unknown", "os": "unknown" }
        }
      ]
    }"#;

    const DOCKER_LIST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
      "manifests": [
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:3e0f7e8e4b9e6b5f2d6e4e42b9e9eaf7b5e8d2b4b3e4b4d5e6f70718293a4b5c",
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:4f1f8f9f5cae7c6a3e7f5f53cafafb08c6f9e3c5c4f5c5e6f70718293a4b5c6d",
          "platform": { "architecture": "arm", "os": "linux", "variant": "v7" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:5a2a9a0a6dbf8d7b4f8a6a64dbabac19d7a0f4d6d5a6d6f70718293a4b5c6d7e",
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 1125,
          "digest": "sha256:6b3bab1b7ec09e8c5a9b7b75ecbcbd2ae8b1a5e7e6b7e7a80718293a4b5c6d7e",
          "platform": {
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.20348.2113"
          }
        }
      ]
    }"#;

    const OCI_MANIFEST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
        "size": 7023
      },
      "layers": [
        {
          "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
          "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
          "size": 32654
        }
      ]
    }"#;

    const DOCKER_MANIFEST_NO_MEDIA_TYPE: &str = r#"{
      "schemaVersion": 2,
      "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1469,
        "digest": "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"
      },
      "layers": [
        {
          "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
          "size": 2479,
          "digest": "sha256:c1ec31eb59444d78df06a974d155e597c894ab4cda84f08294145e845394988e"
        }
      ]
    }"#;

    const SCHEMA1: &str = r#"{
      "schemaVersion": 1,
      "name": "library/hello-world",
      "tag": "latest",
      "architecture": "amd64",
      "fsLayers": [
        { "blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4" }
      ],
      "history": [],
      "signatures": []
    }"#;

    fn index(platforms: &[&str]) -> ManifestKind {
        ManifestKind::Index {
            platforms: platforms
                .iter()
                .map(|s| Platform::parse(s).unwrap())
                .collect(),
            manifests: Vec::new(),
        }
    }

    /// The kind without the entries' digests (tested on their own).
    fn without_digests(kind: ManifestKind) -> ManifestKind {
        match kind {
            ManifestKind::Index { platforms, .. } => ManifestKind::Index {
                platforms,
                manifests: Vec::new(),
            },
            image => image,
        }
    }

    #[rstest]
    #[case::oci_index(Some(MEDIA_OCI_INDEX), OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_index_no_content_type(None, OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_index_params(
        Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
        OCI_INDEX,
        index(&["linux/amd64", "linux/arm64/v8"])
    )]
    #[case::oci_index_as_json(Some("application/json"), OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_manifest(
        Some(MEDIA_OCI_MANIFEST),
        OCI_MANIFEST,
        ManifestKind::Image {
            config_digest: "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7".into(),
            config_media_type: MEDIA_OCI_CONFIG.into(),
            size: 7023 + 32654,
        }
    )]
    #[case::docker_manifest(
        Some(MEDIA_DOCKER_MANIFEST),
        DOCKER_MANIFEST_NO_MEDIA_TYPE,
        ManifestKind::Image {
            config_digest: "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a".into(),
            config_media_type: MEDIA_DOCKER_CONFIG.into(),
            size: 1469 + 2479,
        }
    )]
    #[case::docker_manifest_by_shape(
        None,
        DOCKER_MANIFEST_NO_MEDIA_TYPE,
        ManifestKind::Image {
            config_digest: "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a".into(),
            config_media_type: MEDIA_DOCKER_CONFIG.into(),
            size: 1469 + 2479,
        }
    )]
    #[case::empty_index(Some(MEDIA_OCI_INDEX), r#"{"schemaVersion":2,"manifests":[]}"#, index(&[]))]
    #[case::index_by_shape(
        Some(""),
        r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:x","size":1,"platform":{"os":"linux","architecture":"s390x"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:y","size":1}
        ]}"#,
        index(&["linux/s390x"])
    )]
    #[case::artifact_entries_skipped(
        Some(MEDIA_OCI_INDEX),
        r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,
             "platform":{"os":"linux","architecture":"ppc64le"}},
            {"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"sha256:b","size":1,
             "platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,
             "platform":{"os":"linux","architecture":""}}
        ]}"#,
        index(&["linux/ppc64le"])
    )]
    fn manifest_ok(
        #[case] content_type: Option<&str>,
        #[case] body: &str,
        #[case] expected: ManifestKind,
    ) {
        assert_eq!(
            parse_manifest(content_type, body.as_bytes()).map(without_digests),
            Ok(expected)
        );
    }

    #[test]
    fn docker_list_dedups_and_keeps_os_version() {
        let ManifestKind::Index { platforms, .. } =
            parse_manifest(Some(MEDIA_DOCKER_LIST), DOCKER_LIST.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        let mut windows = Platform::parse("windows/amd64").unwrap();
        windows.os_version = Some("10.0.20348.2113".to_owned());
        assert_eq!(
            platforms,
            vec![
                Platform::parse("linux/amd64").unwrap(),
                Platform::parse("linux/arm/v7").unwrap(),
                windows
            ]
        );
    }

    #[test]
    fn huge_index_is_deduplicated_in_linear_time() {
        // Found while fuzzing (tests/fuzz): 50k distinct platforms took minutes.
        let entries: Vec<String> = (0..60_000)
            .map(|i| {
                format!(
                    r#"{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"sha256:{i:064x}","size":1,"platform":{{"os":"linux","architecture":"a{}"}}}}"#,
                    i % 50_000
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            entries.join(",")
        );
        let ManifestKind::Index { platforms, .. } = parse_manifest(None, body.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        assert_eq!(platforms.len(), 50_000);
        assert_eq!(platforms[49_999], Platform::parse("linux/a49999").unwrap());
    }

    #[rstest]
    #[case::schema1_body(None, SCHEMA1)]
    #[case::schema1_body_v2_header(Some(MEDIA_DOCKER_MANIFEST), SCHEMA1)]
    #[case::schema1_signed_header(
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        r#"{"schemaVersion":2}"#
    )]
    #[case::schema1_header(Some(MEDIA_DOCKER_SCHEMA1), SCHEMA1)]
    #[case::schema1_text_plain(Some("text/plain"), SCHEMA1)]
    fn schema1_refused(#[case] content_type: Option<&str>, #[case] body: &str) {
        let err = parse_manifest(content_type, body.as_bytes()).unwrap_err();
        assert_eq!(err, PlatformError::Schema1);
        assert!(err
            .to_string()
            .starts_with("schema 1 manifests are not supported by containerd 2.x"));
    }

    #[rstest]
    #[case::garbage(
        Some(MEDIA_OCI_INDEX),
        "<html>502 Bad Gateway</html>",
        "manifest is not valid JSON"
    )]
    #[case::empty(None, "", "manifest is not valid JSON")]
    #[case::not_object(None, "[1,2]", "manifest is not valid JSON")]
    #[case::unknown_shape(None, r#"{"schemaVersion":2}"#, "manifest is neither")]
    #[case::both_shapes(None, r#"{"manifests":[],"config":{}}"#, "manifest is neither")]
    #[case::artifact_header(
        Some("application/vnd.oci.artifact.manifest.v1+json"),
        r#"{"schemaVersion":2}"#,
        "unsupported manifest media type \"application/vnd.oci.artifact.manifest.v1+json\""
    )]
    #[case::artifact_body(
        None,
        r#"{"mediaType":"application/vnd.cncf.helm.chart.v1+json"}"#,
        "unsupported manifest media type"
    )]
    #[case::index_header_image_body(
        Some(MEDIA_OCI_INDEX),
        OCI_MANIFEST,
        "manifest media type mismatch"
    )]
    #[case::image_header_index_body(
        Some(MEDIA_DOCKER_MANIFEST),
        OCI_INDEX,
        "manifest media type mismatch"
    )]
    #[case::no_config(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"schemaVersion":2,"layers":[]}"#,
        "invalid manifest"
    )]
    #[case::no_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"config":{"mediaType":"x"}}"#,
        "invalid manifest"
    )]
    #[case::path_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:../../../v2/_catalog"},"layers":[]}"#,
        "invalid manifest"
    )]
    #[case::short_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:abc"},"layers":[]}"#,
        "invalid manifest"
    )]
    #[case::wrong_types(
        Some(MEDIA_OCI_INDEX),
        r#"{"manifests":[{"platform":"linux/amd64"}]}"#,
        "invalid manifest"
    )]
    #[case::media_type_number(None, r#"{"mediaType":7}"#, "invalid manifest")]
    fn manifest_err(#[case] content_type: Option<&str>, #[case] body: &str, #[case] prefix: &str) {
        let err = parse_manifest(content_type, body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(prefix), "{err}");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = parse_manifest(None, b"{\"mediaType\": \"\xff\"}").unwrap_err();
        assert!(matches!(err, PlatformError::ManifestJson(_)), "{err}");
        let err = platform_from_config(b"{\"os\": \"\xff\"}").unwrap_err();
        assert!(matches!(err, PlatformError::ConfigJson(_)), "{err}");
    }

    #[test]
    fn every_truncation_of_the_fixtures_is_handled() {
        for doc in [
            OCI_INDEX,
            DOCKER_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST_NO_MEDIA_TYPE,
            SCHEMA1,
        ] {
            for end in 0..doc.len() {
                let _ = parse_manifest(None, &doc.as_bytes()[..end]);
                let _ = parse_manifest(Some(MEDIA_OCI_INDEX), &doc.as_bytes()[..end]);
                let _ = platform_from_config(&doc.as_bytes()[..end]);
            }
        }
    }

    #[test]
    fn deeply_nested_body_is_an_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_manifest(None, body.as_bytes()).is_err());
        assert!(platform_from_config(body.as_bytes()).is_err());
    }

    #[rstest]
    #[case::plain(
        r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        Platform::new("linux", "amd64", None)
    )]
    #[case::variant(
        r#"{"architecture":"arm","os":"linux","variant":"v7","created":"2024-01-01T00:00:00Z"}"#,
        Platform::new("linux", "arm", Some("v7"))
    )]
    #[case::os_version(
        r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5329","variant":""}"#,
        Platform { os_version: Some("10.0.17763.5329".into()), ..Platform::new("windows", "amd64", None) }
    )]
    fn config_ok(#[case] body: &str, #[case] expected: Platform) {
        assert_eq!(platform_from_config(body.as_bytes()), Ok(expected));
    }

    #[rstest]
    #[case::no_architecture(r#"{"os":"linux","config":{}}"#, "image config has no os/architecture")]
    #[case::empty_os(
        r#"{"os":"","architecture":"amd64"}"#,
        "image config has no os/architecture"
    )]
    #[case::not_json("\u{0}", "image config is not valid JSON")]
    #[case::wrong_type(
        r#"{"os":"linux","architecture":64}"#,
        "image config is not valid JSON"
    )]
    #[case::array("[]", "image config is not valid JSON")]
    fn config_err(#[case] body: &str, #[case] expected: &str) {
        let err = platform_from_config(body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }

    #[test]
    fn index_entries_keep_the_digest_of_the_first_entry_per_platform() {
        let ManifestKind::Index {
            platforms,
            manifests,
        } = parse_manifest(Some(MEDIA_DOCKER_LIST), DOCKER_LIST.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        assert_eq!(platforms.len(), 3);
        assert_eq!(
            manifests,
            [
                "sha256:3e0f7e8e4b9e6b5f2d6e4e42b9e9eaf7b5e8d2b4b3e4b4d5e6f70718293a4b5c",
                "sha256:4f1f8f9f5cae7c6a3e7f5f53cafafb08c6f9e3c5c4f5c5e6f70718293a4b5c6d",
                "sha256:6b3bab1b7ec09e8c5a9b7b75ecbcbd2ae8b1a5e7e6b7e7a80718293a4b5c6d7e",
            ]
        );
        // A digest that could not go into a URL is never fetched.
        let body = r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../v2/_catalog","size":1,
             "platform":{"os":"linux","architecture":"amd64","os.features":["win32k"],"features":["sse4"]}}
        ]}"#;
        let ManifestKind::Index {
            platforms,
            manifests,
        } = parse_manifest(None, body.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        // os.features are kept: containerd's matcher reads them (platforms rc.4).
        let featured = Platform {
            os_features: vec!["win32k".into()],
            ..Platform::parse("linux/amd64").unwrap()
        };
        assert_eq!(platforms, [featured]);
        assert_eq!(manifests, [""]);
    }

    #[rstest]
    #[case::entry_without_size(
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}}]}"#,
        "missing field `size`"
    )]
    #[case::entry_without_media_type(
        r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","size":1}]}"#,
        "missing field `mediaType`"
    )]
    #[case::platform_without_architecture(
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux"}}]}"#,
        "missing field `architecture`"
    )]
    #[case::no_schema_version(r#"{"manifests":[]}"#, "missing field `schemaVersion`")]
    fn oci_client_names_the_missing_field(#[case] body: &str, #[case] field: &str) {
        let err = parse_manifest(Some(MEDIA_OCI_INDEX), body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid manifest: ") && err.contains(field),
            "{err}"
        );
    }

    #[test]
    fn sizes_are_config_plus_layers_and_never_negative() {
        let manifest = |config: i64, layers: &[i64]| {
            let layers: Vec<String> = layers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{i:064x}","size":{s}}}"#)
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"{MEDIA_OCI_CONFIG}","digest":"sha256:{:064x}","size":{config}}},"layers":[{}]}}"#,
                99,
                layers.join(",")
            )
        };
        let size = |body: String| match parse_manifest(Some(MEDIA_OCI_MANIFEST), body.as_bytes()) {
            Ok(ManifestKind::Image { size, .. }) => Ok(size),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(size(manifest(1_000, &[])), Ok(1_000));
        assert_eq!(
            size(manifest(1_469, &[3 << 30, 1 << 30, 12])),
            Ok(1_469 + (4 << 30) + 12)
        );
        assert_eq!(
            size(manifest(1, &[i64::MAX, i64::MAX])),
            Ok(u64::MAX),
            "saturates"
        );
        let err = size(manifest(1, &[5, -3])).unwrap_err();
        assert!(
            err.starts_with("invalid manifest: negative size -3"),
            "{err}"
        );
    }
}
