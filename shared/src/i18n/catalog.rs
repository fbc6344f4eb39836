//! The message catalogs: one file per language in `shared/locales/`, compiled into the binary
//! and parsed once. English (`en.txt`) is the reference: every other file has the same keys
//! with the same placeholders (a test checks it).
//!
//! The format is one message per line, `key = text`; `#` starts a comment line and blank
//! lines are ignored. A placeholder is `{name}` (lower-case letters, digits and `_`); a text
//! has no other braces. Adding a message is one line in each file.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::Lang;

/// The key whose text stands in for a key that no catalog has.
pub const FALLBACK_KEY: &str = "fallback";

/// The raw catalog files, in `Lang::ALL` order.
pub const SOURCES: [(Lang, &str); 6] = [
    (Lang::En, include_str!("../../locales/en.txt")),
    (Lang::Es, include_str!("../../locales/es.txt")),
    (Lang::Fr, include_str!("../../locales/fr.txt")),
    (Lang::De, include_str!("../../locales/de.txt")),
    (Lang::Hi, include_str!("../../locales/hi.txt")),
    (Lang::Ja, include_str!("../../locales/ja.txt")),
];

/// A parsed catalog: key → text, both borrowed from the embedded file.
pub type Catalog = HashMap<&'static str, &'static str>;

/// A line that is not a message, a comment or blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    pub line: usize,
    pub problem: String,
}

/// Parses one catalog file. Lines that do not parse are left out and reported; so is a key
/// given twice (the first one wins).
pub fn parse(source: &'static str) -> (Catalog, Vec<ParseProblem>) {
    let mut catalog = Catalog::new();
    let mut problems = Vec::new();
    for (n, raw) in source.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut report = |problem: String| problems.push(ParseProblem { line: n + 1, problem });
        let Some((key, text)) = line.split_once('=') else {
            report("expected `key = text`".into());
            continue;
        };
        let (key, text) = (key.trim(), text.trim());
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b)) {
            report(format!("bad key {key:?}"));
            continue;
        }
        if text.is_empty() {
            report(format!("{key}: empty text"));
            continue;
        }
        if let Err(e) = placeholders(text) {
            report(format!("{key}: {e}"));
            continue;
        }
        if catalog.contains_key(key) {
            report(format!("{key}: given twice"));
            continue;
        }
        catalog.insert(key, text);
    }
    (catalog, problems)
}

/// The placeholder names of a text, in order, or what is wrong with its braces.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without its `{`".into());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a `{` without its `}`")?;
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(format!("bad placeholder {{{name}}}"));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

static CATALOGS: LazyLock<[Catalog; 6]> = LazyLock::new(|| {
    SOURCES.map(|(lang, source)| {
        let (catalog, problems) = parse(source);
        for p in problems {
            // A test keeps this from shipping; at run time the line is just left out.
            tracing::error!(lang = lang.as_str(), line = p.line, problem = %p.problem, "message catalog line skipped");
        }
        catalog
    })
});

fn catalog(lang: Lang) -> &'static Catalog {
    &CATALOGS[Lang::ALL.iter().position(|&l| l == lang).unwrap_or(0)]
}

/// The text for `key` in `lang`; English when that catalog lacks it, and the generic
/// fallback text for a key no catalog has. Placeholders are left as they are.
pub fn text_in(lang: Lang, key: &str) -> &'static str {
    if let Some(t) = catalog(lang).get(key).or_else(|| catalog(Lang::En).get(key)) {
        return t;
    }
    tracing::warn!(key, "no message for this key");
    catalog(lang).get(FALLBACK_KEY).or_else(|| catalog(Lang::En).get(FALLBACK_KEY)).copied().unwrap_or("Error")
}

