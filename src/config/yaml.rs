//! YAML as pullcheck reads it — the configuration file and `check`'s manifests, both
//! possibly written by others: serde-saphyr with a budget proportional to each document's
//! size (aliases may add at most about half a document's size in events, so "billion
//! laughs" are refused in microseconds; nesting is at most [`MAX_DEPTH`] levels, serde_json's
//! limit), and error messages in the file's numbering and in our words for the limits.

use crate::text::MESSAGE_LIMIT;

/// Nesting accepted in YAML, as serde_json's recursion limit for JSON.
pub const MAX_DEPTH: usize = 128;

/// Options for one YAML document of `bytes` bytes: what it can hold without aliases fits
/// twice over; aliases may replay at most about half its size in events.
pub fn yaml_options(bytes: usize) -> serde_saphyr::Options {
    let room = bytes.saturating_add(4096);
    serde_saphyr::options! {
        with_snippet: false,
        // YAML 1.1 numbers as kubectl reads them (`defaultMode: 0644` is 420).
        legacy_octal_numbers: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: None,
            max_events: room.saturating_mul(4),
            max_nodes: room.saturating_mul(2),
            max_total_scalar_bytes: room.saturating_mul(2),
            max_depth: MAX_DEPTH,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: room / 2,
        },
    }
}

/// The message of a YAML error, in the file's numbering and in our words for the limits.
pub fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::budget::BudgetBreach;
    use serde_saphyr::Error as E;
    let mut e = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    let message = match e {
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "YAML aliases expand beyond the document's own size (a \"billion laughs\" bomb?): \
             refused"
                .to_string()
        }
        E::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => {
                format!("YAML nested deeper than {MAX_DEPTH} levels: refused")
            }
            BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
                "too many YAML anchors or aliases (a YAML bomb?): refused".to_string()
            }
            _ => "YAML aliases expand beyond twice the document's size (a \"billion laughs\" \
                  bomb?): refused"
                .to_string(),
        },
        _ => format!("invalid YAML: {}", strip_location(&e.to_string())),
    };
    crate::text::truncate(&message, MESSAGE_LIMIT)
}

/// Parsers append "at line N column M" in their own numbering; ours is the file's.
pub fn strip_location(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}
