//! The engine against a real distribution registry: existence, not-found classes,
//! credentials (Basic and token auth), tenant isolation, platforms, request counts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pullcheck::engine::FindingClass;
use pullcheck::engine::{Checker, Context, ImageCheck};
use pullcheck::kubelet::credentials::{Credential, DockerConfig, DockerConfigEntry, Keyring};
use pullcheck::kubelet::platform::Platform;
use pullcheck::registry::cache::CacheConfig;
use pullcheck::registry::RegistryConfig;
use support::{Auth, RegistryOptions, TestRegistry, ALICE, BOB};
use tokio::time::Instant;

async fn start(tls: bool, auth: Auth) -> TestRegistry {
    TestRegistry::start(RegistryOptions { tls, auth }).await
}

fn config_for(reg: &TestRegistry) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    let host = reg.host();
    if reg.scheme() == "http" {
        config.host_mut(&host).plain_http = true;
    }
    if let Some(ca) = reg.ca_pem() {
        config.host_mut(&host).ca_pems.push(ca.into_bytes());
    }
    config
}

async fn checker_with(reg: &TestRegistry, cache: CacheConfig) -> Arc<Checker> {
    support::engine::checker(config_for(reg), cache).await
}

async fn checker(reg: &TestRegistry) -> Arc<Checker> {
    checker_with(reg, CacheConfig::default()).await
}

fn keyring(key: &str, user: &str, password: &str) -> Keyring {
    let mut k = Keyring::new();
    k.add(
        "secret/test",
        &DockerConfig {
            entries: vec![DockerConfigEntry {
                key: key.to_string(),
                credential: Credential::new(user, password),
            }],
        },
    );
    k
}

fn amd64() -> Vec<Platform> {
    vec![Platform::new("linux", "amd64", None)]
}

async fn check_with(c: &Checker, image: &str, k: &Keyring, wanted: &[Platform]) -> ImageCheck {
    let deadline = Instant::now() + Duration::from_secs(20);
    ImageCheck::clone(&*c.check(image, k, wanted, Context::Cli, deadline).await)
}

async fn check(c: &Checker, image: &str, k: &Keyring) -> ImageCheck {
    check_with(c, image, k, &amd64()).await
}

fn assert_ok(r: &ImageCheck) {
    assert!(
        r.finding.is_none(),
        "{}: unexpected finding {:?}",
        r.image,
        r.finding
    );
}

fn assert_class(r: &ImageCheck, class: FindingClass) {
    assert_eq!(r.class(), Some(class), "{}: {:?}", r.image, r.finding);
}

#[tokio::test]
async fn found_by_tag_digest_and_both() {
    let reg = start(false, Auth::None).await;
    let digest = reg.push_image("team/app", Some("v1"), "linux/amd64").await;
    let docker = reg
        .push_docker_image("team/legacy", Some("v1"), "linux/amd64")
        .await;
    let c = checker(&reg).await;
    let none = Keyring::new();
    let host = reg.host();

    let by_tag = check(&c, &format!("{host}/team/app:v1"), &none).await;
    assert_ok(&by_tag);
    let resolved = by_tag.resolved.as_ref().unwrap();
    assert_eq!(resolved.digest, digest);
    assert!(!resolved.platforms.is_index);
    assert_eq!(resolved.platforms.platforms, amd64());

    assert_ok(&check(&c, &format!("{host}/team/app@{digest}"), &none).await);
    assert_ok(&check(&c, &format!("{host}/team/app:v1@{digest}"), &none).await);
    // Tag and digest: the digest is what is pulled, even when the tag is gone.
    assert_ok(&check(&c, &format!("{host}/team/app:gone@{digest}"), &none).await);

    let legacy = check(&c, &format!("{host}/team/legacy:v1"), &none).await;
    assert_ok(&legacy);
    assert_eq!(legacy.resolved.unwrap().digest, docker);
}

