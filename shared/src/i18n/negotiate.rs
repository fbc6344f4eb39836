//! `Accept-Language` (RFC 9110 §12.5.4, with the basic ranges of RFC 4647) against the
//! supported languages. Whatever a client sends, the answer is a language: a malformed item
//! is skipped, and a header that yields nothing acceptable falls back to English.

use http::HeaderMap;

use super::Lang;

/// Only this much of a header is read, so a huge header costs no more than a normal one.
const MAX_HEADER_BYTES: usize = 4096;
/// And at most this many items of it.
const MAX_ITEMS: usize = 64;

/// One item of the header: a language range (`None` for `*`) and its weight in thousandths.
#[derive(Debug, Clone, Copy)]
struct Item {
    range: Range,
    /// The range is a bare language (`es`), not a regional one (`es-MX`).
    bare: bool,
    q: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Any,
    Lang(Lang),
    /// A well-formed range for a language we do not speak.
    Other,
}

/// Picks the response language for an `Accept-Language` value (`&str`, `&HeaderValue`,
/// bytes). No header, or nothing acceptable in it, is English.
pub fn negotiate<H: AsRef<[u8]>>(header: Option<H>) -> Lang {
    match header {
        Some(h) => pick(&parse(h.as_ref())),
        None => Lang::En,
    }
}

/// As [`negotiate`], over every `Accept-Language` line of a request (a client may split the
/// list over several lines; they read as one list, in order).
pub fn negotiate_headers(headers: &HeaderMap) -> Lang {
    let mut items = Vec::new();
    for value in headers.get_all(http::header::ACCEPT_LANGUAGE) {
        if items.len() >= MAX_ITEMS {
            break;
        }
        items.extend(parse(value.as_bytes()).into_iter().take(MAX_ITEMS - items.len()));
    }
    pick(&items)
}

fn parse(raw: &[u8]) -> Vec<Item> {
    let raw = &raw[..raw.len().min(MAX_HEADER_BYTES)];
    // Header values are ASCII; anything else makes only its own item malformed.
    raw.split(|&b| b == b',').filter_map(parse_item).take(MAX_ITEMS).collect()
}

