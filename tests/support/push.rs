//! Pushing real images with the distribution API (reqwest, monolithic blob uploads).

use super::media;
use super::registry::TestRegistry;
use super::util::{gzip_stored, nonce, sha256_digest, tar_with_file};
use super::{Auth, ADMIN, TOKEN_SERVICE};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

/// Credentials of one push session.
enum PushAuth {
    None,
    Basic,
    Bearer(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Oci,
    Docker,
}

/// A pushed manifest: digest, size, media type.
struct Pushed {
    digest: String,
    size: usize,
    media_type: &'static str,
}

struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    fn parse(platform: &str) -> Platform {
        let parts: Vec<&str> = platform.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            },
            [os, arch, variant] => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            },
            _ => panic!("platform {platform:?}: expected OS/ARCH or OS/ARCH/VARIANT"),
        }
    }

    /// `{"architecture","os","variant"?}`
    fn json(&self) -> Value {
        let mut v = json!({"architecture": self.architecture, "os": self.os});
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

fn escape_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": sha256_digest(data), "size": data.len()})
}

async fn expect_status(
    response: reqwest::Response,
    expected: StatusCode,
    what: &str,
) -> reqwest::Response {
    if response.status() != expected {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        panic!("{what}: expected {expected}, got {status}: {body}");
    }
    response
}

