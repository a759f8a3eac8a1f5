//! Go's `encoding/json`, as far as the kubelet's decoding of docker configs depends on it:
//! the text Go would decode (invalid UTF-8 and lone surrogate escapes become U+FFFD), the
//! syntax check that runs before any decoding, case-insensitive field names, and string
//! fields that accept `null`.
//!
//! Every visitor rejects unexpected types with its own message (naming at most the
//! registry key) instead of serde's default `invalid type: string "..."`, which would quote
//! the value, i.e. possibly a password. Values the kubelet does not read are skipped with
//! `IgnoredAny`, which serde_json scans without converting numbers and without a depth
//! limit, like Go.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::go;
use super::SecretError;

/// Go's decoder turns invalid UTF-8 inside strings into U+FFFD, one per bad byte, and lone
/// UTF-16 surrogate escapes into U+FFFD; serde_json rejects both, so the text is first rewritten
/// to what Go would have decoded. Then the text must be syntactically valid JSON as a whole,
/// checked before any decoding as Go's `checkValid` does, so a syntax error always wins.
pub(super) fn go_json_text(bytes: &[u8]) -> Result<String, SecretError> {
    let text = fix_lone_surrogate_escapes(&go_lossy_utf8(bytes));
    serde_json::from_str::<IgnoredAny>(&text).map_err(|e| SecretError::InvalidJson {
        detail: e.to_string(),
    })?;
    Ok(text)
}

fn go_lossy_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (rune, size) = go::decode_rune(rest);
        out.push(char::from_u32(rune).unwrap_or(char::REPLACEMENT_CHARACTER));
        rest = rest.get(size.max(1)..).unwrap_or_default();
    }
    out
}

/// Rewrites `\uXXXX` escapes of unpaired surrogates (inside strings) to `\ufffd`, like Go's
/// `unquote`. Same length, so serde_json positions are unchanged.
fn fix_lone_surrogate_escapes(text: &str) -> String {
    if !text.contains("\\u") {
        return text.to_owned();
    }
    let b = text.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                in_string = !in_string;
                i += 1;
            }
            b'\\' if in_string => {
                let Some(u1) = (b.get(i + 1) == Some(&b'u')).then(|| hex4(i + 2)).flatten() else {
                    i += 2; // some other escape (or garbage serde_json will reject)
                    continue;
                };
                if !(0xD800..0xE000).contains(&u1) {
                    i += 6;
                    continue;
                }
                let paired = (0xD800..0xDC00).contains(&u1)
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(i + 8).is_some_and(|u2| (0xDC00..0xE000).contains(&u2));
                if paired {
                    i += 12;
                    continue;
                }
                // `i` is at an ASCII '\\', `copied` after an ASCII escape: both char boundaries.
                out.push_str(text.get(copied..i).unwrap_or_default());
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Runs a seed over the whole (already syntax-checked) text. An error from an entry's `auth`
/// is stashed as a typed error by the entry visitor; anything else is a structure error.
pub(super) fn run_seed<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    seed: S,
    stash: &RefCell<Option<SecretError>>,
) -> Result<S::Value, SecretError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    seed.deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| {
            stash
                .borrow_mut()
                .take()
                .unwrap_or_else(|| SecretError::InvalidStructure {
                    detail: e.to_string(),
                })
        })
}

/// Go `encoding/json` matches object keys to struct fields case-insensitively, with Unicode
/// simple folding: besides ASCII letters, 'ſ' (U+017F) folds to 'S' and the Kelvin sign
/// (U+212A) to 'K'; no other non-ASCII character folds to ASCII. `upper` is the ASCII
/// upper-case field name.
pub(super) fn go_field_is(key: &str, upper: &str) -> bool {
    let mut expected = upper.bytes();
    for c in key.chars() {
        let folded = match c {
            '\u{017F}' => b'S',
            '\u{212A}' => b'K',
            c if c.is_ascii() => (c as u8).to_ascii_uppercase(),
            _ => return false,
        };
        if expected.next() != Some(folded) {
            return false;
        }
    }
    expected.next().is_none()
}

/// Rejects the JSON types a visitor does not accept, with the visitor's own message.
macro_rules! reject {
    ($de:lifetime, scalars) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
        fn visit_seq<A: de::SeqAccess<$de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(self.mismatch()))
        }
    };
    ($de:lifetime, str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(self.mismatch()))
        }
    };
    ($de:lifetime, map) => {
        fn visit_map<A: MapAccess<$de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(self.mismatch()))
        }
    };
}

pub(super) use reject;

/// A Go `string` field: a string sets it, null leaves it unchanged (`None`), others are errors.
pub(super) struct GoStr<'a> {
    pub(super) field: &'static str,
    pub(super) entry: Option<&'a str>,
}

impl GoStr<'_> {
    fn mismatch(&self) -> String {
        match self.entry {
            Some(entry) => format!("field {:?} of entry {entry:?} must be a string", self.field),
            None => format!("values of {:?} must be strings", self.field),
        }
    }
}

impl<'de> DeserializeSeed<'de> for GoStr<'_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GoStr<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    reject!('de, scalars);
    reject!('de, map);
}