/// The text for `key` in `lang` with each `{name}` replaced by its value from `args`. A
/// value is inserted as it is (not read for placeholders again); a placeholder without a
/// value is left visible rather than dropped.
pub fn format_in(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    let text = text_in(lang, key);
    let mut out = String::with_capacity(text.len() + args.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        match args.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every key of the English catalog, sorted (for tests and tooling).
pub fn keys() -> Vec<&'static str> {
    let mut keys: Vec<_> = catalog(Lang::En).keys().copied().collect();
    keys.sort_unstable();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_catalog_parses_without_problems() {
        for (lang, source) in SOURCES {
            let (catalog, problems) = parse(source);
            assert!(problems.is_empty(), "{lang}: {problems:?}");
            assert!(catalog.len() > 30, "{lang}: only {} messages", catalog.len());
        }
    }

    #[test]
    fn every_language_has_every_key_with_the_same_placeholders() {
        let (en, _) = parse(SOURCES[0].1);
        let mut failures = Vec::new();
        for (lang, source) in &SOURCES[1..] {
            let (other, _) = parse(source);
            for (key, text) in &en {
                match other.get(key) {
                    None => failures.push(format!("{lang}: missing {key}")),
                    Some(t) => {
                        let want: BTreeSet<_> = placeholders(text).unwrap_or_default().into_iter().collect();
                        let got: BTreeSet<_> = placeholders(t).unwrap_or_default().into_iter().collect();
                        if want != got {
                            failures.push(format!("{lang}: {key} has {got:?}, English has {want:?}"));
                        }
                    }
                }
            }
            for key in other.keys() {
                if !en.contains_key(key) {
                    failures.push(format!("{lang}: {key} is not in en.txt"));
                }
            }
        }
        assert!(failures.is_empty(), "catalogs differ:\n{}", failures.join("\n"));
    }

    #[test]
    fn translations_are_not_left_in_english() {
        // A translator who copies the English line is caught here; a few texts are the same
        // in several languages (a word or a code), so only a share is checked.
        let (en, _) = parse(SOURCES[0].1);
        for (lang, source) in &SOURCES[1..] {
            let (other, _) = parse(source);
            let same = en.iter().filter(|(k, t)| other.get(*k) == Some(t)).count();
            assert!(same * 10 < en.len(), "{lang}: {same} of {} texts are the English ones", en.len());
        }
    }

    #[test]
    fn the_check_catches_a_missing_key_and_a_changed_placeholder() {
        let (a, _) = parse("greet = Hello {username}\nbye = Bye");
        let (b, problems) = parse("greet = Hola {user}\n");
        assert!(problems.is_empty());
        assert!(!b.contains_key("bye") && a.contains_key("bye"));
        assert_ne!(placeholders(a["greet"]), placeholders(b["greet"]));
    }

    #[test]
    fn malformed_lines_are_reported() {
        let (c, problems) = parse(
            "ok = fine\nno equals sign\nBad Key = x\nempty =\nbrace = {oops\nclose = oops}\nupper = {Name}\nok = again",
        );
        assert_eq!(c.get("ok"), Some(&"fine"));
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn the_texts_the_api_uses_exist_in_english() {
        for key in [
            "validation_error",
            "malformed_json",
            "payload_too_large",
            "not_found",
            "method_not_allowed",
            "internal_error",
            "signup_ok",
            "field.required",
            "field.language",
            "email.otp_verification.subject",
            FALLBACK_KEY,
        ] {
            assert!(keys().contains(&key), "{key}");
        }
    }

    #[test]
    fn lookups_fall_back_to_english_then_to_the_generic_text() {
        assert_eq!(text_in(Lang::Fr, "not_found"), catalog(Lang::Fr)["not_found"]);
        assert_ne!(text_in(Lang::Fr, "not_found"), text_in(Lang::En, "not_found"));
        assert_eq!(text_in(Lang::Ja, "no.such.key"), catalog(Lang::Ja)[FALLBACK_KEY]);
    }

    #[test]
    fn formatting_fills_placeholders_once() {
        let s = format_in(Lang::En, "email.greeting", &[("username", "Tony {code}")]);
        assert!(s.contains("Tony {code}"), "{s}");
        assert!(!s.contains("{username}"));
        let missing = format_in(Lang::En, "email.greeting", &[]);
        assert!(missing.contains("{username}"));
        for lang in Lang::ALL {
            let s = format_in(lang, "email.otp_verification.p1", &[("code", "123456")]);
            assert!(s.contains("123456") && !s.contains('{'), "{lang}: {s}");
        }
    }
}
