//! The language layer: the supported languages, `Accept-Language` negotiation (RFC 9110),
//! the message catalogs (`shared/locales/`), the language of the request being served, and
//! the machine translation of catalog text behind two caches (`translation`).

pub mod catalog;
pub mod email;
mod negotiate;
pub mod translation;

pub use catalog::{format_in, text_in};
pub use email::{email_texts, EmailTexts};
pub use negotiate::{negotiate, negotiate_headers};
pub use translation::{cache_key, CatalogText, TranslationService, TranslationSettings, TranslationStats};

use std::future::Future;

/// A language the platform speaks. English is the source and the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    En,
    Es,
    Fr,
    De,
    Hi,
    Ja,
}

impl Lang {
    /// Every supported language, English first (the order `*` in `Accept-Language` picks in).
    pub const ALL: [Lang; 6] = [Lang::En, Lang::Es, Lang::Fr, Lang::De, Lang::Hi, Lang::Ja];

    /// The ISO 639-1 code, as sent in `Content-Language` and stored as a user's locale.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::Hi => "hi",
            Lang::Ja => "ja",
        }
    }

    /// A bare language code (`"fr"`, `"FR"`), as in a product's `translations` map or a
    /// stored locale. A region or any other subtag is not accepted here: the map keys are
    /// exactly the supported codes. `negotiate` is the lenient one.
    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(code))
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Lang::parse` failed: the code is not one of the supported languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported language")]
pub struct UnsupportedLang;

impl std::str::FromStr for Lang {
    type Err = UnsupportedLang;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::parse(s).ok_or(UnsupportedLang)
    }
}

tokio::task_local! {
    /// The language negotiated for the request the current task is serving.
    static REQUEST_LANG: Lang;
}

/// The language of the request being served; English outside a request (workers, CLI).
pub fn current() -> Lang {
    REQUEST_LANG.try_with(|l| *l).unwrap_or(Lang::En)
}

/// Runs `fut` with `lang` as the request language (what [`current`] and
/// `http::messages::text` answer inside it).
pub async fn scope<F: Future>(lang: Lang, fut: F) -> F::Output {
    REQUEST_LANG.scope(lang, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reject_the_rest() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.as_str()), Some(l));
            assert_eq!(l.as_str().to_uppercase().parse::<Lang>(), Ok(l));
        }
        for bad in ["", "pt", "es-MX", "e", "english", "*", " en"] {
            assert_eq!(Lang::parse(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_request_language_is_scoped() {
        assert_eq!(current(), Lang::En);
        assert_eq!(scope(Lang::Ja, async { current() }).await, Lang::Ja);
        assert_eq!(current(), Lang::En);
    }
}
