//! The kubelet's `CredentialProviderConfig` (`--image-credential-provider-config`,
//! `kubelet.config.k8s.io/v1`): which images the nodes pull with credentials from a
//! credential provider plugin (ECR, GCR/Artifact Registry, ACR, or a KEP-4412
//! ServiceAccount-token plugin).
//!
//! Validated as the kubelet validates it (`pkg/credentialprovider/plugin/config.go`
//! `validateCredentialProviderConfig`): the kubelet refuses to start on any of these errors,
//! so pullcheck refuses too. Decoding is strict (unknown fields are errors); the YAML is
//! read by `config`. `matchImages` are the keyring's globs ([`super::urls_match_str`]).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::keyring::{urls_match_str, valid_match_image};
use crate::text::{clip, QUOTE_LIMIT};

/// `apiVersion`s of the file the kubelet decodes.
const CONFIG_API_VERSIONS: [&str; 3] = [
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];

/// `apiVersion`s of the plugin protocol.
const PLUGIN_API_VERSIONS: [&str; 3] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
];

/// The file as written (strict: unknown fields are errors, as the kubelet's codec).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialProviderConfigFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderFile {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub match_images: Vec<String>,
    pub default_cache_duration: Option<String>,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    pub token_attributes: Option<TokenAttributesFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenAttributesFile {
    #[serde(default)]
    pub service_account_token_audience: String,
    pub require_service_account: Option<bool>,
    #[serde(default)]
    pub required_service_account_annotation_keys: Vec<String>,
    #[serde(default)]
    pub optional_service_account_annotation_keys: Vec<String>,
    pub cache_type: Option<String>,
}

/// One provider as far as pullcheck needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub match_images: Vec<String>,
    /// KEP-4412: the kubelet runs the plugin only when the Pod's ServiceAccount carries
    /// every one of these annotations (present, any value).
    pub required_annotations: Vec<String>,
}

/// The providers of a valid configuration, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialProviders {
    pub providers: Vec<Provider>,
}

/// The provider whose `matchImages` matched an image, and the glob that did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderMatch<'a> {
    pub provider: &'a Provider,
    pub glob: &'a str,
}

impl CredentialProviders {
    /// The kubelet's validation; `Err` lists every problem, each with its field path.
    pub fn from_file(file: CredentialProviderConfigFile) -> Result<Self, String> {
        let mut errors = Vec::new();
        if file.kind != "CredentialProviderConfig" {
            errors.push(format!(
                "kind: {:?} is not CredentialProviderConfig",
                clip(&file.kind, QUOTE_LIMIT)
            ));
        }
        if !CONFIG_API_VERSIONS.contains(&file.api_version.as_str()) {
            errors.push(format!(
                "apiVersion: {:?} is not one of {}",
                clip(&file.api_version, QUOTE_LIMIT),
                CONFIG_API_VERSIONS.join(", ")
            ));
        }
        if file.providers.is_empty() {
            errors.push("providers: at least 1 item in plugins is required".to_owned());
        }
        let mut names = BTreeSet::new();
        let mut providers = Vec::new();
        for (i, p) in file.providers.into_iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            let mut err = |field: &str, what: String| errors.push(format!("{}: {what}", at(field)));
            if p.name.is_empty() {
                err("name", "name is required".into());
            } else if p.name.contains('/')
                || p.name.contains(' ')
                || p.name == "."
                || p.name == ".."
            {
                err(
                    "name",
                    format!(
                        "{:?}: must not contain '/' or ' ', nor be '.' or '..'",
                        clip(&p.name, QUOTE_LIMIT)
                    ),
                );
            } else if !names.insert(p.name.clone()) {
                err(
                    "name",
                    format!("duplicate provider name {:?}", clip(&p.name, QUOTE_LIMIT)),
                );
            }
            if p.match_images.is_empty() {
                err(
                    "matchImages",
                    "at least 1 item in matchImages is required".into(),
                );
            }
            for (j, image) in p.match_images.iter().enumerate() {
                if let Err(e) = valid_match_image(image) {
                    err(
                        &format!("matchImages[{j}]"),
                        format!("match image {:?} is invalid: {e}", clip(image, QUOTE_LIMIT)),
                    );
                }
            }
            match p.default_cache_duration.as_deref() {
                None => err(
                    "defaultCacheDuration",
                    "defaultCacheDuration is required".into(),
                ),
                Some(d) => match go_duration_sign(d) {
                    Err(e) => err("defaultCacheDuration", e),
                    Ok(true) => err(
                        "defaultCacheDuration",
                        "must be greater than or equal to 0".into(),
                    ),
                    Ok(false) => {}
                },
            }
            if p.api_version.is_empty() {
                err("apiVersion", "apiVersion is required".into());
            } else if !PLUGIN_API_VERSIONS.contains(&p.api_version.as_str()) {
                err(
                    "apiVersion",
                    format!(
                        "{:?}: supported values: {}",
                        clip(&p.api_version, QUOTE_LIMIT),
                        PLUGIN_API_VERSIONS.join(", ")
                    ),
                );
            }
            let mut required = Vec::new();
            if let Some(t) = &p.token_attributes {
                validate_token_attributes(t, &p.api_version, &mut |field, what| {
                    errors.push(format!(
                        "{}: {what}",
                        at(&format!("tokenAttributes.{field}"))
                    ))
                });
                required = t.required_service_account_annotation_keys.clone();
            }
            providers.push(Provider {
                name: p.name,
                match_images: p.match_images,
                required_annotations: required,
            });
        }
        if errors.is_empty() {
            Ok(CredentialProviders { providers })
        } else {
            Err(errors.join("; "))
        }
    }

    /// The first provider (in file order) whose `matchImages` match `image_name`, the
    /// image's normalized name without tag or digest (`docker.io/library/nginx`), as the
    /// kubelet's `isImageAllowed` matches it.
    pub fn matching(&self, image_name: &str) -> Option<ProviderMatch<'_>> {
        self.providers.iter().find_map(|provider| {
            provider
                .match_images
                .iter()
                .find(|glob| urls_match_str(glob, image_name))
                .map(|glob| ProviderMatch {
                    provider,
                    glob: glob.as_str(),
                })
        })
    }
}