impl TestRegistry {
    /// Push a single-platform OCI image (tiny tar layer, config, OCI manifest) under `tag`
    /// (None: by digest only). `platform`: "linux/amd64", "linux/arm64/v8", "windows/amd64"…
    /// Every call makes a distinct image. Returns the manifest digest "sha256:…".
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, platform: &str) -> String {
        let auth = self.push_auth(repo, "pull,push").await;
        self.push_single(&auth, repo, tag, platform, Flavor::Oci)
            .await
            .digest
    }

    /// Same as [`push_image`](Self::push_image) but a Docker v2 schema 2 manifest (with a
    /// gzip layer).
    pub async fn push_docker_image(&self, repo: &str, tag: Option<&str>, platform: &str) -> String {
        let auth = self.push_auth(repo, "pull,push").await;
        self.push_single(&auth, repo, tag, platform, Flavor::Docker)
            .await
            .digest
    }

    /// One OCI image per platform (by digest) plus an OCI image index under `tag` listing
    /// them. `with_attestation`: one more entry, platform unknown/unknown, annotated
    /// `vnd.docker.reference.type: attestation-manifest` (and `vnd.docker.reference.digest`
    /// = the first image), pointing to a real in-toto attestation manifest as buildx
    /// pushes. Returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        platforms: &[&str],
        with_attestation: bool,
    ) -> String {
        let auth = self.push_auth(repo, "pull,push").await;
        let mut entries = Vec::new();
        for platform in platforms {
            let pushed = self
                .push_single(&auth, repo, None, platform, Flavor::Oci)
                .await;
            entries.push(json!({
                "mediaType": pushed.media_type,
                "digest": pushed.digest,
                "size": pushed.size,
                "platform": Platform::parse(platform).json(),
            }));
        }
        if with_attestation {
            let subject = entries
                .first()
                .map(|e| e["digest"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            let pushed = self.push_attestation(&auth, repo, &subject).await;
            entries.push(json!({
                "mediaType": pushed.media_type,
                "digest": pushed.digest,
                "size": pushed.size,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": entries,
        });
        let body = serde_json::to_vec(&index).expect("index JSON");
        self.put_manifest(&auth, repo, Some(tag), media::OCI_INDEX, &body)
            .await
            .digest
    }

    /// Pushes a linux/amd64 OCI image under each tag (one shared layer, a distinct config
    /// per tag, so every tag has its own digest).
    pub async fn push_tags(&self, repo: &str, tags: &[&str]) {
        let auth = self.push_auth(repo, "pull,push").await;
        let tar = tar_with_file(
            "pullcheck.txt",
            format!("pullcheck push_tags\nrepo={repo}\nnonce={}\n", nonce()).as_bytes(),
        );
        let layer_digest = self.upload_blob(&auth, repo, &tar).await;
        let platform = Platform::parse("linux/amd64");
        for tag in tags {
            let mut config = platform.json();
            config["rootfs"] = json!({"type": "layers", "diff_ids": [layer_digest]});
            config["config"] = json!({"Labels": {"pullcheck.test/tag": tag}});
            let config = serde_json::to_vec(&config).expect("config JSON");
            self.upload_blob(&auth, repo, &config).await;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_MANIFEST,
                "config": descriptor(media::OCI_CONFIG, &config),
                "layers": [descriptor(media::OCI_LAYER_TAR, &tar)],
            });
            let body = serde_json::to_vec(&manifest).expect("manifest JSON");
            self.put_manifest(&auth, repo, Some(tag), media::OCI_MANIFEST, &body)
                .await;
        }
    }

    /// `DELETE /v2/<repo>/manifests/<digest>` (expects 202).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        let auth = self.push_auth(repo, "delete").await;
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.url());
        let response = self
            .authed(Method::DELETE, &url, &auth)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
        expect_status(response, StatusCode::ACCEPTED, &format!("DELETE {url}")).await;
    }

    async fn push_auth(&self, repo: &str, actions: &str) -> PushAuth {
        match self.auth {
            Auth::None => PushAuth::None,
            Auth::Htpasswd => PushAuth::Basic,
            Auth::Token => {
                let realm = self.token_realm().expect("token server");
                let scope = format!("repository:{repo}:{actions}");
                let url = format!(
                    "{realm}?service={}&scope={}",
                    escape_query(TOKEN_SERVICE),
                    escape_query(&scope)
                );
                let response = self
                    .client
                    .get(&url)
                    .basic_auth(ADMIN.0, Some(ADMIN.1))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET {url}: {e}"));
                let response = expect_status(response, StatusCode::OK, &format!("GET {url}")).await;
                let body: Value =
                    serde_json::from_slice(&response.bytes().await.expect("token body"))
                        .expect("token JSON");
                PushAuth::Bearer(body["token"].as_str().expect("token field").to_string())
            }
        }
    }

    fn authed(&self, method: Method, url: &str, auth: &PushAuth) -> RequestBuilder {
        let builder = self.client.request(method, url);
        match auth {
            PushAuth::None => builder,
            PushAuth::Basic => builder.basic_auth(ADMIN.0, Some(ADMIN.1)),
            PushAuth::Bearer(token) => builder.bearer_auth(token),
        }
    }

    /// Monolithic upload: POST …/blobs/uploads/ then PUT <Location>&digest=…
    async fn upload_blob(&self, auth: &PushAuth, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let base = self.url();
        let start = format!("{base}/v2/{repo}/blobs/uploads/");
        let response = self
            .authed(Method::POST, &start, auth)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {start}: {e}"));
        let response =
            expect_status(response, StatusCode::ACCEPTED, &format!("POST {start}")).await;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("POST {start}: no Location header"))
            .to_string();
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            format!("{start}{location}")
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(&escape_query(&digest));
        let response = self
            .authed(Method::PUT, &url, auth)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        expect_status(response, StatusCode::CREATED, &format!("PUT {url}")).await;
        digest
    }

    /// PUT a manifest under `reference` (None: its digest); checks Docker-Content-Digest.
    async fn put_manifest(
        &self,
        auth: &PushAuth,
        repo: &str,
        reference: Option<&str>,
        media_type: &'static str,
        body: &[u8],
    ) -> Pushed {
        let digest = sha256_digest(body);
        let reference = reference.unwrap_or(&digest);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.url());
        let response = self
            .authed(Method::PUT, &url, auth)
            .header(CONTENT_TYPE, media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let response = expect_status(response, StatusCode::CREATED, &format!("PUT {url}")).await;
        let answered = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(answered, digest, "PUT {url}: Docker-Content-Digest");
        Pushed {
            digest,
            size: body.len(),
            media_type,
        }
    }

    async fn push_single(
        &self,
        auth: &PushAuth,
        repo: &str,
        tag: Option<&str>,
        platform: &str,
        flavor: Flavor,
    ) -> Pushed {
        let parsed = Platform::parse(platform);
        let content = format!(
            "pullcheck test image\nrepo={repo}\ntag={}\nplatform={platform}\nnonce={}\n",
            tag.unwrap_or("-"),
            nonce()
        );
        let tar = tar_with_file("pullcheck.txt", content.as_bytes());
        let (layer, layer_type, config_type, manifest_type) = match flavor {
            Flavor::Oci => (
                tar.clone(),
                media::OCI_LAYER_TAR,
                media::OCI_CONFIG,
                media::OCI_MANIFEST,
            ),
            Flavor::Docker => (
                gzip_stored(&tar),
                media::DOCKER_LAYER_GZIP,
                media::DOCKER_CONFIG,
                media::DOCKER_MANIFEST,
            ),
        };
        let mut config = parsed.json();
        config["rootfs"] = json!({"type": "layers", "diff_ids": [sha256_digest(&tar)]});
        config["config"] = json!({});
        let config = serde_json::to_vec(&config).expect("config JSON");
        self.upload_blob(auth, repo, &layer).await;
        self.upload_blob(auth, repo, &config).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, &config),
            "layers": [descriptor(layer_type, &layer)],
        });
        let body = serde_json::to_vec(&manifest).expect("manifest JSON");
        self.put_manifest(auth, repo, tag, manifest_type, &body)
            .await
    }

    /// A buildx-like attestation manifest (in-toto layer) for `subject`, pushed by digest.
    async fn push_attestation(&self, auth: &PushAuth, repo: &str, subject: &str) -> Pushed {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": format!("pkg:docker/{repo}"), "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
            "predicate": {"spdxVersion": "SPDX-2.3", "name": "pullcheck-test", "nonce": nonce()},
        });
        let statement = serde_json::to_vec(&statement).expect("statement JSON");
        let config = json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&statement)]},
        });
        let config = serde_json::to_vec(&config).expect("config JSON");
        self.upload_blob(auth, repo, &statement).await;
        self.upload_blob(auth, repo, &config).await;
        let mut layer = descriptor(media::IN_TOTO, &statement);
        layer["annotations"] = json!({"in-toto.io/predicate-type": "https://spdx.dev/Document"});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": descriptor(media::OCI_CONFIG, &config),
            "layers": [layer],
        });
        let body = serde_json::to_vec(&manifest).expect("manifest JSON");
        self.put_manifest(auth, repo, None, media::OCI_MANIFEST, &body)
            .await
    }
}
