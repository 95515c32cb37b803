//! Topic names and topic filters: validation and matching ([MQTT 3.1.1 §4.7]).
//!
//! A [`TopicName`] is where a message is published: no wildcards, at least one
//! character. A [`TopicFilter`] is what a subscription asks for and may hold
//! `+` (exactly one level) and `#` (this level and every level below it, last
//! and alone in its level). Both are at most 65,535 bytes of UTF-8 without
//! U+0000. Validation happens once, in `new`; matching never allocates and
//! never panics.
//!
//! | filter          | topic name            | matches | why                                   |
//! |-----------------|-----------------------|---------|---------------------------------------|
//! | `sport/tennis/#`| `sport/tennis/player1`| yes     | `#` covers any number of levels       |
//! | `sport/tennis/#`| `sport/tennis`        | yes     | `#` also matches the parent level     |
//! | `sport/#`       | `sport`               | yes     | the same rule, one level up           |
//! | `#`             | `sport/tennis`        | yes     | `#` alone matches every topic ...     |
//! | `#`             | `$SYS/uptime`         | no      | ... but not those starting with `$`   |
//! | `+/monitor`     | `$SYS/monitor`        | no      | nor does a leading `+`                |
//! | `$SYS/#`        | `$SYS/uptime`         | yes     | an explicit `$` level is fine         |
//! | `sport/+`       | `sport/`              | yes     | `+` matches an empty level            |
//! | `sport/+`       | `sport`               | no      | `+` needs a level to match            |
//! | `+/+`           | `/finance`            | yes     | the first level is empty              |
//! | `/+`            | `/finance`            | yes     |                                       |
//! | `+`             | `/finance`            | no      | two levels, one `+`                   |
//! | `sport/+/player1` | `sport/tennis/player1` | yes  |                                       |
//!
//! ```
//! use minimqtt::topic::{TopicFilter, TopicName};
//!
//! let filter = TopicFilter::new("sensors/+/temp")?;
//! assert!(filter.matches(&TopicName::new("sensors/kitchen/temp")?));
//! assert!(!filter.matches(&TopicName::new("sensors/kitchen/humidity")?));
//! assert!(TopicName::new("sensors/#").is_err());
//! # Ok::<(), minimqtt::topic::TopicError>(())
//! ```
//!
//! [MQTT 3.1.1 §4.7]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718106

use core::fmt;

/// The longest topic MQTT can carry: a string's 16-bit length prefix.
pub const MAX_TOPIC_LEN: usize = 65_535;

const SEPARATOR: u8 = b'/';
const SINGLE_LEVEL: u8 = b'+';
const MULTI_LEVEL: u8 = b'#';

/// Why a topic name or filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TopicError {
    /// The topic is empty; names and filters need at least one character (§4.7.3).
    Empty,
    /// The topic is longer than 65,535 bytes.
    TooLong,
    /// The topic contains U+0000 (§4.7.3).
    NulCharacter,
    /// A topic name contains `+` or `#`, which only filters may (§4.7.1).
    WildcardInName,
    /// `#` is not alone in the last level of a filter (§4.7.1.2).
    MultiLevelWildcard,
    /// `+` shares its level with other characters (§4.7.1.3).
    SingleLevelWildcard,
    /// MQTT 5: a shared subscription's filter is not `$share/`, a
    /// ShareName of one character at least with no `/`, `+` or `#`, `/`
    /// and a topic filter (§4.8.2, MQTT-4.8.2-1 and MQTT-4.8.2-2).
    SharedSubscription,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty topic",
            Self::TooLong => "topic longer than 65535 bytes",
            Self::NulCharacter => "topic contains U+0000",
            Self::WildcardInName => "wildcard in a topic name",
            Self::MultiLevelWildcard => "'#' must be last and alone in its level",
            Self::SingleLevelWildcard => "'+' must be alone in its level",
            Self::SharedSubscription => "a shared subscription is $share/{ShareName}/{filter}",
        })
    }
}

/// A valid topic name: where a message is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TopicName<'a>(&'a str);

impl<'a> TopicName<'a> {
    /// Checks `name` against §4.7: non-empty, at most 65,535 bytes, no
    /// U+0000, no wildcard.
    pub fn new(name: &'a str) -> Result<Self, TopicError> {
        validate_name(name)?;
        Ok(Self(name))
    }

    /// The name as a string.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for TopicName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A valid topic filter: what a subscription matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TopicFilter<'a>(&'a str);

impl<'a> TopicFilter<'a> {
    /// Checks `filter` against §4.7: non-empty, at most 65,535 bytes, no
    /// U+0000, `+` alone in its level, `#` alone in the last level.
    pub fn new(filter: &'a str) -> Result<Self, TopicError> {
        validate_filter(filter)?;
        Ok(Self(filter))
    }

