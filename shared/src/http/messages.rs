//! Human-readable texts for codes, success messages and field problems, in the language
//! negotiated for the request being served (English outside a request). The texts live in
//! the message catalogs, `shared/locales/<lang>.txt`: adding a key is one line per file.

use crate::i18n::{self, Lang};

/// The text for `key` in the current request's language. The language is task-local (set
/// by `http::handle`): work moved to another task (`tokio::spawn`) should take
/// `i18n::current()` along and call [`text_in`].
pub fn text(key: &str) -> &'static str {
    i18n::text_in(i18n::current(), key)
}

/// The text for `key` in `lang`, whatever the request (emails go out in the user's locale).
pub fn text_in(lang: Lang, key: &str) -> &'static str {
    i18n::text_in(lang, key)
}

/// The text for `key` in the current request's language, `{name}` placeholders filled from
/// `args`.
pub fn format(key: &str, args: &[(&str, &str)]) -> String {
    i18n::format_in(i18n::current(), key, args)
}

/// As [`format`], in `lang`.
pub fn format_in(lang: Lang, key: &str, args: &[(&str, &str)]) -> String {
    i18n::format_in(lang, key, args)
}