#[tokio::test]
async fn not_found_classes_and_closest_tags() {
    let reg = start(false, Auth::None).await;
    reg.push_tags("team/web", &["1.24.0", "1.25.0", "1.25.1", "latest"])
        .await;
    let c = checker(&reg).await;
    let none = Keyring::new();
    let host = reg.host();

    let r = check(&c, &format!("{host}/team/nothing:1"), &none).await;
    assert_class(&r, FindingClass::RepositoryNotFound);

    let r = check(&c, &format!("{host}/team/web:1.25"), &none).await;
    assert_class(&r, FindingClass::TagNotFound);
    let hint = r.finding.as_ref().unwrap().hint.clone().unwrap();
    assert!(hint.contains("1.25.1") && hint.contains("1.25.0"), "{hint}");

    let missing = format!("sha256:{}", "ab".repeat(32));
    let r = check(&c, &format!("{host}/team/web@{missing}"), &none).await;
    assert_class(&r, FindingClass::DigestNotFound);

    let r = check(&c, "example.com/UPPER/case:1", &none).await;
    assert_class(&r, FindingClass::InvalidReference);
}

#[tokio::test]
async fn tag_suggestions_among_many_tags() {
    let reg = start(false, Auth::None).await;
    let many: Vec<String> = (0..1005).map(|i| format!("build-{i:04}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    reg.push_tags("team/ci", &refs).await;
    let c = checker(&reg).await;
    let r = check(
        &c,
        &format!("{}/team/ci:build-1004x", reg.host()),
        &Keyring::new(),
    )
    .await;
    assert_class(&r, FindingClass::TagNotFound);
    let hint = r.finding.unwrap().hint.unwrap();
    assert!(hint.contains("build-1004"), "{hint}");
}

/// Registry 2.8 answers the whole tag list at once; newer registries (and Docker Hub)
/// paginate with `Link: <…>; rel="next"`. A stand-in that paginates proves we follow it,
/// within the page bound, and never off the registry's origin.
#[tokio::test]
async fn tag_listing_follows_link_pagination() {
    use support::double::{Double, Reply};

    // Pages of three tags, t0…t14; `last=tN` starts the page after N.
    fn tags(path: &str) -> Reply {
        let page = path
            .split_once("last=t")
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .map_or(0, |n| n / 3 + 1);
        let names: Vec<String> = (page * 3..page * 3 + 3)
            .map(|i| format!("\"t{i}\""))
            .collect();
        let link = format!("</v2/x/tags/list?n=3&last=t{}>; rel=\"next\"", page * 3 + 2);
        let headers: &[(&str, &str)] = if page < 4 { &[("link", &link)] } else { &[] };
        let body = format!("{{\"name\":\"x\",\"tags\":[{}]}}", names.join(","));
        Reply::json(200, headers, body)
    }
    let double = Double::start("127.0.0.1", None, |r| match r.path.as_str() {
        "/v2/" => Reply::Registry,
        p if p.starts_with("/v2/x/tags/list") => tags(p),
        _ => Reply::Status(404),
    })
    .await;
    let host = double.host();

    let mut config = RegistryConfig::default();
    config.host_mut(&host).plain_http = true;
    config.max_tag_pages = 3;
    let c = support::engine::checker(config, CacheConfig::default()).await;
    // t8 is on the third page: found within the bound of 3 pages.
    let r = check(&c, &format!("{host}/x:t8x"), &Keyring::new()).await;
    assert_class(&r, FindingClass::TagNotFound);
    assert!(r.finding.unwrap().hint.unwrap().contains("t8"));
    // t13 is on the fifth page: beyond the bound, so not suggested.
    let r = check(&c, &format!("{host}/x:t13x"), &Keyring::new()).await;
    assert!(!r.finding.unwrap().hint.unwrap_or_default().contains("t13"));
}

#[tokio::test]
async fn basic_auth_credentials() {
    let reg = start(true, Auth::Htpasswd).await;
    reg.push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    let host = reg.host();
    let image = format!("{host}/private/app:v1");
    let c = checker(&reg).await;

    let r = check(&c, &image, &Keyring::new()).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("requires authentication"));

    let r = check(&c, &image, &keyring(&host, ALICE.0, "wrong")).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("refused the credentials"));

    // Credentials for another host do not match: the pull is anonymous.
    let r = check(&c, &image, &keyring("other.example.com", ALICE.0, ALICE.1)).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("requires authentication"));

    let r = check(&c, &image, &keyring(&host, ALICE.0, ALICE.1)).await;
    assert_ok(&r);
    assert_eq!(r.credential_source.as_deref(), Some("secret/test"));
}

