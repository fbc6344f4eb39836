//! The embedded store: one SQLite file in WAL mode, so `stark serve` and the `stark` ops
//! commands can share it. Writes that must be atomic run in one `BEGIN IMMEDIATE`
//! transaction; calls run on the blocking pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod commerce;
mod email_log;
mod lifecycle;

use crate::domain::{Email, OtpPurpose, OtpRecord, PasswordHash, Role, User, Username};
use crate::ports::*;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    email_verified INTEGER NOT NULL,
    locale TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    token_generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS otps (
    email TEXT NOT NULL,
    purpose TEXT NOT NULL,
    code_mac TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (email, purpose)
);
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    rotated INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_families (
    family_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    revoked INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
"#;

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn bad_value(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} is not valid").into(),
    )
}

const USER_COLUMNS: &str =
    "id, email, username, role, email_verified, locale, created_at, password_hash, token_generation";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: Email::parse(&row.get::<_, String>(1)?).map_err(|_| bad_value("email"))?,
        username: Username::parse(&row.get::<_, String>(2)?).map_err(|_| bad_value("username"))?,
        role: row.get::<_, String>(3)?.parse().map_err(|_| bad_value("role"))?,
        email_verified: row.get(4)?,
        locale: row.get(5)?,
        created_at: parse_ts(row.get(6)?)?,
        password_hash: PasswordHash(row.get(7)?),
        token_generation: row.get::<_, i64>(8)? as u64,
    })
}

fn otp_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OtpRecord> {
    Ok(OtpRecord {
        code_mac: row.get(0)?,
        attempts: row.get(1)?,
        created_at: parse_ts(row.get(2)?)?,
        expires_at: parse_ts(row.get(3)?)?,
    })
}

impl SqliteStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(commerce::SCHEMA)?;
        conn.execute_batch(email_log::SCHEMA)?;
        let mut conn = conn;
        lifecycle::migrate(&mut conn)?;
        conn.execute_batch(lifecycle::SCHEMA)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, InfraError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let call = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard).map_err(|e| {
                // A write that failed halfway leaves no transaction open behind it, so the
                // next call starts clean once the file is writable again.
                if !guard.is_autocommit() {
                    let _ = guard.execute_batch("ROLLBACK");
                }
                classify(e)
            })
        });
        crate::timing::time_async(crate::timing::Part::Io, call).await?
    }
}

/// Every statement is compiled once per connection and kept in rusqlite's cache: compiling
/// one costs more than running most of ours (a lifecycle renewal runs about twenty).
pub(super) const STATEMENT_CACHE: usize = 256;

/// `execute` and `query_row` through the statement cache.
pub(super) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// A failure of the database file (busy or locked past the busy timeout, read-only, an I/O
/// error, a full disk, a file that cannot be opened) is the store's, not a bug of ours:
/// marked [`Unavailable`], it is answered 503 and the next request may well succeed.
fn classify(e: rusqlite::Error) -> InfraError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DatabaseBusy
            | DatabaseLocked
            | ReadOnly
            | SystemIoFailure
            | DiskFull
            | CannotOpen
            | FileLockingProtocolFailed
            | OutOfMemory,
        ) => Unavailable::error("SQLite", e),
        _ => e.into(),
    }
}

