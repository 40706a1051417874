//! A deserializer over `yaml_serde::Value` that converts between scalars the way YAML text would.
//!
//! Values from the environment (`WXBRIDGE__…` overrides and `${VAR}`) arrive as text and must
//! reach typed fields (`qos: u8`, `jetstream: bool`) unchanged, so a string is parsed when a
//! number or bool is wanted. The other way round, `password: 1234` is a YAML number but the
//! field wants text; `Value`'s own deserializer rejects that, yaml_serde's text deserializer
//! accepts it, so a number or bool is printed when a string is wanted.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use yaml_serde::{Error, Number, Value};

/// A `Value` deserialized with scalar conversions at every level.
pub(super) struct Lenient(pub(super) Value);

impl Lenient {
    /// The value with a numeric string turned into a number.
    fn numeric(self) -> Value {
        match self.0 {
            Value::String(text) => {
                let trimmed = text.trim();
                if let Ok(n) = trimmed.parse::<u64>() {
                    Value::Number(Number::from(n))
                } else if let Ok(n) = trimmed.parse::<i64>() {
                    Value::Number(Number::from(n))
                } else if let Ok(n) = trimmed.parse::<f64>() {
                    Value::Number(Number::from(n))
                } else {
                    Value::String(text)
                }
            }
            other => other,
        }
    }

    /// The value with `true`/`false` text turned into a bool.
    fn boolean(self) -> Value {
        match self.0 {
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Value::Bool(false),
            other => other,
        }
    }

    /// The value with a number or bool turned into its text.
    fn text(self) -> Value {
        match self.0 {
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => other,
        }
    }
}

macro_rules! via {
    ($convert:ident: $($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.$convert().$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    via!(numeric: deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);
    via!(boolean: deserialize_bool);
    via!(text: deserialize_str deserialize_string deserialize_identifier deserialize_char);

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Sequence(items) => visitor.visit_seq(Items(items.into_iter())),
            Value::Mapping(entries) => visitor.visit_map(Entries {
                entries: entries.into_iter(),
                value: None,
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Sequence(items) => visitor.visit_seq(Items(items.into_iter())),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(entries) => visitor.visit_map(Entries {
                entries: entries.into_iter(),
                value: None,
            }),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(entries) => visitor.visit_map(Entries {
                entries: entries.into_iter(),
                value: None,
            }),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.text().deserialize_enum(name, variants, visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_bytes(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_byte_buf(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The items of a sequence, each deserialized leniently.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|item| seed.deserialize(Lenient(item)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of a mapping, keys and values deserialized leniently.
struct Entries {
    entries: yaml_serde::mapping::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Lenient(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a mapping value was asked for twice"))?;
        seed.deserialize(Lenient(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
