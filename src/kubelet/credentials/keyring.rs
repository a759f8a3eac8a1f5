//! The kubelet's `BasicDockerKeyring` (`pkg/credentialprovider/keyring.go`): registry keys
//! normalized as the kubelet normalizes them ([`super::go`] for Go's URL parsing), and the
//! credentials offered for an image, in the kubelet's order.

use std::collections::HashMap;
use std::fmt;

use super::{go, Credential, DockerConfig};
use crate::kubelet::reference::ImageRef;

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

/// Kubelet `URLsMatchStr(glob, target)`: both parsed as schemeless URLs, then same port,
/// same number of host labels, each label a Go `filepath.Match`, the glob's path a raw
/// string prefix of the target's. A glob or target that does not parse matches nothing
/// (the kubelet logs the error and moves on).
pub fn urls_match_str(glob: &str, target: &str) -> bool {
    match (
        ParsedUrl::parse(glob.as_bytes()),
        ParsedUrl::parse(target.as_bytes()),
    ) {
        (Some(g), Some(t)) => ParsedUrl::matches(&g, &t),
        _ => false,
    }
}

/// Whether a credential provider's `matchImages` entry is valid for the kubelet
/// (`ParseSchemelessURL` succeeds); the error is Go's words.
pub fn valid_match_image(glob: &str) -> Result<(), &'static str> {
    parse_schemeless_url(glob.as_bytes()).map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::credentials::docker_config::decode_docker_config_field_auth;
    use crate::kubelet::credentials::DockerConfigEntry;
    use crate::kubelet::credentials::{parse_dockercfg, parse_dockerconfigjson};
    use rstest::rstest;

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
