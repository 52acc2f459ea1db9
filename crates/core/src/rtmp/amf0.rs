//! AMF0 values, as RTMP commands and `@setDataFrame` carry them.
//!
//! Decoding never trusts a length from the wire: every read is checked against the bytes that
//! are there, nesting is bounded by [`MAX_DEPTH`], and a malformed value is an
//! [`Amf0Error`], never a panic.

use std::collections::BTreeMap;

/// Deepest nesting of objects/arrays we decode. Real commands nest two or three levels.
pub const MAX_DEPTH: usize = 16;

/// Most entries accepted in one object or array; real metadata has a few dozen.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(BTreeMap<String, Amf0Value>),
    Null,
    Undefined,
    StrictArray(Vec<Amf0Value>),
}

impl Amf0Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(map) => map.get(key),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Amf0Error {
    #[error("AMF0 value truncated: needed {needed} bytes, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("AMF0 marker 0x{0:02x} is not supported")]
    UnsupportedMarker(u8),
    #[error("AMF0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("AMF0 object or array with more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("AMF0 string is not UTF-8")]
    NotUtf8,
}

/// Decodes every value in `bytes`, in order.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < bytes.len() {
        values.push(reader.value(0)?);
    }
    Ok(values)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(Amf0Error::Truncated {
                needed: n,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string_of(&mut self, len: usize) -> Result<String, Amf0Error> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| Amf0Error::NotUtf8)
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.string_of(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Amf0Value::Number(f64::from_be_bytes(a))
            }
            0x01 => Amf0Value::Boolean(self.u8()? != 0),
            0x02 => Amf0Value::String(self.short_string()?),
            0x03 => Amf0Value::Object(self.properties(depth)?),
            0x05 => Amf0Value::Null,
            0x06 => Amf0Value::Undefined,
            0x08 => {
                // ECMA array: a count hint (not trusted), then properties like an object.
                let _count = self.u32()?;
                Amf0Value::Object(self.properties(depth)?)
            }
            0x0A => {
                let count = self.u32()? as usize;
                if count > MAX_ENTRIES {
                    return Err(Amf0Error::TooManyEntries);
                }
                let mut items = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            0x0B => {
                // Date: milliseconds as a double, then a 16-bit time zone (ignored).
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.take(2)?;
                Amf0Value::Number(f64::from_be_bytes(a))
            }
            0x0C => {
                let len = self.u32()? as usize;
                Amf0Value::String(self.string_of(len)?)
            }
            other => return Err(Amf0Error::UnsupportedMarker(other)),
        })
    }

    fn properties(&mut self, depth: usize) -> Result<BTreeMap<String, Amf0Value>, Amf0Error> {
        let mut map = BTreeMap::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() {
                // Object end marker 0x09 follows an empty key; tolerate its absence at the end.
                if self.pos < self.bytes.len() && self.bytes[self.pos] == 0x09 {
                    self.pos += 1;
                }
                return Ok(map);
            }
            if map.len() >= MAX_ENTRIES {
                return Err(Amf0Error::TooManyEntries);
            }
            let value = self.value(depth + 1)?;
            map.insert(key, value);
        }
    }
}

/// Appends the AMF0 encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => {
            out.push(0x01);
            out.push(u8::from(*b));
        }
        Amf0Value::String(s) => {
            if s.len() <= u16::MAX as usize {
                out.push(0x02);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            } else {
                out.push(0x0C);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Amf0Value::Object(map) => {
            out.push(0x03);
            for (key, value) in map {
                out.extend_from_slice(&(key.len() as u16).to_be_bytes());
                out.extend_from_slice(key.as_bytes());
                encode(value, out);
            }
            out.extend_from_slice(&[0x00, 0x00, 0x09]);
        }
        Amf0Value::Null => out.push(0x05),
        Amf0Value::Undefined => out.push(0x06),
        Amf0Value::StrictArray(items) => {
            out.push(0x0A);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// Builds an AMF0 object from `(key, value)` pairs.
pub fn object<const N: usize>(pairs: [(&str, Amf0Value); N]) -> Amf0Value {
    Amf0Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_connect_command() {
        let values = vec![
            Amf0Value::String("connect".into()),
            Amf0Value::Number(1.0),
            object([
                ("app", Amf0Value::String("live".into())),
                ("tcUrl", Amf0Value::String("rtmp://127.0.0.1/live".into())),
            ]),
            Amf0Value::Null,
        ];
        let mut bytes = Vec::new();
        for v in &values {
            encode(v, &mut bytes);
        }
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn string_longer_than_the_data_is_an_error() {
        // String marker, length 0x1000, but only three bytes follow.
        let bytes = [0x02, 0x10, 0x00, b'a', b'b', b'c'];
        assert!(matches!(
            decode_all(&bytes),
            Err(Amf0Error::Truncated { .. })
        ));
        // Long string claiming 4 GiB.
        let bytes = [0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'];
        assert!(matches!(
            decode_all(&bytes),
            Err(Amf0Error::Truncated { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        assert_eq!(decode_all(&bytes), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn huge_strict_array_count_is_an_error() {
        let bytes = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(decode_all(&bytes), Err(Amf0Error::TooManyEntries));
    }

    #[test]
    fn unknown_marker_is_an_error() {
        assert_eq!(decode_all(&[0x11]), Err(Amf0Error::UnsupportedMarker(0x11)));
    }
}
