//! Parsing an email address into the parts the fraud model scores, and the character
//! statistics of its local part.
//!
//! Accepted forms: `local@domain`, `Display Name <local@domain>`, and either with a quoted
//! display name. The local part is lower-cased (mail systems treat it case-insensitively in
//! practice) and a `+tag` sub-address is split off: `Jane.Doe+news@Example.com` scores as
//! `jane.doe` at `example.com`, with `has_tag`. Anything else — no `@`, an empty side, white
//! space or control characters in the address, a domain without a dot or with characters a
//! host name cannot have, more than 254 characters — is an [`AddressError`], which the
//! operator dead-letters. Errors never quote the address.

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    /// Local part, lower-case, without the `+tag`.
    pub local: String,
    /// Whether a `+tag` sub-address was present.
    pub has_tag: bool,
    /// Domain, lower-case, without a trailing dot.
    pub domain: String,
}

/// Why a string is not an address the model can score.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `@`, or nothing before or after it.
    #[error("not an email address (needs local@domain)")]
    Shape,
    /// Longer than RFC 5321 allows.
    #[error("address longer than 254 characters")]
    TooLong,
    /// White space or control characters inside the address.
    #[error("address contains white space or control characters")]
    Characters,
    /// The domain is not a host name with a dot.
    #[error("domain is not a host name (letters, digits, '-', dot-separated)")]
    Domain,
}

/// Longest address RFC 5321 allows in a path.
const MAX_ADDRESS_LENGTH: usize = 254;

/// Parses `text` (see the module doc).
pub fn parse_address(text: &str) -> Result<EmailAddress, AddressError> {
    let text = text.trim();
    // `Name <addr>`: the address is inside the last angle brackets.
    let address = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
    .trim();
    if address.len() > MAX_ADDRESS_LENGTH {
        return Err(AddressError::TooLong);
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AddressError::Characters);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(AddressError::Shape)?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let local = local.trim_matches('"').to_lowercase();
    let (local, has_tag) = match local.split_once('+') {
        Some((base, _tag)) => (base.to_owned(), true),
        None => (local, false),
    };
    if local.is_empty() || domain.is_empty() {
        return Err(AddressError::Shape);
    }
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !labels_ok || !domain.contains('.') {
        return Err(AddressError::Domain);
    }
    Ok(EmailAddress {
        local,
        has_tag,
        domain,
    })
}

/// Whether `c` is a vowel for the vowel ratio and consonant runs; `y` counts as one, as in
/// `lynn` or `yvonne`, so names are not mistaken for consonant mash.
fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// Separators people put between name parts.
pub fn is_separator(c: char) -> bool {
    matches!(c, '.' | '_' | '-')
}

/// Character statistics of a local part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CharStats {
    /// Characters.
    pub length: usize,
    /// Share of digits.
    pub digit_ratio: f64,
    /// Longest run of digits.
    pub longest_digit_run: usize,
    /// Vowels (a e i o u y) among letters; 0 without letters.
    pub vowel_ratio: f64,
    /// Longest run of consonant letters.
    pub longest_consonant_run: usize,
    /// Shannon entropy of the character distribution, bits.
    pub entropy: f64,
    /// Share of characters inside keyboard walks (see [`keyboard_walk_share`]).
    pub keyboard_walk: f64,
    /// `.`, `_` and `-` characters.
    pub separators: usize,
}

