//! The `Translator` on Amazon Translate (`TranslateText`). One request takes at most
//! 10,000 bytes of UTF-8, so a longer text is split, preferably after a sentence, else at a
//! space, and never inside a character or before a combining mark; the pieces are
//! translated concurrently and joined in order.

use async_trait::async_trait;
use aws_sdk_translate::error::DisplayErrorContext;

use crate::i18n::Lang;
use crate::ports::{InfraError, Translator};

/// `TranslateText`'s limit on `Text`, in UTF-8 bytes.
pub const MAX_REQUEST_BYTES: usize = 10_000;

#[derive(Debug, Clone)]
pub struct AmazonTranslate {
    client: aws_sdk_translate::Client,
}

impl AmazonTranslate {
    /// A client on `conf` (endpoint, region, credentials, retries) that speaks AWS JSON 1.1,
    /// the protocol Amazon Translate documents (`X-Amz-Target:
    /// AWSShineFrontendService_20170701.TranslateText`). The SDK would pick its newer CBOR
    /// protocol by default; pinning JSON keeps the wire the tests exercise the one that runs.
    pub fn from_conf(conf: aws_sdk_translate::config::Builder) -> Self {
        let conf = conf.protocol(aws_smithy_json::protocol::aws_json_rpc::AwsJsonRpcProtocol::aws_json_1_1()).build();
        AmazonTranslate { client: aws_sdk_translate::Client::from_conf(conf) }
    }

    /// On the process's AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::from_conf(aws_sdk_translate::config::Builder::from(sdk))
    }

    async fn translate_piece(&self, piece: &str, source: Lang, target: Lang) -> Result<String, InfraError> {
        // Translate trims the ends of what it is given; keep the original spacing between pieces.
        let body = piece.trim();
        if body.is_empty() {
            return Ok(piece.to_string());
        }
        let out = self
            .client
            .translate_text()
            .text(body)
            .source_language_code(source.as_str())
            .target_language_code(target.as_str())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("TranslateText failed: {}", DisplayErrorContext(&e)))?;
        let lead = &piece[..piece.len() - piece.trim_start().len()];
        let trail = &piece[piece.trim_end().len()..];
        Ok(format!("{lead}{}{trail}", out.translated_text().trim()))
    }
}

#[async_trait]
impl Translator for AmazonTranslate {
    async fn translate(&self, text: &str, source: Lang, target: Lang) -> Result<String, InfraError> {
        if source == target {
            return Ok(text.to_string());
        }
        let pieces = split(text, MAX_REQUEST_BYTES);
        let translated =
            futures_util::future::try_join_all(pieces.iter().map(|p| self.translate_piece(p, source, target))).await?;
        Ok(translated.concat())
    }
}

/// Splits `text` into pieces of at most `max` bytes (`max` ≥ 64) that join back into `text`.
/// A cut falls, in order of preference: after a sentence end in the second half of the
/// window, after any whitespace in the second half, after any whitespace at all, and
/// otherwise at a character boundary that does not separate a combining mark from its base.
pub fn split(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(64);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[..end];
        let half = window.len() / 2;
        let cut = last_cut(window, is_sentence_cut)
            .filter(|&c| c >= half)
            .or_else(|| last_cut(window, is_space_cut).filter(|&c| c >= half))
            .or_else(|| last_cut(window, is_space_cut))
            .unwrap_or_else(|| char_cut(rest, end));
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// The end of the last `(previous char, char)` pair in `window` that `is_cut` accepts: the
/// byte offset just after that char.
fn last_cut(window: &str, is_cut: fn(Option<char>, char) -> bool) -> Option<usize> {
    let mut chars = window.char_indices().rev().peekable();
    while let Some((i, c)) = chars.next() {
        let prev = chars.peek().map(|&(_, p)| p);
        if i > 0 && is_cut(prev, c) {
            return Some(i + c.len_utf8());
        }
    }
    None
}

fn is_sentence_cut(prev: Option<char>, c: char) -> bool {
    matches!(c, '\n' | '。' | '！' | '？' | '।' | '॥')
        || (c.is_whitespace() && matches!(prev, Some('.' | '!' | '?' | '…' | ':' | ';')))
}

fn is_space_cut(_prev: Option<char>, c: char) -> bool {
    c.is_whitespace()
}

/// A character boundary at or before `end` (> 0) that does not put a combining mark or a
/// joiner at the start of the next piece; `end` itself when there is no such boundary nearby.
fn char_cut(text: &str, end: usize) -> usize {
    let mut cut = end;
    for _ in 0..32 {
        match text[cut..].chars().next() {
            Some(c) if is_combining(c) => {}
            _ => return cut,
        }
        let Some((i, _)) = text[..cut].char_indices().next_back() else { break };
        if i == 0 {
            break;
        }
        cut = i;
    }
    end
}

fn is_combining(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x200C..=0x200D | 0x20D0..=0x20FF
        | 0x3099..=0x309A | 0xFE00..=0xFE0F | 0xFE20..=0xFE2F | 0x1F3FB..=0x1F3FF | 0xE0100..=0xE01EF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, max: usize) -> Vec<&str> {
        let pieces = split(text, max);
        assert_eq!(pieces.concat(), text);
        for p in &pieces {
            assert!(p.len() <= max.max(64), "a piece of {} bytes", p.len());
            assert!(!p.is_empty());
        }
        pieces
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(check("Hello.", 10_000), vec!["Hello."]);
        assert_eq!(split("", 10_000), vec![""]);
    }

    #[test]
    fn long_text_splits_after_sentences() {
        let sentence = "The Mark 85 armour folds into a nanotech housing. ";
        let text = sentence.repeat(1000);
        let pieces = check(&text, MAX_REQUEST_BYTES);
        assert!(pieces.len() >= 5);
        for p in &pieces[..pieces.len() - 1] {
            assert!(p.ends_with(". "), "{:?}", &p[p.len() - 10..]);
        }
    }

    #[test]
    fn text_without_sentences_splits_at_spaces() {
        let text = "word ".repeat(5000);
        for p in &check(&text, MAX_REQUEST_BYTES)[..] {
            assert!(p.ends_with(' ') || p.ends_with('d'));
        }
    }

    #[test]
    fn cjk_splits_after_its_full_stop_and_never_inside_a_character() {
        let text = "アイアンマンのスーツは折りたためます。".repeat(600);
        let pieces = check(&text, MAX_REQUEST_BYTES);
        assert!(pieces.len() > 1);
        assert!(pieces[0].ends_with('。'));
        let no_breaks = "字".repeat(10_000);
        check(&no_breaks, MAX_REQUEST_BYTES);
    }

    #[test]
    fn combining_marks_stay_with_their_base() {
        // "e" + U+0301 many times, no spaces: every cut must fall before an "e".
        let text = "e\u{301}".repeat(8000);
        for p in check(&text, MAX_REQUEST_BYTES) {
            assert!(p.starts_with('e'), "a piece starts with a lone combining mark");
        }
        let emoji = "👍🏽".repeat(3000);
        for p in check(&emoji, MAX_REQUEST_BYTES) {
            assert!(p.starts_with('👍'));
        }
    }
}
