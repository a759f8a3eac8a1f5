//! The serde side of [`crate::ci::manifest_stream`]: visitors that read only the fields a pass
//! needs, stream the items of `items:` to a callback with their byte offsets (YAML through
//! serde-saphyr's spans, JSON through raw values borrowed from the text), and ignore the
//! rest without building it.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::ci::manifests::Source;

/// The fields pass 1 keeps of an object: enough to classify it and to load the cluster.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub(crate) api_version: Option<Value>,
    pub(crate) kind: Option<Value>,
    metadata: Option<Value>,
    secret_type: Option<Value>,
    data: Option<Value>,
    string_data: Option<Value>,
    image_pull_secrets: Option<Value>,
}

impl Fields {
    pub(crate) fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        Some(match key {
            "apiVersion" => &mut self.api_version,
            "kind" => &mut self.kind,
            "metadata" => &mut self.metadata,
            "type" => &mut self.secret_type,
            "data" => &mut self.data,
            "stringData" => &mut self.string_data,
            "imagePullSecrets" => &mut self.image_pull_secrets,
            _ => return None,
        })
    }

    pub(crate) fn kind(&self) -> Option<&str> {
        self.kind.as_ref().and_then(Value::as_str)
    }

    /// Copies of the fields of an object already parsed.
    pub(crate) fn of(v: &Value) -> Self {
        Self {
            api_version: v.get("apiVersion").cloned(),
            kind: v.get("kind").cloned(),
            ..Self::default()
        }
    }

    pub(crate) fn into_value(self) -> Value {
        let mut map = Map::new();
        for (k, v) in [
            ("apiVersion", self.api_version),
            ("kind", self.kind),
            ("metadata", self.metadata),
            ("type", self.secret_type),
            ("data", self.data),
            ("stringData", self.string_data),
            ("imagePullSecrets", self.image_pull_secrets),
        ] {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        }
        Value::Object(map)
    }
}

/// An item as pass 1 sees it.
pub(crate) enum Probe {
    Null,
    Other(&'static str),
    /// The fields, and `items` when present (a List inside a List).
    Object(Box<Fields>, Option<Value>),
}

impl<'de> de::Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor)
    }
}

struct ProbeVisitor;

macro_rules! other_scalars {
    ($($method:ident: $ty:ty => $name:expr),* $(,)?) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok(Probe::Other($name))
        })*
    };
}

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }
    other_scalars! {
        visit_bool: bool => "boolean",
        visit_i64: i64 => "number",
        visit_u64: u64 => "number",
        visit_f64: f64 => "number",
        visit_str: &str => "string",
        visit_bytes: &[u8] => "string",
    }
    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Probe, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Probe::Other("list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut fields = Fields::default();
        let mut items = None;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(slot) = fields.slot(&key) {
                *slot = Some(map.next_value()?);
            } else if key == "items" {
                items = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Probe::Object(Box::new(fields), items))
    }
}

/// A top-level document as both passes see it; items go to a callback as they are parsed.
pub(crate) enum Root {
    Null,
    Other(&'static str),
    Object(Box<Fields>, ItemsSeen),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum ItemsSeen {
    Absent,
    Sequence,
    NotSequence,
}

/// Reads the elements of `items:` with their byte offset in the source.
pub(crate) trait Elements {
    fn next<'de, A: SeqAccess<'de>, T: DeserializeOwned>(
        &self,
        seq: &mut A,
    ) -> Result<Option<(T, usize)>, A::Error>;
}

pub(crate) struct YamlElements<'s> {
    pub(crate) source: &'s Source,
    pub(crate) base: usize,
    pub(crate) base_line: usize,
}

impl Elements for YamlElements<'_> {
    fn next<'de, A: SeqAccess<'de>, T: DeserializeOwned>(
        &self,
        seq: &mut A,
    ) -> Result<Option<(T, usize)>, A::Error> {
        Ok(seq.next_element::<serde_saphyr::Spanned<T>>()?.map(|s| {
            let at = &s.referenced;
            let offset = match at.span().byte_offset() {
                Some(b) => self.base + usize::try_from(b).unwrap_or(0),
                None => self
                    .source
                    .lines
                    .line_start(self.base_line + usize::try_from(at.line()).unwrap_or(1) - 1),
            };
            (s.value, offset.min(self.source.text.len()))
        }))
    }
}

