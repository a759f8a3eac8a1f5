//! Outbound registry traffic against hostile servers of our own on loopback: redirects
//! never carry credentials off the first origin (nor back to it after a detour), never go
//! from https to http, are bounded; token realms are held to the same rules; host rules
//! see through a trailing dot; messages name the host and the limit that failed; host
//! globs that could never match are start-up errors.
//!
//! Distinct origins are distinct loopback addresses (127.0.0.1 and 127.0.0.2) or ports.
//! No test sends a packet beyond loopback: names that must not resolve have a 64-character
//! label, which the C library refuses before asking any DNS server.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pullcheck::engine::Context;
use pullcheck::engine::FindingClass;
use pullcheck::kubelet::credentials::{Credential, Keyring};
use pullcheck::kubelet::platform::Platform;
use pullcheck::kubelet::reference::ImageRef;
use pullcheck::metrics::Metrics;
use pullcheck::registry::cache::CacheConfig;
use pullcheck::registry::{Distribution, Registry, RegistryConfig, RegistryError, Resolved};
use rstest::rstest;
use support::double::{Behaviour, Double, Reply, Seen};
use support::tls::TestCa;
use support::ALICE;

const TOKEN: &str = "tok-secret-bearer";

/// How registry A asks for credentials.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    /// htpasswd-style: the password on every request.
    Basic,
    /// A token from A's own `/token`, fetched with the password.
    Bearer,
}