#[tokio::test]
async fn token_auth_credentials() {
    let reg = start(true, Auth::Token).await;
    reg.push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    reg.push_image("public/tool", Some("v1"), "linux/amd64")
        .await;
    let host = reg.host();
    let private = format!("{host}/private/app:v1");
    let c = checker(&reg).await;

    assert_ok(&check(&c, &format!("{host}/public/tool:v1"), &Keyring::new()).await);

    let r = check(&c, &private, &Keyring::new()).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("requires authentication"));

    let r = check(&c, &private, &keyring(&host, ALICE.0, "wrong")).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("refused the credentials"));

    let r = check(&c, &private, &keyring(&host, BOB.0, BOB.1)).await;
    assert_class(&r, FindingClass::Unauthorized);
    assert!(r.finding.unwrap().message.contains("not allowed to pull"));

    let r = check(
        &c,
        &private,
        &keyring("other.example.com", ALICE.0, ALICE.1),
    )
    .await;
    assert_class(&r, FindingClass::Unauthorized);

    assert_ok(&check(&c, &private, &keyring(&host, ALICE.0, ALICE.1)).await);

    // Try-each: a refused credential first, a good one second → pulls.
    let mut both = keyring(&host, BOB.0, BOB.1);
    both.add(
        "secret/second",
        &DockerConfig {
            entries: vec![DockerConfigEntry {
                key: format!("https://{host}/v1/"),
                credential: Credential::new(ALICE.0, ALICE.1),
            }],
        },
    );
    let r = check(&c, &private, &both).await;
    assert_ok(&r);
    assert_eq!(r.credential_source.as_deref(), Some("secret/second"));
}

#[tokio::test]
async fn tenants_never_share_answers_or_tokens() {
    let reg = start(true, Auth::Token).await;
    reg.push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    let host = reg.host();
    let image = format!("{host}/private/app:v1");
    let alice = keyring(&host, ALICE.0, ALICE.1);
    let anonymous = Keyring::new();

    // A with credentials, then B without, in one process: B is refused.
    let c = checker(&reg).await;
    assert_ok(&check(&c, &image, &alice).await);
    assert_class(
        &check(&c, &image, &anonymous).await,
        FindingClass::Unauthorized,
    );
    assert_class(
        &check(&c, &image, &keyring(&host, BOB.0, BOB.1)).await,
        FindingClass::Unauthorized,
    );

    // B first, then A: A is admitted (no negative answer leaks to A).
    let c = checker(&reg).await;
    assert_class(
        &check(&c, &image, &anonymous).await,
        FindingClass::Unauthorized,
    );
    assert_ok(&check(&c, &image, &alice).await);

    // Interleaved under concurrency.
    let c = checker(&reg).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (c, image) = (Arc::clone(&c), image.clone());
        let k = if i % 2 == 0 {
            alice.clone()
        } else {
            Keyring::new()
        };
        tasks.push(tokio::spawn(async move {
            (i % 2 == 0, check(&c, &image, &k).await)
        }));
    }
    for t in tasks {
        let (with_creds, r) = t.await.unwrap();
        if with_creds {
            assert_ok(&r);
        } else {
            assert_class(&r, FindingClass::Unauthorized);
        }
    }
}

