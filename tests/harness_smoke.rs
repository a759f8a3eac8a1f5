//! Proves the test harness (tests/support) against the real registry with plain reqwest
//! calls: pushes, HEADs with each kind of credentials, the access log, the token server.

mod support;

use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{
    Auth, LoggedRequest, RegistryOptions, TestRegistry, ADMIN, ALICE, BOB, MANIFEST_ACCEPT,
    TOKEN_SERVICE,
};

enum Cred<'a> {
    Anonymous,
    Basic((&'a str, &'a str)),
    Bearer(&'a str),
}

fn client_for(reg: &TestRegistry) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    if let Some(pem) = reg.ca_pem() {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()]);
    }
    builder.build().unwrap()
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cred: &Cred<'_>,
) -> reqwest::Response {
    let builder = client.request(method, url).header(ACCEPT, MANIFEST_ACCEPT);
    let builder = match cred {
        Cred::Anonymous => builder,
        Cred::Basic((user, password)) => builder.basic_auth(user, Some(password)),
        Cred::Bearer(token) => builder.bearer_auth(token),
    };
    builder.send().await.unwrap()
}

async fn head_manifest(
    reg: &TestRegistry,
    client: &reqwest::Client,
    repo: &str,
    reference: &str,
    cred: &Cred<'_>,
) -> reqwest::Response {
    let url = format!(
        "{}://{}/v2/{repo}/manifests/{reference}",
        reg.scheme(),
        reg.host()
    );
    send(client, reqwest::Method::HEAD, &url, cred).await
}

fn content_digest(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// GET /token as `user` (None: anonymous): (status, token if any, body).
async fn fetch_token(
    reg: &TestRegistry,
    client: &reqwest::Client,
    user: Option<(&str, &str)>,
    scope: &str,
) -> (StatusCode, Option<String>, Value) {
    let url = format!(
        "{}?service={TOKEN_SERVICE}&scope={scope}",
        reg.token_realm().unwrap()
    );
    let mut builder = client.get(url);
    if let Some((u, p)) = user {
        builder = builder.basic_auth(u, Some(p));
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let token = body["token"].as_str().map(str::to_string);
    (status, token, body)
}

async fn tags_list(
    reg: &TestRegistry,
    client: &reqwest::Client,
    repo: &str,
    cred: &Cred<'_>,
) -> Vec<String> {
    let url = format!("{}://{}/v2/{repo}/tags/list", reg.scheme(), reg.host());
    let response = send(client, reqwest::Method::GET, &url, cred).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

/// Checks the pushed index: its entries, platforms and the attestation entry.
async fn check_index(
    reg: &TestRegistry,
    client: &reqwest::Client,
    repo: &str,
    digest: &str,
    cred: &Cred<'_>,
) {
    let url = format!(
        "{}://{}/v2/{repo}/manifests/multi",
        reg.scheme(),
        reg.host()
    );
    let response = send(client, reqwest::Method::GET, &url, cred).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), digest);
    let index: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(index["mediaType"], support::media::OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index}");
    assert_eq!(entries[0]["platform"]["architecture"], "amd64");
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    assert_eq!(entries[1]["platform"]["variant"], "v8");
    assert_eq!(entries[2]["platform"]["os"], "unknown");
    assert_eq!(
        entries[2]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    // Every child (images and attestation) is pullable by digest.
    for entry in entries {
        let child = entry["digest"].as_str().unwrap();
        let response = head_manifest(reg, client, repo, child, cred).await;
        assert_eq!(response.status(), StatusCode::OK, "child {child}");
    }
}

#[tokio::test]
async fn plain_http_without_auth() {
    let started = Instant::now();
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    eprintln!("plain registry started in {:?}", started.elapsed());
    assert_eq!(reg.scheme(), "http");
    assert!(reg.host().starts_with("127.0.0.1:"));
    assert!(reg.ca_pem().is_none() && reg.ca_path().is_none());
    let client = client_for(&reg);
    let anon = Cred::Anonymous;

    let digest = reg.push_image("smoke/app", Some("v1"), "linux/amd64").await;
    let docker = reg
        .push_docker_image("smoke/app", Some("docker"), "linux/arm64/v8")
        .await;
    let windows = reg.push_image("smoke/app", None, "windows/amd64").await;
    let again = reg.push_image("smoke/app", Some("v1"), "linux/amd64").await;
    assert_ne!(digest, again, "every push makes a distinct image");
    let digest = again;
    let index = reg
        .push_index(
            "smoke/multi",
            "multi",
            &["linux/amd64", "linux/arm64/v8"],
            true,
        )
        .await;
    check_index(&reg, &client, "smoke/multi", &index, &anon).await;

    reg.clear_requests().await;
    assert!(reg.requests().await.is_empty());
    let response = head_manifest(&reg, &client, "smoke/app", "v1", &anon).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), digest);
    assert_eq!(
        reg.requests().await,
        vec![LoggedRequest {
            method: "HEAD".into(),
            path: "/v2/smoke/app/manifests/v1".into(),
            query: String::new(),
            status: 200,
        }]
    );
    assert_eq!(reg.count("HEAD", "/manifests/v1").await, 1);
    assert_eq!(reg.count("GET", "/manifests/v1").await, 0);
    assert!(reg.token_requests().await.is_empty());

    // The Docker image is served with its own media type; the by-digest image too.
    let response = head_manifest(&reg, &client, "smoke/app", "docker", &anon).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), docker);
    assert_eq!(
        response.headers()["content-type"],
        support::media::DOCKER_MANIFEST
    );
    let response = head_manifest(&reg, &client, "smoke/app", &windows, &anon).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Registry 2.8 hides an OCI manifest from a client whose Accept does not list OCI.
    let url = format!("http://{}/v2/smoke/app/manifests/v1", reg.host());
    let response = client
        .head(&url)
        .header(ACCEPT, support::media::DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Query strings are split off the path.
    reg.clear_requests().await;
    let url = format!("http://{}/v2/smoke/app/tags/list?n=1&last=a", reg.host());
    assert_eq!(
        client.get(url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let logged = reg.requests().await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].path, "/v2/smoke/app/tags/list");
    assert_eq!(logged[0].query, "n=1&last=a");

    reg.delete_manifest("smoke/app", &digest).await;
    let response = head_manifest(&reg, &client, "smoke/app", &digest, &anon).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = head_manifest(&reg, &client, "smoke/app", "v1", &anon).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    reg.push_tags("smoke/tags", &["1.0", "1.1", "2.0"]).await;
    assert_eq!(
        tags_list(&reg, &client, "smoke/tags", &anon).await,
        ["1.0", "1.1", "2.0"]
    );
    let mut digests = Vec::new();
    for tag in ["1.0", "1.1", "2.0"] {
        let response = head_manifest(&reg, &client, "smoke/tags", tag, &anon).await;
        assert_eq!(response.status(), StatusCode::OK);
        digests.push(content_digest(&response));
    }
    let unique: std::collections::HashSet<_> = digests.iter().collect();
    assert_eq!(unique.len(), 3, "each tag has its own digest");
}