pub(crate) struct JsonElements<'s> {
    pub(crate) text: &'s str,
}

impl Elements for JsonElements<'_> {
    fn next<'de, A: SeqAccess<'de>, T: DeserializeOwned>(
        &self,
        seq: &mut A,
    ) -> Result<Option<(T, usize)>, A::Error> {
        let Some(raw) = seq.next_element::<&'de RawValue>()? else {
            return Ok(None);
        };
        // `raw` borrows from the source text: its address gives its offset.
        let offset = (raw.get().as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        let value = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        Ok(Some((value, offset)))
    }
}

pub(crate) const STOPPED: &str = "pullcheck: stopped";

pub(crate) struct RootSeed<'a, E, T> {
    pub(crate) elements: &'a E,
    pub(crate) emit: &'a mut dyn FnMut(T, usize) -> bool,
}

impl<'de, E: Elements, T: DeserializeOwned> DeserializeSeed<'de> for RootSeed<'_, E, T> {
    type Value = Root;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Root, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E: Elements, T: DeserializeOwned> Visitor<'de> for RootSeed<'_, E, T> {
    type Value = Root;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }
    fn visit_unit<Er: de::Error>(self) -> Result<Root, Er> {
        Ok(Root::Null)
    }
    fn visit_none<Er: de::Error>(self) -> Result<Root, Er> {
        Ok(Root::Null)
    }
    fn visit_bool<Er: de::Error>(self, _: bool) -> Result<Root, Er> {
        Ok(Root::Other("boolean"))
    }
    fn visit_i64<Er: de::Error>(self, _: i64) -> Result<Root, Er> {
        Ok(Root::Other("number"))
    }
    fn visit_u64<Er: de::Error>(self, _: u64) -> Result<Root, Er> {
        Ok(Root::Other("number"))
    }
    fn visit_f64<Er: de::Error>(self, _: f64) -> Result<Root, Er> {
        Ok(Root::Other("number"))
    }
    fn visit_str<Er: de::Error>(self, _: &str) -> Result<Root, Er> {
        Ok(Root::Other("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Root, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Root::Other("list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Root, A::Error> {
        let mut fields = Fields::default();
        let mut seen = ItemsSeen::Absent;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(slot) = fields.slot(&key) {
                *slot = Some(map.next_value()?);
            } else if key == "items" {
                seen = map.next_value_seed(ItemsSeed {
                    elements: self.elements,
                    emit: &mut *self.emit,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Root::Object(Box::new(fields), seen))
    }
}

struct ItemsSeed<'a, E, T> {
    elements: &'a E,
    emit: &'a mut dyn FnMut(T, usize) -> bool,
}

impl<'de, E: Elements, T: DeserializeOwned> DeserializeSeed<'de> for ItemsSeed<'_, E, T> {
    type Value = ItemsSeen;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ItemsSeen, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E: Elements, T: DeserializeOwned> Visitor<'de> for ItemsSeed<'_, E, T> {
    type Value = ItemsSeen;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ItemsSeen, A::Error> {
        while let Some((item, offset)) = self.elements.next::<A, T>(&mut seq)? {
            if !(self.emit)(item, offset) {
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(ItemsSeen::Sequence)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemsSeen, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_unit<Er: de::Error>(self) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_none<Er: de::Error>(self) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_bool<Er: de::Error>(self, _: bool) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_i64<Er: de::Error>(self, _: i64) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_u64<Er: de::Error>(self, _: u64) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_f64<Er: de::Error>(self, _: f64) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
    fn visit_str<Er: de::Error>(self, _: &str) -> Result<ItemsSeen, Er> {
        Ok(ItemsSeen::NotSequence)
    }
}
