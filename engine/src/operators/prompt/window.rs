//! Windows of a prompt for the L2 classifier: token sequences of at most the model's
//! `max_length`, special tokens included.
//!
//! A prompt within one window is one sequence. A longer prompt is cut into windows of
//! `max_length - specials` content tokens that overlap by [`WINDOW_STRIDE_TOKENS`], so a phrase
//! cut by one window's edge is whole in the next. At most `max_chunks` windows are scored: all
//! of them when the prompt has that few, else the first `max_chunks - 1` and a last window
//! holding the prompt's final tokens — the beginning sets the scene, the end is where an
//! injection after a long preamble sits.
//!
//! Guarantees: the windows are exact slices of the prompt's full tokenization (checked by the
//! tests against an untruncated encode); work is bounded however long the prompt — only a
//! head cut at a whitespace boundary (enough bytes for the tokens that decide the window
//! count) and a tail cut the same way are tokenized, falling back to the whole text when a cut
//! holds too few tokens (the tokenizer's normalizer and pre-tokenizer work word by word, so a
//! text cut between words yields exactly the tokens of those words). [`PromptTokenizer::first`]
//! gives the first window alone, for callers that may not need the others.
//!
//! Why by hand: `tokenizers` 0.23.2 stops tokenizing at `max_length` when truncation is set,
//! so its overflowing encodings held one 34-token tail of the first window instead of the
//! prompt's later windows; the windows here do not depend on that behaviour.

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::l2::L2Error;

/// Tokens shared by consecutive windows of a long prompt, so a phrase cut by a window edge
/// is whole in the next one.
pub const WINDOW_STRIDE_TOKENS: usize = 32;

/// One window of a tokenized prompt: token ids and type ids, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequence {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Token type ids (segment ids).
    pub type_ids: Vec<i64>,
}

/// The special tokens the model's post-processor puts around one sequence, found once by
/// encoding a probe with and without them.
#[derive(Debug, Clone, Default)]
struct Specials {
    prefix_ids: Vec<i64>,
    prefix_types: Vec<i64>,
    suffix_ids: Vec<i64>,
    suffix_types: Vec<i64>,
    content_type: i64,
}

/// Tokenizer with the model's windowing.
#[derive(Debug, Clone)]
pub struct PromptTokenizer {
    /// Stops after the first window's tokens and one more (right truncation, early exit).
    first: Tokenizer,
    /// Stops after the tokens that decide the window count (right truncation, early exit).
    head: Tokenizer,
    /// Keeps the last window's content tokens (left truncation, early exit from the end).
    tail: Tokenizer,
    specials: Specials,
    /// Content tokens per window.
    content: usize,
    /// Tokens between consecutive window starts.
    step: usize,
    max_chunks: usize,
}

fn widen(ids: &[u32]) -> Vec<i64> {
    ids.iter().map(|id| i64::from(*id)).collect()
}

