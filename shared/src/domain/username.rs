use serde::{Deserialize, Serialize};
use std::fmt;

/// 3–32 characters from `[A-Za-z0-9_.-]`. Display keeps the case the user chose;
/// uniqueness uses [`Username::canonical`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUsername;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        let s = raw.trim();
        let len = s.chars().count();
        if (3..=32).contains(&len) && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            Ok(Username(s.to_string()))
        } else {
            Err(InvalidUsername)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that must be unique across accounts.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl TryFrom<String> for Username {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Username::parse(&s).map_err(|_| "invalid username".to_string())
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(Username::parse("tony_stark.mk-85").is_ok());
        assert_eq!(Username::parse("TonY").unwrap().canonical(), "tony");
    }

    #[test]
    fn rejects_length_and_alphabet() {
        for bad in ["ab", &"a".repeat(33), "tony stark", "tøny", "tony!", ""] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }
}