fn basic_of(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn alice() -> Credential {
    Credential::new(ALICE.0, ALICE.1)
}

/// What A expects on its API requests.
fn expected_authorization(scheme: Scheme) -> String {
    match scheme {
        Scheme::Basic => basic_of(ALICE.0, ALICE.1),
        Scheme::Bearer => format!("Bearer {TOKEN}"),
    }
}

/// Registry A: challenges like `scheme`, hands out a token at `/token` for alice, and
/// answers every other request with `elsewhere(request)`.
async fn registry_a(
    ca: Option<&TestCa>,
    scheme: Scheme,
    elsewhere: impl Fn(&Seen, &str) -> Reply + Send + Sync + 'static,
) -> Double {
    let origin = Arc::new(std::sync::OnceLock::<String>::new());
    let own = Arc::clone(&origin);
    let server = Double::start("127.0.0.1", ca, move |r| {
        let me = own.get().map(String::as_str).unwrap_or_default();
        match (r.path.as_str(), scheme) {
            ("/v2/", Scheme::Basic) => Reply::Challenge(r#"Basic realm="a""#.into()),
            ("/v2/", Scheme::Bearer) => {
                Reply::Challenge(format!(r#"Bearer realm="{me}/token",service="a""#))
            }
            (p, Scheme::Bearer) if p.starts_with("/token") => {
                if r.authorization.as_deref() == Some(basic_of(ALICE.0, ALICE.1).as_str()) {
                    Reply::Token(TOKEN.into())
                } else {
                    Reply::Status(401)
                }
            }
            _ => elsewhere(r, me),
        }
    })
    .await;
    origin.set(server.origin()).unwrap();
    server
}

fn config(ca: Option<&TestCa>) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    if let Some(ca) = ca {
        config.global_ca_pems.push(ca.cert_pem.clone().into_bytes());
    }
    config
}

async fn resolve(
    config: RegistryConfig,
    image: &str,
    credential: Option<&Credential>,
) -> Result<Resolved, RegistryError> {
    let d = Distribution::new(config, Arc::new(Metrics::default())).expect("distribution");
    d.resolve(
        &ImageRef::parse(image).expect("image reference"),
        credential,
    )
    .await
}

/// Requests that carried credentials.
fn with_credentials(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.authorization.is_some())
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// Requests to A's API (not the ping, not the token service).
fn api_requests(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.path.starts_with("/v2/") && s.path != "/v2/")
        .collect()
}

/// A's API sends every request to B, whose first hop sends it on once more within B:
/// B must not see the credentials on either hop (reqwest's own policy re-applied them on
/// the second).
#[rstest]
#[case::basic(Scheme::Basic)]
#[case::bearer(Scheme::Bearer)]
#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin(#[case] scheme: Scheme) {
    let b = Double::start("127.0.0.2", None, |r| match r.path.strip_prefix("/hop1") {
        Some(rest) => Reply::redirect(307, &format!("/hop2{rest}")),
        None => Reply::Registry,
    })
    .await;
    let b_origin = b.origin();
    let a = registry_a(None, scheme, move |r, _| {
        Reply::redirect(307, &format!("{b_origin}/hop1{}", r.path))
    })
    .await;

    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    let resolved = resolve(config, &image, Some(&alice()))
        .await
        .expect("resolves");
    assert!(resolved.digest.starts_with("sha256:"));

    let at_b = b.seen();
    assert!(
        at_b.iter()
            .any(|s| s.path.starts_with("/hop2/v2/team/app/manifests/")),
        "the chain reached B's second hop: {at_b:?}"
    );
    assert_eq!(
        with_credentials(&at_b),
        Vec::<String>::new(),
        "B saw credentials"
    );
    // A got them: the test shows where they stop, not that none were sent.
    let want = expected_authorization(scheme);
    let at_a = a.seen();
    let api = api_requests(&at_a);
    assert!(!api.is_empty());
    for s in api {
        assert_eq!(s.authorization.as_deref(), Some(want.as_str()), "{s:?}");
    }
}

/// A → B → back to A: the chain left A's origin once, so A's own URL no longer gets the
/// credentials (its path was chosen by B).
#[rstest]
#[case::basic(Scheme::Basic)]
#[case::bearer(Scheme::Bearer)]
#[tokio::test]
async fn credentials_are_not_sent_back_to_the_origin_after_a_detour(#[case] scheme: Scheme) {
    let a_origin = Arc::new(std::sync::OnceLock::<String>::new());
    let back_to = Arc::clone(&a_origin);
    let b = Double::start("127.0.0.2", None, move |r| {
        let a = back_to.get().cloned().unwrap_or_default();
        Reply::redirect(
            302,
            &format!("{a}/back{}", r.path.trim_start_matches("/hop1")),
        )
    })
    .await;
    let b_origin = b.origin();
    let a = registry_a(None, scheme, move |r, _| {
        match r.path.strip_prefix("/back") {
            Some(_) => Reply::Registry,
            None => Reply::redirect(307, &format!("{b_origin}/hop1{}", r.path)),
        }
    })
    .await;
    a_origin.set(a.origin()).unwrap();

    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    resolve(config, &image, Some(&alice()))
        .await
        .expect("resolves");

    let at_a = a.seen();
    let back: Vec<&Seen> = at_a
        .iter()
        .filter(|s| s.path.starts_with("/back/"))
        .collect();
    assert!(!back.is_empty(), "the chain came back to A: {at_a:?}");
    assert!(back.iter().all(|s| s.authorization.is_none()), "{back:?}");
    assert_eq!(with_credentials(&b.seen()), Vec::<String>::new());
}

/// https://127.0.0.1:A → http://127.0.0.1:P (which would redirect once more): refused,
/// naming both origins, and P never sees a connection.
#[rstest]
#[case::basic(Scheme::Basic)]
#[case::bearer(Scheme::Bearer)]
#[tokio::test]
async fn https_to_http_is_never_followed(#[case] scheme: Scheme) {
    let ca = TestCa::new();
    let plain = Double::start("127.0.0.1", None, |r| match r.path.strip_prefix("/hop1") {
        Some(rest) => Reply::redirect(307, &format!("/hop2{rest}")),
        None => Reply::Registry,
    })
    .await;
    let plain_origin = plain.origin();
    let a = registry_a(Some(&ca), scheme, move |r, _| {
        Reply::redirect(307, &format!("{plain_origin}/hop1{}", r.path))
    })
    .await;

    let image = format!("{}/team/app:1", a.host());
    let err = resolve(config(Some(&ca)), &image, Some(&alice()))
        .await
        .expect_err("refused");
    assert_eq!(FindingClass::of(&err), FindingClass::Blocked, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("from https://{}", a.host())),
        "{message}"
    );
    assert!(
        message.contains(&format!("to http://{}", plain.host())),
        "{message}"
    );
    assert!(message.contains("https to http"), "{message}");
    assert_eq!(plain.accepted(), 0, "no connection to the plain-HTTP hop");
    assert!(!api_requests(&a.seen()).is_empty(), "A was asked over TLS");
}

