//! The stand-in's objects beyond Secrets, ServiceAccounts and Nodes, kept as JSON and
//! answered like the real API server:
//!
//! - workloads (`apps/v1` Deployments, ReplicaSets, StatefulSets, DaemonSets; `batch/v1`
//!   Jobs, CronJobs; `v1` ReplicationControllers) and Pods with their statuses: get, list
//!   (all namespaces or one; `limit` / `continue`; field selectors on the fields the real
//!   server offers for the resource; equality label selectors; metadata-only), watch
//!   (`ADDED` / `MODIFIED` / `DELETED` after a resourceVersion);
//! - core/v1 Events (the kubelet's `Failed`; field selectors `involvedObject.*`, `reason`, …);
//! - events.k8s.io/v1 Events: create and merge-PATCH validated as `ValidateEventCreate` /
//!   `ValidateEventUpdate` do for that group (eventTime a MicroTime with exactly six
//!   fractional digits, else a 400 decode error; `note` at most 1024 bytes; required
//!   reportingController, reportingInstance, action, reason; `series.count` ≥ 2; only
//!   `series` and metadata may change afterwards: 422 otherwise);
//! - coordination.k8s.io/v1 Leases: get, create (409 AlreadyExists), update (PUT with the
//!   resourceVersion read; 409 Conflict when it changed).
//!
//! Tests put and delete objects with [`FakeApiServer::put_object`] and friends.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::{
    bad_request, event_line, json_response, lock, shaped, status, uid, FakeApiServer, FieldTerm,
    Params, Reject, Shape, Shared, CREATED, DEFAULT_WATCH_TIMEOUT,
};

/// (group/version, resource, kind).
const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "pods", "Pod"),
    ("v1", "replicationcontrollers", "ReplicationController"),
    ("v1", "events", "Event"),
    ("apps/v1", "deployments", "Deployment"),
    ("apps/v1", "replicasets", "ReplicaSet"),
    ("apps/v1", "statefulsets", "StatefulSet"),
    ("apps/v1", "daemonsets", "DaemonSet"),
    ("batch/v1", "jobs", "Job"),
    ("batch/v1", "cronjobs", "CronJob"),
    ("events.k8s.io/v1", "events", "Event"),
    ("coordination.k8s.io/v1", "leases", "Lease"),
];

const NEW_EVENTS: &str = "events.k8s.io/v1";

/// One change of an object (for watches).
#[derive(Clone)]
pub(super) struct ObjEvent {
    rv: u64,
    kind: &'static str,
    gvr: String,
    namespace: String,
    object: Value,
}

/// (group/version/resource, namespace, name).
pub(super) type ObjKey = (String, String, String);

fn gvr(gv: &str, resource: &str) -> String {
    format!("{gv}/{resource}")
}

fn resource_of(api_version: &str, kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(gv, _, k)| *gv == api_version && *k == kind)
        .map(|(_, r, _)| *r)
        .unwrap_or_else(|| panic!("the fake serves no {kind} in {api_version}"))
}

fn kind_of(gv: &str, resource: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(g, r, _)| *g == gv && *r == resource)
        .map(|(_, _, k)| *k)
}

