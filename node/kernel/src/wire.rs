//! The protobuf wire format, as much of it as the kernel's own messages use
//! (varints and length-delimited fields).
//!
//! The kernel reads the signed body framing and its own payloads itself, so
//! it needs no code generator. Reading is strict where protobuf is lenient:
//! a singular field that appears twice is refused, because the bytes are
//! signed and must mean one thing. Unknown fields are skipped, as protobuf
//! does. `proto/ics/core/v1/*.proto` is the schema; a node test checks that
//! prost and this module agree byte for byte.

use crate::refusal::Refusal;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The most bytes a varint takes.
const MAX_VARINT_BYTES: usize = 10;

fn malformed(what: &str, reason: impl std::fmt::Display) -> Refusal {
    Refusal::Malformed(format!("{what}: {reason}"))
}

/// One field's value as it stands on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    message: &'static str,
    buf: &'a [u8],
    seen: u64,
}

impl<'a> Reader<'a> {
    pub fn new(message: &'static str, buf: &'a [u8]) -> Self {
        Reader {
            message,
            buf,
            seen: 0,
        }
    }

    fn varint(&mut self) -> Result<u64, Refusal> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_BYTES {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(malformed(self.message, "truncated varint"));
            };
            self.buf = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(self.message, "varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if n > self.buf.len() {
            return Err(malformed(self.message, "truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next known field (`1..=63`), skipping unknown ones; `None` at the end.
    /// `repeated` lists the field numbers that may appear more than once.
    pub fn next(&mut self, repeated: &[u32]) -> Result<Option<(u32, Value<'a>)>, Refusal> {
        while !self.buf.is_empty() {
            let tag = self.varint()?;
            let field = u32::try_from(tag >> 3)
                .map_err(|_| malformed(self.message, "field number out of range"))?;
            if field == 0 {
                return Err(malformed(self.message, "field number 0"));
            }
            let value = match (tag & 7) as u8 {
                VARINT => Value::Varint(self.varint()?),
                LEN => {
                    let n = usize::try_from(self.varint()?)
                        .map_err(|_| malformed(self.message, "length out of range"))?;
                    Value::Bytes(self.take(n)?)
                }
                FIXED64 => {
                    self.take(8)?;
                    continue;
                }
                FIXED32 => {
                    self.take(4)?;
                    continue;
                }
                other => return Err(malformed(self.message, format!("wire type {other}"))),
            };
            if field >= 64 {
                continue;
            }
            if !repeated.contains(&field) {
                let bit = 1u64 << field;
                if self.seen & bit != 0 {
                    return Err(malformed(
                        self.message,
                        format!("field {field} appears twice"),
                    ));
                }
                self.seen |= bit;
            }
            return Ok(Some((field, value)));
        }
        Ok(None)
    }

    /// The name of the message being read, for errors.
    pub fn message(&self) -> &'static str {
        self.message
    }
}

impl<'a> Value<'a> {
    fn wrong(what: &str, expected: &str) -> Refusal {
        malformed(what, format!("expected {expected}"))
    }

    pub fn u64(self, what: &str) -> Result<u64, Refusal> {
        match self {
            Value::Varint(v) => Ok(v),
            Value::Bytes(_) => Err(Self::wrong(what, "a varint")),
        }
    }

    pub fn u32(self, what: &str) -> Result<u32, Refusal> {
        u32::try_from(self.u64(what)?).map_err(|_| malformed(what, "over 32 bits"))
    }

    /// `int32`/enum values: negative ones are sign-extended to 64 bits.
    pub fn i32(self, what: &str) -> Result<i32, Refusal> {
        let v = self.u64(what)? as i64;
        i32::try_from(v).map_err(|_| malformed(what, "out of the int32 range"))
    }

    pub fn i64(self, what: &str) -> Result<i64, Refusal> {
        Ok(self.u64(what)? as i64)
    }

    pub fn bool(self, what: &str) -> Result<bool, Refusal> {
        match self.u64(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed(what, "a bool is 0 or 1")),
        }
    }

    pub fn bytes(self, what: &str) -> Result<&'a [u8], Refusal> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Varint(_) => Err(Self::wrong(what, "length-delimited bytes")),
        }
    }

    pub fn string(self, what: &str) -> Result<String, Refusal> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| malformed(what, "not UTF-8"))
    }
}

/// Writes fields in the canonical order the caller gives (field number
/// order, as protobuf encoders do); proto3 defaults (0, empty) are omitted.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire_type: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    pub fn u64(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.tag(field, VARINT);
            self.raw_varint(v);
        }
        self
    }

    pub fn i64(&mut self, field: u32, v: i64) -> &mut Self {
        self.u64(field, v as u64)
    }

    /// `int32`/enum values, sign-extended as protobuf does.
    pub fn i32(&mut self, field: u32, v: i32) -> &mut Self {
        self.u64(field, i64::from(v) as u64)
    }

    pub fn bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.u64(field, u64::from(v))
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.message(field, v);
        }
        self
    }

    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// A length-delimited field written even when empty: a present sub-message
    /// or one element of a repeated field.
    pub fn message(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.tag(field, LEN);
        self.raw_varint(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_defaults_are_omitted() {
        let bytes = Writer::new()
            .u64(1, 300)
            .i64(2, -5)
            .string(3, "héllo")
            .bytes(4, &[])
            .u64(5, 0)
            .message(6, &[])
            .finish();
        let mut r = Reader::new("test", &bytes);
        assert_eq!(r.next(&[]).unwrap(), Some((1, Value::Varint(300))));
        let (f, v) = r.next(&[]).unwrap().unwrap();
        assert_eq!((f, v.i64("x").unwrap()), (2, -5));
        let (f, v) = r.next(&[]).unwrap().unwrap();
        assert_eq!((f, v.string("x").unwrap().as_str()), (3, "héllo"));
        assert_eq!(r.next(&[]).unwrap(), Some((6, Value::Bytes(&[]))));
        assert_eq!(r.next(&[]).unwrap(), None);
    }

    #[test]
    fn duplicates_truncation_and_bad_wire_types_are_refused() {
        let twice = Writer::new().u64(1, 1).u64(1, 2).finish();
        let mut r = Reader::new("test", &twice);
        r.next(&[]).unwrap();
        assert!(matches!(r.next(&[]), Err(Refusal::Malformed(m)) if m.contains("twice")));
        // A repeated field may appear more than once.
        let mut r = Reader::new("test", &twice);
        assert!(r.next(&[1]).unwrap().is_some() && r.next(&[1]).unwrap().is_some());

        let truncated = &Writer::new().string(2, "abc").finish()[..3];
        assert!(Reader::new("test", truncated).next(&[]).is_err());
        assert!(
            Reader::new("test", &[0x0b]).next(&[]).is_err(),
            "wire type 3"
        );
        assert!(
            Reader::new("test", &[0x00, 0x01]).next(&[]).is_err(),
            "field 0"
        );
        let overlong = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(Reader::new("test", &overlong).next(&[]).is_err());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = Writer::new().u64(70, 9).string(65, "x").finish();
        bytes.extend_from_slice(&[0x39, 1, 2, 3, 4, 5, 6, 7, 8]); // field 7, fixed64
        bytes.extend(Writer::new().u64(1, 4).finish());
        let mut r = Reader::new("test", &bytes);
        assert_eq!(r.next(&[]).unwrap(), Some((1, Value::Varint(4))));
        assert_eq!(r.next(&[]).unwrap(), None);
    }
}