    /// The filter as a string.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether a message published to `topic` matches this filter.
    ///
    /// Computes in *O*(n) time in the length of the two strings.
    pub fn matches(&self, topic: &TopicName<'_>) -> bool {
        matches(self.0, topic.0)
    }
}

impl fmt::Display for TopicFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn validate_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if topic.as_bytes().contains(&0) {
        return Err(TopicError::NulCharacter);
    }
    Ok(())
}

/// Bytes below this one are the candidates the word scan reports: NUL, `#`
/// (0x23) and `+` (0x2B) are among them; `/` (0x2F), digits and letters are not.
const SCAN_LIMIT: u8 = SINGLE_LEVEL + 1;

/// True when `check(i)` holds for every index `i` of `bytes` whose byte is
/// below [`SCAN_LIMIT`]. `check` may also be called for other indices (it
/// must then hold), and more than once for an index.
///
/// A machine word at a time: in a word with no byte below the limit, which
/// is most words of most topics, no byte is looked at on its own. Words are
/// `usize`, not `u64`: on the 32-bit targets this crate is for, 64-bit
/// arithmetic doubles the code.
#[inline(always)]
fn scan(bytes: &[u8], check: impl Fn(usize) -> bool) -> bool {
    const W: usize = core::mem::size_of::<usize>();
    // The high bit of each byte below the limit is set, and maybe of bytes
    // after one (a borrow), never of a byte before the first: little-endian
    // order makes the lowest set bit the first candidate.
    macro_rules! word {
        ($int:ty, $at:expr, $w:expr) => {{
            const ONES: $int = <$int>::from_ne_bytes([0x01; size_of::<$int>()]);
            let x = <$int>::from_le_bytes(*$w);
            let mut low = x.wrapping_sub(ONES * SCAN_LIMIT as $int) & !x & (ONES << 7);
            let mut ok = true;
            while low != 0 && ok {
                ok = check($at + low.trailing_zeros() as usize / 8);
                low &= low.wrapping_sub(1);
            }
            ok
        }};
    }
    let len = bytes.len();
    let (Some(first), Some(last)) = (bytes.first_chunk::<W>(), bytes.last_chunk::<W>()) else {
        // Shorter than a word: two half words, overlapping, or byte by byte.
        return match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
            (Some(first), Some(last)) => word!(u32, 0, first) && word!(u32, len - 4, last),
            _ => bytes
                .iter()
                .enumerate()
                .all(|(i, &b)| b >= SCAN_LIMIT || check(i)),
        };
    };
    // The first word, the whole words after it, and the last word, which
    // overlaps them and covers the rest. Topics of up to two words, the
    // most common, take no loop.
    if !word!(usize, 0, first) {
        return false;
    }
    let last_at = len - W;
    let mut at = W;
    while at < last_at {
        match bytes.get(at..).and_then(<[u8]>::first_chunk::<W>) {
            Some(w) if word!(usize, at, w) => at += W,
            _ => return false,
        }
    }
    word!(usize, last_at, last)
}

/// True when no byte of `bytes` is NUL, `+` or `#`: with a non-empty,
/// well-formed UTF-8 string of at most 65,535 bytes, a valid topic name.
#[inline]
pub(crate) fn name_chars_ok(bytes: &[u8]) -> bool {
    scan(bytes, |i| {
        !matches!(bytes.get(i), Some(&(0 | SINGLE_LEVEL | MULTI_LEVEL)))
    })
}

/// True when no byte of `bytes` is NUL, each `+` fills its level and a `#`
/// fills the last level: with a non-empty, well-formed UTF-8 string of at
/// most 65,535 bytes, a valid topic filter. False exactly when
/// [`filter_error`] finds an error.
///
/// Not inlined: the decoders, the UNSUBSCRIBE encoder and
/// [`validate_filter`] share one copy, which keeps firmware small. The
/// SUBSCRIBE encoder of 64-bit targets has the other one
/// ([`filter_chars_ok_inline`]).
#[inline(never)]
pub(crate) fn filter_chars_ok(bytes: &[u8]) -> bool {
    filter_chars_ok_inline(bytes)
}

