//! Access tokens: compact JWS with EdDSA (Ed25519). The algorithm is pinned: the header must
//! say `EdDSA`, so `none` and every HMAC or RSA variant are refused before any signature work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::domain::Role;

pub const ISSUER: &str = "stark-platform";
pub const AUDIENCE: &str = "stark-api";
pub const ACCESS_TOKEN_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not accepted")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("wrong issuer or audience")]
    WrongParty,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Checks tokens. Functions that only authenticate get this and nothing more.
#[derive(Clone)]
pub struct TokenVerifier {
    key: VerifyingKey,
}

/// Signs tokens; only the functions that issue them hold the private key.
#[derive(Clone)]
pub struct TokenSigner {
    key: SigningKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<private key>)")
    }
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier")
    }
}

impl TokenSigner {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        TokenSigner { key: SigningKey::from_bytes(&seed) }
    }

    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| anyhow::anyhow!("the JWT private key is not an Ed25519 PKCS#8 PEM"))?;
        Ok(TokenSigner { key })
    }

    pub fn to_pkcs8_pem(&self) -> anyhow::Result<String> {
        let pem = self
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| anyhow::anyhow!("cannot encode the JWT key"))?;
        Ok(pem.to_string())
    }

    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        self.key
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|_| anyhow::anyhow!("cannot encode the JWT public key"))
    }

    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier { key: self.key.verifying_key() }
    }

    pub fn issue(&self, user_id: &str, role: Role, now: DateTime<Utc>) -> (String, Claims) {
        let iat = now.timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat,
            exp: iat + ACCESS_TOKEN_SECS,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = B64.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
        let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let sig = crate::timing::time(crate::timing::Part::Crypto, || self.key.sign(signing_input.as_bytes()));
        (format!("{signing_input}.{}", B64.encode(sig.to_bytes())), claims)
    }
}

impl TokenVerifier {
    pub fn from_public_key_pem(pem: &str) -> anyhow::Result<Self> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|_| anyhow::anyhow!("the JWT public key is not an Ed25519 SPKI PEM"))?;
        Ok(TokenVerifier { key })
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Header =
            B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(TokenError::Algorithm);
        }
        let sig_bytes: [u8; 64] = B64.decode(s).ok().and_then(|b| b.try_into().ok()).ok_or(TokenError::Signature)?;
        let sig = Signature::from_bytes(&sig_bytes);
        let signing_input_len = h.len() + 1 + p.len();
        crate::timing::time(crate::timing::Part::Crypto, || {
            self.key.verify_strict(&token.as_bytes()[..signing_input_len], &sig)
        })
        .map_err(|_| TokenError::Signature)?;
        let claims: Claims =
            B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(TokenError::WrongParty);
        }
        if now.timestamp() >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = TokenSigner::generate();
        let (tok, claims) = s.issue("u1", Role::Admin, now());
        let got = s.verifier().verify(&tok, now()).unwrap();
        assert_eq!(got, claims);
        assert_eq!(got.exp - got.iat, 900);
        let later = now() + chrono::Duration::seconds(900);
        assert_eq!(s.verifier().verify(&tok, later), Err(TokenError::Expired));
    }

    #[test]
    fn pem_round_trip() {
        let s = TokenSigner::generate();
        let s2 = TokenSigner::from_pkcs8_pem(&s.to_pkcs8_pem().unwrap()).unwrap();
        let v = TokenVerifier::from_public_key_pem(&s.public_key_pem().unwrap()).unwrap();
        let (tok, _) = s2.issue("u1", Role::User, now());
        assert!(v.verify(&tok, now()).is_ok());
    }

    #[test]
    fn other_keys_and_algorithms_are_refused() {
        let s = TokenSigner::generate();
        let other = TokenSigner::generate();
        let (tok, _) = other.issue("u1", Role::User, now());
        assert_eq!(s.verifier().verify(&tok, now()), Err(TokenError::Signature));
        let (tok, _) = s.issue("u1", Role::User, now());
        let mut parts: Vec<&str> = tok.split('.').collect();
        let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none;
        assert_eq!(s.verifier().verify(&parts.join("."), now()), Err(TokenError::Algorithm));
        assert_eq!(s.verifier().verify("a.b", now()), Err(TokenError::Malformed));
    }
}
