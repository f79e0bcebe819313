//! One canonical key per person, whichever source names them: an address in a From header
//! (`Phillip Allen <Phillip.Allen@corp.com>`), a bare login (`phillip_allen`), a Windows
//! account (`CORP\phillip.allen`) or an entity key of the alert operator (`user:phillip.allen`)
//! all become `phillip-allen`.
//!
//! Rules, in order: take the address inside `<…>` if there is one; drop a `user:` entity
//! prefix and a `DOMAIN\` account prefix; keep the local part (before the last `@`); drop a
//! `+tag` (sub-addressing names the same mailbox); lower-case; `.`, `_`, `-` and whitespace
//! become `-`; every other character that is not a letter or digit is removed; runs of `-`
//! collapse and leading/trailing `-` go. A name with nothing left has no key (`None`).
//!
//! Deliberately *not* done: mapping nicknames or different spellings of one person; the key
//! is a normalisation, not identity resolution.

use super::message::without_display_name;

/// The canonical user key of `raw`, or `None` when nothing usable is left.
pub fn user_key(raw: &str) -> Option<String> {
    let text = without_display_name(raw);
    let text = strip_prefix_ignore_case(text, "user:").unwrap_or(text);
    let text = text.rsplit('\\').next().unwrap_or(text);
    let local = match text.rfind('@') {
        Some(at) => &text[..at],
        None => text,
    };
    let local = match local.find('+') {
        Some(plus) if plus > 0 => &local[..plus],
        _ => local,
    };
    let mut key = String::with_capacity(local.len());
    for ch in local.chars() {
        if ch == '.' || ch == '_' || ch == '-' || ch.is_whitespace() {
            if !key.is_empty() && !key.ends_with('-') {
                key.push('-');
            }
        } else if ch.is_alphanumeric() {
            key.extend(ch.to_lowercase());
        }
    }
    while key.ends_with('-') {
        key.pop();
    }
    (!key.is_empty()).then_some(key)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> Option<String> {
        user_key(raw)
    }

    #[test]
    fn one_person_one_key_across_sources() {
        for raw in [
            "Phillip.Allen@corp.com",
            "phillip_allen",
            "Phillip Allen <phillip.allen@corp.com>",
            "\"Allen, Phillip\" <Phillip_Allen@Corp.COM>",
            "CORP\\phillip.allen",
            "user:phillip.allen",
            "USER:Phillip_Allen",
            "phillip.allen+news@corp.com",
            "  phillip..allen  ",
            "phillip - allen",
        ] {
            assert_eq!(key(raw).as_deref(), Some("phillip-allen"), "{raw}");
        }
    }

    #[test]
    fn symbols_are_removed_and_separators_collapse() {
        assert_eq!(key("o'brien@corp.com").as_deref(), Some("obrien"));
        assert_eq!(key("__jane__doe__").as_deref(), Some("jane-doe"));
        assert_eq!(key("j.r.r.tolkien").as_deref(), Some("j-r-r-tolkien"));
        assert_eq!(key("A1B2@x.org").as_deref(), Some("a1b2"));
        assert_eq!(
            key("ÉLODIE.Durand@corp.fr").as_deref(),
            Some("élodie-durand")
        );
    }

    #[test]
    fn the_last_at_sign_splits_and_a_leading_plus_is_kept_out() {
        // Quoted local parts may contain '@'; the domain follows the last one.
        assert_eq!(key("\"a@b\"@corp.com").as_deref(), Some("ab"));
        // '+' at the start is not sub-addressing; it is a symbol and goes.
        assert_eq!(key("+alerts@corp.com").as_deref(), Some("alerts"));
    }

    #[test]
    fn nothing_usable_means_no_key() {
        for raw in [
            "",
            "   ",
            "@corp.com",
            "<>",
            "...",
            "+@x",
            "user:",
            "CORP\\",
        ] {
            assert_eq!(key(raw), None, "{raw:?}");
        }
    }
}
