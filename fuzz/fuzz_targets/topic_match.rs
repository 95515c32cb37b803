//! Topic validation and matching against a reference written the obvious
//! way, with `std` strings, `split` and `Vec`.
//!
//! Strings are drawn mostly from a small alphabet (`a`, `b`, `/`, `+`, `#`,
//! `$`, NUL, a multi-byte character) so that levels, wildcards and `$` topics
//! come up often, with arbitrary characters mixed in.
//!
//! - `validate_name` / `validate_filter` accept exactly what the reference accepts,
//!   and `TopicName::new` / `TopicFilter::new` agree with them.
//! - When both are valid, `matches` agrees with the reference matcher, and
//!   `TopicFilter::matches` with the free function.
//! - Every valid name is a valid filter and matches itself.
//! - `matches` never panics, valid input or not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::topic::{self, TopicFilter, TopicName};

#[derive(Arbitrary, Debug)]
enum Sym {
    A,
    B,
    Slash,
    Plus,
    Hash,
    Dollar,
    Nul,
    Wide,
    Any(char),
}

#[derive(Arbitrary, Debug)]
struct Input {
    filter: Vec<Sym>,
    topic: Vec<Sym>,
}

fn render(syms: &[Sym]) -> String {
    syms.iter()
        .map(|s| match s {
            Sym::A => 'a',
            Sym::B => 'b',
            Sym::Slash => '/',
            Sym::Plus => '+',
            Sym::Hash => '#',
            Sym::Dollar => '$',
            Sym::Nul => '\0',
            Sym::Wide => 'é',
            Sym::Any(c) => *c,
        })
        .collect()
}

fn reference_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 65_535 && !name.contains(['\0', '+', '#'])
}

fn reference_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > 65_535 || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| {
        let hash_ok = !level.contains('#') || (*level == "#" && i == levels.len() - 1);
        let plus_ok = !level.contains('+') || *level == "+";
        hash_ok && plus_ok
    })
}

fn reference_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    fn levels(f: &[&str], t: &[&str]) -> bool {
        match (f.split_first(), t.split_first()) {
            (Some((&"#", _)), _) => true,
            (Some((&"+", f_rest)), Some((_, t_rest))) => levels(f_rest, t_rest),
            (Some((fl, f_rest)), Some((tl, t_rest))) => fl == tl && levels(f_rest, t_rest),
            (None, None) => true,
            _ => false,
        }
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    levels(&f, &t)
}

fuzz_target!(|input: Input| {
    let filter = render(&input.filter);
    let topic = render(&input.topic);

    // Never panics, whatever the strings.
    let _ = topic::matches(&filter, &topic);
    let _ = topic::matches(&topic, &filter);

    let filter_ok = topic::validate_filter(&filter).is_ok();
    let name_ok = topic::validate_name(&topic).is_ok();
    assert_eq!(
        filter_ok,
        reference_valid_filter(&filter),
        "validate_filter({filter:?})"
    );
    assert_eq!(
        name_ok,
        reference_valid_name(&topic),
        "validate_name({topic:?})"
    );
    assert_eq!(TopicFilter::new(&filter).is_ok(), filter_ok);
    assert_eq!(TopicName::new(&topic).is_ok(), name_ok);
    // The other way round too: names and filters share one alphabet.
    assert_eq!(
        topic::validate_filter(&topic).is_ok(),
        reference_valid_filter(&topic)
    );
    assert_eq!(
        topic::validate_name(&filter).is_ok(),
        reference_valid_name(&filter)
    );

    if name_ok {
        assert!(
            topic::validate_filter(&topic).is_ok(),
            "name {topic:?} is not a filter"
        );
        assert!(
            topic::matches(&topic, &topic),
            "{topic:?} does not match itself"
        );
    }
    if filter_ok && name_ok {
        let expected = reference_matches(&filter, &topic);
        assert_eq!(
            topic::matches(&filter, &topic),
            expected,
            "{filter:?} vs {topic:?}"
        );
        let (f, t) = (
            TopicFilter::new(&filter).unwrap(),
            TopicName::new(&topic).unwrap(),
        );
        assert_eq!(f.matches(&t), expected);
    }
});