#[async_trait]
impl StorePing for SqliteStore {
    async fn ping(&self) -> Result<(), InfraError> {
        self.run(|c| c.row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User, otp: &OtpRecord, outbox: &[OutboxEntry]) -> Result<(), CreateUserError> {
        let u = user.clone();
        let otp = otp.clone();
        let outbox = outbox.to_vec();
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let exists = |sql: &str, value: &str| -> rusqlite::Result<bool> {
                    Ok(tx.row(sql, [value], |_| Ok(())).optional()?.is_some())
                };
                // Email first, as on DynamoDB: when both are taken, the email is what we report.
                if exists("SELECT 1 FROM users WHERE email = ?1", u.email.as_str())? {
                    return Ok(Err(CreateUserError::EmailTaken));
                }
                if exists("SELECT 1 FROM users WHERE username_key = ?1", &u.username.canonical())? {
                    return Ok(Err(CreateUserError::UsernameTaken));
                }
                tx.exec(
                    &format!("INSERT INTO users ({USER_COLUMNS}, username_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"),
                    params![
                        u.id, u.email.as_str(), u.username.as_str(), u.role.as_str(), u.email_verified,
                        u.locale, ts(u.created_at), u.password_hash.0, u.token_generation as i64,
                        u.username.canonical()
                    ],
                )?;
                tx.exec(
                    "INSERT OR REPLACE INTO otps (email, purpose, code_mac, attempts, created_at, expires_at) VALUES (?1,?2,?3,?4,?5,?6)",
                    params![u.email.as_str(), OtpPurpose::Verification.as_str(), otp.code_mac, otp.attempts, ts(otp.created_at), ts(otp.expires_at)],
                )?;
                commerce::insert_outbox(&tx, &outbox)?;
                tx.commit()?;
                Ok(Ok(()))
            })
            .await?;
        outcome
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, InfraError> {
        let email = email.as_str().to_string();
        self.run(move |c| {
            c.row(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"), [email], user_from_row).optional()
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, InfraError> {
        let id = id.to_string();
        self.run(move |c| {
            c.row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id], user_from_row).optional()
        })
        .await
    }

    async fn users_by_id(&self, ids: &[String]) -> Result<Vec<User>, InfraError> {
        let ids = ids.to_vec();
        self.run(move |c| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
            let mut users = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(u) = c.row(&sql, [id], user_from_row).optional()? {
                    users.push(u);
                }
            }
            Ok(users)
        })
        .await
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        expected: &PasswordHash,
        hash: &PasswordHash,
    ) -> Result<bool, InfraError> {
        let (id, old, h) = (user_id.to_string(), expected.0.clone(), hash.0.clone());
        self.run(move |c| {
            c.exec("UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2", params![id, old, h])
                .map(|n| n == 1)
        })
        .await
    }

    async fn set_role(&self, user_id: &str, role: Role) -> Result<bool, InfraError> {
        let id = user_id.to_string();
        self.run(move |c| {
            c.exec("UPDATE users SET role = ?2 WHERE id = ?1", params![id, role.as_str()]).map(|n| n == 1)
        })
        .await
    }
}