/// [`filter_chars_ok`], inlined. The scan of [`scan`], arranged for
/// filters, which unlike names usually hold a candidate (a wildcard):
///
/// - A word is first tested by subtracting [`SCAN_LIMIT`] from each byte
///   alone: no high bit set means ASCII with no byte below the limit, and
///   the first and the last word take that one test together. Only a word
///   that fails it has its candidates worked out (non-ASCII bytes, whose
///   high bit is set, are not candidates).
/// - Byte 0 is tested or-ed with 8: a leading `$` (`$SYS/...`,
///   `$share/...`) becomes `,`, no candidate, while NUL, `#` and `+` stay
///   candidates.
/// - A candidate is judged by its two neighbours only when it is NUL, `+`
///   or `#`; a `#` that ends the filter after a `/`, its usual place, is
///   seen in the last word without that.
#[inline(always)]
pub(crate) fn filter_chars_ok_inline(bytes: &[u8]) -> bool {
    const W: usize = size_of::<usize>();
    let len = bytes.len();
    // The byte at `i`, found below SCAN_LIMIT by a word test (or, after a
    // borrow, `,`), is allowed where it is.
    let allowed = |i: usize| -> bool {
        match bytes.get(i) {
            Some(&0) => false,
            Some(&c @ (SINGLE_LEVEL | MULTI_LEVEL)) => {
                (i == 0 || bytes.get(i.wrapping_sub(1)) == Some(&SEPARATOR))
                    && match bytes.get(i + 1) {
                        None => true,
                        Some(&next) => c == SINGLE_LEVEL && next == SEPARATOR,
                    }
            }
            _ => true,
        }
    };
    // `$x` less SCAN_LIMIT in every byte. The high bit of a byte of the
    // result is set when that byte of `$x` was below the limit, or right
    // after one that was (a borrow), or 0xAC or more (not ASCII): or-ed
    // over words and masked with `high!`, zero clears them all at once.
    macro_rules! below {
        ($int:ty, $x:expr) => {
            $x.wrapping_sub(<$int>::from_ne_bytes([SCAN_LIMIT; size_of::<$int>()]))
        };
    }
    macro_rules! high {
        ($int:ty) => {
            <$int>::from_ne_bytes([0x80; size_of::<$int>()])
        };
    }
    // The candidates of the word `$x`, given `$below` = `below!($x)`: the
    // high bit of each byte below SCAN_LIMIT, and maybe of a byte right
    // after one (a borrow); as in `scan`.
    macro_rules! candidates {
        ($int:ty, $x:expr, $below:expr) => {
            $below & !$x & high!($int)
        };
    }
    // For the last word `$y`: the high bit of its last byte when the filter
    // ends in `/#`, the usual place of a `#`, which then needs no check of
    // its own (a filter of two bytes, `/#`, has nothing before the `/`).
    macro_rules! ends_multi_level {
        ($int:ty, $y:expr) => {{
            const BITS: u32 = <$int>::BITS;
            const SLASH_HASH: $int = u16::from_le_bytes([SEPARATOR, MULTI_LEVEL]) as $int;
            if $y >> (BITS - 16) == SLASH_HASH {
                1 << (BITS - 1)
            } else {
                0
            }
        }};
    }
    // Returns false from the function at the first candidate not allowed;
    // little-endian, so the lowest set bit is the first byte.
    macro_rules! check {
        ($mask:expr, $at:expr) => {{
            let mut mask = $mask;
            while mask != 0 {
                if !allowed($at + mask.trailing_zeros() as usize / 8) {
                    return false;
                }
                mask &= mask.wrapping_sub(1);
            }
        }};
    }
    if let (Some(first), Some(last)) = (bytes.first_chunk::<W>(), bytes.last_chunk::<W>()) {
        // The whole words between the first and the last, which overlaps
        // them and covers the rest. A byte in two words is checked twice.
        let last_at = len - W;
        let mut at = W;
        while at < last_at {
            if let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<W>) {
                let x = usize::from_le_bytes(*word);
                let b = below!(usize, x);
                if b & high!(usize) != 0 {
                    check!(candidates!(usize, x, b), at);
                }
            }
            at += W;
        }
        let (x, y) = (
            usize::from_le_bytes(*first) | 8,
            usize::from_le_bytes(*last),
        );
        let (bx, by) = (below!(usize, x), below!(usize, y));
        if (bx | by) & high!(usize) != 0 {
            check!(candidates!(usize, x, bx), 0);
            check!(
                candidates!(usize, y, by) & !ends_multi_level!(usize, y),
                last_at
            );
        }
        true
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        // Shorter than a word (64-bit targets): two half words, overlapping.
        let (x, y) = (u32::from_le_bytes(*first) | 8, u32::from_le_bytes(*last));
        let (bx, by) = (below!(u32, x), below!(u32, y));
        if (bx | by) & high!(u32) != 0 {
            check!(candidates!(u32, x, bx), 0);
            check!(
                candidates!(u32, y, by) & !ends_multi_level!(u32, y),
                len - 4
            );
        }
        true
    } else {
        bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b >= SCAN_LIMIT || allowed(i))
    }
}

