//! Length-prefixed UTF-8 strings and binary data (§1.5.3).

use nom::number::complete::be_u16;

use super::EncodeError;
use super::Malformed;
use super::error::{BodyError, BodyResult, fail};
use crate::topic;

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

/// A PUBLISH topic name: a length-prefixed UTF-8 string that is also a
/// valid topic name (§4.7). `from_utf8` is the one walk over the bytes that
/// makes the `&str`; a word-at-a-time scan for NUL and wildcards follows.
/// Anything else takes the precise checks for its error.
#[inline]
pub(crate) fn topic_name(input: &[u8]) -> BodyResult<'_, &str> {
    let (rest, bytes) = binary(input)?;
    if let Ok(s) = core::str::from_utf8(bytes) {
        if !s.is_empty() && topic::name_chars_ok(s.as_bytes()) {
            return Ok((rest, s));
        }
    }
    topic_name_error(input)
}

/// [`topic_name`]'s error, found the long way.
#[cold]
#[inline(never)]
fn topic_name_error(input: &[u8]) -> BodyResult<'_, &str> {
    let (rest, s) = utf8(input)?;
    // The fast check failed: straight to the one that names the error (a
    // field is at most 65,535 bytes, the longest topic allowed).
    if let Err(e) = topic::name_error(s) {
        return fail(Malformed::TopicName(e));
    }
    Ok((rest, s))
}

/// A SUBSCRIBE or UNSUBSCRIBE topic filter: a length-prefixed UTF-8 string
/// that is also a valid topic filter (§4.7), checked the way [`topic_name`]
/// checks names.
#[inline]
pub(crate) fn topic_filter(input: &[u8]) -> BodyResult<'_, &str> {
    let (rest, bytes) = binary(input)?;
    if let Ok(s) = core::str::from_utf8(bytes) {
        if !s.is_empty() && topic::filter_chars_ok(s.as_bytes()) {
            return Ok((rest, s));
        }
    }
    topic_filter_error(input)
}

/// [`topic_filter`]'s error, found the long way.
#[cold]
#[inline(never)]
fn topic_filter_error(input: &[u8]) -> BodyResult<'_, &str> {
    let (rest, s) = utf8(input)?;
    if let Err(e) = topic::filter_error(s) {
        return fail(Malformed::TopicFilter(e));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// `topic_name` the long way: the string checks, then the name rules.
    fn reference_name(input: &[u8]) -> BodyResult<'_, &str> {
        let (rest, s) = utf8(input)?;
        match topic::name_error(s) {
            Ok(()) => Ok((rest, s)),
            Err(e) => fail(Malformed::TopicName(e)),
        }
    }

    /// `topic_filter` the long way.
    fn reference_filter(input: &[u8]) -> BodyResult<'_, &str> {
        let (rest, s) = utf8(input)?;
        match topic::filter_error(s) {
            Ok(()) => Ok((rest, s)),
            Err(e) => fail(Malformed::TopicFilter(e)),
        }
    }

    /// Topic bytes: ASCII, the rejected bytes, controls, multi-byte UTF-8
    /// (U+00E9, U+FEFF, U+1F980) and its pieces, and bytes UTF-8 never has.
    fn topic_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => Just(&b"a"[..]),
            3 => Just(&b"/"[..]),
            2 => Just(&b"+"[..]),
            2 => Just(&b"#"[..]),
            1 => Just(&b"\0"[..]),
            1 => Just(&b"$"[..]),
            1 => Just(&b"\x1f"[..]),
            1 => Just("é".as_bytes()),
            1 => Just("\u{feff}".as_bytes()),
            1 => Just("🦀".as_bytes()),
            1 => Just(&b"\xc3"[..]),
            1 => Just(&b"\xed\xa0\x80"[..]),
            1 => Just(&b"\xff"[..]),
        ];
        proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    /// `bytes` behind its length prefix, then `tail`.
    fn prefixed(bytes: &[u8], tail: &[u8]) -> Vec<u8> {
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        [&len.to_be_bytes()[..], bytes, tail].concat()
    }

    proptest! {
        #[test]
        fn topic_names_decode_as_the_long_way_does(bytes in topic_bytes(), tail in any::<Vec<u8>>()) {
            let input = prefixed(&bytes, &tail);
            prop_assert_eq!(topic_name(&input), reference_name(&input));
        }

        #[test]
        fn topic_filters_decode_as_the_long_way_does(bytes in topic_bytes(), tail in any::<Vec<u8>>()) {
            let input = prefixed(&bytes, &tail);
            prop_assert_eq!(topic_filter(&input), reference_filter(&input));
        }

        #[test]
        fn truncated_topics_decode_as_the_long_way_does(input in any::<Vec<u8>>()) {
            prop_assert_eq!(topic_name(&input), reference_name(&input));
            prop_assert_eq!(topic_filter(&input), reference_filter(&input));
        }
    }
}
