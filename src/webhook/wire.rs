//! The AdmissionReview on the wire (admission.k8s.io/v1), read and written by pullcheck
//! itself rather than through kube-core's `AdmissionReview<DynamicObject>`.
//!
//! kube-core's types flatten the review's `TypeMeta` (`#[serde(flatten)]`), which makes
//! serde buffer the whole review — object and oldObject included — into an intermediate
//! tree before decoding it again, and `DynamicObject` then builds a `serde_json::Value` of
//! every field of the object. That was half of the instructions of a warm review. Here the
//! request is decoded field by field with the object and oldObject kept as raw JSON text
//! (`&RawValue`, borrowed from the body), from which only what decides pulls is read
//! (`kubelet::workload::decode_raw`).
//!
//! The request's fields are those of kube-core's `AdmissionRequest`, with the same types
//! and the same required fields, so a review is refused (400) exactly when kube-core would
//! refuse it: a wrong type in any field pullcheck reads, a missing `uid`, `kind`,
//! `resource`, `operation` or `userInfo`, an `object` that is not a JSON object. Fields
//! pullcheck does not read (`requestKind`, `options`, …) are skipped unread.
//!
//! The answer is written in the shape kube-core writes (`apiVersion` and `kind` echoed from
//! the request, `response.status` as a `Status` whose empty fields are left out).

use std::collections::BTreeMap;

use kube::core::admission::Operation;
use kube::core::{GroupVersionKind, GroupVersionResource};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The API version pullcheck answers when a request names none.
const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

/// An AdmissionReview as received.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewIn<'a> {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(borrow, default)]
    pub request: Option<RequestIn<'a>>,
}

/// `request` of an AdmissionReview: what pullcheck reads, typed as kube-core types it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestIn<'a> {
    pub uid: String,
    pub kind: GroupVersionKind,
    /// Read to refuse a malformed review as kube-core does; not used otherwise.
    #[allow(dead_code)]
    resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    /// Read to refuse a malformed review as kube-core does; not used otherwise.
    #[allow(dead_code)]
    user_info: k8s_openapi::api::authentication::v1::UserInfo,
    #[serde(borrow, default, deserialize_with = "object")]
    pub object: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `object` / `oldObject`: absent, `null`, or a JSON object (anything else is refused, as
/// kube-core's `DynamicObject` refuses it).
fn object<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: Option<&'de RawValue> = Deserialize::deserialize(d)?;
    match raw {
        Some(r) if !r.get().starts_with('{') => Err(serde::de::Error::custom(
            "invalid type: the object is not a JSON object",
        )),
        other => Ok(other),
    }
}

impl<'a> ReviewIn<'a> {
    /// Decodes a review's body; the error is serde's, for a 400. The body is checked to be
    /// UTF-8 once, as a whole (word at a time), rather than string by string.
    pub fn decode(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str(text),
            // serde's own error, with the line and column of the bad byte.
            Err(_) => serde_json::from_slice(body),
        }
    }
}

/// `response.status` of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// The answer to one request (`response` of the AdmissionReview sent back).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub uid: String,
    pub allowed: bool,
    #[serde(rename = "status")]
    pub result: Status,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl Answer {
    /// Allowed, nothing said: the start of every answer to `request`.
    pub fn allow(request: &RequestIn<'_>) -> Self {
        Self {
            uid: request.uid.clone(),
            allowed: true,
            ..Self::default()
        }
    }
}