fn validate_token_attributes(
    t: &TokenAttributesFile,
    api_version: &str,
    err: &mut dyn FnMut(&str, String),
) {
    if t.service_account_token_audience.is_empty() {
        err(
            "serviceAccountTokenAudience",
            "serviceAccountTokenAudience is required".into(),
        );
    }
    match t.require_service_account {
        None => err("requireServiceAccount", "requireServiceAccount is required".into()),
        Some(false) if !t.required_service_account_annotation_keys.is_empty() => err(
            "requireServiceAccount",
            "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set"
                .into(),
        ),
        Some(_) => {}
    }
    if api_version != "credentialprovider.kubelet.k8s.io/v1" {
        err(
            "",
            "tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for (field, keys) in [
        (
            "requiredServiceAccountAnnotationKeys",
            &t.required_service_account_annotation_keys,
        ),
        (
            "optionalServiceAccountAnnotationKeys",
            &t.optional_service_account_annotation_keys,
        ),
    ] {
        let mut here = BTreeSet::new();
        for key in keys {
            if let Err(e) = qualified_name(&key.to_ascii_lowercase()) {
                err(field, format!("{:?}: {e}", clip(key, QUOTE_LIMIT)));
            }
            if !here.insert(key.as_str()) {
                err(
                    field,
                    format!("duplicate annotation key {:?}", clip(key, QUOTE_LIMIT)),
                );
            } else if !seen.insert(key.as_str()) {
                err(
                    field,
                    format!(
                        "annotation keys cannot be both required and optional: {:?}",
                        clip(key, QUOTE_LIMIT)
                    ),
                );
            }
        }
    }
    if let Some(c) = &t.cache_type {
        if c != "ServiceAccount" && c != "Token" {
            err(
                "cacheType",
                format!(
                    "{:?}: supported values: ServiceAccount, Token",
                    clip(c, QUOTE_LIMIT)
                ),
            );
        }
    }
}

/// Kubernetes `IsQualifiedName`: `[prefix/]name`, the name at most 63 characters of
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the prefix a DNS subdomain (≤ 253).
fn qualified_name(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let ok_name = !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum)
        && name
            .bytes()
            .all(|c| alnum(c) || c == b'-' || c == b'_' || c == b'.');
    if !ok_name {
        return Err("not a qualified name (alphanumerics, '-', '_' or '.', at most 63, starting and ending with an alphanumeric)");
    }
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Err("prefix is not a DNS subdomain");
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration` as far as validation needs: `Ok(true)` for a negative
/// duration. `[-+]`, then `<number><unit>` pairs (`1.5h`, `2h45m`); `0` alone is fine.
fn go_duration_sign(s: &str) -> Result<bool, String> {
    let invalid = || format!("time: invalid duration {:?}", clip(s, 64));
    let negative = s.starts_with('-');
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return Ok(false);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nonzero = false;
    while !rest.is_empty() {
        let int = rest.bytes().take_while(u8::is_ascii_digit).count();
        nonzero |= rest[..int].bytes().any(|b| b != b'0');
        let mut after = &rest[int..];
        let mut frac = 0;
        if let Some(f) = after.strip_prefix('.') {
            frac = f.bytes().take_while(u8::is_ascii_digit).count();
            nonzero |= f[..frac].bytes().any(|b| b != b'0');
            after = &f[frac..];
        }
        if int == 0 && frac == 0 {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let unit = &after[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {:?}", clip(s, 64)));
        }
        if !["ns", "us", "µs", "μs", "ms", "s", "m", "h"].contains(&unit) {
            return Err(format!(
                "time: unknown unit {:?} in duration {:?}",
                clip(unit, 16),
                clip(s, 64)
            ));
        }
        rest = &after[unit_len..];
    }
    Ok(negative && nonzero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn provider(name: &str, images: &[&str]) -> ProviderFile {
        ProviderFile {
            name: name.into(),
            match_images: images.iter().map(|s| s.to_string()).collect(),
            default_cache_duration: Some("12h".into()),
            api_version: "credentialprovider.kubelet.k8s.io/v1".into(),
            args: Vec::new(),
            env: Vec::new(),
            token_attributes: None,
        }
    }

    fn file(providers: Vec<ProviderFile>) -> CredentialProviderConfigFile {
        CredentialProviderConfigFile {
            api_version: "kubelet.config.k8s.io/v1".into(),
            kind: "CredentialProviderConfig".into(),
            providers,
        }
    }

    fn tokens(
        required: &[&str],
        optional: &[&str],
        require_sa: Option<bool>,
    ) -> TokenAttributesFile {
        TokenAttributesFile {
            service_account_token_audience: "aud".into(),
            require_service_account: require_sa,
            required_service_account_annotation_keys: required
                .iter()
                .map(|s| s.to_string())
                .collect(),
            optional_service_account_annotation_keys: optional
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cache_type: Some("ServiceAccount".into()),
        }
    }

    /// kubelet `URLsMatch`: per-label globs, equal ports, same label count, the path a
    /// plain string prefix (no segment boundary), case-sensitive.
    #[rstest]
    #[case(
        "*.dkr.ecr.*.amazonaws.com",
        "123.dkr.ecr.eu-west-1.amazonaws.com/app",
        true
    )]
    #[case(
        "*.dkr.ecr.*.amazonaws.com",
        "dkr.ecr.eu-west-1.amazonaws.com/app",
        false
    )]
    #[case("*.io", "a.b.io/app", false)]
    #[case("*.example.com", "example.com/app", false)]
    #[case("registry.io:8080/path", "registry.io:8080/path/app", true)]
    #[case("registry.io:8080/path", "registry.io/path/app", false)]
    #[case("reg.io/app", "reg.io/application/x", true)]
    #[case("reg.io/app", "reg.io/other", false)]
    #[case("Reg.io", "reg.io/app", false)]
    #[case("k8s.*", "k8s.io/app", true)]
    #[case("x.io:5000", "x.io/app", false)]
    fn match_images_as_the_kubelet(#[case] glob: &str, #[case] image: &str, #[case] want: bool) {
        let providers = CredentialProviders::from_file(file(vec![provider("p", &[glob])])).unwrap();
        assert_eq!(
            providers.matching(image).is_some(),
            want,
            "{glob} vs {image}"
        );
    }

    #[test]
    fn the_first_matching_provider_in_file_order() {
        let providers = CredentialProviders::from_file(file(vec![
            provider("ecr", &["*.dkr.ecr.*.amazonaws.com"]),
            provider("any-ecr", &["other.io", "*.dkr.ecr.*.amazonaws.com"]),
        ]))
        .unwrap();
        let m = providers
            .matching("1.dkr.ecr.us-east-1.amazonaws.com/a")
            .unwrap();
        assert_eq!(
            (m.provider.name.as_str(), m.glob),
            ("ecr", "*.dkr.ecr.*.amazonaws.com")
        );
        assert_eq!(
            providers.matching("other.io/x").unwrap().provider.name,
            "any-ecr"
        );
    }

    #[rstest]
    #[case::no_providers(vec![], "providers: at least 1 item in plugins is required")]
    #[case::slash(vec![provider("a/b", &["x.io"])], "providers[0].name: \"a/b\": must not contain")]
    #[case::dot(vec![provider("..", &["x.io"])], "providers[0].name: \"..\"")]
    #[case::duplicate(vec![provider("a", &["x.io"]), provider("a", &["y.io"])], "providers[1].name: duplicate provider name \"a\"")]
    #[case::no_images(vec![provider("a", &[])], "providers[0].matchImages: at least 1 item in matchImages is required")]
    #[case::bad_image(vec![provider("a", &["x.io/%zz"])], "providers[0].matchImages[0]: match image \"x.io/%zz\" is invalid")]
    fn invalid_configurations_say_which_field(
        #[case] providers: Vec<ProviderFile>,
        #[case] want: &str,
    ) {
        let err = CredentialProviders::from_file(file(providers)).unwrap_err();
        assert!(err.contains(want), "{err}");
    }

    #[test]
    fn durations_api_versions_and_token_attributes() {
        let mut p = provider("a", &["x.io"]);
        p.default_cache_duration = Some("-1m".into());
        let err = CredentialProviders::from_file(file(vec![p])).unwrap_err();
        assert!(
            err.contains("defaultCacheDuration: must be greater than or equal to 0"),
            "{err}"
        );
        let mut p = provider("a", &["x.io"]);
        p.default_cache_duration = None;
        p.api_version = "credentialprovider.kubelet.k8s.io/v2".into();
        let err = CredentialProviders::from_file(file(vec![p])).unwrap_err();
        assert!(err.contains("defaultCacheDuration is required"), "{err}");
        assert!(
            err.contains("providers[0].apiVersion: \"credentialprovider.kubelet.k8s.io/v2\""),
            "{err}"
        );

        let mut p = provider("a", &["x.io"]);
        p.token_attributes = Some(tokens(&["example.com/role"], &[], Some(false)));
        let err = CredentialProviders::from_file(file(vec![p])).unwrap_err();
        assert!(
            err.contains("requireServiceAccount cannot be false"),
            "{err}"
        );
        let mut p = provider("a", &["x.io"]);
        p.token_attributes = Some(tokens(
            &["example.com/role"],
            &["example.com/role"],
            Some(true),
        ));
        let err = CredentialProviders::from_file(file(vec![p])).unwrap_err();
        assert!(
            err.contains("cannot be both required and optional"),
            "{err}"
        );
        let mut p = provider("a", &["x.io"]);
        p.token_attributes = Some(tokens(&["Example.com/-bad"], &[], None));
        let err = CredentialProviders::from_file(file(vec![p])).unwrap_err();
        assert!(err.contains("requireServiceAccount is required"), "{err}");
        assert!(err.contains("not a qualified name"), "{err}");

        let mut p = provider("a", &["x.io"]);
        p.token_attributes = Some(tokens(
            &["example.com/role"],
            &["example.com/region"],
            Some(true),
        ));
        let ok = CredentialProviders::from_file(file(vec![p])).unwrap();
        assert_eq!(ok.providers[0].required_annotations, ["example.com/role"]);
    }

    #[rstest]
    #[case("12h", Ok(false))]
    #[case("0", Ok(false))]
    #[case("-0s", Ok(false))]
    #[case("1h30m", Ok(false))]
    #[case("-1.5h", Ok(true))]
    #[case("12", Err(()))]
    #[case("", Err(()))]
    #[case("3d", Err(()))]
    fn go_durations(#[case] s: &str, #[case] want: Result<bool, ()>) {
        assert_eq!(go_duration_sign(s).map_err(|_| ()), want, "{s}");
    }
}
