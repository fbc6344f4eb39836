use secrecy::{ExposeSecret, SecretString};

/// A candidate password, 8–128 characters. Held in a `SecretString` so it never reaches a
/// log through `Debug`.
#[derive(Debug)]
pub struct Password(SecretString);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidPassword {
    TooShort,
    TooLong,
}

impl Password {
    pub fn parse(raw: &str) -> Result<Self, InvalidPassword> {
        let n = raw.chars().count();
        if n < 8 {
            Err(InvalidPassword::TooShort)
        } else if n > 128 {
            Err(InvalidPassword::TooLong)
        } else {
            Ok(Password(SecretString::from(raw.to_string())))
        }
    }

    /// A stand-in for a submitted password that breaks the length rule, so that checking it
    /// costs the same as checking any wrong password (login hashes it against the dummy).
    pub fn stand_in() -> Self {
        Password(SecretString::from("a password that cannot be right".to_string()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_counted_in_characters() {
        assert_eq!(Password::parse("1234567").unwrap_err(), InvalidPassword::TooShort);
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert_eq!(Password::parse(&"a".repeat(129)).unwrap_err(), InvalidPassword::TooLong);
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let p = Password::parse("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
