use super::{Email, Role, Username};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// A stored password hash in PHC form (`$argon2id$v=19$m=…`). Not a secret in itself, but it
/// is kept out of `Debug` output all the same.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: Email,
    pub username: Username,
    pub role: Role,
    pub email_verified: bool,
    pub locale: String,
    pub created_at: DateTime<Utc>,
    pub password_hash: PasswordHash,
    /// Bumped whenever every refresh token of the account must stop working (password reset).
    pub token_generation: u64,
}

/// The public view of a user, exactly the `User` object of the API contract.
#[derive(Debug, Serialize)]
pub struct UserView<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub username: &'a str,
    pub role: Role,
    pub email_verified: bool,
    pub locale: &'a str,
    pub created_at: String,
}

impl User {
    pub fn view(&self) -> UserView<'_> {
        UserView {
            id: &self.id,
            email: self.email.as_str(),
            username: self.username.as_str(),
            role: self.role,
            email_verified: self.email_verified,
            locale: &self.locale,
            created_at: super::rfc3339(self.created_at),
        }
    }
}