/// Five redirects are followed; a sixth is an error, and its target is never asked.
#[rstest]
#[case(5, true)]
#[case(6, false)]
#[tokio::test]
async fn redirects_are_bounded(#[case] redirects: usize, #[case] resolves: bool) {
    let b = Double::start("127.0.0.2", None, move |r| {
        let (hop, rest) = r.path[4..].split_once('/').expect("/hopN/…");
        let hop: usize = hop.parse().expect("hop number");
        if hop < redirects {
            Reply::redirect(307, &format!("/hop{}/{rest}", hop + 1))
        } else {
            Reply::Registry
        }
    })
    .await;
    let b_origin = b.origin();
    let a = Double::start("127.0.0.1", None, move |r| match r.path.as_str() {
        "/v2/" => Reply::Registry,
        p => Reply::redirect(307, &format!("{b_origin}/hop1{p}")),
    })
    .await;

    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    let got = resolve(config, &image, None).await;
    let heads: Vec<Seen> = b
        .seen()
        .into_iter()
        .filter(|s| s.method == "HEAD")
        .collect();
    if resolves {
        got.expect("five redirects are followed");
        assert_eq!(heads.len(), 5, "{heads:?}");
    } else {
        let err = got.expect_err("a sixth redirect is refused");
        assert_eq!(FindingClass::of(&err), FindingClass::Unavailable);
        let message = err.to_string();
        assert!(message.contains("more than 5 redirects"), "{message}");
        assert!(
            message.starts_with(&format!("registry unavailable: {}", a.host())),
            "{message}"
        );
        assert_eq!(
            heads.len(),
            5,
            "hops 1 to 5 asked, the sixth not: {heads:?}"
        );
        assert!(!heads.iter().any(|s| s.path.starts_with("/hop6/")));
    }
}

/// The token request carries the pull secret's password: a realm that redirects (twice,
/// to another origin) must not pass it on.
#[tokio::test]
async fn token_realm_redirects_keep_the_password_at_the_realm() {
    let b = Double::start("127.0.0.2", None, |r| match r.path.strip_prefix("/t1") {
        Some(rest) => Reply::redirect(308, &format!("/t2{rest}")),
        None => Reply::Token(TOKEN.into()),
    })
    .await;
    let b_origin = b.origin();
    let realm = Double::start("127.0.0.1", None, move |r| {
        Reply::redirect(307, &format!("{b_origin}/t1{}", r.path))
    })
    .await;
    let realm_origin = realm.origin();
    let a = Double::start("127.0.0.1", None, move |r| {
        if r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")) {
            Reply::Registry
        } else {
            Reply::Challenge(format!(
                r#"Bearer realm="{realm_origin}/token",service="a""#
            ))
        }
    })
    .await;

    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    resolve(config, &image, Some(&alice()))
        .await
        .expect("resolves");

    let at_realm = realm.seen();
    assert!(
        at_realm
            .iter()
            .all(|s| s.authorization.as_deref() == Some(basic_of(ALICE.0, ALICE.1).as_str())),
        "the realm itself gets the password: {at_realm:?}"
    );
    let at_b = b.seen();
    assert!(
        at_b.iter().any(|s| s.path.starts_with("/t2/token?")),
        "{at_b:?}"
    );
    assert!(
        at_b.iter()
            .any(|s| s.path.contains("scope=repository%3Ateam%2Fapp%3Apull")),
        "the query survives the hops: {at_b:?}"
    );
    assert_eq!(with_credentials(&at_b), Vec::<String>::new());
}

