//! The bounded outbox where callbacks queue their requests: the client
//! carries them out after the callback returns, so a callback never
//! re-enters the client.

use crate::codec::QoS;
use crate::session::AckToken;

/// A request a callback queued; the client carries it out afterwards.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request<'a> {
    /// Publish a message.
    Publish {
        /// Topic name.
        topic: &'a str,
        /// Payload.
        payload: &'a [u8],
        /// QoS.
        qos: QoS,
        /// Retain flag.
        retain: bool,
        /// MQTT 5 properties (empty on MQTT 3.1.1).
        #[cfg(feature = "v5")]
        properties: crate::codec::v5::Properties<'a>,
    },
    /// Subscribe to one filter.
    Subscribe {
        /// Topic filter.
        filter: &'a str,
        /// Requested QoS.
        qos: QoS,
    },
    /// Unsubscribe from one filter.
    Unsubscribe {
        /// Topic filter.
        filter: &'a str,
    },
    /// Send a deferred acknowledgement.
    Ack(AckToken),
    /// MQTT 5: answer the broker's AUTH with this Authentication Data
    /// (the method is the CONNECT's).
    #[cfg(feature = "v5")]
    Auth {
        /// Authentication Data.
        data: &'a [u8],
    },
}

/// The outbox has no room for the request; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OutboxFull;

impl core::fmt::Display for OutboxFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("callback outbox is full")
    }
}

/// Requests queued by callbacks, in a caller-supplied slice.
///
/// Each request takes 8 bytes plus its topic and payload. The client sends
/// them, oldest first, after the callback that queued them returns.
#[derive(Debug)]
pub struct Outbox<'b> {
    buf: &'b mut [u8],
    len: usize,
}

const ENTRY_HEADER: usize = 8;
const OP_PUBLISH: u8 = 0;
const OP_SUBSCRIBE: u8 = 1;
const OP_UNSUBSCRIBE: u8 = 2;
const OP_ACK: u8 = 3;
/// A publish with MQTT 5 properties: their field follows the payload.
#[cfg(feature = "v5")]
const OP_PUBLISH_V5: u8 = 4;
/// An AUTH: its data in the payload's place.
#[cfg(feature = "v5")]
const OP_AUTH: u8 = 5;
/// The bytes a [`Request::Ack`] takes.
pub(crate) const ACK_SIZE: usize = ENTRY_HEADER;

impl<'b> Outbox<'b> {
    /// An empty outbox over `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Whether no request is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its size in bytes: the largest request it can take.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Queues `request`, or returns [`OutboxFull`] and queues nothing.
    pub fn push(&mut self, request: Request<'_>) -> Result<(), OutboxFull> {
        push(self.buf, &mut self.len, request)
    }

    /// The queue as a [`Context`](super::Context) holds it: borrowed for
    /// as long as the callback runs.
    pub(crate) fn borrow(&mut self) -> (&mut [u8], &mut usize) {
        (self.buf, &mut self.len)
    }

    /// The oldest request and its size in bytes, without removing it.
    pub fn front(&self) -> Option<(Request<'_>, usize)> {
        front(self.buf.get(..self.len)?)
    }

    /// Removes the oldest request, `size` bytes as [`front`](Self::front) said.
    pub fn pop_front(&mut self, size: usize) {
        let size = size.min(self.len);
        self.buf.copy_within(size..self.len, 0);
        self.len -= size;
    }

    /// Removes every [`Request::Ack`] and hands its token to `redeem`, the
    /// others keeping their order: for when the oldest request has to wait
    /// (a full in-flight window), while the acknowledgements behind it
    /// need not and may be what frees it.
    pub(crate) fn take_acks(&mut self, mut redeem: impl FnMut(AckToken)) {
        self.take(|request| match request {
            Request::Ack(token) => {
                redeem(token);
                true
            }
            _ => false,
        });
    }

