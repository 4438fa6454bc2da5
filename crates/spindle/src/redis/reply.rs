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