fn text_at(object: &Value, path: &str) -> String {
    let mut v = object;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl FakeApiServer {
    /// Creates or replaces an object (`apiVersion`, `kind`, `metadata.namespace`,
    /// `metadata.name` as given; uid kept across replacements, a new resourceVersion),
    /// `ADDED` or `MODIFIED` to open watches. Returns it as stored.
    pub fn put_object(&self, mut object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("apiVersion")
            .to_owned();
        let kind = object["kind"].as_str().expect("kind").to_owned();
        let resource = resource_of(&api_version, &kind);
        let ns = text_at(&object, "metadata.namespace");
        let name = text_at(&object, "metadata.name");
        let mut s = lock(&self.shared);
        let rv = s.next_rv();
        let key = (gvr(&api_version, resource), ns.clone(), name);
        let (event, id) = match s.objects.get(&key) {
            Some(old) => ("MODIFIED", text_at(old, "metadata.uid")),
            None => ("ADDED", uid(rv)),
        };
        stamp(&mut object, &id, rv);
        commit(&self.shared, &mut s, key, event, object.clone());
        object
    }

    /// Deletes an object (`DELETED` to open watches); false when there was none.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let resource = resource_of(api_version, kind);
        let mut s = lock(&self.shared);
        let key = (
            gvr(api_version, resource),
            namespace.to_owned(),
            name.to_owned(),
        );
        let Some(mut object) = s.objects.remove(&key) else {
            return false;
        };
        let rv = s.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        record(&self.shared, &mut s, &key, "DELETED", object, rv);
        true
    }

    /// The object, as stored.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let resource = resource_of(api_version, kind);
        lock(&self.shared)
            .objects
            .get(&(
                gvr(api_version, resource),
                namespace.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Every object of a kind (all namespaces), in key order.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let g = gvr(api_version, resource_of(api_version, kind));
        lock(&self.shared)
            .objects
            .iter()
            .filter(|((k, _, _), _)| *k == g)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn stamp(object: &mut Value, id: &str, rv: u64) {
    let m = &mut object["metadata"];
    m["uid"] = json!(id);
    m["resourceVersion"] = json!(rv.to_string());
    if m.get("creationTimestamp").is_none() {
        m["creationTimestamp"] = json!(CREATED);
    }
}

fn commit(shared: &Shared, s: &mut super::Store, key: ObjKey, event: &'static str, object: Value) {
    let rv: u64 = text_at(&object, "metadata.resourceVersion")
        .parse()
        .unwrap_or(0);
    s.objects.insert(key.clone(), object.clone());
    record(shared, s, &key, event, object, rv);
}

fn record(
    shared: &Shared,
    s: &mut super::Store,
    key: &ObjKey,
    kind: &'static str,
    object: Value,
    rv: u64,
) {
    let e = ObjEvent {
        rv,
        kind,
        gvr: key.0.clone(),
        namespace: key.1.clone(),
        object,
    };
    s.object_history.push(e.clone());
    // Sent under the lock: a watch subscribing under the same lock misses nothing.
    let _ = shared.object_events.send(e);
}

/// A request path the objects answer: (group/version, namespace, resource, name).
pub(super) fn route<'a>(
    segments: &[&'a str],
) -> Option<(String, Option<&'a str>, &'a str, Option<&'a str>)> {
    let (gv, rest) = match segments {
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, resource, name) = match rest {
        ["namespaces", ns, resource] => (Some(*ns), *resource, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name)),
        [resource] => (None, *resource, None),
        _ => return None,
    };
    kind_of(&gv, resource)?;
    Some((gv, ns, resource, name))
}

/// The fields a field selector may name, per resource (as the real server's).
fn selectable(gv: &str, resource: &str) -> &'static [&'static str] {
    match (gv, resource) {
        ("v1", "pods") => &[
            "metadata.name",
            "metadata.namespace",
            "status.phase",
            "spec.nodeName",
            "spec.serviceAccountName",
            "spec.restartPolicy",
        ],
        ("v1", "events") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
            "reportingComponent",
        ],
        (NEW_EVENTS, "events") => &[
            "metadata.name",
            "metadata.namespace",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.fieldPath",
            "reason",
            "type",
            "reportingController",
        ],
        ("apps/v1", "replicasets") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("batch/v1", "jobs") => &["metadata.name", "metadata.namespace", "status.successful"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// Equality label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`; comma = and).
fn label_terms(params: &Params) -> Result<Vec<(String, Option<String>, bool)>, Reject> {
    let Some(sel) = params.get("labelSelector").filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for term in sel.split(',') {
        let term = term.trim();
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(Box::new(bad_request(&format!(
                "set-based label selectors are not served by this fake: {term}"
            ))));
        }
        if let Some((k, v)) = term.split_once("!=") {
            out.push((k.trim().to_owned(), Some(v.trim().to_owned()), false));
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            out.push((k.trim().to_owned(), Some(v.trim().to_owned()), true));
        } else if let Some(k) = term.strip_prefix('!') {
            out.push((k.trim().to_owned(), None, false));
        } else {
            out.push((term.to_owned(), None, true));
        }
    }
    Ok(out)
}

struct Filter {
    terms: Vec<FieldTerm>,
    labels: Vec<(String, Option<String>, bool)>,
    gvr: String,
    namespace: Option<String>,
}

impl Filter {
    fn new(gv: &str, resource: &str, ns: Option<&str>, params: &Params) -> Result<Self, Reject> {
        Ok(Self {
            terms: super::field_selector(params, selectable(gv, resource))?,
            labels: label_terms(params)?,
            gvr: gvr(gv, resource),
            namespace: ns.map(str::to_owned),
        })
    }

    fn matches(&self, gvr: &str, ns: &str, object: &Value) -> bool {
        gvr == self.gvr
            && self.namespace.as_deref().is_none_or(|n| n == ns)
            && super::fields_match(&self.terms, |f| text_at(object, f))
            && self.labels.iter().all(|(k, v, eq)| {
                let have = object["metadata"]["labels"].get(k).and_then(Value::as_str);
                match v {
                    Some(v) => (have == Some(v.as_str())) == *eq,
                    None => have.is_some() == *eq,
                }
            })
    }
}

/// Answers a request on an object path.
pub(super) async fn handle(
    shared: &Shared,
    method: &Method,
    route: (String, Option<&str>, &str, Option<&str>),
    params: &Params,
    shape: Shape,
    request: Request,
) -> Response {
    let (gv, ns, resource, name) = route;
    let kind = kind_of(&gv, resource).unwrap_or("Unknown");
    let result = match (method.as_str(), ns, name) {
        ("GET", _, None) if params.is_true("watch") => watch(shared, &gv, resource, ns, shape, params),
        ("GET", _, None) => list(shared, &gv, resource, kind, ns, shape, params),
        ("GET", Some(ns), Some(name)) => Ok(get(shared, &gv, resource, ns, name, shape)),
        ("POST", Some(ns), None) => match body(request).await {
            Ok(v) => create(shared, &gv, resource, kind, ns, v),
            Err(r) => Err(r),
        },
        ("PUT", Some(ns), Some(name)) => match body(request).await {
            Ok(v) => update(shared, &gv, resource, kind, ns, name, v),
            Err(r) => Err(r),
        },
        ("PATCH", Some(ns), Some(name)) => {
            let merge = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/merge-patch+json"));
            if !merge {
                Err(Box::new(status(
                    415,
                    "this fake applies application/merge-patch+json only",
                    None,
                )))
            } else {
                match body(request).await {
                    Ok(v) => patch(shared, &gv, resource, kind, ns, name, &v),
                    Err(r) => Err(r),
                }
            }
        }
        _ => Err(Box::new(status(
            405,
            &format!("the server does not allow this method on the requested resource ({method} {resource})"),
            None,
        ))),
    };
    result.unwrap_or_else(|r| *r)
}

async fn body(request: Request) -> Result<Value, Reject> {
    let bytes = axum::body::to_bytes(request.into_body(), 4 << 20)
        .await
        .map_err(|_| Box::new(status(413, "request entity too large", None)))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(bad_request(&format!(
            "couldn't get version/kind; json parse error: {e}"
        )))
    })
}

