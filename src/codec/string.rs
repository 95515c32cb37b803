//! Length-prefixed UTF-8 strings and binary data (§1.5.3).

use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::be_u16;

use super::EncodeError;
use super::Malformed;
use super::error::{BodyResult, fail};

/// A length-prefixed binary field.
pub(crate) fn binary(input: &[u8]) -> BodyResult<'_, &[u8]> {
    let (input, len) = be_u16(input)?;
    take(len).parse(input)
}

/// A length-prefixed UTF-8 string: well-formed, and without U+0000.
pub(crate) fn utf8(input: &[u8]) -> BodyResult<'_, &str> {
    let (input, bytes) = binary(input)?;
    if bytes.contains(&0) {
        return fail(Malformed::NulCharacter);
    }
    match core::str::from_utf8(bytes) {
        Ok(s) => Ok((input, s)),
        Err(_) => fail(Malformed::Utf8),
    }
}

/// A packet identifier, which must not be 0 (§2.3.1).
pub(crate) fn packet_id(input: &[u8]) -> BodyResult<'_, u16> {
    let (input, id) = be_u16(input)?;
    if id == 0 {
        return fail(Malformed::PacketId);
    }
    Ok((input, id))
}

/// The checks an outgoing string needs: at most 65,535 bytes, no U+0000.
pub(crate) fn check(s: &str) -> Result<(), EncodeError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong);
    }
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NulCharacter);
    }
    Ok(())
}
