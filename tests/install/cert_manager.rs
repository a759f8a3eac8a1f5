//! cert-manager

use super::*;

#[test]
fn cert_manager_overlay_issues_the_serving_certificate_and_injects_its_ca() {
    let install = Install::new("overlays/cert-manager", "warn");
    let vwc: ValidatingWebhookConfiguration = install.one();
    let inject = vwc
        .metadata
        .annotations
        .unwrap_or_default()
        .remove("cert-manager.io/inject-ca-from")
        .expect("inject-ca-from annotation");
    assert_eq!(inject, "pullcheck/pullcheck-serving");
    let (ns, name) = inject.split_once('/').unwrap();

    let certificates = install.all_of_kind("cert-manager.io/v1", "Certificate");
    let issuers = install.all_of_kind("cert-manager.io/v1", "Issuer");
    let find = |list: &[&Value], name: &str| -> Value {
        list.iter()
            .find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"] == NAMESPACE)
            .map(|o| (*o).clone())
            .unwrap_or_else(|| panic!("no {name} in {NAMESPACE}"))
    };
    assert_eq!(ns, NAMESPACE);
    let serving = find(&certificates, name);
    assert_eq!(serving["spec"]["secretName"], TLS_SECRET);
    let dns: Vec<&str> = serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "pullcheck.pullcheck.svc",
        "pullcheck.pullcheck.svc.cluster.local",
    ] {
        assert!(dns.contains(&expected), "{dns:?}");
    }
    assert_ne!(serving["spec"]["isCA"], true);

    // serving <- CA Issuer <- CA Certificate (isCA) <- self-signed Issuer
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    let ca_issuer = find(
        &issuers,
        serving["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    let ca_secret = ca_issuer["spec"]["ca"]["secretName"]
        .as_str()
        .expect("CA issuer");
    let ca_cert = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == ca_secret)
        .expect("a Certificate writes the CA secret");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let root = find(
        &issuers,
        ca_cert["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    assert!(root["spec"]["selfSigned"].is_object());

    // The pods mount the Secret the Certificate writes (checked per install above) and the
    // other installs carry no cert-manager objects or annotations.
    for other in ["base", "overlays/warn", "overlays/enforce"] {
        let objects = render(other);
        assert!(
            objects
                .iter()
                .all(|o| o["apiVersion"] != "cert-manager.io/v1"),
            "{other}"
        );
        assert!(objects.iter().all(|o| o["metadata"]["annotations"]
            .get("cert-manager.io/inject-ca-from")
            .is_none()));
    }
}
