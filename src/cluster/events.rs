//! events.k8s.io/v1 Events as pullcheck writes them, shaped the way the API server
//! validates them (kubernetes `pkg/apis/core/validation/events.go`): `eventTime` and
//! `series.lastObservedTime` as MicroTime with exactly six fractional digits, type
//! `Warning`, `reportingController` [`REPORTING_CONTROLLER`] (a qualified name),
//! `reportingInstance`, `action` and `reason` of at most 128 bytes, a note of at most
//! [`NOTE_LIMIT`] bytes, no `deprecated*` field, and `regarding` with the object's uid and
//! no resourceVersion (kubectl describe finds Events by uid; a resourceVersion changes
//! with every status update). After creation only `series` may change: a repeat is a PATCH
//! of `{"series": {"count": N, "lastObservedTime": …}}` with N ≥ 2.
//!
//! The cause and image an Event is about are kept in its annotations ([`ANNOTATION_CAUSE`],
//! [`ANNOTATION_IMAGE`]), so a replica that takes over the scan finds the Events written
//! before it ([`EventSink::reported`]) and continues their series instead of starting new
//! ones.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use super::kube::{classify, timed, valid_namespace};
use super::view::KubeView;
use super::ClusterError;
use crate::text::{truncate, FIELD_LIMIT};

/// `reportingController` of every Event pullcheck writes.
pub const REPORTING_CONTROLLER: &str = "pullcheck.dev/pullcheck";
/// Most bytes of an Event's note (the API server's `NoteLengthLimit`).
pub const NOTE_LIMIT: usize = 1024;
/// Most bytes of `reason`, `action` and `reportingInstance`.
pub const SHORT_LIMIT: usize = 128;
/// Annotation holding the image an Event is about.
pub const ANNOTATION_IMAGE: &str = "pullcheck.dev/image";
/// Annotation holding the cause (a finding class or `diagnosis/<class>`).
pub const ANNOTATION_CAUSE: &str = "pullcheck.dev/cause";

/// What an Event is about (`regarding`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.containers{web}` for a container of a Pod.
    pub field_path: Option<String>,
}

/// An Event to create (type `Warning`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub regarding: ObjectRef,
    /// `ImageNotPullable`, `PullcheckDiagnosis`.
    pub reason: String,
    /// What pullcheck did: `Scan`, `Diagnose`.
    pub action: String,
    /// Cut to [`NOTE_LIMIT`] bytes when written.
    pub note: String,
    /// The replica writing it (the Lease holder's identity).
    pub reporting_instance: String,
    pub image: String,
    pub cause: String,
}

/// An Event pullcheck wrote before, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedEvent {
    pub namespace: String,
    pub name: String,
    pub regarding: ObjectRef,
    pub reason: String,
    pub image: String,
    pub cause: String,
    /// `series.count`, else 1.
    pub count: i32,
}

/// Writes pullcheck's Events.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Creates the Event (`eventTime`: now) in the regarded object's namespace; its name.
    async fn create(&self, event: &NewEvent) -> Result<String, ClusterError>;

    /// Sets the series of an Event: `count` (≥ 2) and `lastObservedTime` now. `Ok(false)`
    /// when the Event is gone (404: expired after the API server's `--event-ttl`, or
    /// deleted).
    async fn observe(&self, namespace: &str, name: &str, count: i32) -> Result<bool, ClusterError>;

    /// Every Event whose `reportingController` is [`REPORTING_CONTROLLER`].
    async fn reported(&self) -> Result<Vec<ReportedEvent>, ClusterError>;
}

/// MicroTime text: `2025-06-01T12:00:00.123456Z`, exactly six fractional digits, UTC (Go's
/// `time.Parse` with the `.000000` layout accepts nothing else).
pub fn micro_time(at: SystemTime) -> String {
    let micros = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let ts = Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", ts)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".to_owned())
}

