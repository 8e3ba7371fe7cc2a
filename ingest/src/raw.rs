//! A JSON object read lazily: keys in order, each value kept as unparsed JSON text.
//!
//! Entries are decoded this way so that wrong types in one field never reject the entry, unknown
//! fields pass through untouched (as JSON text) and only the fields we use are parsed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object as `(key, raw value)` pairs in document order.
pub struct RawObject<'a> {
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        // Last one wins for duplicate keys, as in JSON.parse.
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// A string field; `null`, `""` and non-strings read as `None`.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(raw_str)
    }

    /// A string, or a number rendered as text (pino `req.id` is an integer by default).
    pub fn str_or_num(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        raw_str(raw).or_else(|| {
            let t = raw.get();
            (t.starts_with(|c: char| c == '-' || c.is_ascii_digit())).then_some(Cow::Borrowed(t))
        })
    }

    /// A number field; numeric strings are accepted, anything else reads as `None`.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(raw_num)
    }

    pub fn object(&self, key: &str) -> Option<RawObject<'a>> {
        let raw = self.get(key)?;
        if !raw.get().starts_with('{') {
            return None;
        }
        RawObject::parse(raw.get()).ok()
    }
}

pub fn raw_str<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    let t = raw.get();
    if !t.starts_with('"') {
        return None;
    }
    // Without a backslash the text between the quotes is the string itself: borrow it. (Asking
    // serde_json to borrow an escaped string fails, and building that error costs more than
    // the whole parse.)
    let s: Cow<'a, str> = if t.len() >= 2 && t.ends_with('"') && !t.contains('\\') {
        Cow::Borrowed(&t[1..t.len() - 1])
    } else {
        Cow::Owned(serde_json::from_str::<String>(t).ok()?)
    };
    (!s.is_empty()).then_some(s)
}

pub fn raw_num(raw: &RawValue) -> Option<f64> {
    let t = raw.get();
    if let Some(stripped) = t.strip_prefix('"') {
        return stripped
            .strip_suffix('"')?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite());
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Whether a raw value carries information (not `null` and not `""`).
pub fn is_present(raw: &RawValue) -> bool {
    !matches!(raw.get(), "null" | "\"\"")
}

impl<'de> serde::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(RawObject { fields })
            }
        }
        d.deserialize_map(V)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Builds a JSON object text from raw pairs (used for the `attributes` column).
#[derive(Default)]
pub struct AttrWriter {
    buf: String,
    /// Drops everything pushed (decoding for requests only).
    off: bool,
}

impl AttrWriter {
    pub fn new(on: bool) -> Self {
        AttrWriter {
            buf: String::new(),
            off: !on,
        }
    }

    pub fn push_raw(&mut self, key: &str, raw: &str) {
        if self.off {
            return;
        }
        self.buf.push(if self.buf.is_empty() { '{' } else { ',' });
        // Keys are plain identifiers almost always; escape only when needed.
        if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.buf.push('"');
            self.buf.push_str(key);
            self.buf.push('"');
        } else {
            self.buf
                .push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"?\"".into()));
        }
        self.buf.push(':');
        push_compact(&mut self.buf, raw);
    }

    pub fn finish(mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        self.buf.push('}');
        Some(self.buf)
    }
}

impl fmt::Debug for RawObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(k, v)| (k, v.get())))
            .finish()
    }
}

/// Appends JSON text with the whitespace outside strings removed (deliveries are often
/// pretty-printed; the `attributes` column stores compact JSON).
fn push_compact(out: &mut String, raw: &str) {
    if !raw.contains(['\n', ' ', '\t', '\r']) {
        out.push_str(raw);
        return;
    }
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
}
