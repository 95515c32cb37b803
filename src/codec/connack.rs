//! CONNACK ([MQTT 3.1.1 §3.2]).
//!
//! [MQTT 3.1.1 §3.2]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718033

use core::fmt;

use nom::number::complete::u8 as byte;

use super::error::{BodyResult, fail};
use super::header::PacketType;
use super::{DecodeError, EncodeError, Malformed, Writer, reserve};

const BODY_LEN: usize = 2;
const SESSION_PRESENT: u8 = 0x01;

/// The server's answer to a CONNECT (§3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0x00: connection accepted.
    Accepted = 0,
    /// 0x01: the server does not support MQTT 3.1.1.
    UnacceptableProtocolVersion = 1,
    /// 0x02: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 0x03: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 0x04: the user name or password is malformed or wrong.
    BadUsernameOrPassword = 4,
    /// 0x05: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The code for `byte`, or `None` for the reserved values 6–255.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUsernameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }

    /// Whether retrying with the same settings cannot help: everything but
    /// [`ServerUnavailable`](Self::ServerUnavailable) (and `Accepted`).
    pub const fn is_permanent(self) -> bool {
        !matches!(self, Self::Accepted | Self::ServerUnavailable)
    }
}

impl fmt::Display for ConnectReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Accepted => "connection accepted",
            Self::UnacceptableProtocolVersion => "unacceptable protocol version",
            Self::IdentifierRejected => "identifier rejected",
            Self::ServerUnavailable => "server unavailable",
            Self::BadUsernameOrPassword => "bad user name or password",
            Self::NotAuthorized => "not authorized",
        })
    }
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnAck {
    /// Whether the server resumed a stored session (§3.2.2.2). Always false
    /// when the connection is refused.
    pub session_present: bool,
    /// Whether the connection was accepted, and if not, why.
    pub return_code: ConnectReturnCode,
}

impl ConnAck {
    pub(crate) fn parse(body: &[u8]) -> BodyResult<'_, Self> {
        let (body, flags) = byte(body)?;
        let (body, code) = byte(body)?;
        if flags & !SESSION_PRESENT != 0 {
            return fail(Malformed::ConnAckFlags);
        }
        let Some(return_code) = ConnectReturnCode::from_u8(code) else {
            return fail(Malformed::ConnectReturnCode);
        };
        let session_present = flags & SESSION_PRESENT != 0;
        if session_present && return_code != ConnectReturnCode::Accepted {
            return fail(Malformed::SessionPresent);
        }
        Ok((
            body,
            Self {
                session_present,
                return_code,
            },
        ))
    }

    /// Decodes a whole CONNACK from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode).
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::ConnAck(p), n) => Ok((p, n)),
            _ => Err(Malformed::PacketType.into()),
        }
    }

    /// The encoded length: always 4 bytes.
    pub const fn encoded_len(&self) -> usize {
        2 + BODY_LEN
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.session_present && self.return_code != ConnectReturnCode::Accepted {
            return Err(EncodeError::SessionPresent);
        }
        let buf = reserve(buf, self.encoded_len())?;
        let mut w = Writer::new(buf, PacketType::ConnAck, 0, BODY_LEN);
        w.u8(u8::from(self.session_present));
        w.u8(self.return_code as u8);
        w.finish()
    }
}
