//! Tests of the MQTT 5 codec: hand-written byte vectors, properties,
//! rejections and property-based round trips. The helpers here hold
//! every vector to the codec's contract.

extern crate std;

use std::vec;
use std::vec::Vec;

use super::*;

mod api;
mod properties;
mod rejections;
mod round_trip;
mod vectors;

/// Encodes `packet` into a buffer pre-filled with 0xa5, so an unwritten
/// byte shows up, and checks `encoded_len` and that nothing is written past.
fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let len = packet.encoded_len();
    let mut buf = vec![0xa5; len + 8];
    let n = packet.encode(&mut buf).expect("encode");
    assert_eq!(n, len, "encoded_len disagrees with encode");
    assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past the packet");
    buf.truncate(n);
    buf
}

/// Every buffer shorter than the packet is refused, untouched.
fn check_short_buffers(packet: &Packet<'_>) {
    let len = packet.encoded_len();
    for short in 0..len {
        let mut buf = vec![0xa5; short];
        assert_eq!(
            packet.encode(&mut buf),
            Err(EncodeError::BufferTooSmall { needed: len }),
            "{short}-byte buffer"
        );
        assert!(buf.iter().all(|&b| b == 0xa5), "a failed encode wrote");
    }
}

/// Every strict prefix is `Incomplete`; the whole decodes to `packet`.
fn check_decode(bytes: &[u8], packet: &Packet<'_>) {
    for cut in 0..bytes.len() {
        match Packet::decode(&bytes[..cut]) {
            Err(DecodeError::Incomplete { needed }) => assert!(
                needed >= 1 && needed <= bytes.len() - cut,
                "needed {needed} at cut {cut}"
            ),
            other => panic!("prefix of {cut} bytes gave {other:?}"),
        }
    }
    let (decoded, n) = Packet::decode(bytes).expect("decode");
    assert_eq!(n, bytes.len());
    assert_eq!(&decoded, packet);
}

/// `packet` encodes to exactly `bytes`, and `bytes` decode to `packet`.
fn vector(packet: Packet<'_>, bytes: &[u8]) {
    assert_eq!(encode(&packet), bytes, "{packet:?}");
    check_short_buffers(&packet);
    check_decode(bytes, &packet);
    // And back: the decoded form (wire views) re-encodes to the same bytes.
    let (decoded, _) = Packet::decode(bytes).unwrap();
    assert_eq!(encode(&decoded), bytes);
}

/// Why `bytes` are malformed; panics if they are not.
fn malformed(bytes: &[u8]) -> Malformed {
    match Packet::decode(bytes) {
        Err(DecodeError::Malformed(why)) => why,
        other => panic!("{bytes:02x?} gave {other:?}"),
    }
}

/// `body` behind a fixed header of byte 0 `first`: the test vectors are
/// written body first, and the remaining length follows from it.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field.
fn s(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A property list: its length, then `props`.
fn props(props: &[u8]) -> Vec<u8> {
    assert!(props.len() < 128, "test lists have a 1-byte length");
    let mut out = vec![props.len() as u8];
    out.extend_from_slice(props);
    out
}

#[test]
fn packets_stay_small() {
    // Borrowed fields only: the largest, CONNECT, is a few words.
    let size = core::mem::size_of::<Packet<'_>>();
    assert!(size <= 168, "{size}");
}