/// `--deny-host deny.example` stops `deny.example.` as a token realm and as a redirect
/// target, before any name is resolved.
#[rstest]
#[case::realm("deny.example", true)]
#[case::realm_glob("*.deny.example", true)]
#[case::redirect("deny.example", false)]
#[case::redirect_upper_case("DENY.Example", false)]
#[tokio::test]
async fn deny_rules_see_through_a_trailing_dot(#[case] rule: &str, #[case] as_realm: bool) {
    let target = if rule.starts_with('*') {
        "a.deny.example."
    } else {
        "DeNy.example."
    };
    let location = format!("http://{target}:5000");
    let a = Double::start("127.0.0.1", None, move |r| {
        match (r.path.as_str(), as_realm) {
            ("/v2/", true) => Reply::Challenge(format!(r#"Bearer realm="{location}/token""#)),
            ("/v2/", false) => Reply::Registry,
            (p, _) => Reply::redirect(307, &format!("{location}{p}")),
        }
    })
    .await;
    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    config.policy.deny =
        pullcheck::registry::hosts::validate_globs(&[rule.into()], "test").unwrap();
    let err = resolve(config, &image, Some(&alice()))
        .await
        .expect_err("blocked");
    assert_eq!(FindingClass::of(&err), FindingClass::Blocked, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "host matches deny rule {:?}",
            rule.to_ascii_lowercase()
        )),
        "{message}"
    );
    if !as_realm {
        assert!(
            message.contains(&format!("redirected there by {}", a.host())),
            "{message}"
        );
    }
}

/// A name that does not resolve, reached by a redirect: the message names it (not the
/// registry that sent there) and says who sent there.
#[tokio::test]
async fn a_redirect_to_an_unresolvable_name_names_that_name() {
    let name = support::unresolvable_name("storage");
    let location = format!("http://{name}:5000");
    let a = Double::start("127.0.0.1", None, move |r| match r.path.as_str() {
        "/v2/" => Reply::Registry,
        p => Reply::redirect(307, &format!("{location}{p}")),
    })
    .await;
    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    let err = resolve(config, &image, None)
        .await
        .expect_err("unavailable");
    assert_eq!(FindingClass::of(&err), FindingClass::Unavailable, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry unavailable: the name {name} does not resolve (DNS): redirected there by {}",
            a.host()
        )
    );
}

/// A storage host's 500 is the storage host's, not the registry's.
#[tokio::test]
async fn a_failing_redirect_target_is_named() {
    let b = Double::start("127.0.0.2", None, |_| Reply::Status(500)).await;
    let b_origin = b.origin();
    let a = Double::start("127.0.0.1", None, move |r| match r.path.as_str() {
        "/v2/" => Reply::Registry,
        p => Reply::redirect(307, &format!("{b_origin}{p}")),
    })
    .await;
    let image = format!("{}/team/app:1", a.host());
    let mut config = config(None);
    config.host_mut(&a.host()).plain_http = true;
    let err = resolve(config, &image, None)
        .await
        .expect_err("unavailable");
    assert_eq!(
        err.to_string(),
        format!(
            "registry unavailable: {} answered HTTP 500: redirected there by {}",
            b.host(),
            a.host()
        )
    );
}

fn amd64() -> Vec<Platform> {
    vec![Platform::new("linux", "amd64", None)]
}

async fn check_message(
    config: RegistryConfig,
    image: &str,
    context: Context,
    deadline: Duration,
) -> (FindingClass, String, Duration) {
    let checker = support::engine::checker(config, CacheConfig::default()).await;
    let started = Instant::now();
    let r = checker
        .check(
            image,
            &Keyring::new(),
            &amd64(),
            context,
            tokio::time::Instant::now() + deadline,
        )
        .await;
    let f = r.finding.clone().expect("a finding");
    (f.class, f.message, started.elapsed())
}