    /// Removes every request `taken` says it carried out, oldest first,
    /// the others keeping their order.
    pub(crate) fn take(&mut self, mut taken: impl FnMut(Request<'_>) -> bool) {
        let mut at = 0;
        while let Some((request, size)) = front(self.buf.get(at..self.len).unwrap_or(&[])) {
            if taken(request) {
                self.buf.copy_within(at + size..self.len, at);
                self.len -= size;
            } else {
                at += size;
            }
        }
    }
}

/// Appends `request` behind the `len` bytes queued in `buf`.
pub(crate) fn push(
    buf: &mut [u8],
    len: &mut usize,
    request: Request<'_>,
) -> Result<(), OutboxFull> {
    #[cfg(feature = "v5")]
    let mut props = None;
    let (op, flags, topic, payload) = match request {
        Request::Publish {
            topic,
            payload,
            qos,
            retain,
            #[cfg(feature = "v5")]
            properties,
        } => {
            #[cfg(feature = "v5")]
            let op = if properties.is_empty() {
                OP_PUBLISH
            } else {
                props = Some(properties);
                OP_PUBLISH_V5
            };
            #[cfg(not(feature = "v5"))]
            let op = OP_PUBLISH;
            (op, qos as u8 | (u8::from(retain) << 2), topic, payload)
        }
        Request::Subscribe { filter, qos } => (OP_SUBSCRIBE, qos as u8, filter, &[][..]),
        Request::Unsubscribe { filter } => (OP_UNSUBSCRIBE, 0, filter, &[][..]),
        #[cfg(feature = "v5")]
        Request::Auth { data } => (OP_AUTH, 0, "", data),
        // No topic or payload: the packet id and the connection take
        // their length fields.
        Request::Ack(token) => {
            let dst = buf.get_mut(*len..*len + ENTRY_HEADER).ok_or(OutboxFull)?;
            dst[0] = OP_ACK;
            dst[1] = token.qos as u8;
            dst[2..4].copy_from_slice(&token.packet_id.to_le_bytes());
            dst[4..8].copy_from_slice(&token.connection.to_le_bytes());
            *len += ENTRY_HEADER;
            return Ok(());
        }
    };
    let topic_len = u16::try_from(topic.len()).map_err(|_| OutboxFull)?;
    let payload_len = u32::try_from(payload.len()).map_err(|_| OutboxFull)?;
    #[allow(unused_mut)]
    let mut total = ENTRY_HEADER + topic.len() + payload.len();
    #[cfg(feature = "v5")]
    if let Some(props) = &props {
        let start = *len + total;
        let field = buf.get_mut(start..).ok_or(OutboxFull)?;
        // Checked here, so what is queued can be sent. (An invalid list
        // is queued without its properties never: it is refused.)
        let n = crate::codec::v5::write_publish_properties(props, field).map_err(|_| OutboxFull)?;
        total += n;
    }
    let dst = buf.get_mut(*len..*len + total).ok_or(OutboxFull)?;
    let (head, rest) = dst.split_at_mut(ENTRY_HEADER);
    head[0] = op;
    head[1] = flags;
    head[2..4].copy_from_slice(&topic_len.to_le_bytes());
    head[4..8].copy_from_slice(&payload_len.to_le_bytes());
    let (t, p) = rest.split_at_mut(topic.len());
    t.copy_from_slice(topic.as_bytes());
    p.get_mut(..payload.len())
        .ok_or(OutboxFull)?
        .copy_from_slice(payload);
    *len += total;
    Ok(())
}

impl core::error::Error for OutboxFull {}

/// The first request of `data`, bytes queued by [`push`], and its size.
pub(crate) fn front(data: &[u8]) -> Option<(Request<'_>, usize)> {
    let head = data.get(..ENTRY_HEADER)?;
    let qos = QoS::from_bits(head[1] & 0b11).unwrap_or(QoS::AtMostOnce);
    if head[0] == OP_ACK {
        let token = AckToken {
            qos,
            packet_id: u16::from_le_bytes([head[2], head[3]]),
            connection: u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
        };
        return Some((Request::Ack(token), ENTRY_HEADER));
    }
    let topic_len = usize::from(u16::from_le_bytes([head[2], head[3]]));
    let payload_len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    #[allow(unused_mut)]
    let mut total = ENTRY_HEADER + topic_len + payload_len;
    let body = data.get(ENTRY_HEADER..total)?;
    let (topic, payload) = body.split_at(topic_len);
    let topic = core::str::from_utf8(topic).ok()?;
    #[cfg(feature = "v5")]
    let mut properties = crate::codec::v5::Properties::EMPTY;
    #[cfg(feature = "v5")]
    if head[0] == OP_PUBLISH_V5 {
        let (props, n) = crate::codec::v5::read_publish_properties(data.get(total..)?)?;
        properties = props;
        total += n;
    }
    let request = match head[0] {
        #[cfg(feature = "v5")]
        OP_PUBLISH_V5 => Request::Publish {
            topic,
            payload,
            qos,
            retain: head[1] & 0b100 != 0,
            properties,
        },
        OP_PUBLISH => Request::Publish {
            topic,
            payload,
            qos,
            retain: head[1] & 0b100 != 0,
            #[cfg(feature = "v5")]
            properties,
        },
        OP_SUBSCRIBE => Request::Subscribe { filter: topic, qos },
        #[cfg(feature = "v5")]
        OP_AUTH => Request::Auth { data: payload },
        _ => Request::Unsubscribe { filter: topic },
    };
    Some((request, total))
}
