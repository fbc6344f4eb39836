pub mod jwt;
pub mod password_hash;
pub mod secrets;

use sha2::{Digest, Sha256};

/// Refresh tokens are stored by the hex SHA-256 of their value: a leaked table holds no
/// usable token.
pub fn token_hash(token: &str) -> String {
    crate::timing::time(crate::timing::Part::Crypto, || hex::encode(Sha256::digest(token.as_bytes())))
}

/// 256 random bits, base64url.
pub fn new_opaque_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
