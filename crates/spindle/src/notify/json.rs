//! JSON that keeps its members in the order the publisher wrote them.
//!
//! `serde_json::Value` sorts object keys (the workspace does not enable
//! `preserve_order`, and turning it on would change other modules' output),
//! but an event's `data` must come back to subscribers as it was sent, and
//! its MessagePack form must be byte-identical to what `notepack.io` makes
//! of `JSON.parse(text)`. So `data` is parsed into [`Json`], which keeps
//! member order, and written back compactly.
//!
//! Duplicate keys follow `JSON.parse`: the last value wins, at the position
//! of the first.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    /// Members in document order, keys unique.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Compact JSON text (no spaces, no newlines: one SSE `data:` line).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }

    /// Parses JSON text (no depth check: callers bound the input first).
    pub fn parse(text: &str) -> Result<Json, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(n).map(Json::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            match index.get(&k) {
                Some(&i) => members[i].1 = v,
                None => {
                    index.insert(k.clone(), members.len());
                    members.push((k, v));
                }
            }
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_member_order_and_writes_compactly() {
        let text = r#"{ "z": 1, "a": [true, null, -2.5, "x\n\"y\""], "m": {"2": 0, "1": {}} }"#;
        let v = Json::parse(text).unwrap();
        assert_eq!(v.to_text(), r#"{"z":1,"a":[true,null,-2.5,"x\n\"y\""],"m":{"2":0,"1":{}}}"#);
        assert_eq!(Json::parse(&v.to_text()).unwrap(), v);
    }

    #[test]
    fn duplicate_keys_behave_like_json_parse() {
        let v = Json::parse(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(v.to_text(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn big_and_float_numbers_survive() {
        let v = Json::parse(r#"[18446744073709551615, -9223372036854775808, 1e300, 0.1]"#).unwrap();
        assert_eq!(v.to_text(), "[18446744073709551615,-9223372036854775808,1e+300,0.1]");
        assert!(Json::parse("[1,").is_err());
        assert!(Json::parse(r#""\ud800""#).is_err(), "lone surrogates are not text");
    }

    /// Found by fuzzing (fuzz/ json_body): without serde_json's
    /// `float_roundtrip`, this parsed 1 ulp off (4.444443999999999e55), so
    /// subscribers and the MessagePack form saw another number than
    /// `JSON.parse` (4.444444e55).
    #[test]
    fn fuzz_regression_floats_are_correctly_rounded() {
        let text = "44444440000000000000044444400000000000000025444400000000";
        let v = Json::parse(text).unwrap();
        assert_eq!(v.to_text(), "4.444444e+55");
        let Json::Number(n) = &v else { panic!("{v:?}") };
        assert_eq!(n.as_f64(), Some(4.444444e55));
        assert_eq!(Json::parse(&v.to_text()).unwrap(), v);
    }
}
