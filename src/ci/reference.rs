//! `pullcheck reference REF…`: image references parsed and normalized like the kubelet's,
//! with no network; one line each (or one JSON object with `--json`).

use std::io::Write;

use serde::Serialize;

use crate::config::{ReferenceArgs, EXIT_FINDINGS, EXIT_OK};
use crate::kubelet::reference::ImageRef;

/// One line of `pullcheck reference --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReferenceReport {
    pub input: String,
    pub valid: bool,
    pub error: Option<String>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub canonical: Option<String>,
}

/// Parses `input` and reports the outcome as plain data.
pub fn report(input: &str) -> ReferenceReport {
    match ImageRef::parse(input) {
        Ok(r) => ReferenceReport {
            input: input.to_owned(),
            valid: true,
            error: None,
            canonical: Some(r.canonical()),
            domain: Some(r.domain().to_owned()),
            path: Some(r.path().to_owned()),
            tag: r.tag().map(str::to_owned),
            digest: r.digest().map(str::to_owned),
        },
        Err(e) => ReferenceReport {
            input: input.to_owned(),
            valid: false,
            error: Some(e.to_string()),
            domain: None,
            path: None,
            tag: None,
            digest: None,
            canonical: None,
        },
    }
}

/// `pullcheck reference`.
pub fn run_reference(args: &ReferenceArgs, out: &mut impl Write) -> std::io::Result<u8> {
    let mut code = EXIT_OK;
    for input in &args.references {
        let report = report(input);
        if !report.valid {
            code = EXIT_FINDINGS;
        }
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&report).unwrap_or_default()
            )?;
        } else if let Some(canonical) = &report.canonical {
            writeln!(out, "{input}\t{canonical}")?;
        } else {
            writeln!(
                out,
                "{input}\tinvalid: {}",
                report.error.unwrap_or_default()
            )?;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn report_json_shape() {
        let ok = serde_json::to_value(report("nginx:1.25")).unwrap_or_default();
        assert_eq!(
            ok,
            json!({
                "input": "nginx:1.25", "valid": true, "error": null,
                "domain": "docker.io", "path": "library/nginx", "tag": "1.25",
                "digest": null, "canonical": "docker.io/library/nginx:1.25",
            })
        );
        let bad = serde_json::to_value(report("Nginx")).unwrap_or_default();
        assert_eq!(
            bad,
            json!({
                "input": "Nginx", "valid": false,
                "error": "repository name must be lowercase: \"Nginx\"",
                "domain": null, "path": null, "tag": null, "digest": null, "canonical": null,
            })
        );
    }
}