#[tokio::test]
async fn tls_with_htpasswd() {
    let started = Instant::now();
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
    })
    .await;
    eprintln!("TLS+htpasswd registry started in {:?}", started.elapsed());
    assert_eq!(reg.scheme(), "https");
    let pem = reg.ca_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        std::fs::read_to_string(reg.ca_path().unwrap()).unwrap(),
        pem
    );
    let client = client_for(&reg);
    let alice = Cred::Basic(ALICE);

    let digest = reg.push_image("smoke/app", Some("v1"), "linux/amd64").await;
    let index = reg
        .push_index(
            "smoke/multi",
            "multi",
            &["linux/amd64", "linux/arm64/v8"],
            true,
        )
        .await;
    check_index(&reg, &client, "smoke/multi", &index, &alice).await;

    reg.clear_requests().await;
    let response = head_manifest(&reg, &client, "smoke/app", "v1", &alice).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), digest);
    assert_eq!(reg.count("HEAD", "/v2/smoke/app/manifests/v1").await, 1);
    assert_eq!(reg.requests().await.len(), 1);

    let response = head_manifest(&reg, &client, "smoke/app", "v1", &Cred::Anonymous).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let response = head_manifest(
        &reg,
        &client,
        "smoke/app",
        "v1",
        &Cred::Basic(("alice", "nope")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = head_manifest(&reg, &client, "smoke/app", "v1", &Cred::Basic(BOB)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let statuses: Vec<u16> = reg.requests().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 401, 200]);

    reg.delete_manifest("smoke/app", &digest).await;
    let response = head_manifest(&reg, &client, "smoke/app", &digest, &alice).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    reg.push_tags("smoke/tags", &["a", "b", "c"]).await;
    assert_eq!(
        tags_list(&reg, &client, "smoke/tags", &alice).await,
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn tls_with_token_auth() {
    let started = Instant::now();
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Token,
    })
    .await;
    eprintln!("TLS+token registry started in {:?}", started.elapsed());
    let client = client_for(&reg);
    let realm = reg.token_realm().unwrap();
    assert!(realm.starts_with("https://127.0.0.1:") && realm.ends_with("/token"));

    let digest = reg.push_image("private/x", Some("v1"), "linux/amd64").await;
    let public = reg
        .push_image("public/x", Some("v1"), "linux/arm64/v8")
        .await;
    let bobs = reg
        .push_docker_image("bob/x", Some("v1"), "linux/amd64")
        .await;
    let index = reg
        .push_index(
            "private/multi",
            "multi",
            &["linux/amd64", "linux/arm64/v8"],
            true,
        )
        .await;
    let (status, admin, _) =
        fetch_token(&reg, &client, Some(ADMIN), "repository:private/multi:pull").await;
    assert_eq!(status, StatusCode::OK);
    check_index(
        &reg,
        &client,
        "private/multi",
        &index,
        &Cred::Bearer(&admin.unwrap()),
    )
    .await;

    reg.clear_requests().await;
    assert!(reg.token_requests().await.is_empty());

    // No token at all: the challenge names the realm, service and scope.
    let response = head_manifest(&reg, &client, "private/x", "v1", &Cred::Anonymous).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("service=\"{TOKEN_SERVICE}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:private/x:pull\""),
        "{challenge}"
    );

    // Anonymous token: empty access for private/…, so insufficient_scope.
    let (status, anon, body) = fetch_token(&reg, &client, None, "repository:private/x:pull").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["token"], body["access_token"]);
    let anon = anon.unwrap();
    let response = head_manifest(&reg, &client, "private/x", "v1", &Cred::Bearer(&anon)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    // Anonymous may pull public/….
    let (_, anon_public, _) = fetch_token(&reg, &client, None, "repository:public/x:pull").await;
    let response = head_manifest(
        &reg,
        &client,
        "public/x",
        "v1",
        &Cred::Bearer(&anon_public.unwrap()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), public);

    // alice pulls private/….
    reg.clear_requests().await;
    let (status, alice, _) =
        fetch_token(&reg, &client, Some(ALICE), "repository:private/x:pull").await;
    assert_eq!(status, StatusCode::OK);
    let alice = alice.unwrap();
    let response = head_manifest(&reg, &client, "private/x", "v1", &Cred::Bearer(&alice)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), digest);
    assert_eq!(reg.count("HEAD", "/v2/private/x/manifests/v1").await, 1);
    assert_eq!(reg.requests().await.len(), 1);
    assert_eq!(
        reg.token_requests().await,
        vec![support::TokenRequest {
            user: "alice".into(),
            scope: "repository:private/x:pull".into(),
            status: 200,
        }]
    );

    // The registry really verifies the signature (kid = libtrust key ID of the signer).
    let (signed, _) = alice.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", "A".repeat(86));
    let response = head_manifest(&reg, &client, "private/x", "v1", &Cred::Bearer(&forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(reg.stderr().contains("invalid token"), "{}", reg.stderr());
    reg.clear_requests().await;

    // bob: insufficient_scope on private/…, fine on bob/….
    let (status, bob, _) = fetch_token(&reg, &client, Some(BOB), "repository:private/x:pull").await;
    assert_eq!(status, StatusCode::OK);
    let response = head_manifest(
        &reg,
        &client,
        "private/x",
        "v1",
        &Cred::Bearer(&bob.unwrap()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let (_, bob, _) = fetch_token(&reg, &client, Some(BOB), "repository:bob/x:pull").await;
    let response = head_manifest(&reg, &client, "bob/x", "v1", &Cred::Bearer(&bob.unwrap())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_digest(&response), bobs);

    // A token for one repository does not open another.
    let (_, alice_public, _) =
        fetch_token(&reg, &client, Some(ALICE), "repository:public/x:pull").await;
    let response = head_manifest(
        &reg,
        &client,
        "private/x",
        "v1",
        &Cred::Bearer(&alice_public.unwrap()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Wrong password: 401 at the token server, recorded.
    reg.clear_requests().await;
    let (status, token, body) = fetch_token(
        &reg,
        &client,
        Some(("alice", "wrong")),
        "repository:private/x:pull",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(token.is_none());
    assert_eq!(body["details"], "incorrect username or password");
    assert_eq!(
        reg.token_requests().await,
        vec![support::TokenRequest {
            user: "alice".into(),
            scope: "repository:private/x:pull".into(),
            status: 401,
        }]
    );
    assert!(reg.requests().await.is_empty());

    // Repeated scope parameters are joined with a space.
    let url = format!(
        "{realm}?service={TOKEN_SERVICE}&scope=repository:public/x:pull&scope=repository:private/x:pull"
    );
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let last = reg.token_requests().await.pop().unwrap();
    assert_eq!(last.user, "anonymous");
    assert_eq!(
        last.scope,
        "repository:public/x:pull repository:private/x:pull"
    );

    reg.delete_manifest("private/x", &digest).await;
    let (_, admin, _) = fetch_token(&reg, &client, Some(ADMIN), "repository:private/x:pull").await;
    let response = head_manifest(
        &reg,
        &client,
        "private/x",
        &digest,
        &Cred::Bearer(&admin.unwrap()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    reg.push_tags("private/tags", &["a", "b", "c"]).await;
    let (_, alice, _) =
        fetch_token(&reg, &client, Some(ALICE), "repository:private/tags:pull").await;
    assert_eq!(
        tags_list(
            &reg,
            &client,
            "private/tags",
            &Cred::Bearer(&alice.unwrap())
        )
        .await,
        ["a", "b", "c"]
    );
}

#[tokio::test]
async fn drop_stops_the_registry() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Token,
    })
    .await;
    let registry_addr = reg.host();
    let realm = reg.token_realm().unwrap();
    let token_addr = realm
        .trim_start_matches("https://")
        .trim_end_matches("/token")
        .to_string();
    drop(reg);
    // The token server's listener closes once its task has run again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(&registry_addr)
        .await
        .is_err());
    assert!(tokio::net::TcpStream::connect(&token_addr).await.is_err());
}