fn key_of(gv: &str, resource: &str, ns: &str, name: &str) -> ObjKey {
    (gvr(gv, resource), ns.to_owned(), name.to_owned())
}

fn get(shared: &Shared, gv: &str, resource: &str, ns: &str, name: &str, shape: Shape) -> Response {
    let s = lock(shared);
    match s.objects.get(&key_of(gv, resource, ns, name)) {
        Some(o) => json_response(StatusCode::OK, &shaped(o.clone(), shape)),
        None => not_found(gv, resource, name),
    }
}

fn not_found(gv: &str, resource: &str, name: &str) -> Response {
    let group = gv.rsplit_once('/').map_or("", |(g, _)| g);
    let what = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    status(
        404,
        &format!("{what} \"{name}\" not found"),
        Some(json!({ "name": name, "group": group, "kind": resource })),
    )
}

/// A list page: objects in (namespace, name) order after the `continue` token
/// (`namespace/name` of the last one sent), at most `limit`; only the page is cloned, so
/// paging through 100,000 Pods stays linear.
fn list(
    shared: &Shared,
    gv: &str,
    resource: &str,
    kind: &str,
    ns: Option<&str>,
    shape: Shape,
    params: &Params,
) -> Result<Response, Reject> {
    let filter = Filter::new(gv, resource, ns, params)?;
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None | Some(Ok(0)) => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(Box::new(bad_request("invalid limit"))),
    };
    let after = match params.get("continue").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match t.split_once('/') {
            Some((n, name)) => Some((n.to_owned(), name.to_owned())),
            None => return Err(Box::new(status(
                410,
                "the provided continue parameter is too old to display a consistent list result",
                None,
            ))),
        },
    };
    let g = gvr(gv, resource);
    let from = match (&after, ns) {
        (Some((n, name)), _) => (g.clone(), n.clone(), name.clone()),
        (None, Some(n)) => (g.clone(), n.to_owned(), String::new()),
        (None, None) => (g.clone(), String::new(), String::new()),
    };
    let s = lock(shared);
    let mut items = Vec::new();
    let mut next = None;
    for ((og, on, oname), o) in s.objects.range(from..) {
        if *og != g || ns.is_some_and(|n| n != on) {
            break;
        }
        if after
            .as_ref()
            .is_some_and(|(n, name)| (on, oname) <= (n, name))
        {
            continue;
        }
        if !filter.matches(og, on, o) {
            continue;
        }
        if items.len() == limit {
            next = items.last().map(|(k, _): &(String, Value)| k.clone());
            break;
        }
        items.push((format!("{on}/{oname}"), o.clone()));
    }
    let mut list_meta = json!({ "resourceVersion": s.rv.to_string() });
    drop(s);
    if let Some(token) = next {
        list_meta["continue"] = json!(token);
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|(_, mut v)| match shape {
            Shape::Metadata => shaped(v, shape),
            Shape::Full => {
                // The real server leaves kind/apiVersion out of list items.
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
                v
            }
        })
        .collect();
    let (kind, api_version) = match shape {
        Shape::Full => (format!("{kind}List"), gv.to_owned()),
        Shape::Metadata => (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        ),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "kind": kind, "apiVersion": api_version, "metadata": list_meta, "items": items }),
    ))
}