/// The AdmissionReview carrying `answer`, with the request's `apiVersion` and `kind`.
pub fn encode(review: &ReviewIn<'_>, answer: &Answer) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ReviewOut<'a> {
        api_version: &'a str,
        kind: &'a str,
        response: &'a Answer,
    }
    let out = ReviewOut {
        api_version: or_default(&review.api_version, API_VERSION),
        kind: or_default(&review.kind, KIND),
        response: answer,
    };
    // Serializing strings, maps and numbers into memory cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

fn or_default<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
    use kube::core::DynamicObject;

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).expect("fixture")))
            .collect();
        all.sort();
        assert!(all.len() >= 10, "fixtures found: {}", all.len());
        all
    }

    #[test]
    fn every_fixture_reads_as_kube_core_reads_it() {
        for (name, body) in fixtures() {
            let ours = ReviewIn::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let theirs: AdmissionReview<DynamicObject> =
                serde_json::from_slice(&body).expect("kube-core reads it");
            let theirs: AdmissionRequest<DynamicObject> = theirs.try_into().expect("request");
            let r = ours.request.expect("request");
            assert_eq!(r.uid, theirs.uid, "{name}");
            assert_eq!(r.kind, theirs.kind, "{name}");
            assert_eq!(r.sub_resource, theirs.sub_resource, "{name}");
            assert_eq!(r.name, theirs.name, "{name}");
            assert_eq!(r.namespace, theirs.namespace, "{name}");
            assert_eq!(r.operation, theirs.operation, "{name}");
            assert_eq!(r.dry_run, theirs.dry_run, "{name}");
            assert_eq!(r.object.is_some(), theirs.object.is_some(), "{name}");
            assert_eq!(
                r.old_object.is_some(),
                theirs.old_object.is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn answers_are_written_as_kube_core_writes_them() {
        for (name, body) in fixtures() {
            let review = ReviewIn::decode(&body).expect("decodes");
            let request = review.request.as_ref().expect("request");
            let theirs: AdmissionReview<DynamicObject> = serde_json::from_slice(&body).unwrap();
            let theirs: AdmissionRequest<DynamicObject> = theirs.try_into().unwrap();

            let mut ours = Answer::allow(request);
            let mut kube = AdmissionResponse::from(&theirs);
            ours.audit_annotations.insert("mode".into(), "warn".into());
            kube.audit_annotations.insert("mode".into(), "warn".into());
            ours.warnings = Some(vec!["a \"quoted\" warning".into()]);
            kube.warnings = Some(vec!["a \"quoted\" warning".into()]);
            let same = |ours: &Answer, kube: &AdmissionResponse| {
                let a: serde_json::Value = serde_json::from_slice(&encode(&review, ours)).unwrap();
                let b = serde_json::to_value(kube.clone().into_review()).unwrap();
                assert_eq!(a, b, "{name}");
            };
            same(&ours, &kube);

            ours.allowed = false;
            ours.result = Status {
                code: 403,
                message: "no".into(),
                reason: "Forbidden".into(),
            };
            let mut kube = kube.deny("no");
            kube.result.code = 403;
            kube.result.reason = "Forbidden".into();
            same(&ours, &kube);
        }
    }

    #[test]
    fn malformed_requests_are_refused_as_kube_core_refuses_them() {
        let good: serde_json::Value = serde_json::from_slice(&fixtures()[0].1).expect("a fixture");
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            f(&mut v["request"]);
            serde_json::to_vec(&v).unwrap()
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("uid is a number", with(&|r| r["uid"] = 5.into())),
            (
                "uid missing",
                with(&|r| drop(r.as_object_mut().unwrap().remove("uid"))),
            ),
            (
                "operation unknown",
                with(&|r| r["operation"] = "EXPLODE".into()),
            ),
            (
                "kind is a string",
                with(&|r| r["kind"] = "Deployment".into()),
            ),
            (
                "resource missing",
                with(&|r| drop(r.as_object_mut().unwrap().remove("resource"))),
            ),
            (
                "object is a string",
                with(&|r| r["object"] = "nginx".into()),
            ),
            (
                "object is an array",
                with(&|r| r["object"] = serde_json::json!([1])),
            ),
            ("dryRun is a string", with(&|r| r["dryRun"] = "yes".into())),
            (
                "userInfo is an array",
                with(&|r| r["userInfo"] = serde_json::json!([1, 2])),
            ),
            (
                "lone surrogate",
                br#"{"request":{"uid":"\ud800"}}"#.to_vec(),
            ),
            ("not UTF-8", {
                let mut body = with(&|r| r["name"] = "NAME".into());
                let at = body.windows(4).position(|w| w == b"NAME").expect("NAME");
                body[at] = 0xff;
                body
            }),
        ];
        for (what, body) in cases {
            let kube = serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body);
            assert!(kube.is_err(), "kube-core reads {what}");
            let ours = ReviewIn::decode(&body).expect_err(what);
            if what == "not UTF-8" {
                // serde's own words, with where.
                assert!(ours.to_string().contains("line 1 column"), "{ours}");
            }
        }
    }
}