/// The checks of [`TopicName::new`], for callers that keep a plain `&str`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    if !name.is_empty() && name.len() <= MAX_TOPIC_LEN && name_chars_ok(name.as_bytes()) {
        return Ok(());
    }
    name_error(name)
}

/// [`validate_name`] the long way, for its error.
#[cold]
pub(crate) fn name_error(name: &str) -> Result<(), TopicError> {
    validate_common(name)?;
    if name
        .as_bytes()
        .iter()
        .any(|&b| b == SINGLE_LEVEL || b == MULTI_LEVEL)
    {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// MQTT 5 (§4.8.2): a filter that starts with `$share/` is a shared
/// subscription, and must go on with a ShareName of one character at
/// least, with no `/`, `+` or `#` (MQTT-4.8.2-1), then `/` and a topic
/// filter (MQTT-4.8.2-2). `filter` is a valid filter already, so the part
/// after the ShareName is one too. Other filters pass.
///
/// ```
/// use minimqtt::topic::{TopicError, validate_shared};
///
/// assert_eq!(validate_shared("$share/group/sensors/#"), Ok(()));
/// assert_eq!(validate_shared("sensors/#"), Ok(()));
/// assert_eq!(validate_shared("$share//a"), Err(TopicError::SharedSubscription));
/// assert_eq!(validate_shared("$share/+/a"), Err(TopicError::SharedSubscription));
/// assert_eq!(validate_shared("$share/group"), Err(TopicError::SharedSubscription));
/// assert_eq!(validate_shared("$share/group/"), Err(TopicError::SharedSubscription));
/// ```
pub fn validate_shared(filter: &str) -> Result<(), TopicError> {
    let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
        return Ok(());
    };
    let Some((name, topic)) = rest.split_once('/') else {
        return Err(TopicError::SharedSubscription);
    };
    if name.is_empty() || has_wildcard(name) || topic.is_empty() {
        return Err(TopicError::SharedSubscription);
    }
    Ok(())
}

/// Whether `filter` has a wildcard (`+` or `#`).
pub(crate) fn has_wildcard(filter: &str) -> bool {
    filter
        .bytes()
        .any(|b| b == SINGLE_LEVEL || b == MULTI_LEVEL)
}

/// The prefix of an MQTT 5 shared subscription's filter (§4.8.2).
pub(crate) const SHARED_PREFIX: &str = "$share/";

/// The part of `filter` that topics are matched against: all of it, but
/// for a shared subscription (§4.8.2) the filter after its ShareName.
#[inline]
pub(crate) fn without_share(filter: &str) -> &str {
    // The usual filter costs one comparison, and no call.
    if filter.as_bytes().first() != Some(&b'$') {
        return filter;
    }
    shared_filter(filter)
}

/// [`without_share`] for a filter that starts with `$`.
// Not inlined: one copy for the callbacks' two match loops.
#[inline(never)]
fn shared_filter(filter: &str) -> &str {
    let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
        return filter;
    };
    match rest.bytes().position(|b| b == SEPARATOR) {
        Some(at) => rest.get(at + 1..).unwrap_or(filter),
        None => filter,
    }
}

/// The checks of [`TopicFilter::new`], for callers that keep a plain `&str`.
// Inlined: the fast path is a few instructions, and the encoders call it
// once per filter; the error path stays out of line.
#[inline]
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if !filter.is_empty() && filter.len() <= MAX_TOPIC_LEN && filter_chars_ok(filter.as_bytes()) {
        return Ok(());
    }
    filter_error(filter)
}

/// [`validate_filter`] the long way, level by level, for its error.
#[cold]
pub(crate) fn filter_error(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.as_bytes().split(|&b| b == SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        if level.contains(&MULTI_LEVEL) && (level.len() != 1 || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcard);
        }
        if level.contains(&SINGLE_LEVEL) && level.len() != 1 {
            return Err(TopicError::SingleLevelWildcard);
        }
    }
    Ok(())
}

