//! Arbitrary bytes into the decoder.
//!
//! - `Packet::decode` never panics; `Ok` never claims more bytes than given;
//!   `Incomplete` always asks for at least one more byte.
//! - A decoded packet re-encodes, `encoded_len` agrees, and the bytes decode
//!   back to an equal packet. When the input's remaining length was minimally
//!   encoded, the re-encoding is byte-for-byte the input (the wire format has
//!   no other freedom).
//! - Every strict prefix of a decoded packet is `Incomplete`.
//! - `decode_limited` with a small limit is `TooLarge` exactly when the framed
//!   length exceeds the limit, and otherwise agrees with `decode`.
//! - Decoding back to back over the whole input terminates and stays in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimqtt::codec::{DecodeError, EncodeError, FixedHeader, MAX_PACKET_LEN, Packet, varint_len};

const LIMIT: usize = 64;
/// Prefix checks cost one decode per byte; skip them for long packets.
const PREFIX_CHECK_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    match Packet::decode(data) {
        Ok((packet, n)) => check_packet(data, &packet, n),
        Err(DecodeError::Incomplete { needed }) => {
            assert!(needed >= 1, "Incomplete asks for no bytes");
            assert!(
                data.len() + needed <= MAX_PACKET_LEN,
                "needs more than any packet"
            );
        }
        Err(DecodeError::Malformed(_)) => {}
        Err(e @ DecodeError::TooLarge { .. }) => panic!("decode without a limit gave {e:?}"),
    }

    check_limited(data);

    // Back to back: must terminate, each step consuming 2..=rest.len() bytes.
    let mut rest = data;
    while let Ok((_, n)) = Packet::decode(rest) {
        assert!(
            (2..=rest.len()).contains(&n),
            "claimed {n} of {}",
            rest.len()
        );
        rest = &rest[n..];
    }
    // The same with a limit, skipping packets that are too large.
    let mut rest = data;
    loop {
        match Packet::decode_limited(rest, LIMIT) {
            Ok((_, n)) => {
                assert!(n <= LIMIT && n <= rest.len());
                rest = &rest[n..];
            }
            Err(DecodeError::TooLarge { len }) if len <= rest.len() => {
                assert!(len > LIMIT);
                rest = &rest[len..];
            }
            Err(_) => break,
        }
    }
});

fn check_packet(data: &[u8], packet: &Packet<'_>, n: usize) {
    assert!(
        (2..=data.len()).contains(&n),
        "claimed {n} of {} bytes",
        data.len()
    );

    // A broker must accept an empty client id without clean session to
    // refuse it with CONNACK 0x02 (MQTT-3.1.3-8); a client must not send
    // one (MQTT-3.1.3-7), and encode refuses it.
    if let Packet::Connect(c) = packet {
        if c.client_id.is_empty() && !c.clean_session {
            let mut buf = vec![0; packet.encoded_len()];
            assert_eq!(packet.encode(&mut buf), Err(EncodeError::EmptyClientId));
            return;
        }
    }
    let len = packet.encoded_len();
    let mut buf = vec![0xa5; len + 1];
    let written = packet
        .encode(&mut buf)
        .unwrap_or_else(|e| panic!("decoded {packet:?} but encode failed: {e:?}"));
    assert_eq!(
        written, len,
        "encoded_len disagrees with encode for {packet:?}"
    );
    assert_eq!(buf[len], 0xa5, "encode wrote past its length");
    let (again, m) = Packet::decode(&buf[..len]).expect("re-encoded packet decodes");
    assert_eq!(m, len);
    assert_eq!(&again, packet, "round trip changed the packet");

    let header = FixedHeader::decode(data).expect("a decoded packet has a header");
    if usize::from(header.header_len) == 1 + varint_len(header.remaining_len) {
        assert_eq!(
            &buf[..len],
            &data[..n],
            "re-encoding differs from the input"
        );
    }

    if n <= PREFIX_CHECK_MAX {
        for cut in 0..n {
            match Packet::decode(&data[..cut]) {
                Err(DecodeError::Incomplete { needed }) => {
                    assert!(
                        needed >= 1 && needed <= n - cut,
                        "needed {needed} at cut {cut} of {n}"
                    )
                }
                other => panic!("prefix of {cut} of {n} bytes gave {other:?}"),
            }
        }
    }
}

fn check_limited(data: &[u8]) {
    let limited = Packet::decode_limited(data, LIMIT);
    match FixedHeader::decode(data) {
        Ok(header) if header.packet_len() > LIMIT => assert_eq!(
            limited,
            Err(DecodeError::TooLarge {
                len: header.packet_len()
            })
        ),
        _ => assert_eq!(limited, Packet::decode(data)),
    }
}
