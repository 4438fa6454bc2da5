use super::Error;

/// One element of a normalised reply.
///
/// Status replies (`+OK`) arrive as [`Value::Bytes`]: the Upstash REST API in
/// base64 mode cannot tell them from bulk strings, so neither transport does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Integers, and bulk strings that hold a decimal integer (Lua returns
    /// both, and REST returns numbers inside strings for some commands).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Value::Nil => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
}

/// One value of a reply as a Rust value; `None` when it has another shape.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Option<Self> {
        Some(v.clone())
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        v.as_int()
    }
}

/// A count, a time or a size: a negative integer is clamped to 0.
impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        v.as_int().map(|n| n.max(0) as u64)
    }
}

/// `1` is true, `0` false.
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v.as_int()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        v.as_bytes().map(<[u8]>::to_vec)
    }
}

/// Bytes as text, lossily (keys, ids and JSON that Spindle wrote).
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        v.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Nil is `None`.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Nil => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A whole (flat) reply as a Rust value: a tuple takes exactly that many
/// values; [`Records`] takes a list of equal-sized records.
pub trait FromReply: Sized {
    fn from_reply(values: &[Value]) -> Option<Self>;
}

macro_rules! tuple_from_reply {
    ($($t:ident),+) => {
        impl<$($t: FromValue),+> FromReply for ($($t,)+) {
            #[allow(non_snake_case)]
            fn from_reply(values: &[Value]) -> Option<Self> {
                let [$($t),+] = values else { return None };
                Some(($($t::from_value($t)?,)+))
            }
        }
    };
}
tuple_from_reply!(A);
tuple_from_reply!(A, B);
tuple_from_reply!(A, B, C);
tuple_from_reply!(A, B, C, D);
tuple_from_reply!(A, B, C, D, E);
tuple_from_reply!(A, B, C, D, E, F);
tuple_from_reply!(A, B, C, D, E, F, G);

/// A reply that is a list of `T` records laid end to end (`id, value, id,
/// value…`): `T` is a tuple, and the reply's length a multiple of its size.
/// A record whose values have another shape is skipped: lists are read from
/// shared keys another writer may fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records<T>(pub Vec<T>);

impl<T: FromReply + Arity> FromReply for Records<T> {
    fn from_reply(values: &[Value]) -> Option<Self> {
        if !values.len().is_multiple_of(T::ARITY) {
            return None;
        }
        Some(Records(values.chunks(T::ARITY).filter_map(T::from_reply).collect()))
    }
}

/// How many values a tuple takes.
pub trait Arity {
    const ARITY: usize;
}
impl<A, B> Arity for (A, B) {
    const ARITY: usize = 2;
}
impl<A, B, C> Arity for (A, B, C) {
    const ARITY: usize = 3;
}

/// A reply, flattened: a scalar is one value, an array is its elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply(pub Vec<Value>);

impl Reply {
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    pub fn into_values(self) -> Vec<Value> {
        self.0
    }

    /// The reply as `T` (a tuple of that many values, or [`Records`]); a
    /// protocol error naming `what` when it has another shape.
    pub fn parse<T: FromReply>(&self, what: &str) -> Result<T, Error> {
        T::from_reply(&self.0).ok_or_else(|| Error::Protocol(format!("{what} answered {:?}", self.0)))
    }

    fn single(&self) -> Result<&Value, Error> {
        match self.0.as_slice() {
            [v] => Ok(v),
            other => Err(Error::Protocol(format!("expected one value, got {}", other.len()))),
        }
    }

    pub fn int(&self) -> Result<i64, Error> {
        let v = self.single()?;
        v.as_int().ok_or_else(|| Error::Protocol(format!("expected an integer, got {v:?}")))
    }

    /// A bulk string or nil (`GET`).
    pub fn opt_bytes(&self) -> Result<Option<Vec<u8>>, Error> {
        match self.single()? {
            Value::Nil => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            v => Err(Error::Protocol(format!("expected a string, got {v:?}"))),
        }
    }

    /// A status or bulk string, as text (`PING` → `PONG`).
    pub fn text(&self) -> Result<String, Error> {
        match self.single()? {
            Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            v => Err(Error::Protocol(format!("expected a string, got {v:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn tuples_take_exactly_their_values() {
        let r = Reply(vec![Value::Int(1), Value::Int(-5), b("7"), Value::Nil]);
        let (ok, n, seven, none): (bool, u64, i64, Option<String>) = r.parse("x").unwrap();
        assert_eq!((ok, n, seven, none), (true, 0, 7, None));
        assert!(r.parse::<(i64, i64, i64)>("x").is_err(), "too few slots");
        assert!(r.parse::<(i64, i64, i64, i64, i64)>("x").is_err(), "too many");
        assert!(Reply(vec![Value::Int(2)]).parse::<(bool,)>("x").is_err(), "2 is not a bool");
        assert!(Reply(vec![Value::Nil]).parse::<(i64,)>("x").is_err(), "nil is not an integer");
    }

    #[test]
    fn records_skip_misshapen_entries() {
        let r = Reply(vec![b("a"), Value::Int(1), Value::Nil, Value::Int(2), b("c"), Value::Int(3)]);
        let Records(v): Records<(String, i64)> = r.parse("x").unwrap();
        assert_eq!(v, vec![("a".into(), 1), ("c".into(), 3)]);
        assert!(Reply(vec![b("a")]).parse::<Records<(String, i64)>>("x").is_err(), "not a whole record");
    }
}
