//! Packets encoded by hand, byte for byte, for tests that script the wire
//! (including what the codec would refuse to write). Self-contained, so a
//! test can include it alone with `#[path = "common/wire.rs"]`.
#![allow(dead_code)]

/// MQTT's variable byte integer (§2.2.3 in 3.1.1, §1.5.5 in 5.0).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A packet from its first byte and body, with the remaining length.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend_from_slice(&varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A PUBLISH: the topic any bytes, the packet id present when `id` is,
/// and an MQTT 5 Property Length and properties when `props` is `Some`.
pub fn publish(
    topic: &[u8],
    qos: u8,
    id: Option<u16>,
    dup: bool,
    props: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if let Some(props) = props {
        body.extend_from_slice(&varint(props.len()));
        body.extend_from_slice(props);
    }
    body.extend_from_slice(payload);
    frame(0x30 | (u8::from(dup) << 3) | (qos << 1), &body)
}