impl CharStats {
    /// Statistics of `local`.
    pub fn of(local: &str) -> Self {
        let chars: Vec<char> = local.chars().collect();
        let length = chars.len();
        let digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
        let letters = chars.iter().filter(|c| c.is_alphabetic()).count();
        let vowels = chars.iter().filter(|&&c| is_vowel(c)).count();
        Self {
            length,
            digit_ratio: ratio(digits, length),
            longest_digit_run: longest_run(&chars, |c| c.is_ascii_digit()),
            vowel_ratio: ratio(vowels, letters),
            longest_consonant_run: longest_run(&chars, |c| c.is_alphabetic() && !is_vowel(c)),
            entropy: entropy(&chars),
            keyboard_walk: keyboard_walk_share(&chars),
            separators: chars.iter().filter(|&&c| is_separator(c)).count(),
        }
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn longest_run(chars: &[char], member: impl Fn(char) -> bool) -> usize {
    let (mut best, mut current) = (0, 0);
    for &c in chars {
        current = if member(c) { current + 1 } else { 0 };
        best = best.max(current);
    }
    best
}

fn entropy(chars: &[char]) -> f64 {
    if chars.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::BTreeMap::new();
    for &c in chars {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    counts
        .values()
        .map(|&count| {
            let p = count as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Rows of a US QWERTY keyboard; each row is shifted half a key right of the one above.
const KEYBOARD_ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];

fn key_position(c: char) -> Option<(i32, i32)> {
    KEYBOARD_ROWS
        .iter()
        .enumerate()
        .find_map(|(row, keys)| keys.find(c).map(|column| (row as i32, column as i32)))
}

/// Whether `a` and `b` are the same or touching keys: same row one apart, or the row below
/// at the same or one lower column (the stagger: `a` touches `q` and `w`).
fn keys_touch(a: char, b: char) -> bool {
    let (Some((row_a, col_a)), Some((row_b, col_b))) = (key_position(a), key_position(b)) else {
        return false;
    };
    match row_b - row_a {
        0 => (col_a - col_b).abs() <= 1,
        1 => col_b == col_a || col_b == col_a - 1,
        -1 => col_a == col_b || col_a == col_b - 1,
        _ => false,
    }
}

/// Share of characters that sit in a keyboard walk: a run of at least 3 characters where
/// each is the same as or touches the previous one (`qwerty`, `asdf`, `zaq1`, `1qaz`). Names
/// rarely have such runs; random touching pairs (`h`→`n` in `john`) are too short to count.
pub fn keyboard_walk_share(chars: &[char]) -> f64 {
    if chars.is_empty() {
        return 0.0;
    }
    let mut covered = 0;
    let mut run = 1;
    for index in 1..=chars.len() {
        if index < chars.len() && keys_touch(chars[index - 1], chars[index]) {
            run += 1;
            continue;
        }
        if run >= 3 {
            covered += run;
        }
        run = 1;
    }
    covered as f64 / chars.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_display_names_tags_and_case() {
        let parsed = parse_address("\"Doe, Jane\" <Jane.Doe+News@Example.COM.>").unwrap();
        assert_eq!(parsed.local, "jane.doe");
        assert!(parsed.has_tag);
        assert_eq!(parsed.domain, "example.com");
        let plain = parse_address("tim@company.com").unwrap();
        assert_eq!((plain.local.as_str(), plain.has_tag), ("tim", false));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        assert_eq!(parse_address("no-at-sign"), Err(AddressError::Shape));
        assert_eq!(parse_address("@example.com"), Err(AddressError::Shape));
        assert_eq!(parse_address("+tag@example.com"), Err(AddressError::Shape));
        assert_eq!(
            parse_address("a b@example.com"),
            Err(AddressError::Characters)
        );
        assert_eq!(parse_address("a@localhost"), Err(AddressError::Domain));
        assert_eq!(parse_address("a@exa_mple.com"), Err(AddressError::Domain));
        assert_eq!(parse_address("a@example..com"), Err(AddressError::Domain));
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(parse_address(&long), Err(AddressError::TooLong));
    }

    #[test]
    fn statistics_match_hand_counts() {
        let stats = CharStats::of("xkcd1990.q");
        assert_eq!(stats.length, 10);
        assert!((stats.digit_ratio - 0.4).abs() < 1e-12);
        assert_eq!(stats.longest_digit_run, 4);
        assert_eq!(stats.longest_consonant_run, 4); // x k c d
        assert_eq!(stats.vowel_ratio, 0.0);
        assert_eq!(stats.separators, 1);
        // 10 characters: 9 twice, the other 8 once → H = -(0.2·log2 0.2 + 8·0.1·log2 0.1).
        let expected = -(0.2f64 * 0.2f64.log2() + 0.8 * 0.1f64.log2());
        assert!((stats.entropy - expected).abs() < 1e-12);
        assert_eq!(CharStats::of("lynn").longest_consonant_run, 2); // y is a vowel here
    }

    #[test]
    fn keyboard_walks_are_found_and_names_are_not() {
        assert_eq!(keyboard_walk_share(&['q', 'w', 'e', 'r', 't', 'y']), 1.0);
        assert_eq!(
            keyboard_walk_share(&"1qaz".chars().collect::<Vec<_>>()),
            1.0
        );
        assert_eq!(
            keyboard_walk_share(&"john".chars().collect::<Vec<_>>()),
            0.0
        );
        assert_eq!(
            keyboard_walk_share(&"asdfjane".chars().collect::<Vec<_>>()),
            0.5
        );
        assert_eq!(keyboard_walk_share(&[]), 0.0);
    }
}
