//! Unit tests of the D-Bus wire format and client (`dbus_wire.rs`).

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