fn parse_item(raw: &[u8]) -> Option<Item> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut parts = s.split(';');
    let tag = parts.next()?.trim_matches(is_ows);
    let (range, bare) = parse_range(tag)?;
    let mut q = 1000;
    let mut seen_q = false;
    for param in parts {
        let (name, value) = param.trim_matches(is_ows).split_once('=')?;
        // Only the weight is defined for Accept-Language; anything else is malformed.
        if seen_q || !name.eq_ignore_ascii_case("q") {
            return None;
        }
        q = parse_qvalue(value)?;
        seen_q = true;
    }
    Some(Item { range, bare, q })
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `language-range = (1*8ALPHA *("-" 1*8alphanum)) / "*"`
fn parse_range(tag: &str) -> Option<(Range, bool)> {
    if tag == "*" {
        return Some((Range::Any, true));
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next()?;
    if primary.is_empty() || primary.len() > 8 || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut bare = true;
    for sub in subtags {
        if sub.is_empty() || sub.len() > 8 || !sub.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        bare = false;
    }
    Some((Lang::parse(primary).map_or(Range::Other, Range::Lang), bare))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn pick(items: &[Item]) -> Lang {
    // `es;q=0` makes Spanish unacceptable. `es-MX;q=0` only rules out Mexican Spanish, which
    // we never serve as such, so it excludes nothing.
    let excluded = |l: Lang| items.iter().any(|i| i.q == 0 && i.bare && i.range == Range::Lang(l));
    let mentioned = |l: Lang| items.iter().any(|i| i.range == Range::Lang(l));
    // Highest weight first; equal weights keep the header's order (a stable sort).
    let mut ranked: Vec<&Item> = items.iter().filter(|i| i.q > 0).collect();
    ranked.sort_by_key(|i| std::cmp::Reverse(i.q));
    for item in ranked {
        match item.range {
            Range::Lang(l) if !excluded(l) => return l,
            // `*` stands for every language the header does not name otherwise.
            Range::Any => {
                if let Some(l) = Lang::ALL.into_iter().find(|&l| !mentioned(l) && !excluded(l)) {
                    return l;
                }
            }
            _ => {}
        }
    }
    Lang::En
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn n(h: &str) -> Lang {
        negotiate(Some(h))
    }

    #[test]
    fn no_header_or_an_empty_one_is_english() {
        assert_eq!(negotiate(None::<&str>), Lang::En);
        assert_eq!(n(""), Lang::En);
        assert_eq!(n("   "), Lang::En);
    }

    #[test]
    fn a_single_supported_language_wins() {
        for l in Lang::ALL {
            assert_eq!(n(l.as_str()), l);
        }
    }

    #[test]
    fn q_values_order_the_choice() {
        assert_eq!(n("fr;q=0.5, de;q=0.8"), Lang::De);
        assert_eq!(n("fr;q=0.5, de"), Lang::De);
        assert_eq!(n("ja;q=0.001, xx"), Lang::Ja);
        assert_eq!(n("de;q=1.000, fr;q=0.999"), Lang::De);
        assert_eq!(n("fr-CA;q=0.9, de;q=0.8"), Lang::Fr);
    }

    #[test]
    fn ties_keep_the_header_order() {
        assert_eq!(n("es, fr"), Lang::Es);
        assert_eq!(n("fr, es"), Lang::Fr);
        assert_eq!(n("hi;q=0.7, ja;q=0.7, en;q=0.7"), Lang::Hi);
    }

    #[test]
    fn q_zero_means_not_acceptable() {
        assert_eq!(n("fr;q=0"), Lang::En);
        assert_eq!(n("en;q=0, de;q=0.1"), Lang::De);
        assert_eq!(n("es;q=0.000, es-MX, ja;q=0.2"), Lang::Ja);
        // Only the bare language is excluded by a zero; a regional zero excludes nothing.
        assert_eq!(n("es-MX;q=0, es;q=0.5"), Lang::Es);
    }

    #[test]
    fn a_region_falls_back_to_its_language() {
        assert_eq!(n("es-MX"), Lang::Es);
        assert_eq!(n("de-AT, en;q=0.5"), Lang::De);
        assert_eq!(n("zh-Hant-TW, ja-JP;q=0.9"), Lang::Ja);
        assert_eq!(n("en-GB"), Lang::En);
    }

    #[test]
    fn the_wildcard_takes_a_language_not_named_otherwise() {
        assert_eq!(n("*"), Lang::En);
        assert_eq!(n("en;q=0, *"), Lang::Es);
        assert_eq!(n("en;q=0.1, *;q=0.5"), Lang::Es);
        assert_eq!(n("pt, *;q=0.5"), Lang::En);
        assert_eq!(n("*;q=0"), Lang::En);
        assert_eq!(n("en;q=0, es;q=0, fr;q=0, de;q=0, hi;q=0, *"), Lang::Ja);
    }

    #[test]
    fn case_does_not_matter() {
        assert_eq!(n("FR-ca"), Lang::Fr);
        assert_eq!(n("De;Q=0.9, es;q=0.5"), Lang::De);
        assert_eq!(n("JA"), Lang::Ja);
    }

    #[test]
    fn malformed_items_are_skipped_not_fatal() {
        assert_eq!(n("fr;q=2, de"), Lang::De);
        assert_eq!(n("fr;q=0.5.1, ja;q=0.3"), Lang::Ja);
        assert_eq!(n("fr;q=, es;q=0.1"), Lang::Es);
        assert_eq!(n("fr;q=0.1234, hi;q=0.2"), Lang::Hi);
        assert_eq!(n("fr;level=1, de;q=0.1"), Lang::De);
        assert_eq!(n("fr;q=0.5;q=0.9, de;q=0.1"), Lang::De);
        assert_eq!(n("français, es"), Lang::Es);
        assert_eq!(n("toolongsubtag, fr-toolongsubtag, ja"), Lang::Ja);
        assert_eq!(n("-fr, fr-, es"), Lang::Es);
        assert_eq!(n(",,, ;;; ,de"), Lang::De);
        assert_eq!(n(" \tfr ; q=0.5 , de ;q=0.4"), Lang::Fr);
    }

    #[test]
    fn garbage_falls_back_to_english() {
        for g in ["!!!", "q=0.9", ";q=1", "12", "en_US", "\u{0}", "😀", "ja;q=abc", "fr;q=-1"] {
            assert_eq!(n(g), Lang::En, "{g:?}");
        }
        assert_eq!(negotiate(Some(&[0xff, 0xfe, b'f', b'r'][..])), Lang::En);
    }

    #[test]
    fn a_huge_header_is_bounded() {
        let huge = format!("{}, ja", "xx;q=0.5, ".repeat(100_000));
        // The tail is past the bound, so it is never read: English, and quickly.
        let t = std::time::Instant::now();
        assert_eq!(n(&huge), Lang::En);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let long = format!("ja, {}", "x".repeat(1_000_000));
        assert_eq!(n(&long), Lang::Ja);
    }

    #[test]
    fn header_values_and_repeated_lines_negotiate() {
        let v = HeaderValue::from_static("hi-IN");
        assert_eq!(negotiate(Some(&v)), Lang::Hi);
        let mut headers = HeaderMap::new();
        assert_eq!(negotiate_headers(&headers), Lang::En);
        headers.append(http::header::ACCEPT_LANGUAGE, HeaderValue::from_static("pt;q=0.9"));
        headers.append(http::header::ACCEPT_LANGUAGE, HeaderValue::from_static("de;q=0.8, fr;q=0.1"));
        assert_eq!(negotiate_headers(&headers), Lang::De);
    }
}
