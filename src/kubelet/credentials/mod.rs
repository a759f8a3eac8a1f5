//! Registry credentials exactly as the kubelet sees them.
//!
//! This folder owns:
//! * [`Credential`], a username/password pair whose `Debug` never shows the secret, and the
//!   Secret types and data keys the kubelet reads pull credentials from (the one set);
//! * `docker_config`: decoding docker configs — `kubernetes.io/dockerconfigjson` and
//!   `kubernetes.io/dockercfg` secret payloads and docker client `config.json` files — with
//!   the semantics of kubelet `pkg/credentialprovider/config.go`, including the Go
//!   `encoding/json` behaviour it inherits (`go_json`: case-insensitive field names,
//!   duplicate keys, `null`s, invalid UTF-8); and which secrets the kubelet uses at all
//!   (`secrets.MakeDockerKeyring`);
//! * `keyring`: the kubelet's `BasicDockerKeyring` (`keyring.go`): how registry keys are
//!   normalized, and which credentials are offered for an image, in which order. It emulates
//!   the Go standard-library pieces that keyring relies on (`go`: `net/url.Parse`,
//!   `net.SplitHostPort`, `path/filepath.Match`) byte for byte;
//! * `provider`: the kubelet's `CredentialProviderConfig` (which images credential provider
//!   plugins serve, KEP-4412's required ServiceAccount annotations), validated as the
//!   kubelet validates it.
//!
//! It does not fetch secrets, talk to registries, or decide whether a pull would succeed.
//! Depends on: [`crate::text`] and [`crate::kubelet::reference`] only.
//! Kubelet reference: kubernetes v1.35 `pkg/credentialprovider/{config.go,keyring.go}` and
//! `pkg/credentialprovider/secrets/secrets.go`, built with Go 1.25.

mod docker_config;
pub(crate) mod go;
mod go_json;
mod keyring;
mod provider;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

pub use docker_config::{
    parse_docker_config_file, parse_dockercfg, parse_dockerconfigjson, parse_secret, DockerConfig,
    DockerConfigEntry, SecretError,
};
pub use keyring::{urls_match_str, Keyring, MatchedCredential, DEFAULT_REGISTRY_KEY};
pub use provider::{
    CredentialProviderConfigFile, CredentialProviders, Provider, ProviderFile, ProviderMatch,
};

/// A username/password pair. `Debug` prints neither (only a fingerprint prefix); there is no
/// `Display`. Cheap to clone (shared), its fingerprint computed once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential(std::sync::Arc<CredentialInner>);

#[derive(PartialEq, Eq, Hash)]
struct CredentialInner {
    username: String,
    password: String,
    /// Derived from the two above (so equality and hashing stay those of the pair).
    fingerprint: String,
}

impl Credential {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        let (username, password) = (username.into(), password.into());
        let fingerprint = fingerprint(&username, &password);
        Credential(std::sync::Arc::new(CredentialInner {
            username,
            password,
            fingerprint,
        }))
    }

    pub fn username(&self) -> &str {
        &self.0.username
    }

    pub fn password(&self) -> &str {
        &self.0.password
    }

    /// Stable within one process, not reversible: hex of the first 16 bytes of
    /// sha256(process-random salt || len-prefixed username || len-prefixed password).
    /// Used as a cache key so results are never shared between different credentials.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
}

fn fingerprint(username: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(process_salt());
    hasher.update((username.len() as u64).to_le_bytes());
    hasher.update(username.as_bytes());
    hasher.update((password.len() as u64).to_le_bytes());
    hasher.update(password.as_bytes());
    crate::text::hex(&hasher.finalize()[..16])
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 12 of its 32 hex digits, and the mark of the cut.
        let short = crate::text::clip(self.fingerprint(), 12 + crate::text::ELLIPSIS.len_utf8());
        f.debug_struct("Credential")
            .field("fingerprint", &short)
            .finish()
    }
}

/// 32 random bytes per process: `RandomState` keys (seeded from the OS) mixed with the time.
fn process_salt() -> &'static [u8; 32] {
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    SALT.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut salt = [0u8; 32];
        for (i, chunk) in salt.chunks_exact_mut(8).enumerate() {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u128(nanos);
            hasher.write_usize(i);
            hasher.write_u32(std::process::id());
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        salt
    })
}

/// Secret type and data key of `kubernetes.io/dockerconfigjson` secrets.
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type and data key of legacy `kubernetes.io/dockercfg` secrets.
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const DOCKERCFG_KEY: &str = ".dockercfg";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::reference::ImageRef;

    pub(super) const USER: &str = "alice-USER";
    pub(super) const SECRET: &str = "s3cr3t-PASSWORD";

    #[test]
    fn debug_never_leaks_secrets() {
        let payload =
            format!(r#"{{"auths":{{"r.io":{{"username":"{USER}","password":"{SECRET}"}}}}}}"#);
        let config = parse_dockerconfigjson(payload.as_bytes()).unwrap();
        assert_eq!(config.entries[0].credential.password(), SECRET);
        let mut keyring = Keyring::new();
        keyring.add("secret/regcred", &config);
        let matched = keyring.lookup(&ImageRef::parse("r.io/app").unwrap());
        assert_eq!(matched.len(), 1);
        let credential = Credential::new(USER, SECRET);
        for shown in [
            format!("{credential:?}"),
            format!("{credential:#?}"),
            format!("{config:?}"),
            format!("{keyring:?}"),
            format!("{matched:?}"),
        ] {
            assert!(!shown.contains(USER) && !shown.contains(SECRET), "{shown}");
            assert!(shown.contains("fingerprint"), "{shown}");
        }
        assert!(format!("{keyring:?}").contains("r.io"));
    }

    #[test]
    fn fingerprints() {
        let a = Credential::new("user", "pass");
        assert_eq!(
            a.fingerprint(),
            Credential::new("user", "pass").fingerprint()
        );
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
        assert!(a.fingerprint().bytes().all(|b| b.is_ascii_hexdigit()));
        for other in [
            Credential::new("user", "pass2"),
            Credential::new("user2", "pass"),
            Credential::new("userp", "ass"), // length prefixes keep these apart
            Credential::new("", "userpass"),
            Credential::new("pass", "user"),
        ] {
            assert_ne!(a.fingerprint(), other.fingerprint());
        }
        assert!(!a.fingerprint().contains("7573657270617373")); // not hex of the plain text
        assert_eq!(
            format!("{a:?}"),
            format!(
                "Credential {{ fingerprint: \"{}…\" }}",
                &a.fingerprint()[..12]
            )
        );
    }
}
