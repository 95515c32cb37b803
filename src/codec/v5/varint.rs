//! Variable Byte Integers ([MQTT 5.0 §1.5.5]): the remaining length, the
//! property length, property identifiers and Subscription Identifiers.
//!
//! Unlike MQTT 3.1.1, MQTT 5 requires the fewest bytes that hold the value
//! (MQTT-1.5.5-1), so a longer form is malformed here.
//!
//! [MQTT 5.0 §1.5.5]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901011

use crate::codec::{MAX_REMAINING_LENGTH, Malformed, Writer, varint_len};

/// Why [`read`] found no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The bytes end while the continuation bit is still set.
    Incomplete,
    /// The fourth byte has its continuation bit set.
    TooLong,
    /// The value would fit in fewer bytes.
    NonMinimal,
}

/// Reads a Variable Byte Integer from the start of `bytes`: its value and
/// how many bytes it took (1 to 4).
#[inline]
pub(crate) fn read(bytes: &[u8]) -> Result<(u32, usize), VarintError> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&byte) = bytes.get(i) else {
            return Err(VarintError::Incomplete);
        };
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of 0 after the first adds nothing to the value:
            // it would have fit in the bytes before it. This is the only
            // way to be longer than needed, and it shows only at the end,
            // so every prefix of a minimal encoding stays "need more".
            if i > 0 && byte == 0 {
                return Err(VarintError::NonMinimal);
            }
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::TooLong)
}

/// [`read`] inside a framed body, where running out of bytes is `cut`.
/// Returns the value and the bytes after it.
pub(crate) fn read_in(bytes: &[u8], cut: Malformed) -> Result<(u32, &[u8]), Malformed> {
    match read(bytes) {
        Ok((value, n)) => Ok((value, bytes.get(n..).unwrap_or(&[]))),
        Err(VarintError::Incomplete) => Err(cut),
        Err(VarintError::TooLong) => Err(Malformed::VariableByteInteger),
        Err(VarintError::NonMinimal) => Err(Malformed::NonMinimalVarint),
    }
}

/// The number of bytes `value` takes; values above the maximum, which
/// encoders refuse before writing, count as 4.
pub(crate) const fn len(value: u32) -> usize {
    varint_len(value)
}

/// Writes `value` (at most [`MAX_REMAINING_LENGTH`], checked by the caller)
/// in its fewest bytes.
pub(crate) fn write(w: &mut Writer<'_>, value: u32) {
    let mut out = [0u8; 4];
    let mut rest = value.min(MAX_REMAINING_LENGTH);
    let mut n = 0;
    for byte in out.iter_mut() {
        *byte = (rest & 0x7f) as u8;
        rest >>= 7;
        n += 1;
        if rest == 0 {
            break;
        }
        *byte |= 0x80;
    }
    w.bytes(&out[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_read_back_and_longer_forms_are_refused() {
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (value, bytes) in cases {
            assert_eq!(read(bytes), Ok((value, bytes.len())), "{value}");
            assert_eq!(len(value), bytes.len());
            let mut buf = [0u8; 4];
            let mut w = Writer::raw(&mut buf);
            write(&mut w, value);
            assert_eq!(w.finish(), Ok(bytes.len()));
            assert_eq!(&buf[..bytes.len()], bytes);
            for cut in 0..bytes.len() {
                assert_eq!(read(&bytes[..cut]), Err(VarintError::Incomplete));
            }
        }
        assert_eq!(read(&[0x80, 0x00]), Err(VarintError::NonMinimal));
        assert_eq!(read(&[0xff, 0x80, 0x00]), Err(VarintError::NonMinimal));
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x00]),
            Err(VarintError::NonMinimal)
        );
        assert_eq!(read(&[0x80, 0x80, 0x80, 0x80]), Err(VarintError::TooLong));
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(VarintError::TooLong)
        );
    }
}
