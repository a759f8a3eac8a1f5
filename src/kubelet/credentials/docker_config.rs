//! Docker configs as the kubelet decodes them: `kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg` Secret payloads and docker client `config.json` files
//! (kubelet `pkg/credentialprovider/config.go`), decoded with Go's `encoding/json` rules
//! ([`super::go_json`]). Messages name the registry key of an entry at most, never a
//! username, password or `auth`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::go_json::{go_field_is, go_json_text, reject, run_seed, GoStr};
use super::{
    Credential, DOCKERCFG_KEY, DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKERCFG,
    SECRET_TYPE_DOCKER_CONFIG_JSON,
};

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

pub(super) enum AuthProblem {
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
pub(super) fn decode_docker_config_field_auth(
    field: &str,
) -> Result<(String, String), AuthProblem> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::credentials::tests::{SECRET, USER};
    use rstest::rstest;

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
}