impl PromptTokenizer {
    /// Loads `tokenizer.json` bytes with windows of `max_length` tokens.
    pub fn from_bytes(bytes: &[u8], max_length: usize, max_chunks: usize) -> Result<Self, L2Error> {
        let model_error = |error: &dyn std::fmt::Display| L2Error::Model(error.to_string());
        let mut plain = Tokenizer::from_bytes(bytes).map_err(|e| model_error(&e))?;
        plain.with_padding(None);
        plain.with_truncation(None).map_err(|e| model_error(&e))?;
        let specials = find_specials(&plain)?;
        let added = specials.prefix_ids.len() + specials.suffix_ids.len();
        let content = max_length
            .checked_sub(added)
            .filter(|content| *content >= 4)
            .ok_or_else(|| {
                L2Error::Model(format!(
                    "max_length {max_length} leaves no room beside {added} special tokens"
                ))
            })?;
        let stride = WINDOW_STRIDE_TOKENS.min(max_length / 4);
        let step = content - stride;
        let max_chunks = max_chunks.max(1);
        let limited = |max_length: usize, direction: TruncationDirection| {
            let mut tokenizer = plain.clone();
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length,
                    stride: 0,
                    strategy: TruncationStrategy::LongestFirst,
                    direction,
                }))
                .map_err(|e| model_error(&e))?;
            Ok::<_, L2Error>(tokenizer)
        };
        Ok(Self {
            first: limited(content + 1, TruncationDirection::Right)?,
            head: limited(
                head_limit(content, step, max_chunks),
                TruncationDirection::Right,
            )?,
            tail: limited(content, TruncationDirection::Left)?,
            specials,
            content,
            step,
            max_chunks,
        })
    }

    /// The first window of `text`, and whether the prompt has more (then [`Self::encode`]'s
    /// first window is the same sequence).
    pub fn first(&self, text: &str) -> Result<(Sequence, bool), L2Error> {
        let ids = self.bounded_ids(&self.first, text, self.content + 1, Cut::Head)?;
        let end = ids.len().min(self.content);
        Ok((self.sequence(&ids[..end]), ids.len() > self.content))
    }

    /// The windows of `text` (see the module doc), in prompt order.
    pub fn encode(&self, text: &str) -> Result<Vec<Sequence>, L2Error> {
        let limit = head_limit(self.content, self.step, self.max_chunks);
        let head = self.bounded_ids(&self.head, text, limit, Cut::Head)?;
        if head.len() < limit {
            return Ok(window_starts(head.len(), self.content, self.step)
                .map(|start| self.sequence(&head[start..(start + self.content).min(head.len())]))
                .collect());
        }
        // More windows than scored: the first ones from the head, the last from the tail.
        let mut windows: Vec<Sequence> = (0..self.max_chunks - 1)
            .map(|index| {
                let start = index * self.step;
                self.sequence(&head[start..start + self.content])
            })
            .collect();
        let tail = self.bounded_ids(&self.tail, text, self.content, Cut::Tail)?;
        windows.push(self.sequence(&tail));
        Ok(windows)
    }

    /// The first (head) or last (tail) `limit` content tokens of `text`, as `tokenizer` (which
    /// truncates to `limit` from that side) gives them: from a piece of the text cut between
    /// words when the piece holds that many tokens, else from the whole text.
    fn bounded_ids(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
        limit: usize,
        cut: Cut,
    ) -> Result<Vec<i64>, L2Error> {
        if let Some(piece) = cut.piece(text, limit * CUT_BYTES_PER_TOKEN) {
            let ids = self.content_ids(tokenizer, piece)?;
            if ids.len() >= limit {
                return Ok(ids);
            }
        }
        self.content_ids(tokenizer, text)
    }

    fn content_ids(&self, tokenizer: &Tokenizer, text: &str) -> Result<Vec<i64>, L2Error> {
        let encoding = tokenizer
            .encode(text, false)
            .map_err(|error| L2Error::Tokenize(error.to_string()))?;
        Ok(widen(encoding.get_ids()))
    }

    fn sequence(&self, content: &[i64]) -> Sequence {
        let specials = &self.specials;
        let mut ids = Vec::with_capacity(content.len() + 2);
        ids.extend_from_slice(&specials.prefix_ids);
        ids.extend_from_slice(content);
        ids.extend_from_slice(&specials.suffix_ids);
        let mut type_ids = Vec::with_capacity(ids.len());
        type_ids.extend_from_slice(&specials.prefix_types);
        type_ids.extend(std::iter::repeat_n(specials.content_type, content.len()));
        type_ids.extend_from_slice(&specials.suffix_types);
        Sequence { ids, type_ids }
    }
}

/// Bytes of text cut per token wanted: English averages about 4.5 bytes per WordPiece token,
/// so a cut rarely holds too few tokens (then the whole text is tokenized: same result).
const CUT_BYTES_PER_TOKEN: usize = 12;