#[tokio::test]
async fn platforms_of_indexes_and_single_manifests() {
    let reg = start(false, Auth::None).await;
    let host = reg.host();
    reg.push_index("multi/both", "v1", &["linux/amd64", "linux/arm64/v8"], true)
        .await;
    reg.push_index("multi/arm", "v1", &["linux/arm64/v8"], false)
        .await;
    reg.push_index("multi/win", "v1", &["windows/amd64"], false)
        .await;
    reg.push_index("multi/armv7", "v1", &["linux/arm/v7"], false)
        .await;
    reg.push_image("single/arm", Some("v1"), "linux/arm64")
        .await;
    let c = checker(&reg).await;
    let none = Keyring::new();
    let arm64 = vec![Platform::new("linux", "arm64", None)];
    let both_wanted = vec![amd64()[0].clone(), arm64[0].clone()];

    let r = check(&c, &format!("{host}/multi/both:v1"), &none).await;
    assert_ok(&r);
    let platforms = &r.resolved.as_ref().unwrap().platforms;
    assert!(platforms.is_index);
    assert_eq!(
        platforms.platforms.len(),
        2,
        "attestation entry skipped: {platforms:?}"
    );
    assert_ok(&check_with(&c, &format!("{host}/multi/both:v1"), &none, &arm64).await);

    let r = check(&c, &format!("{host}/multi/arm:v1"), &none).await;
    assert_class(&r, FindingClass::PlatformMismatch);
    let f = r.finding.unwrap();
    assert!(
        f.message.contains("linux/arm64") && f.message.contains("linux/amd64"),
        "{}",
        f.message
    );

    assert_class(
        &check(&c, &format!("{host}/multi/win:v1"), &none).await,
        FindingClass::PlatformMismatch,
    );
    // arm64 nodes run arm/v7 images; amd64 nodes do not.
    assert_ok(&check_with(&c, &format!("{host}/multi/armv7:v1"), &none, &arm64).await);

    let r = check(&c, &format!("{host}/single/arm:v1"), &none).await;
    assert_class(&r, FindingClass::PlatformMismatch);
    assert!(r.finding.unwrap().message.contains("exec format error"));

    // Some wanted platforms covered: no finding, the rest named.
    let r = check_with(&c, &format!("{host}/multi/arm:v1"), &none, &both_wanted).await;
    assert_ok(&r);
    assert_eq!(r.missing_platforms, amd64());
}