/// Whether `filter` matches `topic`, for strings already validated as a
/// filter and a name. On unvalidated input the answer is unspecified, but
/// there is still no panic.
pub fn matches(filter: &str, topic: &str) -> bool {
    let (filter, topic) = (filter.as_bytes(), topic.as_bytes());
    // §4.7.2: a filter starting with a wildcard must not match `$` topics.
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(&(SINGLE_LEVEL | MULTI_LEVEL)))
    {
        return false;
    }
    let mut filter_levels = filter.split(|&b| b == SEPARATOR);
    let mut topic_levels = topic.split(|&b| b == SEPARATOR);
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some([MULTI_LEVEL]), _) => return true,
            (Some([SINGLE_LEVEL]), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl core::error::Error for TopicError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_subscription_matches_as_its_filter() {
        assert_eq!(without_share("$share/g/sport/#"), "sport/#");
        assert_eq!(without_share("$share/g/#"), "#");
        assert_eq!(without_share("sport/#"), "sport/#");
        assert_eq!(without_share("$SYS/#"), "$SYS/#");
        // Malformed: kept whole (the codec refuses to send it).
        assert_eq!(without_share("$share/g"), "$share/g");
        assert!(matches(without_share("$share/g/sport/+"), "sport/tennis"));
        // §4.7.2 holds for the filter part.
        assert!(!matches(without_share("$share/g/#"), "$SYS/x"));
    }

    #[test]
    fn shared_subscriptions_are_checked_whole() {
        for ok in [
            "$share/g/a",
            "$share/group/a/+/#",
            "$share/g/#",
            "$share/g//",
            "sport/#",
        ] {
            assert_eq!(validate_shared(ok), Ok(()), "{ok}");
        }
        for bad in [
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/+/a",
            "$share/#",
            "$share/a#/b",
        ] {
            assert_eq!(
                validate_shared(bad),
                Err(TopicError::SharedSubscription),
                "{bad}"
            );
        }
    }

    /// The examples of §4.7 and the `$` rules of §4.7.2, as (filter, topic, matches).
    const MATCH_TABLE: &[(&str, &str, bool)] = &[
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "sport/tennis", true),
        ("#", "/", true),
        ("sport/tennis/#", "sport/tennis", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+", "sport", true),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport/tennis/player2", false),
        ("+/tennis/#", "sport/tennis/player1", true),
        ("+/tennis/#", "sport/tennis", true),
        ("sport", "sport", true),
        ("sport", "Sport", false),
        ("sport", "sport/", false),
        ("sport/", "sport", false),
        ("/", "/", true),
        ("#", "$SYS/monitor", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("+", "$SYS", false),
        ("#", "$", false),
        ("$share/+", "$share/x", true),
        ("a/$SYS/#", "a/$SYS/b", true),
        ("+/$SYS", "a/$SYS", true),
        ("sport/tennis/player1", "sport/tennis/player1/", false),
        ("ünïcode/+", "ünïcode/✓", true),
    ];

    #[test]
    fn the_match_table_holds() {
        for &(filter, topic, expected) in MATCH_TABLE {
            let f = TopicFilter::new(filter).unwrap();
            let t = TopicName::new(topic).unwrap();
            assert_eq!(f.matches(&t), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn valid_filters_from_the_spec_are_accepted() {
        for filter in [
            "#",
            "+",
            "sport/#",
            "sport/+",
            "+/tennis/#",
            "sport/+/player1",
            "/",
            "//",
            "+/+",
            "/+",
            "$SYS/#",
            "a b/c",
        ] {
            assert_eq!(validate_filter(filter), Ok(()), "{filter}");
        }
    }

    #[test]
    fn invalid_filters_are_rejected_with_their_reason() {
        let cases = [
            ("", TopicError::Empty),
            ("sport/tennis#", TopicError::MultiLevelWildcard),
            ("sport/tennis/#/ranking", TopicError::MultiLevelWildcard),
            ("#/", TopicError::MultiLevelWildcard),
            ("##", TopicError::MultiLevelWildcard),
            ("sport+", TopicError::SingleLevelWildcard),
            ("sport/+x/a", TopicError::SingleLevelWildcard),
            ("++", TopicError::SingleLevelWildcard),
            ("a\0b", TopicError::NulCharacter),
        ];
        for (filter, error) in cases {
            assert_eq!(validate_filter(filter), Err(error), "{filter:?}");
        }
    }

    #[test]
    fn invalid_names_are_rejected_with_their_reason() {
        assert_eq!(validate_name(""), Err(TopicError::Empty));
        assert_eq!(validate_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a+b"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a\0"), Err(TopicError::NulCharacter));
        assert_eq!(validate_name("/"), Ok(()));
        assert_eq!(validate_name(" "), Ok(()));
    }

    #[test]
    fn topics_at_the_length_limit() {
        let long = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_name(&long), Ok(()));
        assert_eq!(
            validate_name(&(long.clone() + "a")),
            Err(TopicError::TooLong)
        );
        assert_eq!(validate_filter(&(long + "a")), Err(TopicError::TooLong));
    }

    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A matcher written the obvious way, with allocation, to check the real one.
    fn reference_matches(filter: &str, topic: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
            return false;
        }
        for (i, level) in f.iter().enumerate() {
            if *level == "#" {
                return true;
            }
            match t.get(i) {
                None => return false,
                Some(tl) if *level != "+" && level != tl => return false,
                _ => {}
            }
        }
        f.len() == t.len()
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just(""),
            Just("$x"),
            Just("long-level")
        ]
    }

    fn filter_level() -> impl Strategy<Value = &'static str> {
        prop_oneof![level(), Just("+"), Just("+"), Just("#")]
    }

    proptest! {
        #[test]
        fn matching_agrees_with_the_reference(
            filter in proptest::collection::vec(filter_level(), 1..5),
            topic in proptest::collection::vec(level(), 1..5),
        ) {
            let filter = filter.join("/");
            let topic = topic.join("/");
            if let (Ok(f), Ok(t)) = (TopicFilter::new(&filter), TopicName::new(&topic)) {
                prop_assert_eq!(f.matches(&t), reference_matches(&filter, &topic), "{} vs {}", filter, topic);
            }
        }

        #[test]
        fn matching_arbitrary_strings_never_panics(filter in ".{0,20}", topic in ".{0,20}") {
            let _ = matches(&filter, &topic);
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    extern crate std;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    /// Characters that stress the fast paths: the three rejected bytes,
    /// the separator, the other bytes below the scan limit, bytes just above
    /// it, controls, and multi-byte UTF-8 (U+FEFF, U+2713, an emoji).
    fn topic_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => Just('a'),
            4 => Just('/'),
            3 => Just('+'),
            3 => Just('#'),
            1 => Just('\0'),
            1 => Just('$'),
            1 => Just(' '),
            1 => Just('*'),
            1 => Just(','),
            1 => Just('"'),
            1 => Just('\u{1f}'),
            1 => Just('\u{7f}'),
            1 => Just('\u{80}'),
            1 => Just('é'),
            1 => Just('\u{feff}'),
            1 => Just('✓'),
            1 => Just('🦀'),
            2 => proptest::char::range('\u{0}', '\u{30}'),
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(topic_char(), 0..40).prop_map(|v| v.into_iter().collect())
    }

    /// The rules of §4.7 on raw bytes, level by level, written the obvious way.
    fn reference_filter_bytes(bytes: &[u8]) -> bool {
        let levels: Vec<&[u8]> = bytes.split(|&b| b == b'/').collect();
        !bytes.contains(&0)
            && levels.iter().enumerate().all(|(i, level)| {
                (!level.contains(&b'+') || *level == b"+")
                    && (!level.contains(&b'#') || (*level == b"#" && i + 1 == levels.len()))
            })
    }

    proptest! {
        #[test]
        fn the_fast_filter_check_agrees_with_the_long_way(filter in topic()) {
            prop_assert_eq!(validate_filter(&filter), filter_error(&filter), "{:?}", filter);
        }

        #[test]
        fn the_fast_name_check_agrees_with_the_long_way(name in topic()) {
            prop_assert_eq!(validate_name(&name), name_error(&name), "{:?}", name);
        }

        #[test]
        fn filter_chars_agree_with_a_level_loop_on_any_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(b'+'), Just(b'#'), Just(b'/'), Just(b'a'),
                            Just(0x80u8), Just(0xffu8), any::<u8>()], 0..40)
        ) {
            prop_assert_eq!(filter_chars_ok(&bytes), reference_filter_bytes(&bytes), "{:?}", bytes);
        }

        #[test]
        fn name_chars_agree_with_a_byte_loop_on_any_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(b'+'), Just(b'#'), Just(0x2au8), Just(0x2cu8),
                            Just(0x80u8), Just(0xffu8), any::<u8>()], 0..40)
        ) {
            let expected = bytes.iter().all(|&b| b != 0 && b != b'+' && b != b'#');
            prop_assert_eq!(name_chars_ok(&bytes), expected, "{:?}", bytes);
        }
    }

    #[test]
    fn wildcards_at_every_word_position_are_placed_exactly() {
        // Each position of a 3-word filter, so every lane of the scan and the
        // overlapping last word see a `+` and a `#`, alone and not.
        for len in 1..=24 {
            for at in 0..len {
                for wildcard in ['+', '#'] {
                    let mut chars: Vec<char> = std::iter::repeat_n('a', len).collect();
                    chars[at] = wildcard;
                    let filter: String = chars.iter().collect();
                    prop_assert_eq_std(validate_filter(&filter), filter_error(&filter), &filter);
                    let mut alone = chars.clone();
                    if at > 0 {
                        alone[at - 1] = '/';
                    }
                    if at + 1 < len {
                        alone[at + 1] = '/';
                    }
                    let filter: String = alone.iter().collect();
                    prop_assert_eq_std(validate_filter(&filter), filter_error(&filter), &filter);
                }
            }
        }
    }

    #[test]
    fn both_copies_of_the_filter_scan_judge_edge_cases_like_the_long_way() {
        let cases = [
            ("#", Ok(())),
            ("+", Ok(())),
            ("/", Ok(())),
            ("sport/#", Ok(())),
            ("sport/+/player1", Ok(())),
            ("+/+/+", Ok(())),
            ("//+//", Ok(())),
            ("$SYS/#", Ok(())),
            ("a,+", Err(TopicError::SingleLevelWildcard)),
            ("$,/+", Ok(())),
            ("ünïcode/+/✓", Ok(())),
            ("🦀/#", Ok(())),
            ("€+", Err(TopicError::SingleLevelWildcard)),
            ("✓/#/✓", Err(TopicError::MultiLevelWildcard)),
            ("sport/#/x", Err(TopicError::MultiLevelWildcard)),
            ("sport/tennis#", Err(TopicError::MultiLevelWildcard)),
            ("#/", Err(TopicError::MultiLevelWildcard)),
            ("##", Err(TopicError::MultiLevelWildcard)),
            ("+#", Err(TopicError::MultiLevelWildcard)),
            ("#+", Err(TopicError::MultiLevelWildcard)),
            ("a+", Err(TopicError::SingleLevelWildcard)),
            ("+a", Err(TopicError::SingleLevelWildcard)),
            ("sensors/+temperature", Err(TopicError::SingleLevelWildcard)),
            ("sensors/temperature+", Err(TopicError::SingleLevelWildcard)),
            ("\0", Err(TopicError::NulCharacter)),
            ("ab\0", Err(TopicError::NulCharacter)),
            ("abcdefg\0", Err(TopicError::NulCharacter)),
            ("a/b/c/d/e/f/g/h/\0/i", Err(TopicError::NulCharacter)),
            ("ü\0", Err(TopicError::NulCharacter)),
        ];
        for (filter, expected) in cases {
            assert_eq!(validate_filter(filter), expected, "{filter:?}");
            assert_eq!(filter_error(filter), expected, "{filter:?}");
            let bytes = filter.as_bytes();
            assert_eq!(filter_chars_ok(bytes), expected.is_ok(), "{filter:?}");
            assert_eq!(
                filter_chars_ok_inline(bytes),
                expected.is_ok(),
                "{filter:?}"
            );
        }
    }

    /// The rules of §4.7 on raw bytes, one byte at a time with its two
    /// neighbours, and no allocation: the reference the word scans are
    /// compared with below.
    fn reference_filter_byte_loop(bytes: &[u8]) -> bool {
        bytes.iter().enumerate().all(|(i, &b)| {
            let after_separator = i == 0 || bytes[i - 1] == b'/';
            let last = i + 1 == bytes.len();
            match b {
                0 => false,
                b'+' => after_separator && (last || bytes[i + 1] == b'/'),
                b'#' => after_separator && last,
                _ => true,
            }
        })
    }

    /// Both copies of the scan, and the level loop, against the byte loop.
    fn assert_filter_scans_agree(bytes: &[u8]) {
        let want = reference_filter_byte_loop(bytes);
        assert_eq!(filter_chars_ok_inline(bytes), want, "{bytes:?}");
        assert_eq!(filter_chars_ok(bytes), want, "{bytes:?}");
        assert_eq!(reference_filter_bytes(bytes), want, "{bytes:?}");
    }

    #[test]
    fn every_short_filter_over_a_small_alphabet() {
        // Every string of up to 6 bytes over the bytes that matter: the
        // three refused, the separator, `$` (or-ed into `,` at byte 0), `,`
        // (a borrow), a letter and a UTF-8 lead byte (over 0xAC).
        const ALPHABET: [u8; 8] = [b'a', b'/', b'+', b'#', 0, b'$', b',', 0xc3];
        for len in 0..=6u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                let mut bytes = [0u8; 6];
                for byte in &mut bytes[..len as usize] {
                    *byte = ALPHABET[n % ALPHABET.len()];
                    n /= ALPHABET.len();
                }
                assert_filter_scans_agree(&bytes[..len as usize]);
            }
        }
    }

    #[test]
    fn one_or_two_special_bytes_at_every_position_around_word_boundaries() {
        // Lengths 0 to 20 and around 24 and 32 (word boundaries of both
        // scans, 4 and 8 bytes), on backgrounds of letters, of levels and of
        // two-byte UTF-8; each position (and each pair of positions) holds
        // a wildcard, NUL, `$`, the separator or a non-ASCII byte.
        const SPECIAL: [u8; 8] = [b'+', b'#', 0, b'$', b'/', b',', 0xac, 0xff];
        let backgrounds: [&[u8]; 3] = [b"abcdefgh", b"ab/cd/ef/", "é/ü".as_bytes()];
        let lens = (0..=20).chain(23..=25).chain(31..=33);
        for len in lens {
            for background in backgrounds {
                let base: Vec<u8> = background.iter().copied().cycle().take(len).collect();
                assert_filter_scans_agree(&base);
                for i in 0..len {
                    for a in SPECIAL {
                        let mut one = base.clone();
                        one[i] = a;
                        assert_filter_scans_agree(&one);
                        for j in i + 1..len {
                            for b in SPECIAL {
                                let mut two = one.clone();
                                two[j] = b;
                                assert_filter_scans_agree(&two);
                            }
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn filter_scans_agree_with_the_byte_loop_on_utf8_filters(
            levels in proptest::collection::vec(
                prop_oneof![
                    3 => Just(String::from("+")),
                    2 => Just(String::from("#")),
                    1 => Just(String::new()),
                    4 => proptest::collection::vec(topic_char(), 0..12)
                        .prop_map(|v| v.into_iter().collect::<String>()),
                ],
                1..6,
            )
        ) {
            let filter = levels.join("/");
            let bytes = filter.as_bytes();
            prop_assert_eq!(filter_chars_ok_inline(bytes), reference_filter_byte_loop(bytes), "{:?}", filter);
            prop_assert_eq!(filter_chars_ok(bytes), reference_filter_byte_loop(bytes), "{:?}", filter);
            let want = if filter.is_empty() { Err(TopicError::Empty) } else { filter_error(&filter) };
            prop_assert_eq!(validate_filter(&filter), want, "{:?}", filter);
            prop_assert_eq!(want.is_ok(), !filter.is_empty() && reference_filter_byte_loop(bytes));
        }
    }

    fn prop_assert_eq_std(got: Result<(), TopicError>, want: Result<(), TopicError>, what: &str) {
        assert_eq!(got, want, "{what:?}");
    }
}

#[cfg(test)]
mod spec_reading_tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn spec(f: &str) -> bool {
        if f.is_empty() || f.len() > 65535 || f.contains('\0') {
            return false;
        }
        let levels: Vec<&str> = f.split('/').collect();
        let n = levels.len();
        levels.iter().enumerate().all(|(i, l)| {
            if l.contains('#') {
                *l == "#" && i + 1 == n
            } else if l.contains('+') {
                *l == "+"
            } else {
                true
            }
        })
    }

    #[test]
    fn random_filters_agree_with_a_plain_reading_of_the_spec() {
        let alphabet: [&str; 12] = [
            "a", "/", "+", "#", "\0", "$", ",", "é", "€", "😀", "\u{7f}", "+/",
        ];
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..400_000 {
            let target = (next() % 40) as usize;
            let mut f = String::new();
            while f.len() < target {
                f.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            let want = spec(&f);
            assert_eq!(validate_filter(&f).is_ok(), want, "{f:?}");
            assert_eq!(
                crate::codec::Subscribe {
                    packet_id: 1,
                    filters: crate::codec::SubscribeFilters::new(&[crate::codec::Subscription {
                        filter: &f,
                        qos: crate::codec::QoS::AtMostOnce
                    }]),
                }
                .encode(&mut [0u8; 256])
                .is_ok(),
                want,
                "encode {f:?}"
            );
        }
        for len in [65534usize, 65535, 65536] {
            for tail in ["a", "#", "/#", "+", "/+", "\0"] {
                let mut f = "a".repeat(len - tail.len());
                f.push_str(tail);
                assert_eq!(
                    validate_filter(&f).is_ok(),
                    spec(&f),
                    "len {len} tail {tail:?}"
                );
                let mut f2 = String::from("$");
                f2.push_str(&"b".repeat(len - 1 - tail.len()));
                f2.push_str(tail);
                assert_eq!(
                    validate_filter(&f2).is_ok(),
                    spec(&f2),
                    "$ len {len} tail {tail:?}"
                );
            }
        }
    }
}
