//! Registry credentials exactly as the kubelet sees them.
//!
//! This module owns:
//! * decoding docker configs: `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg`
//!   secret payloads and docker client `config.json` files, with the semantics of kubelet
//!   `pkg/credentialprovider/config.go`, including the Go `encoding/json` behaviour it
//!   inherits (case-insensitive field names, duplicate keys, `null`s, invalid UTF-8);
//! * deciding which secrets the kubelet uses at all (`secrets.MakeDockerKeyring`);
//! * the kubelet's `BasicDockerKeyring` (`keyring.go`): how registry keys are normalized, and
//!   which credentials are offered for an image, in which order. It emulates the Go
//!   standard-library pieces that keyring relies on (`net/url.Parse`, `net.SplitHostPort`,
//!   `path/filepath.Match`) byte for byte. See the `go` module for why it does not use the `url` crate;
//! * [`Credential`], a username/password pair whose `Debug` never shows the secret.
//!
//! It does not fetch secrets, talk to registries, or decide whether a pull would succeed.
//! Kubelet reference: kubernetes v1.35 `pkg/credentialprovider/{config.go,keyring.go}` and
//! `pkg/credentialprovider/secrets/secrets.go`, built with Go 1.25.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::reference::ImageRef;

// ---------------------------------------------------------------------------------------------
// Credential
// ---------------------------------------------------------------------------------------------

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
        let fingerprint = self.fingerprint();
        let short = fingerprint.get(..12).unwrap_or(fingerprint);
        f.debug_struct("Credential")
            .field("fingerprint", &format!("{short}…"))
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

// ---------------------------------------------------------------------------------------------
// Docker configs
// ---------------------------------------------------------------------------------------------

/// Entries of one docker config (a secret or config.json), in file order.
///
/// The kubelet holds a Go map (random iteration order, one value per key); here a key that
/// occurs several times in the JSON keeps its first position and its last value (Go: last
/// value wins). File order only matters for several entries of ONE config that normalize to
/// the same keyring key (e.g. `quay.io` and `https://quay.io`): the kubelet offers those in
/// random order, this module in file order.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    pub entries: Vec<DockerConfigEntry>,
}

#[derive(Clone, Debug)]
pub struct DockerConfigEntry {
    pub key: String,
    pub credential: Credential,
}

/// Why a docker config payload is broken. The kubelet then fails the whole pull.
/// Messages name the registry key of the entry at most, never usernames, passwords or auths.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not JSON at all. `detail` is serde_json's syntax message with line/column, which
    /// never quotes the input.
    #[error("is not valid JSON: {detail}")]
    InvalidJson { detail: String },
    /// JSON, but a value has a type Go's `json.Unmarshal` rejects (`"auths": []`,
    /// `"username": 1`, an entry that is a string, ...).
    #[error("is not a valid docker config: {detail}")]
    InvalidStructure { detail: String },
    /// `auth` is not base64 (Go `StdEncoding` if it ends in '=', else `RawStdEncoding`).
    #[error("auth of entry {key:?} is not valid base64")]
    InvalidAuthBase64 { key: String },
    /// `auth` decodes to something without ':'.
    #[error("auth of entry {key:?} must be base64(username:password)")]
    AuthMissingColon { key: String },
    /// `auth` decodes to bytes that are not UTF-8. The kubelet would pass such raw bytes on;
    /// this crate cannot represent them, so it reports them instead.
    #[error("auth of entry {key:?} does not decode to UTF-8 text")]
    NotUtf8 { key: String },
}

/// Secret type and data key of `kubernetes.io/dockerconfigjson` secrets.
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type and data key of legacy `kubernetes.io/dockercfg` secrets.
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// `kubernetes.io/dockerconfigjson` payload: `{"auths": {KEY: ENTRY}}`. A missing or null
/// "auths" is an empty config, like Go's `json.Unmarshal`.
pub fn parse_dockerconfigjson(bytes: &[u8]) -> Result<DockerConfig, SecretError> {
    parse_config_json(bytes).map(|(config, _)| config)
}

/// `kubernetes.io/dockercfg` payload: a bare map `{KEY: ENTRY}`. Note that a
/// dockerconfigjson-shaped payload parses "successfully" as one entry keyed "auths" with empty
/// credentials, exactly as in the kubelet.
pub fn parse_dockercfg(bytes: &[u8]) -> Result<DockerConfig, SecretError> {
    let text = go_json_text(bytes)?;
    let stash = RefCell::new(None);
    let map = run_seed(
        &text,
        ConfigMapSeed {
            what: "the dockercfg document",
            stash: &stash,
        },
        &stash,
    )?;
    Ok(map.unwrap_or_default().into_config())
}

/// A docker client `config.json` (read exactly like a dockerconfigjson, as the kubelet does for
/// its node-level config). `credsStore`/`credHelpers` are ignored, as by the kubelet, but
/// reported in the warnings, as are entries the kubelet cannot use fully.
pub fn parse_docker_config_file(bytes: &[u8]) -> Result<(DockerConfig, Vec<String>), SecretError> {
    let text = go_json_text(bytes)?;
    let (config, top) = parse_config_json_text(&text)?;
    let warnings = config_file_warnings(&text, &top);
    Ok((config, warnings))
}

/// What the kubelet does with one Secret (its type and its already-base64-decoded data).
/// `Ok(None)`: the kubelet ignores it (other type, or the expected key missing or empty).
/// `Ok(Some)`: parsed. `Err`: the payload is broken; the kubelet then fails the whole pull.
pub fn parse_secret(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<DockerConfig>, SecretError> {
    if secret_type == SECRET_TYPE_DOCKER_CONFIG_JSON {
        if let Some(bytes) = data.get(DOCKER_CONFIG_JSON_KEY).filter(|b| !b.is_empty()) {
            return parse_dockerconfigjson(bytes).map(Some);
        }
    } else if secret_type == SECRET_TYPE_DOCKERCFG {
        if let Some(bytes) = data.get(DOCKERCFG_KEY).filter(|b| !b.is_empty()) {
            return parse_dockercfg(bytes).map(Some);
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Go encoding/json emulation
// ---------------------------------------------------------------------------------------------
//
// Every visitor below rejects unexpected types with its own message (naming at most the
// registry key) instead of serde's default `invalid type: string "..."`, which would quote the
// value, i.e. possibly a password. Values the kubelet does not read are skipped with
// `IgnoredAny`, which serde_json scans without converting numbers and without a depth limit,
// like Go.

/// Go's decoder turns invalid UTF-8 inside strings into U+FFFD, one per bad byte, and lone
/// UTF-16 surrogate escapes into U+FFFD; serde_json rejects both, so the text is first rewritten
/// to what Go would have decoded. Then the text must be syntactically valid JSON as a whole,
/// checked before any decoding as Go's `checkValid` does, so a syntax error always wins.
fn go_json_text(bytes: &[u8]) -> Result<String, SecretError> {
    let text = fix_lone_surrogate_escapes(&go_lossy_utf8(bytes));
    serde_json::from_str::<IgnoredAny>(&text).map_err(|e| SecretError::InvalidJson {
        detail: e.to_string(),
    })?;
    Ok(text)
}

fn go_lossy_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (rune, size) = go::decode_rune(rest);
        out.push(char::from_u32(rune).unwrap_or(char::REPLACEMENT_CHARACTER));
        rest = rest.get(size.max(1)..).unwrap_or_default();
    }
    out
}

/// Rewrites `\uXXXX` escapes of unpaired surrogates (inside strings) to `\ufffd`, like Go's
/// `unquote`. Same length, so serde_json positions are unchanged.
fn fix_lone_surrogate_escapes(text: &str) -> String {
    if !text.contains("\\u") {
        return text.to_owned();
    }
    let b = text.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                in_string = !in_string;
                i += 1;
            }
            b'\\' if in_string => {
                let Some(u1) = (b.get(i + 1) == Some(&b'u')).then(|| hex4(i + 2)).flatten() else {
                    i += 2; // some other escape (or garbage serde_json will reject)
                    continue;
                };
                if !(0xD800..0xE000).contains(&u1) {
                    i += 6;
                    continue;
                }
                let paired = (0xD800..0xDC00).contains(&u1)
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(i + 8).is_some_and(|u2| (0xDC00..0xE000).contains(&u2));
                if paired {
                    i += 12;
                    continue;
                }
                // `i` is at an ASCII '\\', `copied` after an ASCII escape: both char boundaries.
                out.push_str(text.get(copied..i).unwrap_or_default());
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Runs a seed over the whole (already syntax-checked) text. An error from an entry's `auth`
/// is stashed as a typed error by the entry visitor; anything else is a structure error.
fn run_seed<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    seed: S,
    stash: &RefCell<Option<SecretError>>,
) -> Result<S::Value, SecretError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    seed.deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| {
            stash
                .borrow_mut()
                .take()
                .unwrap_or_else(|| SecretError::InvalidStructure {
                    detail: e.to_string(),
                })
        })
}

fn parse_config_json(bytes: &[u8]) -> Result<(DockerConfig, TopLevel), SecretError> {
    let text = go_json_text(bytes)?;
    parse_config_json_text(&text)
}

fn parse_config_json_text(text: &str) -> Result<(DockerConfig, TopLevel), SecretError> {
    let stash = RefCell::new(None);
    let mut top = run_seed(text, TopSeed { stash: &stash }, &stash)?;
    let config = std::mem::take(&mut top.auths).into_config();
    Ok((config, top))
}

/// Go `encoding/json` matches object keys to struct fields case-insensitively, with Unicode
/// simple folding: besides ASCII letters, 'ſ' (U+017F) folds to 'S' and the Kelvin sign
/// (U+212A) to 'K'; no other non-ASCII character folds to ASCII. `upper` is the ASCII
/// upper-case field name.
fn go_field_is(key: &str, upper: &str) -> bool {
    let mut expected = upper.bytes();
    for c in key.chars() {
        let folded = match c {
            '\u{017F}' => b'S',
            '\u{212A}' => b'K',
            c if c.is_ascii() => (c as u8).to_ascii_uppercase(),
            _ => return false,
        };
        if expected.next() != Some(folded) {
            return false;
        }
    }
    expected.next().is_none()
}

/// One decoded entry of a config map.
#[derive(Clone, Debug)]
struct ParsedEntry {
    key: String,
    credential: Credential,
    /// `identitytoken`/`registrytoken` present: ignored by the kubelet.
    has_token: bool,
}

/// A Go `map[string]DockerConfigEntry` being decoded: last value per key wins.
#[derive(Default)]
struct EntryMap {
    entries: Vec<ParsedEntry>,
    positions: HashMap<String, usize>,
}

