//! Disposable and free-mail domain lists, and the offline domain hints.
//!
//! List files hold one domain per line; `*.example.com` means every subdomain of
//! `example.com` (not `example.com` itself); blank lines and `#` comments are skipped. The
//! shipped lists come from the npm packages `disposable-email-domains` and `freemail` (see
//! `models/address/sources/`); a model version carries a copy, named with its sha256 in the
//! manifest, and `[operators.address]` can add entries at start. A domain is disposable when
//! it or one of its parent domains is listed exactly (providers hand out subdomains:
//! `x.mailinator.com`), or when a wildcard covers it; disposable wins over free.

use std::collections::HashSet;

/// Which list a domain is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainClass {
    /// A throwaway-mail provider.
    Disposable,
    /// A free mailbox provider (gmail.com, gmx.de, …).
    Free,
    /// Neither: usually an organisation's own domain.
    Other,
}

impl DomainClass {
    /// Name as in scored events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disposable => "disposable",
            Self::Free => "free",
            Self::Other => "other",
        }
    }
}

/// One list: exact domains and wildcard parents.
#[derive(Debug, Clone, Default)]
pub struct DomainList {
    exact: HashSet<String>,
    /// Domains every subdomain of which is listed (from `*.domain` lines).
    wildcard_parents: HashSet<String>,
}

impl DomainList {
    /// Parses list text (see the module doc).
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        list.extend(text.lines());
        list
    }

    /// Adds entries in list syntax.
    pub fn extend<'a>(&mut self, entries: impl IntoIterator<Item = &'a str>) {
        for line in entries {
            let entry = line
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            match entry.strip_prefix("*.") {
                Some(parent) => self.wildcard_parents.insert(parent.to_owned()),
                None => self.exact.insert(entry),
            };
        }
    }

    /// Entries on the list.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `domain` (lower-case) is covered: listed itself, a subdomain of a listed
    /// domain, or under a wildcard.
    pub fn covers(&self, domain: &str) -> bool {
        if self.exact.contains(domain) {
            return true;
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if self.exact.contains(parent) || self.wildcard_parents.contains(parent) {
                return true;
            }
            rest = parent;
        }
        false
    }
}

/// The disposable and free lists together.
#[derive(Debug, Clone, Default)]
pub struct DomainLists {
    /// Throwaway providers.
    pub disposable: DomainList,
    /// Free mailbox providers.
    pub free: DomainList,
}

impl DomainLists {
    /// Which list `domain` is on; disposable wins.
    pub fn classify(&self, domain: &str) -> DomainClass {
        if self.disposable.covers(domain) {
            DomainClass::Disposable
        } else if self.free.covers(domain) {
            DomainClass::Free
        } else {
            DomainClass::Other
        }
    }
}

/// Top-level domains delegated before the 2012 new-gTLD round (plus every two-letter
/// country code): registrations there skew old and established. A domain under a newer TLD
/// (`.xyz`, `.top`, `.online`, …) is an offline hint of a young, cheap registration.
const LEGACY_TLDS: [&str; 20] = [
    "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "aero", "coop",
    "museum", "mobi", "asia", "tel", "travel", "jobs", "cat",
];

/// Offline hints about a domain's age and make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainHints {
    /// Share of digits in the registrable label (`mail4u` in `mail4u.example.xyz` → the
    /// label left of the TLD; digits are common in generated throwaway domains).
    pub label_digit_ratio: f64,
    /// Length of that label.
    pub label_length: usize,
    /// 1 when the TLD is neither a legacy gTLD nor a country code.
    pub new_tld: bool,
}

impl DomainHints {
    /// Hints for `domain` (lower-case, dot-separated).
    pub fn of(domain: &str) -> Self {
        let mut labels = domain.rsplit('.');
        let tld = labels.next().unwrap_or("");
        let label = labels.next().unwrap_or("");
        let digits = label.chars().filter(char::is_ascii_digit).count();
        let label_length = label.chars().count();
        Self {
            label_digit_ratio: if label_length == 0 {
                0.0
            } else {
                digits as f64 / label_length as f64
            },
            label_length,
            new_tld: !(tld.len() == 2 || LEGACY_TLDS.contains(&tld)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_parent_and_wildcard_matches() {
        let list = DomainList::parse("mailinator.com\n# comment\n\n*.33mail.com\nTEMP.org # x\n");
        assert_eq!(list.len(), 3);
        assert!(list.covers("mailinator.com"));
        assert!(
            list.covers("x.mailinator.com"),
            "subdomain of a listed domain"
        );
        assert!(list.covers("temp.org"), "entries are lower-cased");
        assert!(list.covers("me.33mail.com"));
        assert!(list.covers("a.b.33mail.com"));
        assert!(
            !list.covers("33mail.com"),
            "a wildcard covers subdomains only"
        );
        assert!(!list.covers("notmailinator.com"));
        assert!(!list.covers("com"));
    }

    #[test]
    fn disposable_wins_over_free() {
        let lists = DomainLists {
            disposable: DomainList::parse("both.com\n"),
            free: DomainList::parse("both.com\ngmail.com\n"),
        };
        assert_eq!(lists.classify("both.com"), DomainClass::Disposable);
        assert_eq!(lists.classify("gmail.com"), DomainClass::Free);
        assert_eq!(lists.classify("corp.example"), DomainClass::Other);
    }

    #[test]
    fn hints_read_the_registrable_label_and_tld() {
        let hints = DomainHints::of("mx.mail4u.xyz");
        assert_eq!(hints.label_length, 6);
        assert!((hints.label_digit_ratio - 1.0 / 6.0).abs() < 1e-12);
        assert!(hints.new_tld);
        assert!(!DomainHints::of("example.co.uk").new_tld);
        assert!(!DomainHints::of("corp.com").new_tld);
    }
}