/// Whether `s` is a MicroTime as the API server parses it (Go's layout
/// `2006-01-02T15:04:05.000000Z07:00`: six fractional digits, then `Z` or `±hh:mm`).
pub fn is_micro_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 27 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let zone = match &b[26..] {
        b"Z" => true,
        [b'+' | b'-', _, _, b':', _, _] => digits(27..29) && digits(30..32),
        _ => false,
    };
    zone && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
}

/// The name of a new Event about `regarding`: `<name>.<nanoseconds in hex>`, like
/// client-go's, cut to a valid DNS subdomain.
pub fn event_name(regarding: &str, at: SystemTime) -> String {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let suffix = format!(".{nanos:x}");
    let mut base: String = regarding
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')
        .take(253 - suffix.len())
        .collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    while base.starts_with(['-', '.']) {
        base.remove(0);
    }
    if base.is_empty() {
        base.push_str("pullcheck");
    }
    base + &suffix
}

/// The Event as sent: every length limit applied.
pub fn event_object(event: &NewEvent, name: &str, at: SystemTime) -> Event {
    let r = &event.regarding;
    Event {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(r.namespace.clone()),
            annotations: Some(BTreeMap::from([
                (
                    ANNOTATION_IMAGE.to_owned(),
                    truncate(&event.image, FIELD_LIMIT),
                ),
                (
                    ANNOTATION_CAUSE.to_owned(),
                    truncate(&event.cause, SHORT_LIMIT),
                ),
            ])),
            ..ObjectMeta::default()
        },
        event_time: Some(micro(at)),
        type_: Some("Warning".to_owned()),
        reason: Some(truncate(&event.reason, SHORT_LIMIT)),
        action: Some(truncate(&event.action, SHORT_LIMIT)),
        note: Some(truncate(&event.note, NOTE_LIMIT)),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(truncate(&event.reporting_instance, SHORT_LIMIT)),
        regarding: Some(ObjectReference {
            api_version: Some(r.api_version.clone()),
            kind: Some(r.kind.clone()),
            namespace: Some(r.namespace.clone()),
            name: Some(r.name.clone()),
            uid: Some(r.uid.clone()),
            field_path: r.field_path.clone(),
            resource_version: None,
        }),
        ..Event::default()
    }
}