#[async_trait]
impl OtpStore for SqliteStore {
    async fn put_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        otp: &OtpRecord,
        outbox: &[OutboxEntry],
    ) -> Result<(), InfraError> {
        let (email, otp, outbox) = (email.as_str().to_string(), otp.clone(), outbox.to_vec());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.exec(
                "INSERT OR REPLACE INTO otps (email, purpose, code_mac, attempts, created_at, expires_at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![email, purpose.as_str(), otp.code_mac, otp.attempts, ts(otp.created_at), ts(otp.expires_at)],
            )?;
            commerce::insert_outbox(&tx, &outbox)?;
            tx.commit()
        })
        .await
    }

    async fn get_otp(&self, email: &Email, purpose: OtpPurpose) -> Result<Option<OtpRecord>, InfraError> {
        let email = email.as_str().to_string();
        self.run(move |c| {
            c.row(
                "SELECT code_mac, attempts, created_at, expires_at FROM otps WHERE email = ?1 AND purpose = ?2",
                params![email, purpose.as_str()],
                otp_from_row,
            )
            .optional()
        })
        .await
    }

    async fn take_attempt(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        max: u32,
    ) -> Result<Option<OtpRecord>, InfraError> {
        let email = email.as_str().to_string();
        self.run(move |c| {
            c.row(
                "UPDATE otps SET attempts = attempts + 1 WHERE email = ?1 AND purpose = ?2 AND attempts < ?3 \
                 RETURNING code_mac, attempts, created_at, expires_at",
                params![email, purpose.as_str(), max],
                otp_from_row,
            )
            .optional()
        })
        .await
    }

    async fn delete_otp(&self, email: &Email, purpose: OtpPurpose, code_mac: &str) -> Result<(), InfraError> {
        let (email, mac) = (email.as_str().to_string(), code_mac.to_string());
        self.run(move |c| {
            c.exec(
                "DELETE FROM otps WHERE email = ?1 AND purpose = ?2 AND code_mac = ?3",
                params![email, purpose.as_str(), mac],
            )
            .map(|_| ())
        })
        .await
    }

    async fn redeem_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        code_mac: &str,
        redemption: &OtpRedemption,
    ) -> Result<bool, InfraError> {
        let (email, mac, redemption) = (email.as_str().to_string(), code_mac.to_string(), redemption.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx.exec(
                "DELETE FROM otps WHERE email = ?1 AND purpose = ?2 AND code_mac = ?3",
                params![email, purpose.as_str(), mac],
            )?;
            if deleted == 0 {
                return Ok(false);
            }
            match redemption {
                OtpRedemption::VerifyEmail { user_id } => {
                    tx.exec("UPDATE users SET email_verified = 1 WHERE id = ?1", [user_id])?;
                }
                OtpRedemption::ResetPassword { user_id, new_hash } => {
                    tx.exec(
                        "UPDATE users SET password_hash = ?2, email_verified = 1, token_generation = token_generation + 1 WHERE id = ?1",
                        params![user_id, new_hash.0],
                    )?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn load(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned<String>>, InfraError> {
        let key = key.to_string();
        self.run(move |c| {
            let row: Option<(String, i64, String)> = c
                .row("SELECT value, version, expires_at FROM throttle WHERE key = ?1", [key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            match row {
                None => Ok(None),
                Some((value, version, expires_at)) => {
                    // An expired row still holds its version, so the next write can replace it.
                    let live = parse_ts(expires_at)? > now;
                    Ok(Some(Versioned { value: if live { value } else { String::new() }, version: version as u64 }))
                }
            }
        })
        .await
    }

    async fn store(
        &self,
        key: &str,
        value: &str,
        expected: Option<u64>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, InfraError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(move |c| {
            let n = match expected {
                None => c.exec(
                    "INSERT OR IGNORE INTO throttle (key, value, version, expires_at) VALUES (?1, ?2, 1, ?3)",
                    params![key, value, ts(expires_at)],
                )?,
                Some(v) => c.exec(
                    "UPDATE throttle SET value = ?2, version = version + 1, expires_at = ?3 WHERE key = ?1 AND version = ?4",
                    params![key, value, ts(expires_at), v as i64],
                )?,
            };
            Ok(n == 1)
        })
        .await
    }
}

fn refresh_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        family_id: row.get(2)?,
        generation: row.get::<_, i64>(3)? as u64,
        rotated: row.get(4)?,
        expires_at: parse_ts(row.get(5)?)?,
    })
}

fn insert_refresh(tx: &rusqlite::Transaction<'_>, r: &RefreshTokenRecord) -> rusqlite::Result<usize> {
    tx.exec(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, generation, rotated, expires_at) VALUES (?1,?2,?3,?4,?5,?6)",
        params![r.token_hash, r.user_id, r.family_id, r.generation as i64, r.rotated, ts(r.expires_at)],
    )
}

#[async_trait]
impl RefreshTokenStore for SqliteStore {
    async fn create_family(&self, first: &RefreshTokenRecord) -> Result<(), InfraError> {
        let r = first.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.exec(
                "INSERT INTO refresh_families (family_id, user_id, revoked, expires_at) VALUES (?1, ?2, 0, ?3)",
                params![r.family_id, r.user_id, ts(r.expires_at)],
            )?;
            insert_refresh(&tx, &r)?;
            tx.commit()
        })
        .await
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>, InfraError> {
        let h = token_hash.to_string();
        self.run(move |c| {
            c.row(
                "SELECT token_hash, user_id, family_id, generation, rotated, expires_at FROM refresh_tokens WHERE token_hash = ?1",
                [h],
                refresh_from_row,
            )
            .optional()
        })
        .await
    }

    async fn rotate(&self, old: &RefreshTokenRecord, next: &RefreshTokenRecord) -> Result<Rotation, InfraError> {
        // Re-read inside the transaction: the record the caller holds may be stale.
        let (old, next) = (old.token_hash.clone(), next.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, bool)> = tx
                .row("SELECT family_id, rotated FROM refresh_tokens WHERE token_hash = ?1", [&old], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((family, rotated)) = row else { return Ok(Rotation::NotFound) };
            let revoked: bool = tx
                .row("SELECT revoked FROM refresh_families WHERE family_id = ?1", [&family], |r| r.get(0))
                .optional()?
                .unwrap_or(true);
            if revoked {
                return Ok(Rotation::FamilyRevoked);
            }
            if rotated {
                tx.exec("UPDATE refresh_families SET revoked = 1 WHERE family_id = ?1", [&family])?;
                tx.commit()?;
                return Ok(Rotation::ReuseDetected);
            }
            tx.exec("UPDATE refresh_tokens SET rotated = 1 WHERE token_hash = ?1", [&old])?;
            // The family lives as long as its newest token.
            tx.exec(
                "UPDATE refresh_families SET expires_at = ?2 WHERE family_id = ?1",
                params![family, ts(next.expires_at)],
            )?;
            insert_refresh(&tx, &RefreshTokenRecord { family_id: family, ..next })?;
            tx.commit()?;
            Ok(Rotation::Rotated)
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), InfraError> {
        let f = family_id.to_string();
        self.run(move |c| c.exec("UPDATE refresh_families SET revoked = 1 WHERE family_id = ?1", [f]).map(|_| ())).await
    }
}
