//! CONNECT ([MQTT 3.1.1 §3.1]).
//!
//! [MQTT 3.1.1 §3.1]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718028

use nom::number::complete::{be_u16, u8 as byte};

use super::error::{BodyResult, fail};
use super::header::{self, PacketType};
use super::publish::check_name;
use super::{DecodeError, EncodeError, Malformed, QoS, Writer, prefixed_len, reserve, string};

/// The protocol name of MQTT 3.1.1 (§3.1.2.1).
pub const PROTOCOL_NAME: &str = "MQTT";
/// The protocol level of MQTT 3.1.1 (§3.1.2.2).
pub const PROTOCOL_LEVEL: u8 = 4;

mod flag {
    pub const USERNAME: u8 = 0x80;
    pub const PASSWORD: u8 = 0x40;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_QOS_MASK: u8 = 0b11;
    pub const WILL: u8 = 0x04;
    pub const CLEAN_SESSION: u8 = 0x02;
    pub const RESERVED: u8 = 0x01;
}

/// The protocol name, level, flags and keep-alive: 2 + 4 + 1 + 1 + 2 bytes.
const VARIABLE_HEADER_LEN: usize = 10;

/// The message the server publishes for a client that vanishes without a
/// DISCONNECT (§3.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LastWill<'a> {
    /// Where the will is published; a valid topic name.
    pub topic: &'a str,
    /// The will payload, at most 65,535 bytes.
    pub message: &'a [u8],
    /// The QoS it is published with.
    pub qos: QoS,
    /// Whether it is published retained.
    pub retain: bool,
}

/// CONNECT: the first packet a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect<'a> {
    /// Discard any previous session and start a new one (§3.1.2.4).
    pub clean_session: bool,
    /// Seconds between control packets before the server may give up on the
    /// client; 0 turns keep-alive off (§3.1.2.10).
    pub keep_alive: u16,
    /// The client identifier; may be empty only with `clean_session`
    /// (§3.1.3.1), which the server, not the codec, enforces.
    pub client_id: &'a str,
    /// The last will, if any.
    pub will: Option<LastWill<'a>>,
    /// The user name, if any.
    pub username: Option<&'a str>,
    /// The password, if any; MQTT 3.1.1 allows it only with a user name.
    pub password: Option<&'a [u8]>,
}

impl<'a> Connect<'a> {
    /// A CONNECT with this client id: clean session, keep-alive 60 s, no
    /// will, no credentials.
    pub const fn new(client_id: &'a str) -> Self {
        Self {
            clean_session: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    pub(crate) fn parse(body: &'a [u8]) -> BodyResult<'a, Self> {
        let (body, name) = string::utf8(body)?;
        if name != PROTOCOL_NAME {
            return fail(Malformed::ProtocolName);
        }
        let (body, level) = byte(body)?;
        if level != PROTOCOL_LEVEL {
            return fail(Malformed::ProtocolLevel);
        }
        let (body, flags) = byte(body)?;
        let (body, keep_alive) = be_u16(body)?;
        let will_qos = (flags >> flag::WILL_QOS_SHIFT) & flag::WILL_QOS_MASK;
        let has_will = flags & flag::WILL != 0;
        if flags & flag::RESERVED != 0
            || (!has_will && (will_qos != 0 || flags & flag::WILL_RETAIN != 0))
            || (flags & flag::PASSWORD != 0 && flags & flag::USERNAME == 0)
        {
            return fail(Malformed::ConnectFlags);
        }
        let (mut body, client_id) = string::utf8(body)?;
        let mut will = None;
        if has_will {
            let Some(qos) = QoS::from_bits(will_qos) else {
                return fail(Malformed::QoS);
            };
            // Not `string::topic_name`: its inlined fast path would cost
            // every firmware that links the decoder ~150 bytes for a field
            // a client never parses.
            let (rest, topic) = string::utf8(body)?;
            if let Err(e) = crate::topic::validate_name(topic) {
                return fail(Malformed::TopicName(e));
            }
            let (rest, message) = string::binary(rest)?;
            body = rest;
            will = Some(LastWill {
                topic,
                message,
                qos,
                retain: flags & flag::WILL_RETAIN != 0,
            });
        }
        let mut username = None;
        if flags & flag::USERNAME != 0 {
            let (rest, name) = string::utf8(body)?;
            body = rest;
            username = Some(name);
        }
        let mut password = None;
        if flags & flag::PASSWORD != 0 {
            let (rest, secret) = string::binary(body)?;
            body = rest;
            password = Some(secret);
        }
        Ok((
            body,
            Self {
                clean_session: flags & flag::CLEAN_SESSION != 0,
                keep_alive,
                client_id,
                will,
                username,
                password,
            },
        ))
    }

    /// Decodes a whole CONNECT from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode).
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::Connect(p), n) => Ok((p, n)),
            _ => Err(Malformed::PacketType.into()),
        }
    }

    fn remaining_len(&self) -> usize {
        let mut len = VARIABLE_HEADER_LEN + prefixed_len(self.client_id.len());
        if let Some(will) = &self.will {
            len += prefixed_len(will.topic.len()) + prefixed_len(will.message.len());
        }
        if let Some(name) = self.username {
            len += prefixed_len(name.len());
        }
        if let Some(secret) = self.password {
            len += prefixed_len(secret.len());
        }
        len
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        header::packet_len(self.remaining_len())
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_session {
            flags |= flag::CLEAN_SESSION;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        flags
    }

    /// Checks what §3.1 requires of an outgoing CONNECT.
    pub fn validate(&self) -> Result<(), EncodeError> {
        string::check(self.client_id)?;
        if self.client_id.is_empty() && !self.clean_session {
            return Err(EncodeError::EmptyClientId);
        }
        if let Some(will) = &self.will {
            check_name(will.topic)?;
            if will.message.len() > usize::from(u16::MAX) {
                return Err(EncodeError::StringTooLong);
            }
        }
        if let Some(name) = self.username {
            string::check(name)?;
        }
        match self.password {
            Some(_) if self.username.is_none() => Err(EncodeError::PasswordWithoutUsername),
            Some(secret) if secret.len() > usize::from(u16::MAX) => Err(EncodeError::StringTooLong),
            _ => Ok(()),
        }
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let buf = reserve(buf, self.encoded_len())?;
        let mut w = Writer::new(buf, PacketType::Connect, 0, self.remaining_len());
        w.prefixed(PROTOCOL_NAME.as_bytes());
        w.u8(PROTOCOL_LEVEL);
        w.u8(self.flags());
        w.u16(self.keep_alive);
        w.prefixed(self.client_id.as_bytes());
        if let Some(will) = &self.will {
            w.prefixed(will.topic.as_bytes());
            w.prefixed(will.message);
        }
        if let Some(name) = self.username {
            w.prefixed(name.as_bytes());
        }
        if let Some(secret) = self.password {
            w.prefixed(secret);
        }
        w.finish()
    }
}
