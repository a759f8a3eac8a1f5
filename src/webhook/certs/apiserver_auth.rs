//! The API server's side of `serve --client-ca`: the API server presents a client
//! certificate to a webhook when the kubeconfig named by its AdmissionConfiguration
//! (`--admission-control-config-file`, plugin `ValidatingAdmissionWebhook`) has a `users:`
//! entry named for the webhook's host (`<service>.<namespace>.svc` for a Service on port
//! 443). `pullcheck certs --api-server-client` writes the certificate and these two files.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// Where the printed instructions put the files on the control-plane nodes.
pub const NODE_DIR: &str = "/etc/kubernetes/pullcheck";
pub const CLIENT_CERT: &str = "apiserver-client.crt";
pub const CLIENT_KEY: &str = "apiserver-client.key";
pub const KUBECONFIG: &str = "webhook-kubeconfig.yaml";
pub const ADMISSION_CONFIG: &str = "admission-config.yaml";
/// Common name of the API server's client certificate (pullcheck checks only the CA).
pub const CLIENT_NAME: &str = "kube-apiserver pullcheck client";

/// The kubeconfig telling the API server which certificate to present to `host`.
pub fn kubeconfig_yaml(host: &str) -> String {
    format!(
        "# Read by the API server's webhook admission plugins (AdmissionConfiguration\n\
         # kubeConfigFile): the client certificate presented to each webhook, chosen by the\n\
         # user name = the webhook's host (a Service on port 443: <service>.<namespace>.svc;\n\
         # another port is part of the name; '*' globs leading labels, e.g. '*.svc').\n\
         apiVersion: v1\n\
         kind: Config\n\
         users:\n\
         \x20 - name: {host}\n\
         \x20   user:\n\
         \x20     client-certificate: {NODE_DIR}/{CLIENT_CERT}\n\
         \x20     client-key: {NODE_DIR}/{CLIENT_KEY}\n"
    )
}

/// The AdmissionConfiguration (`kube-apiserver --admission-control-config-file`) naming
/// that kubeconfig for validating webhooks.
pub fn admission_config_yaml() -> String {
    format!(
        "# kube-apiserver --admission-control-config-file={NODE_DIR}/{ADMISSION_CONFIG}\n\
         # (one file per API server: if it has one already, add this plugin entry to it).\n\
         apiVersion: apiserver.config.k8s.io/v1\n\
         kind: AdmissionConfiguration\n\
         plugins:\n\
         \x20 - name: ValidatingAdmissionWebhook\n\
         \x20   configuration:\n\
         \x20     apiVersion: apiserver.config.k8s.io/v1\n\
         \x20     kind: WebhookAdmissionConfiguration\n\
         \x20     kubeConfigFile: {NODE_DIR}/{KUBECONFIG}\n"
    )
}

/// Verifies `leaf` as a TLS client certificate issued by `ca`, as `serve --client-ca` will.
pub fn verify_client(ca: &CertificateDer<'_>, leaf: &CertificateDer<'_>) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone().into_owned())
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(leaf, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What to do with the files (printed by `pullcheck certs --api-server-client`).
pub fn print_next_steps(out: &mut impl Write, dir: &Path, host: &str) -> io::Result<()> {
    let d = dir.display();
    writeln!(
        out,
        "  {CLIENT_CERT}, {CLIENT_KEY}  the API server's client certificate (clientAuth)"
    )?;
    writeln!(
        out,
        "  {KUBECONFIG}, {ADMISSION_CONFIG}  make the API server present it to {host}"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Caller authentication (webhook-config/README.md, \"Client certificates\"):"
    )?;
    writeln!(
        out,
        "  1. on every control-plane node: copy {d}/{{{CLIENT_CERT},{CLIENT_KEY},{KUBECONFIG},{ADMISSION_CONFIG}}}"
    )?;
    writeln!(
        out,
        "     to {NODE_DIR}/ (key 0600), mount that directory into kube-apiserver and start it with"
    )?;
    writeln!(
        out,
        "     --admission-control-config-file={NODE_DIR}/{ADMISSION_CONFIG}"
    )?;
    writeln!(
        out,
        "  2. give pullcheck the CA: kubectl -n pullcheck create configmap pullcheck-client-ca --from-file=ca.crt={d}/ca.crt"
    )?;
    writeln!(
        out,
        "     and add the component webhook-config/components/client-ca to your overlay (serve --client-ca)"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_the_webhook_host_and_the_files() {
        let yaml = kubeconfig_yaml("pullcheck.pullcheck.svc");
        let v: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(v["kind"], "Config");
        let user = &v["users"][0];
        assert_eq!(user["name"], "pullcheck.pullcheck.svc");
        assert_eq!(
            user["user"]["client-certificate"],
            "/etc/kubernetes/pullcheck/apiserver-client.crt"
        );
        assert_eq!(
            user["user"]["client-key"],
            "/etc/kubernetes/pullcheck/apiserver-client.key"
        );
    }

    #[test]
    fn the_admission_configuration_points_validating_webhooks_at_the_kubeconfig() {
        let v: serde_json::Value = serde_saphyr::from_str(&admission_config_yaml()).unwrap();
        assert_eq!(v["apiVersion"], "apiserver.config.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionConfiguration");
        let plugin = &v["plugins"][0];
        assert_eq!(plugin["name"], "ValidatingAdmissionWebhook");
        assert_eq!(
            plugin["configuration"]["kind"],
            "WebhookAdmissionConfiguration"
        );
        assert_eq!(
            plugin["configuration"]["kubeConfigFile"],
            "/etc/kubernetes/pullcheck/webhook-kubeconfig.yaml"
        );
    }
}