fn micro(at: SystemTime) -> MicroTime {
    let micros = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The series patch: `{"series": {"count": N, "lastObservedTime": "…"}}`.
pub fn series_patch(count: i32, at: SystemTime) -> serde_json::Value {
    serde_json::json!({ "series": { "count": count.max(2), "lastObservedTime": micro_time(at) } })
}

/// An Event read back, when it is one of pullcheck's with the annotations it writes.
pub fn reported(event: Event) -> Option<ReportedEvent> {
    let annotations = event.metadata.annotations.unwrap_or_default();
    let r = event.regarding?;
    Some(ReportedEvent {
        namespace: event.metadata.namespace?,
        name: event.metadata.name?,
        regarding: ObjectRef {
            api_version: r.api_version.unwrap_or_default(),
            kind: r.kind.unwrap_or_default(),
            namespace: r.namespace.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            uid: r.uid?,
            field_path: r.field_path,
        },
        reason: event.reason?,
        image: annotations.get(ANNOTATION_IMAGE)?.clone(),
        cause: annotations.get(ANNOTATION_CAUSE)?.clone(),
        count: event.series.map_or(1, |s| s.count),
    })
}

#[async_trait::async_trait]
impl EventSink for KubeView {
    async fn create(&self, event: &NewEvent) -> Result<String, ClusterError> {
        let ns = &event.regarding.namespace;
        let at = SystemTime::now();
        let name = event_name(&event.regarding.name, at);
        let what = format!(
            "create Event {} in namespace {ns} about {} {}",
            event.reason, event.regarding.kind, event.regarding.name
        );
        if !valid_namespace(ns) {
            return Err(ClusterError::Unexpected {
                detail: format!("{what}: not a valid namespace name"),
            });
        }
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let object = event_object(event, &name, at);
        let created = timed(
            &what,
            self.timeout,
            api.create(&PostParams::default(), &object),
        )
        .await?;
        Ok(created.metadata.name.unwrap_or(name))
    }

    async fn observe(&self, namespace: &str, name: &str, count: i32) -> Result<bool, ClusterError> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("patch the series of Event {namespace}/{name}");
        let patch = Patch::Merge(series_patch(count, SystemTime::now()));
        let params = PatchParams::default();
        let sent = api.patch(name, &params, &patch);
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Ok(false),
            Ok(Err(e)) => Err(classify(&what, e)),
            Err(_) => Err(ClusterError::Unavailable {
                detail: format!("{what}: no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }

    async fn reported(&self) -> Result<Vec<ReportedEvent>, ClusterError> {
        let api: Api<Event> = Api::all(self.client.clone());
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default()
                .fields(&format!("reportingController={REPORTING_CONTROLLER}"))
                .limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let what = format!("list the Events of {REPORTING_CONTROLLER}");
            let page = timed(&what, self.timeout, api.list(&lp)).await?;
            out.extend(page.items.into_iter().filter_map(reported));
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn micro_times_have_six_fractional_digits() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_748_779_200_000_001);
        assert_eq!(micro_time(at), "2025-06-01T12:00:00.000001Z");
        assert!(is_micro_time(&micro_time(SystemTime::now())));
        assert!(is_micro_time(&micro_time(SystemTime::UNIX_EPOCH)));
        assert!(is_micro_time("2025-06-01T12:00:00.123456+02:00"));
        for bad in [
            "2025-06-01T12:00:00Z",
            "2025-06-01T12:00:00.123Z",
            "2025-06-01T12:00:00.123456789Z",
            "2025-06-01T12:00:00.123456+0200",
            "2025-06-01 12:00:00.123456Z",
        ] {
            assert!(!is_micro_time(bad), "{bad}");
        }
        // The typed object serializes the same way.
        let object = event_object(&sample(), "n", at);
        let json = serde_json::to_value(&object).unwrap();
        assert_eq!(json["eventTime"], "2025-06-01T12:00:00.000001Z");
        assert!(json.get("deprecatedCount").is_none() && json.get("series").is_none());
        assert_eq!(json["regarding"]["uid"], "u1");
        assert!(json["regarding"].get("resourceVersion").is_none());
        assert_eq!(
            series_patch(1, at)["series"]["count"],
            2,
            "a series starts at 2"
        );
    }

    fn sample() -> NewEvent {
        NewEvent {
            regarding: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "a".into(),
                name: "web".into(),
                uid: "u1".into(),
                field_path: None,
            },
            reason: "ImageNotPullable".into(),
            action: "Scan".into(),
            note: "é".repeat(2000),
            reporting_instance: "pullcheck-0".into(),
            image: "r.example/web:1".into(),
            cause: "tag_not_found".into(),
        }
    }

    #[test]
    fn notes_and_names_fit_the_api_servers_limits() {
        let object = event_object(&sample(), "web.1", SystemTime::now());
        let note = object.note.clone().unwrap();
        assert!(
            note.len() <= NOTE_LIMIT && note.ends_with('…'),
            "{}",
            note.len()
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(0x1234);
        assert_eq!(event_name("web", at), "web.1234");
        let long = event_name(&format!("{}-", "a".repeat(300)), at);
        assert!(long.len() <= 253 && long.ends_with(".1234"), "{long}");
        assert_eq!(event_name("--", at), "pullcheck.1234");
        let back = reported(object.clone()).unwrap();
        assert_eq!(back.cause, "tag_not_found");
        assert_eq!(back.image, "r.example/web:1");
        assert_eq!(back.count, 1);
        let mut foreign = object;
        foreign.metadata.annotations = None;
        assert!(reported(foreign).is_none(), "not pullcheck's shape");
    }
}
