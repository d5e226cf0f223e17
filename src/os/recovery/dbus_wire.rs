//! A minimal D-Bus client for the ladder's few method calls (`dbus.rs`): a Unix socket to the
//! bus, the EXTERNAL authentication, `Hello`, then method calls and their replies in the D-Bus
//! wire format (both byte orders read, little-endian written). It sends only strings, object
//! paths and booleans and decodes any reply into [`Value`]s; no signals, no names, no file
//! descriptors. It replaces zbus, which cost the device binary about 1 MiB for these few calls
//! (docs/decisions.md, "D-Bus").

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set (the D-Bus specification's default).
pub const SYSTEM_BUS_DEFAULT: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// Longest one call may wait for its reply (libdbus's default, 25 s): a stuck service fails
/// the rung instead of holding it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// Largest message accepted (headers and body); the specification allows 128 MiB, the replies
/// the ladder reads are a few KiB.
const MAX_MESSAGE: usize = 8 << 20;

/// Deepest nesting of containers accepted (the specification's limit is 64 in all).
const MAX_DEPTH: usize = 64;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// What went wrong talking to the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("bus address {0:?}: only unix:path= and unix:abstract= are supported")]
    Address(String),
    #[error("authentication refused: {0}")]
    Auth(String),
    #[error("malformed D-Bus message: {0}")]
    Protocol(&'static str),
    #[error("no reply within {} s", CALL_TIMEOUT.as_secs())]
    Timeout,
    /// The service answered with an error (`name`: e.g.
    /// `org.freedesktop.NetworkManager.UnknownDevice`).
    #[error("{name}: {message}")]
    Method { name: String, message: String },
}

/// One argument of a call.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Str(&'a str),
    Path(&'a str),
    Bool(bool),
}

/// One decoded value of a reply. Strings, object paths and signatures are all `Str`; a dict
/// entry is a two-field `Struct`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Uint(u64),
    Int(i64),
    Double(f64),
    Str(String),
    Array(Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The value inside any variants.
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner.unwrap_variant(),
            other => other,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.unwrap_variant() {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.unwrap_variant() {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The entries of an `a{..}` as (key, value) pairs.
    pub fn dict(&self) -> impl Iterator<Item = (&Value, &Value)> {
        let entries = match self.unwrap_variant() {
            Value::Array(items) => items.as_slice(),
            _ => &[],
        };
        entries.iter().filter_map(|e| match e {
            Value::Struct(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
            _ => None,
        })
    }

    /// The value of `key` in an `a{s..}` / `a{o..}`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.dict()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

/// An authenticated connection to a bus.
pub struct Connection {
    stream: UnixStream,
    serial: u32,
}

impl Connection {
    /// Connects to the first usable `unix:` address of `address` (`;`-separated), authenticates
    /// as our uid and says `Hello`.
    pub async fn open(address: &str) -> Result<Self, BusError> {
        let mut last = BusError::Address(address.to_string());
        for one in address.split(';').filter(|a| !a.is_empty()) {
            match connect(one).await {
                Ok(stream) => {
                    let mut conn = Self { stream, serial: 0 };
                    tokio::time::timeout(CALL_TIMEOUT, conn.handshake())
                        .await
                        .map_err(|_| BusError::Timeout)??;
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn handshake(&mut self) -> Result<(), BusError> {
        let uid = nix::unistd::getuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .await?;
        let line = self.read_line().await?;
        if !line.starts_with("OK ") {
            return Err(BusError::Auth(line));
        }
        self.stream.write_all(b"BEGIN\r\n").await?;
        self.call_now(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )
        .await?;
        Ok(())
    }

    /// One line of the authentication exchange, without its CR LF.
    async fn read_line(&mut self) -> Result<String, BusError> {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(BusError::Auth("overlong line".into()));
            }
            line.push(self.stream.read_u8().await?);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Calls `method` and returns the reply's values (bounded by [`CALL_TIMEOUT`]).
    pub async fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        method: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Value>, BusError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_now(dest, path, iface, method, args))
            .await
            .map_err(|_| BusError::Timeout)?
    }

    async fn call_now(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        method: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Value>, BusError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let message = method_call(serial, dest, path, iface, method, args);
        self.stream.write_all(&message).await?;
        loop {
            let reply = self.read_message().await?;
            // Signals (NameAcquired after Hello) and anything else not ours are skipped.
            if reply.reply_serial != Some(serial) {
                continue;
            }
            return match reply.kind {
                METHOD_RETURN => Ok(reply.body),
                ERROR => Err(BusError::Method {
                    name: reply.error_name.unwrap_or_default(),
                    message: reply
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                }),
                _ => continue,
            };
        }
    }

    async fn read_message(&mut self) -> Result<Received, BusError> {
        let mut fixed = [0u8; 16];
        self.stream.read_exact(&mut fixed).await?;
        let big = match fixed[0] {
            b'l' => false,
            b'B' => true,
            _ => return Err(BusError::Protocol("unknown byte order")),
        };
        let u32_at = |at: usize| {
            let b = [fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let body_len = u32_at(4) as usize;
        let fields_len = u32_at(12) as usize;
        let header_end = (16 + fields_len).next_multiple_of(8);
        let total = header_end
            .checked_add(body_len)
            .filter(|t| *t <= MAX_MESSAGE)
            .ok_or(BusError::Protocol("message too large"))?;
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&fixed);
        self.stream.read_exact(&mut buf[16..]).await?;

        let mut fields = Reader::new(&buf[..16 + fields_len], big);
        fields.pos = 16;
        let mut received = Received {
            kind: fixed[1],
            reply_serial: None,
            error_name: None,
            body: Vec::new(),
        };
        let mut signature = String::new();
        while fields.pos < fields.buf.len() {
            fields.align(8)?;
            let code = fields.u8()?;
            let value = fields.variant(0)?;
            match (code, value) {
                (FIELD_REPLY_SERIAL, Value::Uint(s)) => {
                    received.reply_serial = u32::try_from(s).ok();
                }
                (FIELD_ERROR_NAME, Value::Str(s)) => received.error_name = Some(s),
                (FIELD_SIGNATURE, Value::Str(s)) => signature = s,
                _ => {}
            }
        }
        let mut body = Reader::new(&buf[header_end..], big);
        let mut sig = signature.as_bytes();
        while !sig.is_empty() {
            let (one, rest) = split_type(sig)?;
            received.body.push(body.value(one, 0)?);
            sig = rest;
        }
        Ok(received)
    }
}

/// The parts of a received message the client looks at.
struct Received {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    body: Vec<Value>,
}

/// A stream to one `unix:path=…` or `unix:abstract=…` address.
async fn connect(address: &str) -> Result<UnixStream, BusError> {
    let bad = || BusError::Address(address.to_string());
    let params = address.strip_prefix("unix:").ok_or_else(bad)?;
    for kv in params.split(',') {
        let Some((key, value)) = kv.split_once('=') else {
            continue;
        };
        let value = unescape(value).ok_or_else(bad)?;
        match key {
            "path" => return Ok(UnixStream::connect(Path::new(&value)).await?),
            "abstract" => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(value.as_bytes())?;
                let std = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                std.set_nonblocking(true)?;
                return Ok(UnixStream::from_std(std)?);
            }
            _ => {}
        }
    }
    Err(bad())
}

/// A bus address value with its `%xx` escapes decoded.
fn unescape(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A little-endian METHOD_CALL message.
fn method_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    method: &str,
    args: &[Arg<'_>],
) -> Vec<u8> {
    let mut body = Writer::default();
    let mut signature = String::new();
    for arg in args {
        match arg {
            Arg::Str(s) => {
                signature.push('s');
                body.string(s);
            }
            Arg::Path(p) => {
                signature.push('o');
                body.string(p);
            }
            Arg::Bool(b) => {
                signature.push('b');
                body.u32(u32::from(*b));
            }
        }
    }
    let mut m = Writer::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(0); // body length, set below
    m.u32(serial);
    m.u32(0); // header fields' length, set below
    m.align(8);
    let fields_start = m.buf.len();
    let field = |m: &mut Writer, code: u8, sig: &str, value: &str| {
        m.align(8);
        m.buf.push(code);
        m.signature(sig);
        if sig == "g" {
            m.signature(value);
        } else {
            m.string(value);
        }
    };
    field(&mut m, FIELD_PATH, "o", path);
    field(&mut m, FIELD_INTERFACE, "s", iface);
    field(&mut m, FIELD_MEMBER, "s", method);
    field(&mut m, FIELD_DESTINATION, "s", dest);
    if !signature.is_empty() {
        field(&mut m, FIELD_SIGNATURE, "g", &signature);
    }
    let fields_len = (m.buf.len() - fields_start) as u32;
    m.buf[12..16].copy_from_slice(&fields_len.to_le_bytes());
    m.align(8);
    m.buf[4..8].copy_from_slice(&(body.buf.len() as u32).to_le_bytes());
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// Little-endian marshalling from offset 0 (a body starts 8-aligned in its message, so
/// alignment relative to the body is the message's).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        let to = self.buf.len().next_multiple_of(n);
        self.buf.resize(to, 0);
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// `s` and `o`.
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// `g`.
    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

/// Splits the first complete type off a signature.
fn split_type(sig: &[u8]) -> Result<(&[u8], &[u8]), BusError> {
    let mut depth = 0usize;
    for (i, c) in sig.iter().enumerate() {
        match c {
            b'a' => continue,
            b'(' | b'{' => depth += 1,
            b')' | b'}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(BusError::Protocol("bad signature"))?
            }
            _ => {}
        }
        if depth == 0 {
            return Ok(sig.split_at(i + 1));
        }
    }
    Err(BusError::Protocol("bad signature"))
}

/// The alignment of a type by its first code.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Unmarshalling over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], big: bool) -> Self {
        Self { buf, pos: 0, big }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BusError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(BusError::Protocol("truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn align(&mut self, n: usize) -> Result<(), BusError> {
        let to = self.pos.next_multiple_of(n);
        self.take(to - self.pos).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, BusError> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64, BusError> {
        self.align(n)?;
        let bytes = self.take(n)?;
        let mut v = 0u64;
        if self.big {
            for b in bytes {
                v = (v << 8) | u64::from(*b);
            }
        } else {
            for b in bytes.iter().rev() {
                v = (v << 8) | u64::from(*b);
            }
        }
        Ok(v)
    }

    /// A signed integer of `n` bytes, sign-extended.
    fn int(&mut self, n: usize) -> Result<i64, BusError> {
        let shift = 64 - 8 * n as u32;
        Ok(((self.uint(n)? << shift) as i64) >> shift)
    }

    fn string(&mut self, len: usize) -> Result<String, BusError> {
        let bytes = self.take(len)?;
        self.take(1)?; // the terminating nul
        String::from_utf8(bytes.to_vec()).map_err(|_| BusError::Protocol("string not UTF-8"))
    }

    fn signature(&mut self) -> Result<String, BusError> {
        let len = usize::from(self.u8()?);
        self.string(len)
    }

    fn variant(&mut self, depth: usize) -> Result<Value, BusError> {
        let sig = self.signature()?;
        let (one, rest) = split_type(sig.as_bytes())?;
        if !rest.is_empty() {
            return Err(BusError::Protocol("variant with more than one type"));
        }
        self.value(one, depth + 1)
    }

    /// One value of the complete type `sig`.
    fn value(&mut self, sig: &[u8], depth: usize) -> Result<Value, BusError> {
        if depth > MAX_DEPTH {
            return Err(BusError::Protocol("nested too deeply"));
        }
        let Some((&code, inner)) = sig.split_first() else {
            return Err(BusError::Protocol("empty signature"));
        };
        Ok(match code {
            b'y' => Value::Uint(self.uint(1)?),
            b'b' => Value::Bool(self.uint(4)? != 0),
            b'q' => Value::Uint(self.uint(2)?),
            b'u' | b'h' => Value::Uint(self.uint(4)?),
            b't' => Value::Uint(self.uint(8)?),
            b'n' => Value::Int(self.int(2)?),
            b'i' => Value::Int(self.int(4)?),
            b'x' => Value::Int(self.int(8)?),
            b'd' => Value::Double(f64::from_bits(self.uint(8)?)),
            b's' | b'o' => {
                let len = self.uint(4)? as usize;
                Value::Str(self.string(len)?)
            }
            b'g' => Value::Str(self.signature()?),
            b'v' => Value::Variant(Box::new(self.variant(depth)?)),
            b'a' => {
                let len = self.uint(4)? as usize;
                let (element, _) = split_type(inner)?;
                self.align(alignment(element[0]))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or(BusError::Protocol("truncated array"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(element, depth + 1)?);
                }
                if self.pos != end {
                    return Err(BusError::Protocol("array length mismatch"));
                }
                Value::Array(items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let close = if code == b'(' { b')' } else { b'}' };
                let mut fields_sig = match inner.split_last() {
                    Some((&last, fields)) if last == close => fields,
                    _ => return Err(BusError::Protocol("bad signature")),
                };
                let mut fields = Vec::new();
                while !fields_sig.is_empty() {
                    let (one, rest) = split_type(fields_sig)?;
                    fields.push(self.value(one, depth + 1)?);
                    fields_sig = rest;
                }
                Value::Struct(fields)
            }
            _ => return Err(BusError::Protocol("unknown type code")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_call_is_marshalled_as_the_specification_says() {
        let m = method_call(
            7,
            "org.x",
            "/p",
            "org.x.I",
            "M",
            &[Arg::Str("ab"), Arg::Bool(true)],
        );
        assert_eq!(&m[..4], b"l\x01\x00\x01");
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 7);
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
        // "ab": length 2, the bytes, nul, one byte of padding; then the boolean.
        assert_eq!(body_len, 12);
        assert_eq!(&m[m.len() - 12..], b"\x02\0\0\0ab\0\0\x01\0\0\0");
        assert_eq!((m.len() - body_len) % 8, 0, "the body starts 8-aligned");
        // Reading our own header back finds the signature field.
        let fields_len = u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize;
        let mut r = Reader::new(&m[..16 + fields_len], false);
        r.pos = 16;
        let mut seen = Vec::new();
        while r.pos < r.buf.len() {
            r.align(8).unwrap();
            let code = r.u8().unwrap();
            seen.push((code, r.variant(0).unwrap()));
        }
        assert_eq!(
            seen.last(),
            Some(&(FIELD_SIGNATURE, Value::Str("sb".into())))
        );
        assert_eq!(seen[0], (FIELD_PATH, Value::Str("/p".into())));
    }

    #[test]
    fn nested_replies_decode_in_both_byte_orders() {
        // a{sv} with one entry "Ports" → a(su) [("wwan0", 2)], little- and big-endian.
        for big in [false, true] {
            let u32b = |v: u32| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut b = Vec::new();
            b.extend_from_slice(&u32b(0)); // array length, patched below
            b.extend_from_slice(&[0; 4]); // pad to 8 for the dict entry
            let start = b.len();
            b.extend_from_slice(&u32b(5));
            b.extend_from_slice(b"Ports\0");
            b.extend_from_slice(b"\x05a(su)\0");
            // at 25: pad to 28 for the inner array's length
            b.extend_from_slice(&[0; 3]);
            // inner array: one struct of 16 bytes, already 8-aligned at 32
            b.extend_from_slice(&u32b(16));
            b.extend_from_slice(&u32b(5));
            b.extend_from_slice(b"wwan0\0");
            b.extend_from_slice(&[0; 2]);
            b.extend_from_slice(&u32b(2));
            let len = (b.len() - start) as u32;
            b[..4].copy_from_slice(&u32b(len));
            let mut r = Reader::new(&b, big);
            let v = r.value(b"a{sv}", 0).unwrap();
            assert_eq!(r.pos, b.len());
            let ports = v.get("Ports").unwrap().unwrap_variant();
            assert_eq!(
                ports,
                &Value::Array(vec![Value::Struct(vec![
                    Value::Str("wwan0".into()),
                    Value::Uint(2)
                ])])
            );
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for (sig, bytes) in [
            (&b"s"[..], &b"\xff\xff\xff\xffab"[..]),
            (b"a{sv}", b"\x10\0\0\0"),
            (b"(s", b"\0\0\0\0\0"),
            (b"v", b"\x01z\0"),
            (b"ai", b"\x03\0\0\0\0\0\0\0"),
        ] {
            let mut r = Reader::new(bytes, false);
            assert!(r.value(sig, 0).is_err(), "{sig:?}");
        }
        assert!(split_type(b")").is_err());
        assert!(split_type(b"a").is_err());
        assert_eq!(unescape("/run/a%20b").as_deref(), Some("/run/a b"));
        assert_eq!(unescape("%4"), None);
    }
}