/// The issue's case: a review without `?timeout` (an 8 s budget) against a registry that
/// accepts TCP and never completes TLS was answered after 3 s saying "did not answer within
/// 8s". The connect timeout fired: the message says so, with its length.
#[tokio::test]
async fn a_connect_timeout_says_so() {
    let silent = Double::behaving_tls_unknown_ca(Behaviour::Silent).await;
    let image = format!("{}/team/app:1", silent.host());
    let (class, message, took) = check_message(
        RegistryConfig::default(),
        &image,
        Context::Cluster,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(class, FindingClass::Timeout);
    assert_eq!(
        message,
        format!(
            "{} did not complete a connection within 3s (the connect timeout)",
            silent.host()
        )
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[rstest]
#[case::registry_timeout(
    Duration::from_millis(400),
    Duration::from_secs(8),
    Context::Cluster,
    "within 400ms (the registry timeout)"
)]
#[case::review_deadline(
    Duration::from_secs(8),
    Duration::from_millis(400),
    Context::Cluster,
    "(the review's deadline)"
)]
#[case::check_timeout(
    Duration::from_secs(8),
    Duration::from_millis(400),
    Context::Cli,
    "(--timeout)"
)]
#[tokio::test]
async fn a_timeout_names_the_limit_that_fired(
    #[case] registry_timeout: Duration,
    #[case] deadline: Duration,
    #[case] context: Context,
    #[case] want: &str,
) {
    let hang = Double::behaving(Behaviour::Hang).await;
    let image = format!("{}/team/app:1", hang.host());
    let mut config = RegistryConfig {
        request_timeout: registry_timeout,
        ..RegistryConfig::default()
    };
    config.host_mut(&hang.host()).plain_http = true;
    let (class, message, _) = check_message(config, &image, context, deadline).await;
    assert_eq!(class, FindingClass::Timeout);
    assert!(
        message.starts_with(&format!("{} did not answer within", hang.host())),
        "{message}"
    );
    assert!(message.ends_with(want), "{message}");
}

/// A chain shares one registry timeout, and the host that hangs is named.
#[tokio::test]
async fn a_hanging_redirect_target_is_named_with_the_registry_timeout() {
    let hang = Double::behaving(Behaviour::Hang).await;
    let hang_origin = format!("http://{}", hang.host());
    let a = Double::start("127.0.0.2", None, move |r| match r.path.as_str() {
        "/v2/" => Reply::Registry,
        p => Reply::redirect(307, &format!("{hang_origin}{p}")),
    })
    .await;
    let image = format!("{}/team/app:1", a.host());
    let mut config = RegistryConfig {
        request_timeout: Duration::from_millis(500),
        ..RegistryConfig::default()
    };
    config.host_mut(&a.host()).plain_http = true;
    let (class, message, took) =
        check_message(config, &image, Context::Cluster, Duration::from_secs(8)).await;
    assert_eq!(class, FindingClass::Timeout);
    assert_eq!(
        message,
        format!(
            "{} did not answer within 500ms (the registry timeout)",
            hang.host()
        )
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

fn pullcheck(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pullcheck"));
    cmd.args(args)
        .env_remove("PULLCHECK_DOCKER_CONFIG")
        .env_remove("PULLCHECK_ALLOW_HOSTS")
        .env_remove("PULLCHECK_DENY_HOSTS")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("pullcheck runs")
}

/// Globs that could never match are start-up errors naming the setting and the glob.
#[test]
fn unusable_host_globs_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "denyHosts: [\"registry.example:5000\"]\n").unwrap();
    let config = config.to_str().unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["check", "--image", "nginx", "--deny-host", "deny.example."],
            vec![],
            r#"--deny-host (PULLCHECK_DENY_HOSTS): host glob "deny.example." ends with a dot"#
                .into(),
        ),
        (
            vec!["check", "--image", "nginx"],
            vec![("PULLCHECK_ALLOW_HOSTS", "ok.example,https://r.example")],
            r#"--allow-host (PULLCHECK_ALLOW_HOSTS): host glob "https://r.example" has a scheme"#
                .into(),
        ),
        (
            vec![
                "serve",
                "--no-cluster",
                "--listen",
                "127.0.0.1:0",
                "--config",
                config,
            ],
            vec![],
            format!(
                r#"denyHosts in config {config}: host glob "registry.example:5000" has a port"#
            ),
        ),
    ];
    for (args, env, want) in cases {
        let out = pullcheck(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
}
