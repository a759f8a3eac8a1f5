//! The nodes' own configuration files, read once at start: the kubelet's
//! `CredentialProviderConfig` (`--image-credential-provider-config`). A file the kubelet
//! would refuse to start with makes pullcheck refuse to start, naming the file and what is
//! wrong in it (the YAML line, or the field).

use std::path::Path;

use anyhow::{anyhow, Context as _};

use super::yaml::{yaml_message, yaml_options};
use crate::kubelet::credentials::{CredentialProviderConfigFile, CredentialProviders};

/// Reads and validates a `CredentialProviderConfig` (YAML or JSON) as the kubelet does:
/// strictly (unknown fields are errors), every provider checked.
pub fn credential_providers(path: &Path) -> anyhow::Result<CredentialProviders> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read credential provider config {}", path.display()))?;
    parse_credential_providers(&text).with_context(|| {
        format!(
            "invalid credential provider config {} (the kubelet does not start with it either)",
            path.display()
        )
    })
}

fn parse_credential_providers(text: &str) -> anyhow::Result<CredentialProviders> {
    let file: CredentialProviderConfigFile =
        serde_saphyr::from_str_with_options(text, yaml_options(text.len())).map_err(|e| {
            let message = yaml_message(&e);
            let message = message.strip_prefix("invalid YAML: ").unwrap_or(&message);
            match e.location() {
                Some(l) => anyhow!("line {}: {message}", l.line()),
                None => anyhow!("{message}"),
            }
        })?;
    CredentialProviders::from_file(file).map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: ecr-credential-provider
  matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]
  defaultCacheDuration: 12h
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  args: [get-credentials]
  env: [{name: AWS_PROFILE, value: nodes}]
- name: acr-credential-provider
  matchImages: [\"*.azurecr.io\"]
  defaultCacheDuration: 10m
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  tokenAttributes:
    serviceAccountTokenAudience: api://AzureADTokenExchange
    requireServiceAccount: true
    requiredServiceAccountAnnotationKeys: [azure.workload.identity/client-id]
    cacheType: ServiceAccount
";

    #[test]
    fn a_kubelet_config_reads() {
        let p = parse_credential_providers(ECR).unwrap();
        assert_eq!(p.providers.len(), 2);
        assert_eq!(
            p.matching("1.dkr.ecr.eu-west-1.amazonaws.com/team/app")
                .unwrap()
                .provider
                .name,
            "ecr-credential-provider"
        );
        assert_eq!(
            p.providers[1].required_annotations,
            ["azure.workload.identity/client-id"]
        );
        // JSON too, as the kubelet reads it.
        let json = r#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"gcp","matchImages":["*.pkg.dev"],"defaultCacheDuration":"1m","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}"#;
        assert_eq!(parse_credential_providers(json).unwrap().providers.len(), 1);
    }

    #[test]
    fn what_the_kubelet_refuses_pullcheck_refuses_naming_the_line_or_field() {
        let typo = ECR.replace("defaultCacheDuration: 10m", "defaultCacheDurations: 10m");
        let err = format!("{:#}", parse_credential_providers(&typo).unwrap_err());
        assert!(
            err.starts_with("line 12: unknown field `defaultCacheDurations`"),
            "{err}"
        );
        let negative = ECR.replace("defaultCacheDuration: 10m", "defaultCacheDuration: -10m");
        let err = format!("{:#}", parse_credential_providers(&negative).unwrap_err());
        assert_eq!(
            err,
            "providers[1].defaultCacheDuration: must be greater than or equal to 0"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.yaml");
        std::fs::write(&path, "kind: CredentialProviderConfig\n").unwrap();
        let err = format!("{:#}", credential_providers(&path).unwrap_err());
        assert!(
            err.contains("invalid credential provider config")
                && err.contains("the kubelet does not start with it either"),
            "{err}"
        );
    }
}
