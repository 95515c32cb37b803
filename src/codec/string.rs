//! Length-prefixed UTF-8 strings and binary data (§1.5.3).

use nom::number::complete::be_u16;

use super::EncodeError;
use super::Malformed;
use super::error::{BodyError, BodyResult, fail};

/// A length-prefixed binary field.
#[inline]
pub(crate) fn binary(input: &[u8]) -> BodyResult<'_, &[u8]> {
    let truncated = || nom::Err::Error(BodyError(Malformed::Truncated));
    let (len, input) = input.split_first_chunk::<2>().ok_or_else(truncated)?;
    input
        .split_at_checked(usize::from(u16::from_be_bytes(*len)))
        .map(|(bytes, rest)| (rest, bytes))
        .ok_or_else(truncated)
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

/// A PUBLISH or will topic name: a length-prefixed UTF-8 string that is also
/// a valid topic name (§4.7). One pass over plain ASCII names; anything else
/// takes the precise checks for its error.
#[inline]
pub(crate) fn topic_name(input: &[u8]) -> BodyResult<'_, &str> {
    let (rest, bytes) = binary(input)?;
    if !bytes.is_empty() && crate::topic::is_plain_name(bytes) {
        if let Ok(s) = core::str::from_utf8(bytes) {
            return Ok((rest, s));
        }
    }
    let (rest, s) = utf8(input)?;
    if let Err(e) = crate::topic::validate_name(s) {
        return fail(Malformed::TopicName(e));
    }
    Ok((rest, s))
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