fn invalid(kind: &str, gv: &str, name: &str, causes: &[(String, String)]) -> Reject {
    let group = gv.rsplit_once('/').map_or("", |(g, _)| g);
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    Box::new(status(
        422,
        &format!("{qualified} \"{name}\" is invalid: {}", text.join(", ")),
        Some(json!({
            "name": name,
            "group": group,
            "kind": kind,
            "causes": causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect::<Vec<_>>(),
        })),
    ))
}

/// `2006-01-02T15:04:05.000000Z07:00`: exactly six fractional digits.
fn is_micro_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 27
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        || b[10] != b'T'
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
        || b[19] != b'.'
        || !digits(20..26)
    {
        return false;
    }
    match &b[26..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// MicroTime fields that do not decode: the 400 the real server's decoder answers.
fn micro_times(object: &Value, fields: &[&str]) -> Result<(), Reject> {
    for f in fields {
        let t = text_at(object, f);
        if !t.is_empty() && !is_micro_time(&t) {
            return Err(Box::new(bad_request(&format!(
                "parsing time \"{t}\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse (field {f})"
            ))));
        }
    }
    Ok(())
}

fn qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    name_ok
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        })
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// `ValidateEventCreate` for events.k8s.io/v1.
fn validate_new_event(e: &Value) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    let mut say = |f: &str, m: &str| bad.push((f.to_owned(), m.to_owned()));
    if text_at(e, "eventTime").is_empty() {
        say("eventTime", "Required value");
    }
    let t = text_at(e, "type");
    if t != "Normal" && t != "Warning" {
        say(
            "type",
            &format!("Invalid value: \"{t}\": has invalid value: {t}"),
        );
    }
    for f in [
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
        "deprecatedSource",
    ] {
        if e.get(f).is_some_and(|v| !v.is_null()) {
            say(f, "Invalid value: needs to be unset");
        }
    }
    bad.extend(validate_series(e));
    let mut say = |f: &str, m: &str| bad.push((f.to_owned(), m.to_owned()));
    let rc = text_at(e, "reportingController");
    if rc.is_empty() {
        say("reportingController", "Required value");
    } else if !qualified_name(&rc) {
        say(
            "reportingController",
            &format!("Invalid value: \"{rc}\": must be a qualified name"),
        );
    }
    for (f, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = text_at(e, f);
        if v.is_empty() {
            say(f, "Required value");
        } else if v.len() > limit {
            say(f, &format!("Too long: may not be more than {limit} bytes"));
        }
    }
    if text_at(e, "note").len() > 1024 {
        say("note", "Too long: may not be more than 1024 bytes");
    }
    bad
}