#[tokio::test]
async fn one_head_when_token_is_warm_and_no_get_after_404() {
    let reg = start(true, Auth::Token).await;
    reg.push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    let host = reg.host();
    let image = format!("{host}/private/app:v1");
    let alice = keyring(&host, ALICE.0, ALICE.1);
    // Results expire at once so the second check goes to the registry.
    let c = checker_with(
        &reg,
        CacheConfig {
            positive_ttl: Duration::from_millis(1),
            negative_ttl: Duration::from_millis(1),
            ..CacheConfig::default()
        },
    )
    .await;

    reg.clear_requests().await;
    assert_ok(&check(&c, &image, &alice).await);
    let cold = reg.requests().await;
    let tokens = reg.token_requests().await;
    println!("cold: {cold:?}\ntokens: {tokens:?}");
    assert_eq!(tokens.len(), 1, "one token for the repository");
    assert_eq!(reg.count("HEAD", "/manifests/").await, 1);
    assert_eq!(
        reg.count("GET", "/manifests/").await,
        1,
        "manifest GET for platforms"
    );
    assert_eq!(
        reg.count("GET", "/blobs/").await,
        1,
        "config blob for platforms"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    reg.clear_requests().await;
    assert_ok(&check(&c, &image, &alice).await);
    let warm = reg.requests().await;
    println!("warm: {warm:?}");
    assert_eq!(warm.len(), 1, "exactly one request: {warm:?}");
    assert_eq!(warm[0].method, "HEAD");
    assert!(reg.token_requests().await.is_empty(), "token reused");

    reg.clear_requests().await;
    let r = check(&c, &format!("{host}/private/app:v2"), &alice).await;
    assert_class(&r, FindingClass::TagNotFound);
    assert_eq!(reg.count("HEAD", "/manifests/v2").await, 1);
    assert_eq!(
        reg.count("GET", "/manifests/").await,
        0,
        "no GET after a 404"
    );
}

#[tokio::test]
async fn concurrent_identical_lookups_cost_one_manifest_request() {
    let reg = start(true, Auth::Token).await;
    reg.push_index("public/burst", "v1", &["linux/amd64", "linux/arm64"], false)
        .await;
    let image = format!("{}/public/burst:v1", reg.host());
    let c = checker(&reg).await;
    reg.clear_requests().await;
    let none = Keyring::new();
    let results = futures::future::join_all((0..100).map(|_| check(&c, &image, &none))).await;
    results.iter().for_each(assert_ok);
    assert_eq!(reg.count("HEAD", "/manifests/").await, 1);
    assert_eq!(
        reg.count("GET", "/manifests/").await,
        2,
        "the index once, and once the linux/amd64 manifest whose size giant_image reads"
    );
    assert_eq!(reg.token_requests().await.len(), 1);
}

#[tokio::test]
async fn unreachable_registries_are_transient_and_named() {
    let none = Keyring::new();
    // Plain HTTP for the unresolvable name: over TLS, the name is refused as a TLS server
    // name before any lookup (see `support::unresolvable_name`).
    let name = support::unresolvable_name("registry");
    let mut config = RegistryConfig::default();
    config.host_mut(&name).plain_http = true;
    let c = support::engine::checker(config, CacheConfig::default()).await;

    // Connection refused: a registry that was there and is gone.
    let reg = start(false, Auth::None).await;
    let host = reg.host();
    drop(reg);
    let r = check(&c, &format!("{host}/x/y:1"), &none).await;
    assert_class(&r, FindingClass::Unavailable);
    assert!(r
        .finding
        .unwrap()
        .message
        .contains("refused the connection"));

    let r = check(&c, &format!("{name}/x/y:1"), &none).await;
    assert_class(&r, FindingClass::Unavailable);
    let message = r.finding.unwrap().message;
    assert!(message.contains("does not resolve"), "DNS named: {message}");

    // TLS with a CA pullcheck does not trust.
    let reg = start(true, Auth::None).await;
    reg.push_image("x/y", Some("1"), "linux/amd64").await;
    let r = check(&c, &format!("{}/x/y:1", reg.host()), &none).await;
    assert_class(&r, FindingClass::Unavailable);
    let m = r.finding.unwrap().message;
    assert!(m.contains("TLS"), "{m}");

    // Metadata and link-local addresses are never contacted.
    let r = check(&c, "169.254.169.254/latest/meta-data:1", &none).await;
    assert_class(&r, FindingClass::Blocked);
}

#[tokio::test]
async fn deleted_tag_is_seen_after_the_negative_ttl() {
    let reg = start(false, Auth::None).await;
    let c = checker_with(
        &reg,
        CacheConfig {
            negative_ttl: Duration::from_millis(200),
            ..CacheConfig::default()
        },
    )
    .await;
    let image = format!("{}/team/fresh:v1", reg.host());
    assert_class(
        &check(&c, &image, &Keyring::new()).await,
        FindingClass::RepositoryNotFound,
    );
    reg.push_image("team/fresh", Some("v1"), "linux/amd64")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ok(&check(&c, &image, &Keyring::new()).await);
}

/// A registry serving the certificate Docker's documentation makes (`openssl req -x509`:
/// self-signed, CA:TRUE), given as its CA: trusted, as containerd and CRI-O (Go) trust it.
/// Not given: a finding that says what the certificate is and how to configure it.
#[tokio::test]
async fn a_self_signed_ca_true_certificate_given_as_the_registry_ca_is_trusted() {
    let reg = TestRegistry::start_openssl_self_signed().await;
    let digest = reg.push_image("team/app", Some("v1"), "linux/amd64").await;
    let image = format!("{}/team/app:v1", reg.host());
    let none = Keyring::new();

    let c = checker(&reg).await;
    let r = check(&c, &image, &none).await;
    assert_ok(&r);
    assert_eq!(r.resolved.unwrap().digest, digest);

    let bare = support::engine::checker(RegistryConfig::default(), CacheConfig::default()).await;
    let r = check(&bare, &image, &none).await;
    assert_class(&r, FindingClass::Unavailable);
    let message = r.finding.unwrap().message;
    assert!(
        message.contains(&format!(
            "TLS with {host} failed: its certificate is self-signed (CN=pullcheck self-signed registry) and not trusted: trust it with --registry-ca {host}=FILE",
            host = reg.host()
        )),
        "{message}"
    );
}
