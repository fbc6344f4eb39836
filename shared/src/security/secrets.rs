//! The two secrets: the JWT signing key and the OTP pepper. Locally they are generated into
//! the data dir on first start; on Lambda they come from the environment, which the template
//! fills from Secrets Manager. Neither is ever printed by `Debug`.

use secrecy::{ExposeSecret, SecretBox};
use std::path::Path;

use super::jwt::{TokenSigner, TokenVerifier};

pub struct OtpPepper(SecretBox<Vec<u8>>);

impl OtpPepper {
    pub fn new(bytes: Vec<u8>) -> anyhow::Result<Self> {
        anyhow::ensure!(bytes.len() >= 16, "the OTP pepper must be at least 16 bytes");
        Ok(OtpPepper(SecretBox::new(Box::new(bytes))))
    }

    pub fn from_hex(s: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(s.trim()).map_err(|_| anyhow::anyhow!("the OTP pepper must be hex"))?;
        Self::new(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for OtpPepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpPepper(<secret>)")
    }
}

/// Signing and verifying keys. A function that only checks tokens has no signer.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    pub signer: Option<TokenSigner>,
    pub verifier: Option<TokenVerifier>,
}

pub struct Secrets {
    pub keys: TokenKeys,
    /// Absent in functions that never issue or check a one-time code.
    pub otp_pepper: Option<OtpPepper>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("keys", &self.keys).field("otp_pepper", &self.otp_pepper).finish()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents)?;
    Ok(())
}

fn read_or_create(path: &Path, create: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let fresh = create()?;
            match write_private(path, &fresh) {
                Ok(()) => Ok(fresh),
                // Another process created it first: use theirs.
                Err(_) if path.exists() => Ok(std::fs::read_to_string(path)?),
                Err(e) => Err(e.context(format!("cannot write {}", path.display()))),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// 32 random bytes, hex: a fresh OTP pepper.
pub fn new_pepper_hex() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// A fresh deployment secret for Secrets Manager, with the keys `template.yaml` resolves:
/// `jwt_private_key_pem`, `jwt_public_key_pem` and `otp_pepper`.
pub fn new_deployment_secret() -> anyhow::Result<serde_json::Value> {
    let signer = TokenSigner::generate();
    Ok(serde_json::json!({
        "jwt_private_key_pem": signer.to_pkcs8_pem()?,
        "jwt_public_key_pem": signer.public_key_pem()?,
        "otp_pepper": new_pepper_hex(),
    }))
}

impl Secrets {
    /// `<data-dir>/jwt-ed25519.pem` (PKCS#8) and `<data-dir>/otp-pepper` (hex), created once.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", data_dir.display()))?;
        let pem = read_or_create(&data_dir.join("jwt-ed25519.pem"), || TokenSigner::generate().to_pkcs8_pem())?;
        let signer = TokenSigner::from_pkcs8_pem(&pem)?;
        let pepper = read_or_create(&data_dir.join("otp-pepper"), || Ok(new_pepper_hex()))?;
        Ok(Secrets {
            keys: TokenKeys { verifier: Some(signer.verifier()), signer: Some(signer) },
            otp_pepper: Some(OtpPepper::from_hex(&pepper)?),
        })
    }

    /// Whatever a function was given: `JWT_PRIVATE_KEY` (PKCS#8 PEM) for functions that issue
    /// tokens, `JWT_PUBLIC_KEY` (SPKI PEM) for those that only check them, `OTP_PEPPER` (hex)
    /// for those that handle codes. Each is optional; a present but malformed one is an error.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let signer = var("JWT_PRIVATE_KEY").map(|pem| TokenSigner::from_pkcs8_pem(&pem)).transpose()?;
        let verifier = match (&signer, var("JWT_PUBLIC_KEY")) {
            (Some(s), _) => Some(s.verifier()),
            (None, Some(pem)) => Some(TokenVerifier::from_public_key_pem(&pem)?),
            (None, None) => None,
        };
        let otp_pepper = var("OTP_PEPPER").map(|h| OtpPepper::from_hex(&h)).transpose()?;
        Ok(Secrets { keys: TokenKeys { signer, verifier }, otp_pepper })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Secrets::load_or_create(dir.path()).unwrap();
        let b = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(a.otp_pepper.as_ref().unwrap().expose(), b.otp_pepper.as_ref().unwrap().expose());
        let (tok, _) = a.keys.signer.as_ref().unwrap().issue("u", crate::domain::Role::User, chrono::Utc::now());
        assert!(b.keys.verifier.as_ref().unwrap().verify(&tok, chrono::Utc::now()).is_ok());
        let pem = std::fs::read_to_string(dir.path().join("jwt-ed25519.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(&hex::encode(a.otp_pepper.as_ref().unwrap().expose())));
        assert!(!dbg.contains("PRIVATE"));
    }
}