fn validate_series(e: &Value) -> Vec<(String, String)> {
    let Some(series) = e.get("series").filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let mut bad = Vec::new();
    if series["count"].as_i64().unwrap_or(0) < 2 {
        bad.push((
            "series.count".to_owned(),
            "Invalid value: should be at least 2".to_owned(),
        ));
    }
    if text_at(series, "lastObservedTime").is_empty() {
        bad.push((
            "series.lastObservedTime".to_owned(),
            "Required value".to_owned(),
        ));
    }
    bad
}

/// `ValidateEventUpdate` for events.k8s.io/v1: only `series` and metadata may change.
fn validate_event_update(old: &Value, new: &Value) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    if old.get("series") != new.get("series") {
        bad.extend(validate_series(new));
    }
    for f in [
        "regarding",
        "related",
        "reason",
        "note",
        "type",
        "action",
        "eventTime",
        "reportingController",
        "reportingInstance",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    ] {
        if old.get(f) != new.get(f) {
            bad.push((f.to_owned(), "Invalid value: field is immutable".to_owned()));
        }
    }
    bad
}

fn validate_create(gv: &str, resource: &str, object: &Value) -> Result<(), Vec<(String, String)>> {
    let mut bad = Vec::new();
    let name = text_at(object, "metadata.name");
    if !dns_subdomain(&name) {
        bad.push(("metadata.name".to_owned(), format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")));
    }
    if (gv, resource) == (NEW_EVENTS, "events") {
        bad.extend(validate_new_event(object));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

fn decode_checks(gv: &str, resource: &str, object: &Value) -> Result<(), Reject> {
    match (gv, resource) {
        (NEW_EVENTS, "events") => micro_times(object, &["eventTime", "series.lastObservedTime"]),
        ("coordination.k8s.io/v1", "leases") => {
            micro_times(object, &["spec.acquireTime", "spec.renewTime"])
        }
        _ => Ok(()),
    }
}

fn create(
    shared: &Shared,
    gv: &str,
    resource: &str,
    kind: &str,
    ns: &str,
    mut object: Value,
) -> Result<Response, Reject> {
    decode_checks(gv, resource, &object)?;
    let body_ns = text_at(&object, "metadata.namespace");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(Box::new(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )));
    }
    let name = text_at(&object, "metadata.name");
    if let Err(causes) = validate_create(gv, resource, &object) {
        return Err(invalid(kind, gv, &name, &causes));
    }
    let mut s = lock(shared);
    let key = key_of(gv, resource, ns, &name);
    if s.objects.contains_key(&key) {
        let group = gv.rsplit_once('/').map_or("", |(g, _)| g);
        return Err(Box::new(status(
            409,
            &format!("{resource}.{group} \"{name}\" already exists"),
            Some(json!({"name": name, "group": group, "kind": resource})),
        )));
    }
    object["apiVersion"] = json!(gv);
    object["kind"] = json!(kind);
    object["metadata"]["namespace"] = json!(ns);
    let rv = s.next_rv();
    stamp(&mut object, &uid(rv), rv);
    commit(shared, &mut s, key, "ADDED", object.clone());
    Ok(json_response(StatusCode::CREATED, &object))
}

fn conflict(resource: &str, gv: &str, name: &str) -> Reject {
    let group = gv.rsplit_once('/').map_or("", |(g, _)| g);
    Box::new(status(
        409,
        &format!("Operation cannot be fulfilled on {resource}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        Some(json!({"name": name, "group": group, "kind": resource})),
    ))
}

fn update(
    shared: &Shared,
    gv: &str,
    resource: &str,
    kind: &str,
    ns: &str,
    name: &str,
    mut object: Value,
) -> Result<Response, Reject> {
    decode_checks(gv, resource, &object)?;
    let mut s = lock(shared);
    let key = key_of(gv, resource, ns, name);
    let Some(old) = s.objects.get(&key).cloned() else {
        return Err(Box::new(not_found(gv, resource, name)));
    };
    let sent = text_at(&object, "metadata.resourceVersion");
    if sent.is_empty() {
        return Err(invalid(
            kind,
            gv,
            name,
            &[(
                "metadata.resourceVersion".to_owned(),
                "Invalid value: 0x0: must be specified for an update".to_owned(),
            )],
        ));
    }
    if sent != text_at(&old, "metadata.resourceVersion") {
        return Err(conflict(resource, gv, name));
    }
    if (gv, resource) == (NEW_EVENTS, "events") {
        let bad = validate_event_update(&old, &object);
        if !bad.is_empty() {
            return Err(invalid(kind, gv, name, &bad));
        }
    }
    object["apiVersion"] = json!(gv);
    object["kind"] = json!(kind);
    object["metadata"]["namespace"] = json!(ns);
    object["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
    let rv = s.next_rv();
    stamp(&mut object, &text_at(&old, "metadata.uid"), rv);
    commit(shared, &mut s, key, "MODIFIED", object.clone());
    Ok(json_response(StatusCode::OK, &object))
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn patch(
    shared: &Shared,
    gv: &str,
    resource: &str,
    kind: &str,
    ns: &str,
    name: &str,
    p: &Value,
) -> Result<Response, Reject> {
    let old = {
        let s = lock(shared);
        s.objects.get(&key_of(gv, resource, ns, name)).cloned()
    };
    let Some(old) = old else {
        return Err(Box::new(not_found(gv, resource, name)));
    };
    let mut new = old.clone();
    merge(&mut new, p);
    decode_checks(gv, resource, &new)?;
    // A merge patch without a resourceVersion applies to the latest.
    if text_at(p, "metadata.resourceVersion").is_empty() {
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    }
    update(shared, gv, resource, kind, ns, name, new)
}

struct ObjWatch {
    pending: VecDeque<Bytes>,
    events: broadcast::Receiver<ObjEvent>,
    shutdown: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
    after: u64,
    filter: Filter,
    shape: Shape,
}

fn watch(
    shared: &Shared,
    gv: &str,
    resource: &str,
    ns: Option<&str>,
    shape: Shape,
    params: &Params,
) -> Result<Response, Reject> {
    let filter = Filter::new(gv, resource, ns, params)?;
    let timeout = match params.get("timeoutSeconds").map(str::parse::<u64>) {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(Ok(t)) => t,
        Some(Err(_)) => return Err(Box::new(bad_request("invalid timeoutSeconds"))),
    };
    let rv_param = params.get("resourceVersion").unwrap_or("");
    let s = lock(shared);
    let mut pending = VecDeque::new();
    let after = if rv_param.is_empty() || rv_param == "0" {
        for ((g, n, _), o) in s.objects.iter() {
            if filter.matches(g, n, o) {
                pending.push_back(event_line("ADDED", shaped(o.clone(), shape)));
            }
        }
        s.rv
    } else {
        let Ok(from) = rv_param.parse::<u64>() else {
            return Err(Box::new(bad_request(&format!(
                "invalid resourceVersion: {rv_param}"
            ))));
        };
        for e in s
            .object_history
            .iter()
            .filter(|e| e.rv > from && filter.matches(&e.gvr, &e.namespace, &e.object))
        {
            pending.push_back(event_line(e.kind, shaped(e.object.clone(), shape)));
        }
        s.rv.max(from)
    };
    let stream = ObjWatch {
        pending,
        events: shared.object_events.subscribe(),
        shutdown: shared.shutdown.subscribe(),
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(timeout),
        after,
        filter,
        shape,
    };
    drop(s);
    let body = futures::stream::unfold(stream, |mut st| async move {
        if let Some(line) = st.pending.pop_front() {
            return Some((Ok::<Bytes, Infallible>(line), st));
        }
        loop {
            if *st.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(st.deadline) => return None,
                _ = st.shutdown.changed() => return None,
                event = st.events.recv() => match event {
                    Ok(e) => {
                        if e.rv > st.after && st.filter.matches(&e.gvr, &e.namespace, &e.object) {
                            st.after = e.rv;
                            return Some((Ok(event_line(e.kind, shaped(e.object, st.shape))), st));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