/// Which end of a prompt a cut keeps.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Head,
    Tail,
}

impl Cut {
    /// At most `bytes` bytes of `text` from this end, cut at a whitespace character (the
    /// head before it, the tail from it), or `None` when the text is that short already or
    /// the span holds no whitespace.
    fn piece(self, text: &str, bytes: usize) -> Option<&str> {
        if text.len() <= bytes {
            return None;
        }
        match self {
            Cut::Head => {
                let mut end = bytes;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let boundary = text[..end].rfind(char::is_whitespace)?;
                Some(&text[..boundary])
            }
            Cut::Tail => {
                let mut start = text.len() - bytes;
                while !text.is_char_boundary(start) {
                    start += 1;
                }
                let boundary = text[start..].find(char::is_whitespace)?;
                Some(&text[start + boundary..])
            }
        }
    }
}

/// Content tokens that decide the window count: a prompt with fewer fits in `max_chunks`
/// windows, one with this many or more needs more.
fn head_limit(content: usize, step: usize, max_chunks: usize) -> usize {
    content + (max_chunks - 1) * step + 1
}

/// Starts of the windows covering `tokens` content tokens: 0, step, 2·step, … until a window
/// reaches the end (one empty window for an empty prompt, so it is still scored).
fn window_starts(tokens: usize, content: usize, step: usize) -> impl Iterator<Item = usize> {
    let count = if tokens <= content {
        1
    } else {
        1 + (tokens - content).div_ceil(step)
    };
    (0..count).map(move |index| index * step)
}

