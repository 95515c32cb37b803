//! Arbitrary bytes into the MQTT 5 decoder.
//!
//! - `v5::Packet::decode` never panics; `Ok` never claims more bytes than
//!   given; `Incomplete` always asks for at least one more byte.
//! - A decoded packet re-encodes, `encoded_len` agrees, and the bytes decode
//!   back to an equal packet. The re-encoding is byte-for-byte the input,
//!   except that an acknowledgement, DISCONNECT or AUTH sent in a longer
//!   form than it needs comes back in its short form (MQTT 5 leaves no
//!   other freedom: Variable Byte Integers must be minimal).
//! - Every strict prefix of a decoded packet is `Incomplete`.
//! - `decode_limited` with a small limit agrees with `decode`, except that
//!   a packet framed longer than the limit is `TooLarge` with its length.
//! - Decoding back to back over the whole input terminates and stays in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimqtt::codec::v5::{Packet, PacketType};
use minimqtt::codec::{DecodeError, EncodeError, MAX_PACKET_LEN};

const LIMIT: usize = 64;
/// Prefix checks cost one decode per byte; skip them for long packets.
const PREFIX_CHECK_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let decoded = Packet::decode(data);
    match decoded {
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

    let limited = Packet::decode_limited(data, LIMIT);
    match (decoded, limited) {
        (Ok((_, n)), Err(DecodeError::TooLarge { len })) => assert!(n == len && len > LIMIT),
        (_, Err(DecodeError::TooLarge { len })) => assert!(len > LIMIT),
        (whole, limited) => assert_eq!(whole, limited),
    }

    let mut rest = data;
    while let Ok((_, n)) = Packet::decode(rest) {
        assert!(
            (2..=rest.len()).contains(&n),
            "claimed {n} of {}",
            rest.len()
        );
        rest = &rest[n..];
    }
});

fn has_short_forms(packet: &Packet<'_>) -> bool {
    matches!(
        packet.packet_type(),
        PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::Disconnect
            | PacketType::Auth
    )
}

fn check_packet(data: &[u8], packet: &Packet<'_>, n: usize) {
    assert!(
        (2..=data.len()).contains(&n),
        "claimed {n} of {} bytes",
        data.len()
    );

    let len = packet.encoded_len();
    let mut buf = vec![0xa5; len + 1];
    let written = match packet.encode(&mut buf) {
        Ok(n) => n,
        // A payload marked UTF-8 that is not is taken as it comes (a
        // receiver may check it, §3.3.2.3.2), but never sent.
        Err(EncodeError::PayloadFormat) => return,
        Err(e) => panic!("decoded {packet:?} but encode failed: {e:?}"),
    };
    assert_eq!(
        written, len,
        "encoded_len disagrees with encode for {packet:?}"
    );
    assert_eq!(buf[len], 0xa5, "encode wrote past its length");
    let (again, m) = Packet::decode(&buf[..len]).expect("re-encoded packet decodes");
    assert_eq!(m, len);
    assert_eq!(&again, packet, "round trip changed the packet");
    if buf[..len] != data[..n] {
        assert!(
            has_short_forms(packet) && len < n,
            "re-encoding {:02x?} differs from the input {:02x?}",
            &buf[..len],
            &data[..n]
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
