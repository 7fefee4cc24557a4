//! Asks serde which fields a struct (or which variants an enum) accepts, so an unknown key can be answered with
//! "did you mean …" from the same list serde itself uses — no second list to drift.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("introspection stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop
    }
}

struct Recorder<'a> {
    out: &'a mut &'static [&'static str],
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.out = fields;
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.out = variants;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The field names serde accepts for struct `T` (empty for anything that is not a derived struct).
pub fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut out: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder { out: &mut out });
    out
}

/// The variant names serde accepts for enum `T`.
pub fn variants_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    fields_of::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct S {
        alpha: u32,
        #[serde(rename = "beta_gamma")]
        beta: String,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum E {
        RoundRobin,
        Maglev,
    }

    #[test]
    fn records_fields_and_variants() {
        assert_eq!(fields_of::<S>(), &["alpha", "beta_gamma"]);
        assert_eq!(variants_of::<E>(), &["round_robin", "maglev"]);
        assert!(fields_of::<u32>().is_empty());
    }
}