impl EntryMap {
    fn upsert(&mut self, entry: ParsedEntry) {
        match self.positions.get(&entry.key) {
            Some(&i) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    *slot = entry;
                }
            }
            None => {
                self.positions.insert(entry.key.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    fn into_config(self) -> DockerConfig {
        DockerConfig {
            entries: self
                .entries
                .into_iter()
                .map(|e| DockerConfigEntry {
                    key: e.key,
                    credential: e.credential,
                })
                .collect(),
        }
    }
}

/// Top level of a dockerconfigjson / config.json.
#[derive(Default)]
struct TopLevel {
    auths: EntryMap,
    token_entries: Vec<String>,
    empty_entries: Vec<String>,
    creds_store: bool,
    cred_helpers: bool,
}

type Stash<'a> = &'a RefCell<Option<SecretError>>;

/// Rejects the JSON types a visitor does not accept, with the visitor's own message.
macro_rules! reject {
    ($de:lifetime, scalars) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_seq<A: de::SeqAccess<$de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(self.mismatch()))
        }
    };
    ($de:lifetime, str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
    };
    ($de:lifetime, map) => {
        fn visit_map<A: MapAccess<$de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(self.mismatch()))
        }
    };
}

/// A Go `string` field: a string sets it, null leaves it unchanged (`None`), others are errors.
struct GoStr<'a> {
    field: &'static str,
    entry: Option<&'a str>,
}

impl GoStr<'_> {
    fn mismatch(&self) -> String {
        match self.entry {
            Some(entry) => format!("field {:?} of entry {entry:?} must be a string", self.field),
            None => format!("values of {:?} must be strings", self.field),
        }
    }
}

impl<'de> DeserializeSeed<'de> for GoStr<'_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GoStr<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    reject!('de, scalars);
    reject!('de, map);
}

/// One `DockerConfigEntry` (kubelet `DockerConfigEntry.UnmarshalJSON`): null is an empty entry.
struct EntrySeed<'a> {
    key: &'a str,
    stash: Stash<'a>,
}

impl EntrySeed<'_> {
    fn mismatch(&self) -> String {
        format!("entry {:?} must be a JSON object", self.key)
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ParsedEntry;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = ParsedEntry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a docker config entry")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ParsedEntry {
            key: self.key.to_owned(),
            credential: Credential::new("", ""),
            has_token: false,
        })
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut username, mut password, mut auth) = (String::new(), String::new(), String::new());
        let mut has_token = false;
        while let Some(field) = map.next_key::<String>()? {
            let (name, slot) = if go_field_is(&field, "USERNAME") {
                ("username", Some(&mut username))
            } else if go_field_is(&field, "PASSWORD") {
                ("password", Some(&mut password))
            } else if go_field_is(&field, "AUTH") {
                ("auth", Some(&mut auth))
            } else if go_field_is(&field, "EMAIL") {
                ("email", None)
            } else {
                has_token |=
                    go_field_is(&field, "IDENTITYTOKEN") || go_field_is(&field, "REGISTRYTOKEN");
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value_seed(GoStr {
                field: name,
                entry: Some(self.key),
            })?;
            if let (Some(slot), Some(value)) = (slot, value) {
                *slot = value;
            }
        }
        match entry_credential(self.key, username, password, &auth) {
            Ok(credential) => Ok(ParsedEntry {
                key: self.key.to_owned(),
                credential,
                has_token,
            }),
            Err(e) => {
                let message = e.to_string();
                *self.stash.borrow_mut() = Some(e);
                Err(de::Error::custom(message))
            }
        }
    }
    reject!('de, scalars);
    reject!('de, str);
}

/// Kubelet `DockerConfigEntry.UnmarshalJSON` after the fields are read: a non-empty `auth`
/// overrides username and password.
fn entry_credential(
    key: &str,
    username: String,
    password: String,
    auth: &str,
) -> Result<Credential, SecretError> {
    if auth.is_empty() {
        return Ok(Credential::new(username, password));
    }
    let key = key.to_owned();
    match decode_docker_config_field_auth(auth) {
        Ok((username, password)) => Ok(Credential::new(username, password)),
        Err(AuthProblem::Base64) => Err(SecretError::InvalidAuthBase64 { key }),
        Err(AuthProblem::NoColon) => Err(SecretError::AuthMissingColon { key }),
        Err(AuthProblem::NotUtf8) => Err(SecretError::NotUtf8 { key }),
    }
}

enum AuthProblem {
    Base64,
    NoColon,
    NotUtf8,
}

/// Go `base64.StdEncoding`: padding required and canonical, non-zero trailing bits accepted.
const GO_STD_ENCODING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);
/// Go `base64.RawStdEncoding`: no padding allowed, non-zero trailing bits accepted.
const GO_RAW_STD_ENCODING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Kubelet `decodeDockerConfigFieldAuth`.
fn decode_docker_config_field_auth(field: &str) -> Result<(String, String), AuthProblem> {
    // Go's decoders skip '\r' and '\n' anywhere in the input.
    let cleaned: Vec<u8> = field
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    // strings.TrimSpace and str::trim agree (Unicode White_Space).
    let engine = if field.trim().ends_with('=') {
        &GO_STD_ENCODING
    } else {
        &GO_RAW_STD_ENCODING
    };
    let decoded = engine.decode(&cleaned).map_err(|_| AuthProblem::Base64)?;
    // strings.SplitN(string(decoded), ":", 2): split on the first ':'.
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(AuthProblem::NoColon)?;
    let (user, pass) = (
        &decoded[..colon],
        decoded.get(colon + 1..).unwrap_or_default(),
    );
    let user = String::from_utf8(user.to_vec()).map_err(|_| AuthProblem::NotUtf8)?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| AuthProblem::NotUtf8)?;
    Ok((user, pass))
}

/// A Go `map[string]DockerConfigEntry` (`DockerConfig`): null is `None` (a nil map).
struct ConfigMapSeed<'a> {
    what: &'static str,
    stash: Stash<'a>,
}

impl ConfigMapSeed<'_> {
    fn mismatch(&self) -> String {
        format!("{} must be a JSON object", self.what)
    }
}

impl<'de> DeserializeSeed<'de> for ConfigMapSeed<'_> {
    type Value = Option<EntryMap>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ConfigMapSeed<'_> {
    type Value = Option<EntryMap>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of docker config entries")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = EntryMap::default();
        while let Some(key) = map.next_key::<String>()? {
            let entry = map.next_value_seed(EntrySeed {
                key: &key,
                stash: self.stash,
            })?;
            entries.upsert(entry);
        }
        Ok(Some(entries))
    }
    reject!('de, scalars);
    reject!('de, str);
}

/// `HttpHeaders map[string]string`: only its types are checked.
struct HeadersSeed;

impl HeadersSeed {
    fn mismatch(&self) -> String {
        "\"HttpHeaders\" must be a JSON object".to_owned()
    }
}

impl<'de> DeserializeSeed<'de> for HeadersSeed {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(GoStr {
                field: "HttpHeaders",
                entry: None,
            })?;
        }
        Ok(())
    }
    reject!('de, scalars);
    reject!('de, str);
}

/// Kubelet `DockerConfigJSON{Auths, HttpHeaders}`; everything else is skipped unread.
struct TopSeed<'a> {
    stash: Stash<'a>,
}

impl TopSeed<'_> {
    fn mismatch(&self) -> String {
        "the document must be a JSON object".to_owned()
    }
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = TopLevel;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = TopLevel;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a docker config.json object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = TopLevel::default();
        while let Some(field) = map.next_key::<String>()? {
            if go_field_is(&field, "AUTHS") {
                let seed = ConfigMapSeed {
                    what: "\"auths\"",
                    stash: self.stash,
                };
                // Go decodes a repeated map field INTO the existing map (entries merge, later
                // ones win) and a null one resets it to nil.
                match map.next_value_seed(seed)? {
                    None => top.auths = EntryMap::default(),
                    Some(more) => more.entries.into_iter().for_each(|e| top.auths.upsert(e)),
                }
            } else if go_field_is(&field, "HTTPHEADERS") {
                map.next_value_seed(HeadersSeed)?;
            } else {
                top.creds_store |= go_field_is(&field, "CREDSSTORE");
                top.cred_helpers |= go_field_is(&field, "CREDHELPERS");
                map.next_value::<IgnoredAny>()?;
            }
        }
        for entry in &top.auths.entries {
            if entry.has_token {
                top.token_entries.push(entry.key.clone());
            }
            if entry.credential.username().is_empty() && entry.credential.password().is_empty() {
                top.empty_entries.push(entry.key.clone());
            }
        }
        Ok(top)
    }
    reject!('de, scalars);
    reject!('de, str);
}

fn config_file_warnings(text: &str, top: &TopLevel) -> Vec<String> {
    let mut warnings = Vec::new();
    // Best effort details (the kubelet never reads these fields, so their shape is free).
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |upper: &str| {
        value
            .as_ref()
            .and_then(|v| v.as_object())
            .and_then(|o| o.iter().rfind(|(k, _)| go_field_is(k, upper)))
            .map(|(_, v)| v)
    };
    if top.creds_store {
        match field("CREDSSTORE").and_then(|v| v.as_str()) {
            Some("") => {}
            Some(store) => warnings.push(format!(
                "credsStore {store:?} is ignored: the kubelet never runs docker credential helpers, only \"auths\" entries are used"
            )),
            None => warnings.push(
                "credsStore is ignored: the kubelet never runs docker credential helpers, only \"auths\" entries are used"
                    .to_owned(),
            ),
        }
    }
    if top.cred_helpers {
        let registries: Vec<&str> = field("CREDHELPERS")
            .and_then(|v| v.as_object())
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !registries.is_empty() {
            warnings.push(format!(
                "credHelpers for {} are ignored: the kubelet never runs docker credential helpers",
                registries.join(", ")
            ));
        }
    }
    for key in &top.token_entries {
        warnings.push(format!(
            "entry {key:?} has an identity or registry token, which the kubelet ignores (it only uses username/password/auth)"
        ));
    }
    for key in &top.empty_entries {
        warnings.push(format!(
            "entry {key:?} has no username or password (kept in a credential store?); the kubelet would offer an empty credential for it"
        ));
    }
    warnings
}

// ---------------------------------------------------------------------------------------------
// Keyring
// ---------------------------------------------------------------------------------------------

/// The key `https://index.docker.io/v1/` becomes after `add`; its credentials are the fallback
/// for Docker Hub images (kubelet `defaultRegistryHost`).
pub const DEFAULT_REGISTRY_KEY: &str = "index.docker.io";

/// A keyring key. Keys are Go strings, i.e. bytes: percent-decoding a key may produce bytes
/// that are not UTF-8. They are shown lossily.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GoKey(Vec<u8>);

impl GoKey {
    fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for GoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.display(), f)
    }
}