/// Where the post-processor puts its special tokens around one sequence's content.
fn find_specials(tokenizer: &Tokenizer) -> Result<Specials, L2Error> {
    const PROBE: &str = "window probe";
    let encode = |special: bool| {
        tokenizer
            .encode(PROBE, special)
            .map_err(|error| L2Error::Model(format!("tokenizer probe: {error}")))
    };
    let (bare, full) = (encode(false)?, encode(true)?);
    let (content, ids) = (widen(bare.get_ids()), widen(full.get_ids()));
    let types = widen(full.get_type_ids());
    let start = (0..=ids.len().saturating_sub(content.len()))
        .find(|&start| ids[start..].starts_with(&content))
        .filter(|_| !content.is_empty())
        .ok_or_else(|| {
            L2Error::Model("the tokenizer's special tokens do not surround its content".to_owned())
        })?;
    let end = start + content.len();
    Ok(Specials {
        prefix_ids: ids[..start].to_vec(),
        prefix_types: types[..start].to_vec(),
        suffix_ids: ids[end..].to_vec(),
        suffix_types: types[end..].to_vec(),
        content_type: types[start],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(max_chunks: usize) -> (PromptTokenizer, Tokenizer) {
        let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/prompt");
        let version = crate::ml::artifact::newest_version(&models).expect("shipped prompt model");
        let bytes = std::fs::read(version.join("tokenizer.json")).expect("shipped tokenizer");
        let windows = PromptTokenizer::from_bytes(&bytes, 128, max_chunks).unwrap();
        let mut full = Tokenizer::from_bytes(&bytes).unwrap();
        full.with_truncation(None).unwrap();
        full.with_padding(None);
        (windows, full)
    }

    fn content_of(full: &Tokenizer, text: &str) -> Vec<i64> {
        widen(full.encode(text, false).unwrap().get_ids())
    }

    fn narrow(ids: &[i64]) -> Vec<u32> {
        ids.iter().map(|id| u32::try_from(*id).unwrap()).collect()
    }

    fn long_text(words: usize) -> String {
        (0..words)
            .map(|index| format!("word{index}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_short_prompt_is_one_window_with_the_models_special_tokens() {
        let (windows, full) = shipped(4);
        let text = "Summarise this article about solar panels.";
        let encoded = windows.encode(text).unwrap();
        assert_eq!(encoded.len(), 1);
        let expected = full.encode(text, true).unwrap();
        assert_eq!(encoded[0].ids, widen(expected.get_ids()));
        assert_eq!(encoded[0].type_ids, widen(expected.get_type_ids()));
        assert_eq!(
            windows.encode("").unwrap().len(),
            1,
            "an empty prompt is scored"
        );
    }

    #[test]
    fn windows_are_overlapping_slices_that_reach_the_prompts_end() {
        let (windows, full) = shipped(4);
        // Token counts around each window-count boundary (content 126, step 94), up to the
        // most that four windows hold (408).
        let all = content_of(&full, &long_text(400));
        for tokens in [1, 60, 126, 127, 200, 220, 221, 222, 314, 315, 316, 400, 408] {
            let text = full.decode(&narrow(&all[..tokens]), true).unwrap();
            let content = content_of(&full, &text);
            assert_eq!(content.len(), tokens, "{text}");
            let encoded = windows.encode(&text).unwrap();
            let mut starts = window_starts(content.len(), 126, 94);
            for sequence in &encoded {
                let start = starts.next().unwrap();
                let end = (start + 126).min(content.len());
                assert_eq!(sequence.ids.len(), end - start + 2);
                assert_eq!(
                    &sequence.ids[1..sequence.ids.len() - 1],
                    &content[start..end]
                );
            }
            let last = encoded.last().unwrap();
            assert_eq!(
                last.ids[last.ids.len() - 2],
                *content.last().unwrap(),
                "{tokens} tokens: the last window ends where the prompt ends"
            );
        }
    }

    #[test]
    fn the_first_window_alone_is_encodes_first_window() {
        let (windows, _) = shipped(4);
        for words in [3, 40, 47, 48, 200, 5_000] {
            let text = long_text(words);
            let (first, more) = windows.first(&text).unwrap();
            let all = windows.encode(&text).unwrap();
            assert_eq!(first, all[0], "{words} words");
            assert_eq!(more, all.len() > 1, "{words} words");
        }
    }

    #[test]
    fn cuts_without_whitespace_or_with_too_few_tokens_fall_back_to_the_whole_text() {
        let (windows, full) = shipped(4);
        // One 20 kB "word" (a single [UNK]) between normal words: no cut holds enough tokens.
        let text = format!("start {} end of the prompt", "x".repeat(20_000));
        let content = content_of(&full, &text);
        let encoded = windows.encode(&text).unwrap();
        assert_eq!(encoded.len(), 1);
        assert_eq!(&encoded[0].ids[1..encoded[0].ids.len() - 1], &content[..]);
        // Whitespace-free text far beyond the cut size.
        let dense = "ab,".repeat(10_000);
        let content = content_of(&full, &dense);
        let encoded = windows.encode(&dense).unwrap();
        assert_eq!(&encoded[0].ids[1..127], &content[..126]);
        assert_eq!(&encoded[3].ids[1..127], &content[content.len() - 126..]);
    }

    #[test]
    fn a_prompt_beyond_the_cap_keeps_its_first_windows_and_its_last_tokens() {
        let (windows, full) = shipped(4);
        let text = long_text(3_000);
        let content = content_of(&full, &text);
        assert!(content.len() > 2_000);
        let encoded = windows.encode(&text).unwrap();
        assert_eq!(encoded.len(), 4);
        for (index, sequence) in encoded.iter().take(3).enumerate() {
            let start = index * 94;
            assert_eq!(&sequence.ids[1..127], &content[start..start + 126]);
        }
        assert_eq!(&encoded[3].ids[1..127], &content[content.len() - 126..]);
        assert_eq!(encoded[3].ids.len(), 128);
        let (one, _) = shipped(1);
        let only_last = one.encode(&text).unwrap();
        assert_eq!(only_last.len(), 1);
        assert_eq!(only_last[0], encoded[3]);
    }
}