#[derive(Clone, Debug)]
struct Tracked {
    credential: Credential,
    source: String,
}

/// The kubelet's `BasicDockerKeyring` (+ `Lookup`). All secrets of a pod go into ONE keyring,
/// in order (call [`Keyring::add`] per secret). The kubelet then appends the node's keyring
/// (its `--docker-config`/credential provider credentials) after the secrets' matches
/// (`UnionDockerKeyring`); a caller models that with a second `Keyring` looked up after this one.
#[derive(Clone, Default)]
pub struct Keyring {
    /// Names the contents: two keyrings with the same id hold the same credentials (every
    /// change takes a new id from a process-wide counter; 0 is the empty keyring).
    id: u64,
    /// Distinct keys, reverse-sorted so more specific keys match first.
    index: Vec<KeyEntry>,
    /// The node's own keyring (kubelet `UnionDockerKeyring`): its matches come after ours.
    fallback: Option<std::sync::Arc<Keyring>>,
}

/// One key of the index with its credentials in insertion order. The key's URL is parsed
/// once when added rather than at every lookup, as the kubelet does; the result is the same
/// because parsing depends on the key alone.
#[derive(Clone)]
struct KeyEntry {
    key: GoKey,
    shown: String,
    /// `None` when `ParseSchemelessURL` rejects the key: it then matches nothing.
    glob: Option<ParsedUrl>,
    creds: Vec<Tracked>,
}

/// A schemeless URL as `URLsMatch` compares it: host labels, port, path.
#[derive(Clone)]
struct ParsedUrl {
    labels: Vec<Vec<u8>>,
    port: Vec<u8>,
    path: Vec<u8>,
}

impl ParsedUrl {
    /// Kubelet `ParseSchemelessURL` + `SplitURL`.
    fn parse(s: &[u8]) -> Option<Self> {
        let url = parse_schemeless_url(s).ok()?;
        let (labels, port) = go::split_url(&url.host);
        Some(ParsedUrl {
            labels: labels.into_iter().map(<[u8]>::to_vec).collect(),
            port: port.to_vec(),
            path: url.path,
        })
    }

    /// Kubelet `URLsMatch(glob, target)`: same port, same number of labels, each label
    /// glob-matching (a pattern error is "no match", as in Lookup), path a raw prefix.
    fn matches(glob: &ParsedUrl, target: &ParsedUrl) -> bool {
        glob.port == target.port
            && glob.labels.len() == target.labels.len()
            && target.path.starts_with(&glob.path)
            && glob
                .labels
                .iter()
                .zip(&target.labels)
                .all(|(g, t)| matches!(go::filepath_match(g, t), Ok(true)))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for entry in &self.index {
            map.entry(&entry.key, &entry.creds);
        }
        if let Some(fallback) = &self.fallback {
            map.entry(&"fallback", fallback);
        }
        map.finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedCredential {
    pub credential: Credential,
    /// Where it came from, as given to [`Keyring::add`] (e.g. "secret/regcred").
    pub source: String,
    /// The normalized keyring key that matched (e.g. "quay.io/coreos", or "index.docker.io"
    /// for the Docker Hub fallback).
    pub key: String,
}

impl Keyring {
    pub fn new() -> Self {
        Keyring::default()
    }

    /// `BasicDockerKeyring.Add`. Each entry's key gets "https://" prepended unless it starts
    /// with "http://" or "https://" (case-sensitive), is parsed like Go's `url.Parse` (failures
    /// are skipped and returned), and becomes `host[:port]` + the URL path, with a leading
    /// "/v1/" or "/v2/" cut to "/" and a path of "" or "/" dropped. So `https://quay.io/v2/`
    /// and `quay.io` are both `quay.io`, `https://index.docker.io/v1/` is `index.docker.io`.
    ///
    /// Consequences of Go's URL parser worth knowing: a '?' or '#' ends the host
    /// ("regist?y.io" becomes "regist"), "user:pw@host" drops the user, "host:443" keeps the
    /// port, host case is kept, and a '[' anywhere but at the start of the host is rejected
    /// (Go >= 1.24.8/1.25.2), so only '*' works as a glob in keys.
    pub fn add(&mut self, source: &str, config: &DockerConfig) -> Vec<String> {
        // A Go map has one value per key: if a hand-built config repeats a key, the last wins.
        let last: HashMap<&str, usize> = config
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.as_str(), i))
            .collect();
        let mut skipped = Vec::new();
        self.id = next_keyring_id();
        for (i, entry) in config.entries.iter().enumerate() {
            if last.get(entry.key.as_str()) != Some(&i) {
                continue;
            }
            let Some(key) = normalize_key(&entry.key) else {
                skipped.push(entry.key.clone());
                continue;
            };
            let key = GoKey(key);
            let tracked = Tracked {
                credential: entry.credential.clone(),
                source: source.to_owned(),
            };
            // sort.Sort(sort.Reverse(sort.StringSlice(index))) over distinct keys: byte order.
            match self.index.binary_search_by(|e| key.cmp(&e.key)) {
                Ok(at) => self.index[at].creds.push(tracked),
                Err(at) => self.index.insert(
                    at,
                    KeyEntry {
                        shown: key.display(),
                        glob: ParsedUrl::parse(&key.0),
                        key,
                        creds: vec![tracked],
                    },
                ),
            }
        }
        skipped
    }

    /// `BasicDockerKeyring.Lookup(image.name())`: every key, in index order, that matches the
    /// image (same port, same number of host labels, each label glob-matching, key path a raw
    /// string prefix of the image path) contributes its credentials in insertion order. If none
    /// matched and the image counts as Docker Hub, the credentials under "index.docker.io".
    /// Empty means the kubelet pulls anonymously.
    pub fn lookup(&self, image: &ImageRef) -> Vec<MatchedCredential> {
        let name = image.name();
        let mut matched = Vec::new();
        if !self.index.is_empty() {
            if let Some(target) = ParsedUrl::parse(name.as_bytes()) {
                for entry in &self.index {
                    if entry
                        .glob
                        .as_ref()
                        .is_some_and(|glob| ParsedUrl::matches(glob, &target))
                    {
                        entry.push_matches(&mut matched);
                    }
                }
            }
            if matched.is_empty() && is_default_registry_match(&name) {
                if let Some(entry) = self
                    .index
                    .iter()
                    .find(|e| e.key.0 == DEFAULT_REGISTRY_KEY.as_bytes())
                {
                    entry.push_matches(&mut matched);
                }
            }
        }
        if let Some(fallback) = &self.fallback {
            matched.extend(fallback.lookup(image));
        }
        matched
    }

    /// Appends `node`'s matches after this keyring's, as the kubelet unions the pull
    /// secrets' keyring with the node's own (`UnionDockerKeyring`).
    pub fn with_fallback(mut self, node: std::sync::Arc<Keyring>) -> Self {
        if !node.is_empty() {
            self.fallback = Some(node);
            self.id = next_keyring_id();
        }
        self
    }

    /// Identifies the contents (see the field): equal ids, equal lookups.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Distinct registry keys (in lookup order) with the distinct sources that provide them.
    pub fn keys(&self) -> Vec<(String, Vec<String>)> {
        self.index
            .iter()
            .map(|entry| {
                let mut sources: Vec<String> = Vec::new();
                for tracked in &entry.creds {
                    if !sources.contains(&tracked.source) {
                        sources.push(tracked.source.clone());
                    }
                }
                (entry.shown.clone(), sources)
            })
            .collect()
    }
}

fn next_keyring_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl KeyEntry {
    fn push_matches(&self, out: &mut Vec<MatchedCredential>) {
        for tracked in &self.creds {
            out.push(MatchedCredential {
                credential: tracked.credential.clone(),
                source: tracked.source.clone(),
                key: self.shown.clone(),
            });
        }
    }
}

/// The keyring key of a config key, or `None` when Go's `url.Parse` rejects it.
fn normalize_key(loc: &str) -> Option<Vec<u8>> {
    let value = if loc.starts_with("https://") || loc.starts_with("http://") {
        loc.as_bytes().to_vec()
    } else {
        [b"https://".as_slice(), loc.as_bytes()].concat()
    };
    let parsed = go::url_parse(&value).ok()?;
    let mut effective: &[u8] = &parsed.path;
    if effective.starts_with(b"/v2/") || effective.starts_with(b"/v1/") {
        effective = effective.get(3..).unwrap_or_default();
    }
    let mut key = parsed.host;
    if !effective.is_empty() && effective != b"/" {
        key.extend_from_slice(effective);
    }
    Some(key)
}

/// Kubelet `ParseSchemelessURL`: `url.Parse("https://" + s)` (the scheme is then unused).
fn parse_schemeless_url(s: &[u8]) -> Result<go::Url, &'static str> {
    go::url_parse(&[b"https://".as_slice(), s].concat())
}

/// Kubelet `isDefaultRegistryMatch` (as of v1.35: note there is NO exception for "localhost",
/// so an image "localhost/foo" gets the Docker Hub fallback credentials).
fn is_default_registry_match(image: &str) -> bool {
    let (first, has_rest) = match image.split_once('/') {
        Some((first, _)) => (first, true),
        None => (image, false),
    };
    if first.is_empty() {
        return false;
    }
    if !has_rest {
        return true;
    }
    if first == "docker.io" || first == "index.docker.io" {
        return true;
    }
    !first.contains(['.', ':'])
}

// ---------------------------------------------------------------------------------------------
// Go standard library emulation
// ---------------------------------------------------------------------------------------------

/// Byte-exact emulations of the Go standard-library functions the keyring depends on.
///
/// Why not the `url` crate: it implements the WHATWG URL standard, which differs from Go's
/// `net/url` exactly where it matters here. It lowercases hosts (Go keeps "Quay.io", and since
/// label matching is case-sensitive the kubelet does NOT match it against "quay.io"), drops
/// default ports ("quay.io:443" would become "quay.io", but Go keeps the port and then only
/// images named "quay.io:443/..." match), applies IDNA and IPv4 number parsing, resolves "."
/// and ".." path segments, keeps paths percent-encoded (Go decodes them), and accepts or
/// rejects different characters. Reproducing Go here is less code than correcting all that.
pub(crate) mod go {
    /// The parts of a Go `*url.URL` the kubelet uses. Go strings are bytes, and percent-decoded
    /// hosts and paths need not be UTF-8, so these are bytes too.
    pub(crate) struct Url {
        pub(crate) host: Vec<u8>,
        pub(crate) path: Vec<u8>,
    }

    /// `net/url.Parse` as of Go 1.25 (including the Go 1.24.8/1.25.2 fix requiring bracketed
    /// hosts to be IPv6 literals and '[' only at the start); only `Host` and `Path` are kept.
    pub(crate) fn url_parse(raw: &[u8]) -> Result<Url, &'static str> {
        let (before, fragment) = match raw.iter().position(|&b| b == b'#') {
            Some(i) => (&raw[..i], raw.get(i + 1..).unwrap_or_default()),
            None => (raw, &raw[..0]),
        };
        let url = parse(before)?;
        if !fragment.is_empty() {
            unescape(fragment, Mode::Fragment)?;
        }
        Ok(url)
    }

    fn parse(raw: &[u8]) -> Result<Url, &'static str> {
        if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
            return Err("net/url: invalid control character in URL");
        }
        if raw == b"*" {
            return Ok(Url {
                host: Vec::new(),
                path: b"*".to_vec(),
            });
        }
        let (scheme, mut rest) = get_scheme(raw)?;
        if rest.ends_with(b"?") && rest.iter().filter(|&&b| b == b'?').count() == 1 {
            rest = &rest[..rest.len() - 1];
        } else if let Some(i) = rest.iter().position(|&b| b == b'?') {
            rest = &rest[..i];
        }
        if !rest.starts_with(b"/") {
            if !scheme.is_empty() {
                // Opaque URL ("https:foo"): no host, no path.
                return Ok(Url {
                    host: Vec::new(),
                    path: Vec::new(),
                });
            }
            let segment = rest.split(|&b| b == b'/').next().unwrap_or_default();
            if segment.contains(&b':') {
                return Err("first path segment in URL cannot contain colon");
            }
        }
        let mut host = Vec::new();
        if (!scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
            let after = rest.get(2..).unwrap_or_default();
            let (authority, path) = match after.iter().position(|&b| b == b'/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, &after[after.len()..]),
            };
            host = parse_authority(authority)?;
            rest = path;
        }
        let path = unescape(rest, Mode::Path)?;
        Ok(Url { host, path })
    }

    fn get_scheme(raw: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
        for (i, &c) in raw.iter().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok((&raw[..0], raw)),
                b'0'..=b'9' | b'+' | b'-' | b'.' => {}
                b':' if i == 0 => return Err("missing protocol scheme"),
                b':' => return Ok((&raw[..i], raw.get(i + 1..).unwrap_or_default())),
                _ => return Ok((&raw[..0], raw)),
            }
        }
        Ok((&raw[..0], raw))
    }

    fn parse_authority(authority: &[u8]) -> Result<Vec<u8>, &'static str> {
        let at = authority.iter().rposition(|&b| b == b'@');
        let host = parse_host(match at {
            Some(i) => authority.get(i + 1..).unwrap_or_default(),
            None => authority,
        })?;
        if let Some(i) = at {
            let userinfo = &authority[..i];
            if !userinfo
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
            {
                return Err("net/url: invalid userinfo");
            }
            match userinfo.iter().position(|&b| b == b':') {
                None => {
                    unescape(userinfo, Mode::UserPassword)?;
                }
                Some(c) => {
                    unescape(&userinfo[..c], Mode::UserPassword)?;
                    unescape(
                        userinfo.get(c + 1..).unwrap_or_default(),
                        Mode::UserPassword,
                    )?;
                }
            }
        }
        Ok(host)
    }

    fn parse_host(host: &[u8]) -> Result<Vec<u8>, &'static str> {
        match host.iter().rposition(|&b| b == b'[') {
            Some(open) if open > 0 => Err("invalid IP-literal"),
            Some(_) => {
                let close = host
                    .iter()
                    .rposition(|&b| b == b']')
                    .ok_or("missing ']' in host")?;
                let colon_port = host.get(close + 1..).unwrap_or_default();
                if !valid_optional_port(colon_port) {
                    return Err("invalid port after host");
                }
                let port = unescape(colon_port, Mode::Host)?;
                let hostname = host.get(1..close).ok_or("invalid IP-literal")?;
                let unescaped = match find(hostname, b"%25") {
                    Some(zone) => {
                        let mut h = unescape(&hostname[..zone], Mode::Host)?;
                        h.extend(unescape(&hostname[zone..], Mode::Zone)?);
                        h
                    }
                    None => unescape(hostname, Mode::Host)?,
                };
                if !is_ipv6_address(&unescaped) {
                    return Err("invalid IP-literal");
                }
                let mut out = Vec::with_capacity(unescaped.len() + port.len() + 2);
                out.push(b'[');
                out.extend(unescaped);
                out.push(b']');
                out.extend(port);
                Ok(out)
            }
            None => {
                if let Some(i) = host.iter().rposition(|&b| b == b':') {
                    if !valid_optional_port(&host[i..]) {
                        return Err("invalid port after host");
                    }
                }
                unescape(host, Mode::Host)
            }
        }
    }

    /// `netip.ParseAddr(s)` succeeds and is not IPv4 (zones allowed, but not empty).
    fn is_ipv6_address(s: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(s) else {
            return false;
        };
        let addr = match s.split_once('%') {
            Some((_, "")) => return false,
            Some((addr, _)) => addr,
            None => s,
        };
        addr.parse::<std::net::Ipv6Addr>().is_ok()
    }

    /// Empty, or ':' followed by digits only.
    fn valid_optional_port(port: &[u8]) -> bool {
        match port.split_first() {
            None => true,
            Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Path,
        Host,
        Zone,
        UserPassword,
        Fragment,
    }

    /// `!shouldEscape(c, encodeHost)` for ASCII bytes.
    fn host_byte_ok(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c)
    }

    fn unhex(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        }
    }

    /// `net/url.unescape` for the modes used by `Parse` ('+' is never special there).
    fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, &'static str> {
        let host_like = matches!(mode, Mode::Host | Mode::Zone);
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while let Some(&c) = s.get(i) {
            if c == b'%' {
                let (Some(&hi), Some(&lo)) = (s.get(i + 1), s.get(i + 2)) else {
                    return Err("invalid URL escape");
                };
                if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                    return Err("invalid URL escape");
                }
                let is_25 = hi == b'2' && lo == b'5';
                let v = (unhex(hi) << 4) | unhex(lo);
                // In hosts, %-encoding is only allowed for non-ASCII bytes (and %25).
                if mode == Mode::Host && unhex(hi) < 8 && !is_25 {
                    return Err("invalid URL escape");
                }
                if mode == Mode::Zone && !is_25 && v != b' ' && !(v < 0x80 && host_byte_ok(v)) {
                    return Err("invalid URL escape");
                }
                out.push(v);
                i += 3;
            } else {
                if host_like && c < 0x80 && c != b'+' && !host_byte_ok(c) {
                    return Err("invalid character in host name");
                }
                out.push(c);
                i += 1;
            }
        }
        Ok(out)
    }

    /// `net.SplitHostPort`; `None` on any error.
    pub(crate) fn split_host_port(hostport: &[u8]) -> Option<(&[u8], &[u8])> {
        let i = hostport.iter().rposition(|&b| b == b':')?;
        let (host, j, k) = if hostport.first() == Some(&b'[') {
            let end = hostport.iter().position(|&b| b == b']')?;
            if end + 1 != i {
                // ']' at the end (missing port), or not directly followed by the last ':'.
                return None;
            }
            (hostport.get(1..end)?, 1, end + 1)
        } else {
            let host = &hostport[..i];
            if host.contains(&b':') {
                return None; // too many colons
            }
            (host, 0, 0)
        };
        if hostport.get(j..)?.contains(&b'[') || hostport.get(k..)?.contains(&b']') {
            return None;
        }
        Some((host, hostport.get(i + 1..)?))
    }

    /// Kubelet `SplitURL`: labels of the host (split on '.') and the port, where a host that
    /// `net.SplitHostPort` rejects (no port, "[::1]", "a:b:c") is used whole with port "".
    pub(crate) fn split_url(host: &[u8]) -> (Vec<&[u8]>, &[u8]) {
        let (name, port) = split_host_port(host).unwrap_or((host, &host[..0]));
        (name.split(|&b| b == b'.').collect(), port)
    }

    const RUNE_ERROR: u32 = 0xFFFD;

    /// `utf8.DecodeRune`: (U+FFFD, 1) for an invalid or truncated sequence, (U+FFFD, 0) for
    /// empty input.
    pub(crate) fn decode_rune(b: &[u8]) -> (u32, usize) {
        let Some(&first) = b.first() else {
            return (RUNE_ERROR, 0);
        };
        let width = match first {
            0x00..=0x7F => return (u32::from(first), 1),
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return (RUNE_ERROR, 1),
        };
        match b.get(..width).map(std::str::from_utf8) {
            Some(Ok(s)) => (s.chars().next().map_or(RUNE_ERROR, u32::from), width),
            _ => (RUNE_ERROR, 1),
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct BadPattern;

    /// `path/filepath.Match` on Unix (separator '/', '\\' escapes), Go >= 1.16 semantics: a
    /// malformed pattern is an error even when the name already failed to match.
    pub(crate) fn filepath_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
        'pattern: while !pattern.is_empty() {
            let (star, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if star && chunk.is_empty() {
                // Trailing * matches the rest of the string unless it has a '/'.
                return Ok(!name.contains(&b'/'));
            }
            // Look for a match at the current position; if this is the last chunk, it must
            // exhaust the name.
            match match_chunk(chunk, name) {
                Ok(Some(t)) if t.is_empty() || !pattern.is_empty() => {
                    name = t;
                    continue;
                }
                Err(e) => return Err(e),
                _ => {}
            }
            if star {
                // Look for a match skipping i+1 bytes; cannot skip '/'.
                let mut i = 0;
                while i < name.len() && name[i] != b'/' {
                    match match_chunk(chunk, name.get(i + 1..).unwrap_or_default()) {
                        Ok(Some(t)) => {
                            if pattern.is_empty() && !t.is_empty() {
                                i += 1;
                                continue;
                            }
                            name = t;
                            continue 'pattern;
                        }
                        Err(e) => return Err(e),
                        Ok(None) => {}
                    }
                    i += 1;
                }
            }
            // Before returning false, check that the rest of the pattern is well-formed.
            while !pattern.is_empty() {
                let (_, chunk, rest) = scan_chunk(pattern);
                pattern = rest;
                match_chunk(chunk, b"")?;
            }
            return Ok(false);
        }
        Ok(name.is_empty())
    }

    /// The next segment of the pattern: a non-star string, possibly preceded by stars.
    fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
        let mut star = false;
        while let Some((b'*', rest)) = pattern.split_first() {
            pattern = rest;
            star = true;
        }
        let mut in_range = false;
        let mut i = 0;
        while let Some(&c) = pattern.get(i) {
            match c {
                b'\\' if i + 1 < pattern.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        let i = i.min(pattern.len());
        (star, &pattern[..i], &pattern[i..])
    }

    /// Whether `chunk` matches the beginning of `s`: `Ok(Some(rest))`, `Ok(None)` or a pattern
    /// error. After a mismatch the rest of the chunk is still checked for well-formedness.
    fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
        let mut failed = false;
        while let Some(&c) = chunk.first() {
            if !failed && s.is_empty() {
                failed = true;
            }
            match c {
                b'[' => {
                    let mut r = 0;
                    if !failed {
                        let (rune, n) = decode_rune(s);
                        r = rune;
                        s = s.get(n..).unwrap_or_default();
                    }
                    chunk = &chunk[1..];
                    let mut negated = false;
                    if let Some((b'^', rest)) = chunk.split_first() {
                        negated = true;
                        chunk = rest;
                    }
                    let mut matched = false;
                    let mut ranges = 0;
                    loop {
                        if ranges > 0 {
                            if let Some((b']', rest)) = chunk.split_first() {
                                chunk = rest;
                                break;
                            }
                        }
                        let (lo, rest) = get_esc(chunk)?;
                        chunk = rest;
                        let mut hi = lo;
                        if let Some((b'-', rest)) = chunk.split_first() {
                            let (h, rest) = get_esc(rest)?;
                            hi = h;
                            chunk = rest;
                        }
                        if lo <= r && r <= hi {
                            matched = true;
                        }
                        ranges += 1;
                    }
                    if matched == negated {
                        failed = true;
                    }
                }
                b'?' => {
                    if !failed {
                        if s.first() == Some(&b'/') {
                            failed = true;
                        }
                        let (_, n) = decode_rune(s);
                        s = s.get(n..).unwrap_or_default();
                    }
                    chunk = &chunk[1..];
                }
                _ => {
                    let mut literal = c;
                    if c == b'\\' {
                        chunk = &chunk[1..];
                        match chunk.first() {
                            Some(&escaped) => literal = escaped,
                            None => return Err(BadPattern),
                        }
                    }
                    if !failed {
                        if s.first() != Some(&literal) {
                            failed = true;
                        }
                        s = s.get(1..).unwrap_or_default();
                    }
                    chunk = chunk.get(1..).unwrap_or_default();
                }
            }
        }
        Ok((!failed).then_some(s))
    }

    /// A possibly escaped character of a character class.
    fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
        let mut chunk = match chunk.first() {
            None | Some(b'-') | Some(b']') => return Err(BadPattern),
            Some(_) => chunk,
        };
        if let Some((b'\\', rest)) = chunk.split_first() {
            if rest.is_empty() {
                return Err(BadPattern);
            }
            chunk = rest;
        }
        let (r, n) = decode_rune(chunk);
        if r == RUNE_ERROR && n == 1 {
            return Err(BadPattern);
        }
        let rest = chunk.get(n..).unwrap_or_default();
        if rest.is_empty() {
            return Err(BadPattern);
        }
        Ok((r, rest))
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const USER: &str = "alice-USER";
    const SECRET: &str = "s3cr3t-PASSWORD";

    fn kind(e: &SecretError) -> &'static str {
        match e {
            SecretError::InvalidJson { .. } => "InvalidJson",
            SecretError::InvalidStructure { .. } => "InvalidStructure",
            SecretError::InvalidAuthBase64 { .. } => "InvalidAuthBase64",
            SecretError::AuthMissingColon { .. } => "AuthMissingColon",
            SecretError::NotUtf8 { .. } => "NotUtf8",
        }
    }

    type Flat = Vec<(String, String, String)>;

    fn flat(config: &DockerConfig) -> Flat {
        config
            .entries
            .iter()
            .map(|e| {
                (
                    e.key.clone(),
                    e.credential.username().to_owned(),
                    e.credential.password().to_owned(),
                )
            })
            .collect()
    }

    fn expect(
        result: Result<DockerConfig, SecretError>,
        expected: Result<&[(&str, &str, &str)], &str>,
    ) {
        match (result, expected) {
            (Ok(config), Ok(want)) => {
                let want: Flat = want
                    .iter()
                    .map(|(k, u, p)| (k.to_string(), u.to_string(), p.to_string()))
                    .collect();
                assert_eq!(flat(&config), want);
            }
            (Err(e), Err(want)) => assert_eq!(kind(&e), want, "{e}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[rstest]
    #[case::auth_padded(br#"{"auths":{"r.io":{"auth":"dXNlcjpwYTpzcw=="}}}"#, Ok(&[("r.io", "user", "pa:ss")][..]))]
    #[case::auth_unpadded(br#"{"auths":{"r.io":{"auth":"dXNlcjpwYTpzcw"}}}"#, Ok(&[("r.io", "user", "pa:ss")][..]))]
    #[case::auth_no_padding_needed(br#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz"}}}"#, Ok(&[("r.io", "user", "pass")][..]))]
    #[case::auth_overrides_fields(br#"{"auths":{"r.io":{"username":"x","password":"y","auth":"dXNlcjpwYXNz"}}}"#, Ok(&[("r.io", "user", "pass")][..]))]
    #[case::fields_only(br#"{"auths":{"r.io":{"username":"x","password":"y","email":"e@x"}}}"#, Ok(&[("r.io", "x", "y")][..]))]
    #[case::empty_auth_uses_fields(br#"{"auths":{"r.io":{"username":"x","password":"y","auth":""}}}"#, Ok(&[("r.io", "x", "y")][..]))]
    #[case::auth_empty_username(br#"{"auths":{"r.io":{"auth":"Om9ubHlwYXNz"}}}"#, Ok(&[("r.io", "", "onlypass")][..]))]
    #[case::auth_empty_password_padded_newline(br#"{"auths":{"r.io":{"auth":"dXNlcjo=\n"}}}"#, Ok(&[("r.io", "user", "")][..]))]
    #[case::auth_newlines_ignored(br#"{"auths":{"r.io":{"auth":"dXNlcjpw\r\nYXNz"}}}"#, Ok(&[("r.io", "user", "pass")][..]))]
    #[case::auth_noncanonical_trailing_bits(br#"{"auths":{"r.io":{"auth":"dXNlcjpwYTpzcx=="}}}"#, Ok(&[("r.io", "user", "pa:ss")][..]))]
    #[case::auth_without_colon(
        br#"{"auths":{"r.io":{"auth":"bm9jb2xvbg=="}}}"#,
        Err("AuthMissingColon")
    )]
    #[case::auth_only_newline(br#"{"auths":{"r.io":{"auth":"\n"}}}"#, Err("AuthMissingColon"))]
    #[case::auth_bad_base64(br#"{"auths":{"r.io":{"auth":"!!!!"}}}"#, Err("InvalidAuthBase64"))]
    #[case::auth_wrong_padding(
        br#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz="}}}"#,
        Err("InvalidAuthBase64")
    )]
    #[case::auth_trailing_space(
        br#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz "}}}"#,
        Err("InvalidAuthBase64")
    )]
    #[case::auth_whitespace_only(br#"{"auths":{"r.io":{"auth":" "}}}"#, Err("InvalidAuthBase64"))]
    #[case::auth_not_utf8(br#"{"auths":{"r.io":{"auth":"//46eA=="}}}"#, Err("NotUtf8"))]
    #[case::broken_json(br#"{"auths":"#, Err("InvalidJson"))]
    #[case::trailing_garbage(br#"{} x"#, Err("InvalidJson"))]
    #[case::empty_payload(b"", Err("InvalidJson"))]
    #[case::syntax_error_wins_over_auth_error(
        br#"{"auths":{"r.io":{"auth":"!!"}}} ,"#,
        Err("InvalidJson")
    )]
    #[case::auths_missing(br#"{}"#, Ok(&[][..]))]
    #[case::only_http_headers(br#"{"HttpHeaders":{"User-Agent":"x","X":null}}"#, Ok(&[][..]))]
    #[case::null_document(br#"null"#, Ok(&[][..]))]
    #[case::auths_null(br#"{"auths":null}"#, Ok(&[][..]))]
    #[case::entry_null(br#"{"auths":{"r.io":null}}"#, Ok(&[("r.io", "", "")][..]))]
    #[case::document_array(br#"[]"#, Err("InvalidStructure"))]
    #[case::document_string(br#""x""#, Err("InvalidStructure"))]
    #[case::auths_array(br#"{"auths":[]}"#, Err("InvalidStructure"))]
    #[case::entry_string(br#"{"auths":{"r.io":"str"}}"#, Err("InvalidStructure"))]
    #[case::username_number(br#"{"auths":{"r.io":{"username":1}}}"#, Err("InvalidStructure"))]
    #[case::password_bool(br#"{"auths":{"r.io":{"password":true}}}"#, Err("InvalidStructure"))]
    #[case::email_object(br#"{"auths":{"r.io":{"email":{}}}}"#, Err("InvalidStructure"))]
    #[case::auth_array(br#"{"auths":{"r.io":{"auth":["x"]}}}"#, Err("InvalidStructure"))]
    #[case::http_headers_number(br#"{"HttpHeaders":5}"#, Err("InvalidStructure"))]
    #[case::http_header_value_number(br#"{"HttpHeaders":{"a":1}}"#, Err("InvalidStructure"))]
    #[case::tokens_ignored(br#"{"auths":{"r.io":{"identitytoken":"tok","registrytoken":5,"serveraddress":[1]}}}"#, Ok(&[("r.io", "", "")][..]))]
    #[case::unknown_fields_any_type(br#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"},"x":[1,{"y":1e999}],"auths":{}}"#, Ok(&[][..]))]
    #[case::field_names_case_insensitive(br#"{"AUTHS":{"r.io":{"USERNAME":"u","Password":"p"}}}"#, Ok(&[("r.io", "u", "p")][..]))]
    #[case::long_s_folds_to_s(br#"{"auth\u017f":{"r.io":{"u\u017fername":"u"}}}"#, Ok(&[("r.io", "u", "")][..]))]
    #[case::registry_keys_case_sensitive(br#"{"auths":{"R.io":{"username":"1"},"r.io":{"username":"2"}}}"#, Ok(&[("R.io", "1", ""), ("r.io", "2", "")][..]))]
    #[case::file_order_kept(br#"{"auths":{"z.io":{},"a.io":{},"m.io":{}}}"#, Ok(&[("z.io", "", ""), ("a.io", "", ""), ("m.io", "", "")][..]))]
    #[case::duplicate_key_last_wins(br#"{"auths":{"a":{"username":"1"},"b":{"username":"2"},"a":{"username":"3"}}}"#, Ok(&[("a", "3", ""), ("b", "2", "")][..]))]
    #[case::duplicate_key_error_in_overwritten(
        br#"{"auths":{"a":{"auth":"!!"},"a":{}}}"#,
        Err("InvalidAuthBase64")
    )]
    #[case::duplicate_auths_merge(br#"{"auths":{"a":{"username":"1"}},"Auths":{"b":{"username":"2"},"a":{"username":"3"}}}"#, Ok(&[("a", "3", ""), ("b", "2", "")][..]))]
    #[case::auths_null_resets(br#"{"auths":{"a":{}},"auths":null}"#, Ok(&[][..]))]
    #[case::null_field_keeps_value(br#"{"auths":{"a":{"auth":"dXNlcjpwYXNz","auth":null}}}"#, Ok(&[("a", "user", "pass")][..]))]
    #[case::duplicate_field_last_wins(br#"{"auths":{"a":{"username":"x","Username":"y"}}}"#, Ok(&[("a", "y", "")][..]))]
    #[case::lone_surrogate_replaced(br#"{"auths":{"r.io":{"username":"a\ud800b","password":"\udc00\ud83d\ude00"}}}"#, Ok(&[("r.io", "a\u{FFFD}b", "\u{FFFD}\u{1F600}")][..]))]
    #[case::invalid_utf8_replaced_per_byte(b"{\"auths\":{\"r.io\":{\"password\":\"a\xe2\x82b\xff\"}}}", Ok(&[("r.io", "", "a\u{FFFD}\u{FFFD}b\u{FFFD}")][..]))]
    #[case::invalid_utf8_outside_string(b"{\"auths\":{}}\xff", Err("InvalidJson"))]
    fn dockerconfigjson(
        #[case] payload: &[u8],
        #[case] expected: Result<&[(&str, &str, &str)], &str>,
    ) {
        expect(parse_dockerconfigjson(payload), expected);
    }

    #[rstest]
    #[case::bare_map(br#"{"r.io":{"auth":"dXNlcjpwYXNz","email":"e@x"},"q.io":{"username":"x","password":"y"}}"#, Ok(&[("r.io", "user", "pass"), ("q.io", "x", "y")][..]))]
    #[case::null_document(br#"null"#, Ok(&[][..]))]
    #[case::empty_map(br#"{}"#, Ok(&[][..]))]
    #[case::dockerconfigjson_shape_is_one_useless_entry(br#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz"}}}"#, Ok(&[("auths", "", "")][..]))]
    #[case::document_array(br#"[]"#, Err("InvalidStructure"))]
    #[case::entry_number(br#"{"r.io":5}"#, Err("InvalidStructure"))]
    #[case::auth_without_colon(br#"{"r.io":{"auth":"bm9jb2xvbg"}}"#, Err("AuthMissingColon"))]
    #[case::broken_json(br#"{"r.io":{}"#, Err("InvalidJson"))]
    fn dockercfg(#[case] payload: &[u8], #[case] expected: Result<&[(&str, &str, &str)], &str>) {
        expect(parse_dockercfg(payload), expected);
    }

    const DCJ: &str = r#"{"auths":{"r.io":{"auth":"dXNlcjpwYXNz"}}}"#;
    const CFG: &str = r#"{"r.io":{"auth":"dXNlcjpwYXNz"}}"#;

    /// `Ok(Some(n))`: parsed with n entries; `Ok(None)`: ignored; `Err(())`: broken.
    #[rstest]
    #[case::dockerconfigjson(SECRET_TYPE_DOCKER_CONFIG_JSON, ".dockerconfigjson", DCJ, Ok(Some(1)))]
    #[case::dockerconfigjson_bare_map_payload(
        SECRET_TYPE_DOCKER_CONFIG_JSON,
        ".dockerconfigjson",
        CFG,
        Ok(Some(0))
    )]
    #[case::dockerconfigjson_wrong_key(SECRET_TYPE_DOCKER_CONFIG_JSON, ".dockercfg", CFG, Ok(None))]
    #[case::dockerconfigjson_empty(
        SECRET_TYPE_DOCKER_CONFIG_JSON,
        ".dockerconfigjson",
        "",
        Ok(None)
    )]
    #[case::dockerconfigjson_broken(SECRET_TYPE_DOCKER_CONFIG_JSON, ".dockerconfigjson", "{", Err(()))]
    #[case::dockerconfigjson_bad_auth(SECRET_TYPE_DOCKER_CONFIG_JSON, ".dockerconfigjson", r#"{"auths":{"r":{"auth":"eA"}}}"#, Err(()))]
    #[case::dockercfg(SECRET_TYPE_DOCKERCFG, ".dockercfg", CFG, Ok(Some(1)))]
    #[case::dockercfg_wrong_key(SECRET_TYPE_DOCKERCFG, ".dockerconfigjson", DCJ, Ok(None))]
    #[case::dockercfg_empty(SECRET_TYPE_DOCKERCFG, ".dockercfg", "", Ok(None))]
    #[case::dockercfg_broken(SECRET_TYPE_DOCKERCFG, ".dockercfg", "not json", Err(()))]
    #[case::opaque("Opaque", ".dockerconfigjson", DCJ, Ok(None))]
    #[case::basic_auth("kubernetes.io/basic-auth", ".dockerconfigjson", DCJ, Ok(None))]
    #[case::type_is_case_sensitive(
        "Kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        DCJ,
        Ok(None)
    )]
    #[case::empty_type("", ".dockerconfigjson", DCJ, Ok(None))]
    fn secret(
        #[case] secret_type: &str,
        #[case] data_key: &str,
        #[case] payload: &str,
        #[case] expected: Result<Option<usize>, ()>,
    ) {
        let data = BTreeMap::from([(data_key.to_owned(), payload.as_bytes().to_vec())]);
        let got = parse_secret(secret_type, &data).map(|c| c.map(|c| c.entries.len()));
        assert_eq!(got.map_err(|_| ()), expected);
    }

    #[test]
    fn keyring_ids_name_contents() {
        let config =
            parse_dockerconfigjson(br#"{"auths":{"r.io":{"username":"u","password":"p"}}}"#)
                .unwrap();
        assert_eq!(Keyring::new().id(), 0);
        let mut a = Keyring::new();
        a.add("secret/a", &config);
        assert_ne!(a.id(), 0);
        assert_eq!(a.clone().id(), a.id(), "a clone holds the same credentials");
        let before = a.id();
        a.add("secret/b", &config);
        assert_ne!(a.id(), before, "every change takes a new id");
        let with_empty_node = a.clone().with_fallback(std::sync::Arc::new(Keyring::new()));
        assert_eq!(
            with_empty_node.id(),
            a.id(),
            "an empty fallback changes nothing"
        );
        let node = std::sync::Arc::new(a.clone());
        assert_ne!(Keyring::new().with_fallback(node).id(), 0);
    }

    #[test]
    fn secret_without_data() {
        let data = BTreeMap::new();
        assert!(matches!(
            parse_secret(SECRET_TYPE_DOCKER_CONFIG_JSON, &data),
            Ok(None)
        ));
        assert!(matches!(
            parse_secret(SECRET_TYPE_DOCKERCFG, &data),
            Ok(None)
        ));
    }

    #[test]
    fn deeply_nested_ignored_value_is_fine() {
        // Go's limit is 10000 levels; serde_json skips ignored values without recursing.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let payload = format!(r#"{{"x":{deep},"auths":{{"r.io":{{"y":{deep},"username":"u"}}}}}}"#);
        expect(
            parse_dockerconfigjson(payload.as_bytes()),
            Ok(&[("r.io", "u", "")][..]),
        );
    }

    /// Messages and Debug output never contain the username, the password or the auth.
    #[rstest]
    #[case::password_wrong_type(format!(r#"{{"auths":{{"r.io":{{"username":"{USER}","password":["{SECRET}"]}}}}}}"#))]
    #[case::username_wrong_type(format!(r#"{{"auths":{{"r.io":{{"password":"{SECRET}","username":12345}}}}}}"#))]
    #[case::password_object(format!(r#"{{"auths":{{"r.io":{{"password":{{"{SECRET}":"{USER}"}}}}}}}}"#))]
    #[case::eof_after_secret(format!(r#"{{"auths":{{"r.io":{{"username":"{USER}","password":"{SECRET}""#))]
    #[case::bad_escape_in_secret(format!(r#"{{"auths":{{"r.io":{{"password":"{SECRET}\x"}}}}}}"#))]
    #[case::unquoted_secret(format!(r#"{{"auths":{{"r.io":{{"password":{SECRET}}}}}}}"#))]
    #[case::entry_is_secret_string(format!(r#"{{"auths":{{"r.io":"{SECRET}"}}}}"#))]
    #[case::auths_is_secret_string(format!(r#"{{"auths":"{SECRET}"}}"#))]
    #[case::document_is_secret_string(format!(r#""{SECRET}""#))]
    #[case::auth_without_colon(format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64(&format!("{USER}{SECRET}"))))]
    #[case::auth_bad_base64(format!(r#"{{"auths":{{"r.io":{{"auth":"{SECRET}!"}}}}}}"#))]
    #[case::auth_not_utf8(format!(r#"{{"auths":{{"r.io":{{"auth":"{}"}}}}}}"#, b64_bytes(&[USER.as_bytes(), b":\xff", SECRET.as_bytes()].concat())))]
    fn errors_never_leak_secrets(#[case] payload: String) {
        for result in [
            parse_dockerconfigjson(payload.as_bytes()).map(|_| ()),
            parse_docker_config_file(payload.as_bytes()).map(|_| ()),
        ] {
            let err = result.expect_err("payload must be rejected");
            for shown in [err.to_string(), format!("{err:?}")] {
                for secret in [USER, SECRET, "12345"] {
                    assert!(!shown.contains(secret), "{shown:?} leaks {secret:?}");
                }
                if let Some(auth) = extract_auth(&payload) {
                    assert!(!shown.contains(&auth), "{shown:?} leaks the auth");
                }
            }
        }
    }

    fn b64(s: &str) -> String {
        b64_bytes(s.as_bytes())
    }

    fn b64_bytes(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn extract_auth(payload: &str) -> Option<String> {
        let start = payload.find(r#""auth":""#)? + 8;
        let len = payload.get(start..)?.find('"')?;
        payload.get(start..start + len).map(str::to_owned)
    }

    #[test]
    fn error_messages_name_the_entry() {
        let err = parse_dockerconfigjson(br#"{"auths":{"quay.io":{"auth":"bm9jb2xvbg=="}}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "auth of entry \"quay.io\" must be base64(username:password)"
        );
        let err = parse_dockerconfigjson(br#"{"auths":{"quay.io":{"username":1}}}"#).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("is not a valid docker config: field \"username\" of entry \"quay.io\" must be a string at line 1 column"), "{shown}");
        let err = parse_dockerconfigjson(b"{\n\"auths\": }").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("is not valid JSON: expected value at line 2 column"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_leaks_secrets() {
        let payload =
            format!(r#"{{"auths":{{"r.io":{{"username":"{USER}","password":"{SECRET}"}}}}}}"#);
        let config = parse_dockerconfigjson(payload.as_bytes()).unwrap();
        assert_eq!(config.entries[0].credential.password(), SECRET);
        let mut keyring = Keyring::new();
        keyring.add("secret/regcred", &config);
        let matched = keyring.lookup(&img("r.io/app"));
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

    #[test]
    fn config_file_warnings_are_reported() {
        let payload = br#"{
            "auths": {
                "quay.io": {},
                "r.io": {"auth": "dXNlcjpwYXNz", "identitytoken": "tok"}
            },
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud", "us-docker.pkg.dev": "gcloud"},
            "psFormat": "table"
        }"#;
        let (config, warnings) = parse_docker_config_file(payload).unwrap();
        assert_eq!(
            flat(&config),
            vec![
                ("quay.io".into(), "".into(), "".into()),
                ("r.io".into(), "user".into(), "pass".into())
            ]
        );
        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        assert!(warnings[0].contains("credsStore \"desktop\""));
        assert!(warnings[1].contains("gcr.io, us-docker.pkg.dev"));
        assert!(warnings[2].contains("\"r.io\"") && warnings[2].contains("token"));
        assert!(warnings[3].contains("\"quay.io\"") && warnings[3].contains("no username"));

        let (config, warnings) = parse_docker_config_file(DCJ.as_bytes()).unwrap();
        assert_eq!(config.entries.len(), 1);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(parse_docker_config_file(b"{\"auths\":[]}").is_err());
    }

    // ---- keyring ----

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn config_of(entries: &[(&str, &str)]) -> DockerConfig {
        DockerConfig {
            entries: entries
                .iter()
                .map(|(key, user)| DockerConfigEntry {
                    key: key.to_string(),
                    credential: Credential::new(*user, "pw"),
                })
                .collect(),
        }
    }

    /// A keyring where each key's username is the key itself.
    fn keyring_of(keys: &[&str]) -> Keyring {
        let entries: Vec<(&str, &str)> = keys.iter().map(|k| (*k, *k)).collect();
        let mut keyring = Keyring::new();
        keyring.add("test", &config_of(&entries));
        keyring
    }

    fn users(keyring: &Keyring, image: &str) -> Vec<String> {
        keyring
            .lookup(&img(image))
            .into_iter()
            .map(|m| m.credential.username().to_owned())
            .collect()
    }

    /// config key -> keyring key (`None`: Go's url.Parse rejects it and the entry is skipped)
    #[rstest]
    #[case::bare_host("quay.io", Some("quay.io"))]
    #[case::https_kept("https://quay.io", Some("quay.io"))]
    #[case::http_kept("http://quay.io", Some("quay.io"))]
    #[case::trailing_slash("https://quay.io/", Some("quay.io"))]
    #[case::docker_hub_v1("https://index.docker.io/v1/", Some("index.docker.io"))]
    #[case::v2_trimmed("registry.io/v2/", Some("registry.io"))]
    #[case::v2_with_path("registry.io/v2/team", Some("registry.io/team"))]
    #[case::v1_without_slash_kept("registry.io/v1", Some("registry.io/v1"))]
    #[case::v3_kept("registry.io/v3/", Some("registry.io/v3/"))]
    #[case::path_kept("quay.io/coreos", Some("quay.io/coreos"))]
    #[case::path_trailing_slash_kept("quay.io/coreos/", Some("quay.io/coreos/"))]
    #[case::port("localhost:5000", Some("localhost:5000"))]
    #[case::default_port_kept("quay.io:443", Some("quay.io:443"))]
    #[case::empty_port("quay.io:", Some("quay.io:"))]
    #[case::case_kept("Quay.IO/Team", Some("Quay.IO/Team"))]
    #[case::uppercase_scheme_not_recognized("HTTPS://quay.io", Some("HTTPS://quay.io"))]
    #[case::userinfo_dropped("user:pw@quay.io", Some("quay.io"))]
    #[case::query_dropped("quay.io?x=1", Some("quay.io"))]
    #[case::fragment_dropped("quay.io#frag", Some("quay.io"))]
    #[case::question_mark_ends_host("regist?y.example.com", Some("regist"))]
    #[case::path_percent_decoded("quay.io/a%2Fb", Some("quay.io/a/b"))]
    #[case::host_non_ascii_escape("%C3%A9.example", Some("é.example"))]
    #[case::glob_star("*.example.com", Some("*.example.com"))]
    #[case::ipv6_with_port("[::1]:5000", Some("[::1]:5000"))]
    #[case::ipv6_zone("[fe80::1%25en0]", Some("[fe80::1%en0]"))]
    #[case::ipv6_unbracketed("::1", Some("::1"))]
    #[case::empty_key("", Some(""))]
    #[case::bad_path_escape("quay.io/%zz", None)]
    #[case::ascii_escape_in_host("%41.example", None)]
    #[case::bad_fragment_escape("quay.io#%zz", None)]
    #[case::bracket_class_at_start("[a-c].example.com", None)]
    #[case::bracket_class_inside("registry[0-9].example.com", None)]
    #[case::backslash_in_host("a\\*.example.com", None)]
    #[case::space_in_host("quay io", None)]
    #[case::bad_port("quay.io:abc", None)]
    #[case::ipv6_unterminated("[::1", None)]
    #[case::ipv4_in_brackets("[1.2.3.4]", None)]
    #[case::junk_after_ipv6("[::1]x", None)]
    #[case::control_character("quay.io\u{1}", None)]
    #[case::bad_userinfo("us er@quay.io", None)]
    fn key_normalization(#[case] loc: &str, #[case] expected: Option<&str>) {
        let mut keyring = Keyring::new();
        let skipped = keyring.add("s", &config_of(&[(loc, "u")]));
        match expected {
            Some(key) => {
                assert!(skipped.is_empty(), "{loc:?} was skipped");
                assert_eq!(keyring.keys(), vec![(key.to_owned(), vec!["s".to_owned()])]);
            }
            None => {
                assert_eq!(skipped, vec![loc.to_owned()]);
                assert!(keyring.is_empty());
            }
        }
    }

    /// keys (username = key) -> image -> usernames offered, in order
    #[rstest]
    #[case::host(&["quay.io"], "quay.io/foo/bar", &["quay.io"])]
    #[case::https_key(&["https://quay.io"], "quay.io/foo", &["https://quay.io"])]
    #[case::http_key(&["http://quay.io/v2/"], "quay.io/foo", &["http://quay.io/v2/"])]
    #[case::other_host(&["quay.io"], "gcr.io/foo", &[])]
    #[case::path_prefix(&["quay.io/coreos"], "quay.io/coreos/etcd", &["quay.io/coreos"])]
    #[case::path_other(&["quay.io/coreos"], "quay.io/other/etcd", &[])]
    #[case::path_raw_string_prefix(&["example.com/foo"], "example.com/foobar/x", &["example.com/foo"])]
    #[case::path_with_slash(&["quay.io/coreos/"], "quay.io/coreosx/y", &[])]
    #[case::v2_path(&["registry.io/v2/team"], "registry.io/team/app", &["registry.io/v2/team"])]
    #[case::port_equal(&["localhost:5000"], "localhost:5000/x", &["localhost:5000"])]
    #[case::port_absent_in_image(&["localhost:5000"], "localhost/x", &[])]
    #[case::port_absent_in_key(&["localhost"], "localhost:5000/x", &[])]
    #[case::port_differs(&["quay.io:5000"], "quay.io:5001/x", &[])]
    #[case::default_port_is_a_port(&["quay.io:443"], "quay.io/x", &[])]
    #[case::label_count(&["example.com"], "a.example.com/x", &[])]
    #[case::wildcard_subdomain(&["*.example.com"], "a.example.com/x", &["*.example.com"])]
    #[case::wildcard_not_apex(&["*.example.com"], "example.com/x", &[])]
    #[case::wildcard_one_label(&["*.example.com"], "a.b.example.com/x", &[])]
    #[case::wildcard_two_labels(&["*.*.example.com"], "a.b.example.com/x", &["*.*.example.com"])]
    #[case::wildcard_tld(&["example.*"], "example.org/x", &["example.*"])]
    #[case::wildcard_partial(&["a*.example.com"], "abc.example.com/x", &["a*.example.com"])]
    #[case::wildcard_partial_miss(&["a*.example.com"], "bc.example.com/x", &[])]
    #[case::wildcard_port(&["*.example.com:5000"], "a.example.com:5000/x", &["*.example.com:5000"])]
    #[case::wildcard_port_missing(&["*.example.com:5000"], "a.example.com/x", &[])]
    #[case::star_matches_single_label(&["*"], "localhost/x", &["*"])]
    #[case::star_not_two_labels(&["*"], "quay.io/x", &[])]
    #[case::question_mark_truncates_key(&["regist?y.example.com"], "registry.example.com/x", &[])]
    #[case::case_sensitive_host(&["Quay.io"], "quay.io/x", &[])]
    #[case::reverse_sorted(&["quay.io", "quay.io/coreos"], "quay.io/coreos/etcd", &["quay.io/coreos", "quay.io"])]
    #[case::reverse_sorted_wildcard_last(&["*.example.com", "a.example.com"], "a.example.com/x", &["a.example.com", "*.example.com"])]
    #[case::docker_hub_direct(&["docker.io"], "nginx", &["docker.io"])]
    #[case::docker_hub_direct_with_path(&["docker.io/library"], "nginx:1.27", &["docker.io/library"])]
    #[case::docker_hub_fallback(&["https://index.docker.io/v1/"], "nginx", &["https://index.docker.io/v1/"])]
    #[case::docker_hub_fallback_user_repo(&["https://index.docker.io/v1/"], "someuser/app", &["https://index.docker.io/v1/"])]
    #[case::docker_hub_fallback_index_name(&["index.docker.io"], "index.docker.io/library/nginx", &["index.docker.io"])]
    #[case::fallback_only_when_nothing_matched(&["https://index.docker.io/v1/", "docker.io"], "nginx", &["docker.io"])]
    #[case::fallback_despite_other_keys(&["https://index.docker.io/v1/", "quay.io"], "nginx", &["https://index.docker.io/v1/"])]
    #[case::no_fallback_other_registry(&["https://index.docker.io/v1/"], "quay.io/x", &[])]
    #[case::no_fallback_with_port(&["https://index.docker.io/v1/"], "localhost:5000/x", &[])]
    #[case::kubelet_fallback_for_localhost(&["https://index.docker.io/v1/"], "localhost/x", &["https://index.docker.io/v1/"])]
    #[case::ipv6_with_port(&["[::1]:5000"], "[::1]:5000/foo", &["[::1]:5000"])]
    #[case::ipv6_port_mismatch(&["[::1]"], "[::1]:5000/foo", &[])]
    #[case::ipv6_keys_do_not_crash(&["[fe80::1%25en0]", "::1", "[::1", "[::1]:", "[::ffff:1.2.3.4]"], "quay.io/x", &[])]
    fn lookup(#[case] keys: &[&str], #[case] image: &str, #[case] expected: &[&str]) {
        let keyring = keyring_of(keys);
        assert_eq!(users(&keyring, image), expected);
    }

    #[test]
    fn lookup_carries_source_and_key_and_keeps_insertion_order() {
        let mut keyring = Keyring::new();
        keyring.add("secret/a", &config_of(&[("quay.io", "a1")]));
        keyring.add(
            "secret/b",
            &config_of(&[
                ("https://quay.io", "b1"),
                ("quay.io/v1/", "b2"),
                ("quay.io/coreos", "b3"),
            ]),
        );
        keyring.add("--docker-config", &config_of(&[("http://quay.io", "c1")]));
        let got: Vec<(String, String, String)> = keyring
            .lookup(&img("quay.io/coreos/etcd:v3"))
            .into_iter()
            .map(|m| (m.credential.username().to_owned(), m.source, m.key))
            .collect();
        let want = [
            ("b3", "secret/b", "quay.io/coreos"),
            ("a1", "secret/a", "quay.io"),
            ("b1", "secret/b", "quay.io"),
            ("b2", "secret/b", "quay.io"),
            ("c1", "--docker-config", "quay.io"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(u, s, k)| (u.to_string(), s.to_string(), k.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            keyring.keys(),
            vec![
                ("quay.io/coreos".to_owned(), vec!["secret/b".to_owned()]),
                (
                    "quay.io".to_owned(),
                    vec![
                        "secret/a".into(),
                        "secret/b".into(),
                        "--docker-config".into()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn docker_hub_fallback_reports_default_key() {
        let mut keyring = Keyring::new();
        keyring.add(
            "secret/hub",
            &config_of(&[("https://index.docker.io/v1/", "hub")]),
        );
        let matched = keyring.lookup(&img("library/nginx"));
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].key, DEFAULT_REGISTRY_KEY);
        assert_eq!(matched[0].source, "secret/hub");
    }

    #[test]
    fn repeated_key_in_one_config_last_wins() {
        let mut keyring = Keyring::new();
        keyring.add(
            "s",
            &config_of(&[("quay.io", "first"), ("gcr.io", "g"), ("quay.io", "last")]),
        );
        assert_eq!(users(&keyring, "quay.io/x"), ["last"]);
        assert_eq!(keyring.keys().len(), 2);
    }

    #[test]
    fn add_reports_skipped_and_empty_keyring() {
        let mut keyring = Keyring::new();
        assert!(keyring.is_empty());
        assert!(keyring.lookup(&img("nginx")).is_empty());
        let skipped = keyring.add("s", &config_of(&[("quay.io/%zz", "x"), ("[a].io", "y")]));
        assert_eq!(skipped, ["quay.io/%zz", "[a].io"]);
        assert!(keyring.is_empty());
        assert!(keyring.add("s", &DockerConfig::default()).is_empty());
        keyring.add("s", &config_of(&[("quay.io", "x")]));
        assert!(!keyring.is_empty());
    }

    #[rstest]
    #[case("nginx", true)]
    #[case("library/nginx", true)]
    #[case("docker.io/library/nginx", true)]
    #[case("index.docker.io/library/nginx", true)]
    #[case("someuser/app", true)]
    #[case("localhost/app", true)] // no localhost exception in the kubelet
    #[case("LOCALHOST/app", true)]
    #[case("localhost:5000/app", false)]
    #[case("quay.io/app", false)]
    #[case("/app", false)]
    #[case("", false)]
    fn default_registry_match(#[case] image: &str, #[case] expected: bool) {
        assert_eq!(is_default_registry_match(image), expected);
    }

    // ---- Go emulation ----

    #[rstest]
    #[case("*", "abc", Ok(true))]
    #[case("*", "", Ok(true))]
    #[case("*", "a/b", Ok(false))]
    #[case("a*", "ab/c", Ok(false))]
    #[case("a*b*c", "axxbyyc", Ok(true))]
    #[case("a*b", "axxbyyb", Ok(true))]
    #[case("*x", "abx", Ok(true))]
    #[case("*x", "abxy", Ok(false))]
    #[case("a?c", "abc", Ok(true))]
    #[case("a?c", "ac", Ok(false))]
    #[case("a?c", "a/c", Ok(false))]
    #[case("??", "日本", Ok(true))]
    #[case("[a-c]", "b", Ok(true))]
    #[case("[a-c]", "d", Ok(false))]
    #[case("[^a-c]", "d", Ok(true))]
    #[case("[^a-c]", "a", Ok(false))]
    #[case("[abc]x", "cx", Ok(true))]
    #[case("[\\]]", "]", Ok(true))]
    #[case("\\*", "*", Ok(true))]
    #[case("\\*", "a", Ok(false))]
    #[case("abc", "abc", Ok(true))]
    #[case("abc", "ABC", Ok(false))]
    #[case("", "", Ok(true))]
    #[case("", "a", Ok(false))]
    #[case("[", "a", Err(go::BadPattern))]
    #[case("[]a]", "a", Err(go::BadPattern))]
    #[case("[a-]", "a", Err(go::BadPattern))]
    #[case("[-]", "-", Err(go::BadPattern))]
    #[case("\\", "a", Err(go::BadPattern))]
    #[case("ab[", "x", Err(go::BadPattern))] // malformed even though 'a' already failed
    #[case("*[", "x", Err(go::BadPattern))]
    #[case("a*[", "x", Err(go::BadPattern))]
    fn filepath_match(
        #[case] pattern: &str,
        #[case] name: &str,
        #[case] expected: Result<bool, go::BadPattern>,
    ) {
        assert_eq!(
            go::filepath_match(pattern.as_bytes(), name.as_bytes()),
            expected
        );
    }

    #[rstest]
    #[case("host:80", Some(("host", "80")))]
    #[case("host:", Some(("host", "")))]
    #[case("[::1]:80", Some(("::1", "80")))]
    #[case("host", None)]
    #[case("::1", None)]
    #[case("[::1]", None)]
    #[case("[::1]x:80", None)]
    #[case("a]:80", None)]
    #[case("[a[b]:80", None)]
    #[case("", None)]
    fn split_host_port(#[case] input: &str, #[case] expected: Option<(&str, &str)>) {
        let got = go::split_host_port(input.as_bytes());
        let want = expected.map(|(h, p)| (h.as_bytes(), p.as_bytes()));
        assert_eq!(got, want);
    }

    #[rstest]
    #[case("https://quay.io/a/b", Some(("quay.io", "/a/b")))]
    #[case("https://u:p@quay.io:5000/x?q#f", Some(("quay.io:5000", "/x")))]
    #[case("https://quay.io?", Some(("quay.io", "")))]
    #[case("https:///x", Some(("", "/x")))]
    #[case("https://Quay.IO/%41", Some(("Quay.IO", "/A")))]
    #[case("https://[::1]:80/x", Some(("[::1]:80", "/x")))]
    #[case("https://quay.io/a b", Some(("quay.io", "/a b")))]
    #[case("https://a<b>/", Some(("a<b>", "/")))]
    #[case("https://quay.io/%", None)]
    #[case("https://quay.io/\x7f", None)]
    #[case("https://a{b}/", None)]
    #[case("https://a%20b/", None)]
    #[case("https://a[b]/", None)]
    #[case("https://[::1]junk/", None)]
    #[case("https://[fe80::1%25]/", None)]
    #[case(":foo", None)]
    fn url_parse(#[case] raw: &str, #[case] expected: Option<(&str, &str)>) {
        let got = go::url_parse(raw.as_bytes()).ok().map(|u| (u.host, u.path));
        let want = expected.map(|(h, p)| (h.as_bytes().to_vec(), p.as_bytes().to_vec()));
        assert_eq!(got, want);
    }

    /// Deterministic garbage through every entry point: nothing may panic.
    #[test]
    fn no_panics_on_garbage() {
        const ALPHABET: &[u8] = b"[]*?\\-^%25:.@/#abAZ{}\"\xff\xc3\xa9 \n\t,u:d8\x01";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let len = next(14);
            let a: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            let len = next(14);
            let b: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            let _ = go::filepath_match(&a, &b);
            let _ = go::split_host_port(&a);
            if let (Some(g), Some(t)) = (ParsedUrl::parse(&a), ParsedUrl::parse(&b)) {
                let _ = ParsedUrl::matches(&g, &t);
            }
            let _ = parse_dockerconfigjson(&a);
            let _ = parse_dockercfg(&b);
            let _ = decode_docker_config_field_auth(&String::from_utf8_lossy(&a));
            let key = String::from_utf8_lossy(&a).into_owned();
            let mut keyring = Keyring::new();
            keyring.add("s", &config_of(&[(&key, "u")]));
            let _ = keyring.keys();
            if let Ok(image) = ImageRef::parse(&String::from_utf8_lossy(&b)) {
                let _ = keyring.lookup(&image);
            }
        }
    }

    #[test]
    fn non_utf8_key_bytes_are_handled() {
        // "%FF" decodes to a lone 0xFF byte in the host: kept as bytes, shown lossily.
        let mut keyring = Keyring::new();
        assert!(keyring
            .add("s", &config_of(&[("%FF.example", "x")]))
            .is_empty());
        assert_eq!(keyring.keys()[0].0, "\u{FFFD}.example");
        assert!(users(&keyring, "a.example/x").is_empty());
    }
}
