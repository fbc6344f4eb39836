use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use stark::adapters::dynamodb::DynamoStore;
use stark::adapters::sqlite::SqliteStore;
use stark::app::{throttle, Stores};
use stark::domain::throttle::SendWindow;
use stark::domain::*;
use stark::ports::*;

use crate::aws;

/// A store plus whatever must live as long as it (the SQLite temp dir).
pub struct Fixture {
    pub stores: Stores,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("stark.db")).unwrap();
    Fixture { stores: Stores::from_adapter(Arc::new(store)), _dir: Some(dir) }
}

pub async fn dynamodb() -> Fixture {
    let (client, table) = aws::dynamo_table().await;
    Fixture { stores: Stores::from_adapter(Arc::new(DynamoStore::new(client, table))), _dir: None }
}

fn t0() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().unwrap()
}

fn user(email: &str, username: &str) -> User {
    User {
        id: uuid::Uuid::now_v7().to_string(),
        email: Email::parse(email).unwrap(),
        username: Username::parse(username).unwrap(),
        role: Role::User,
        email_verified: false,
        locale: "en".into(),
        created_at: t0(),
        password_hash: PasswordHash("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        token_generation: 0,
    }
}

fn otp(mac: &str) -> OtpRecord {
    OtpRecord::new(mac.to_string(), t0())
}

contract!(
    users_round_trip,
    users_are_read_by_id_in_one_batch,
    email_and_username_are_unique_and_atomic,
    role_and_password_updates,
    otp_is_replaced_and_kept_per_purpose,
    tries_are_charged_up_to_the_limit,
    a_burst_of_tries_gets_only_the_limit,
    verification_redeems_once,
    password_reset_redemption_bumps_the_generation,
    throttle_compare_and_swap,
    throttle_updates_do_not_lose_races,
    refresh_rotation_and_reuse,
    two_rotations_of_one_token_race_to_one_winner,
    concurrent_signups_for_one_email_make_one_user,
    ping_answers,
);

async fn users_round_trip(s: &Stores) {
    let u = user("pepper@stark.example", "Pepper");
    s.users.create_user(&u, &otp("m1"), &[]).await.unwrap();
    assert_eq!(s.users.user_by_email(&u.email).await.unwrap(), Some(u.clone()));
    assert_eq!(s.users.user_by_id(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.users.user_by_id("nobody").await.unwrap(), None);
    let other = Email::parse("nobody@stark.example").unwrap();
    assert_eq!(s.users.user_by_email(&other).await.unwrap(), None);
    // Signup stored the first verification code with the user.
    let code = s.otps.get_otp(&u.email, OtpPurpose::Verification).await.unwrap().unwrap();
    assert_eq!(code, otp("m1"));
}

async fn users_are_read_by_id_in_one_batch(s: &Stores) {
    assert_eq!(s.users.users_by_id(&[]).await.unwrap(), []);
    // More than one DynamoDB BatchGetItem holds (100 keys).
    let made: Vec<User> = (0..130).map(|i| user(&format!("batch{i}@stark.example"), &format!("batch{i}"))).collect();
    for u in &made {
        s.users.create_user(u, &otp("m"), &[]).await.unwrap();
    }
    let mut ids: Vec<String> = made.iter().map(|u| u.id.clone()).collect();
    ids.push("nobody".into());
    let mut got = s.users.users_by_id(&ids).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, made, "every user that exists, whole; the missing id is left out");
}

async fn email_and_username_are_unique_and_atomic(s: &Stores) {
    let first = user("happy@stark.example", "Happy");
    s.users.create_user(&first, &otp("m1"), &[]).await.unwrap();
    let same_email = user("happy@stark.example", "Hogan");
    assert!(matches!(s.users.create_user(&same_email, &otp("m2"), &[]).await, Err(CreateUserError::EmailTaken)));
    let same_name = user("hogan@stark.example", "HAPPY");
    assert!(matches!(s.users.create_user(&same_name, &otp("m3"), &[]).await, Err(CreateUserError::UsernameTaken)));
    // Nothing of the refused signups was written.
    assert_eq!(s.users.user_by_id(&same_email.id).await.unwrap(), None);
    assert_eq!(s.users.user_by_id(&same_name.id).await.unwrap(), None);
    assert_eq!(s.users.user_by_email(&same_name.email).await.unwrap(), None);
    assert_eq!(s.otps.get_otp(&same_name.email, OtpPurpose::Verification).await.unwrap(), None);
    assert_eq!(s.otps.get_otp(&first.email, OtpPurpose::Verification).await.unwrap().unwrap().code_mac, "m1");
    // Both taken (by different users): the email is what is reported, on every adapter.
    let second = user("second@stark.example", "second");
    s.users.create_user(&second, &otp("m5"), &[]).await.unwrap();
    let both = user("second@stark.example", "happy");
    assert!(matches!(s.users.create_user(&both, &otp("m6"), &[]).await, Err(CreateUserError::EmailTaken)));
    let fine = user("hogan@stark.example", "Hogan");
    s.users.create_user(&fine, &otp("m4"), &[]).await.unwrap();
}

async fn role_and_password_updates(s: &Stores) {
    let u = user("rhodey@stark.example", "rhodey");
    s.users.create_user(&u, &otp("m"), &[]).await.unwrap();
    assert!(s.users.set_role(&u.id, Role::Provider).await.unwrap());
    assert!(!s.users.set_role("missing", Role::Admin).await.unwrap());
    // Only over the hash it was read with: a concurrent change wins.
    assert!(!s.users.set_password_hash(&u.id, &PasswordHash("stale".into()), &PasswordHash("x".into())).await.unwrap());
    assert!(s.users.set_password_hash(&u.id, &u.password_hash, &PasswordHash("new-hash".into())).await.unwrap());
    assert!(!s.users.set_password_hash("missing", &u.password_hash, &PasswordHash("x".into())).await.unwrap());
    let got = s.users.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(got.role, Role::Provider);
    assert_eq!(got.password_hash, PasswordHash("new-hash".into()));
}

async fn otp_is_replaced_and_kept_per_purpose(s: &Stores) {
    let e = Email::parse("jarvis@stark.example").unwrap();
    s.otps.put_otp(&e, OtpPurpose::PasswordReset, &otp("a"), &[]).await.unwrap();
    s.otps.put_otp(&e, OtpPurpose::PasswordReset, &otp("b"), &[]).await.unwrap();
    assert_eq!(s.otps.get_otp(&e, OtpPurpose::PasswordReset).await.unwrap().unwrap().code_mac, "b");
    assert_eq!(s.otps.get_otp(&e, OtpPurpose::Verification).await.unwrap(), None);
}

async fn tries_are_charged_up_to_the_limit(s: &Stores) {
    let e = Email::parse("friday@stark.example").unwrap();
    let p = OtpPurpose::Verification;
    assert_eq!(s.otps.take_attempt(&e, p, 5).await.unwrap(), None, "no code, nothing to charge");
    s.otps.put_otp(&e, p, &otp("mac"), &[]).await.unwrap();
    for n in 1..=5 {
        let charged = s.otps.take_attempt(&e, p, 5).await.unwrap().unwrap();
        assert_eq!((charged.attempts, charged.code_mac.as_str()), (n, "mac"));
        assert_eq!(charged.expires_at, otp("mac").expires_at);
    }
    assert_eq!(s.otps.take_attempt(&e, p, 5).await.unwrap(), None, "the sixth try is refused");
    // Deleting needs the right MAC: a code replaced meanwhile survives a stale delete.
    s.otps.put_otp(&e, p, &otp("new"), &[]).await.unwrap();
    s.otps.delete_otp(&e, p, "mac").await.unwrap();
    assert_eq!(s.otps.get_otp(&e, p).await.unwrap().unwrap().attempts, 0);
    s.otps.delete_otp(&e, p, "new").await.unwrap();
    assert_eq!(s.otps.get_otp(&e, p).await.unwrap(), None);
    s.otps.delete_otp(&e, p, "new").await.unwrap();
}

async fn a_burst_of_tries_gets_only_the_limit(s: &Stores) {
    let e = Email::parse("burst@stark.example").unwrap();
    let p = OtpPurpose::PasswordReset;
    s.otps.put_otp(&e, p, &otp("mac"), &[]).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let otps = s.otps.clone();
        let e = e.clone();
        tasks.push(tokio::spawn(async move { otps.take_attempt(&e, p, 5).await.unwrap().is_some() }));
    }
    let mut charged = 0;
    for t in tasks {
        charged += t.await.unwrap() as u32;
    }
    assert_eq!(charged, 5, "exactly five of twenty parallel tries may compare");
}

async fn verification_redeems_once(s: &Stores) {
    let u = user("karen@stark.example", "karen");
    s.users.create_user(&u, &otp("good"), &[]).await.unwrap();
    let r = OtpRedemption::VerifyEmail { user_id: u.id.clone() };
    let p = OtpPurpose::Verification;
    assert!(!s.otps.redeem_otp(&u.email, p, "stale", &r).await.unwrap());
    assert!(!s.users.user_by_id(&u.id).await.unwrap().unwrap().email_verified);
    assert!(s.otps.redeem_otp(&u.email, p, "good", &r).await.unwrap());
    assert!(s.users.user_by_id(&u.id).await.unwrap().unwrap().email_verified);
    assert_eq!(s.otps.get_otp(&u.email, p).await.unwrap(), None);
    assert!(!s.otps.redeem_otp(&u.email, p, "good", &r).await.unwrap());
}

async fn password_reset_redemption_bumps_the_generation(s: &Stores) {
    let u = user("edith@stark.example", "edith");
    s.users.create_user(&u, &otp("v"), &[]).await.unwrap();
    let p = OtpPurpose::PasswordReset;
    s.otps.put_otp(&u.email, p, &otp("r"), &[]).await.unwrap();
    let r = OtpRedemption::ResetPassword { user_id: u.id.clone(), new_hash: PasswordHash("h2".into()) };
    assert!(s.otps.redeem_otp(&u.email, p, "r", &r).await.unwrap());
    let got = s.users.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(got.password_hash, PasswordHash("h2".into()));
    assert_eq!(got.token_generation, 1);
    assert!(got.email_verified);
    // Refresh tokens issued before carry generation 0: the use case refuses them by that
    // bump, on every adapter alike, without touching each token.
    // The verification code is a different purpose and is untouched.
    assert!(s.otps.get_otp(&u.email, OtpPurpose::Verification).await.unwrap().is_some());
}

async fn throttle_compare_and_swap(s: &Stores) {
    let t = &s.throttle;
    let later = t0() + Duration::hours(1);
    assert_eq!(t.load("k", t0()).await.unwrap(), None);
    assert!(t.store("k", "one", None, later).await.unwrap());
    assert!(!t.store("k", "again", None, later).await.unwrap(), "create must not overwrite");
    let v = t.load("k", t0()).await.unwrap().unwrap();
    assert_eq!(v.value, "one");
    assert!(t.store("k", "two", Some(v.version), later).await.unwrap());
    assert!(!t.store("k", "stale", Some(v.version), later).await.unwrap(), "stale version must lose");
    let v2 = t.load("k", t0()).await.unwrap().unwrap();
    assert_eq!(v2.value, "two");
    // Past its expiry the value reads as empty but keeps its version for the next write.
    let expired = t.load("k", later).await.unwrap().unwrap();
    assert_eq!(expired.value, "");
    assert!(t.store("k", "three", Some(expired.version), later + Duration::hours(1)).await.unwrap());
}

async fn throttle_updates_do_not_lose_races(s: &Stores) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = s.throttle.clone();
        tasks.push(tokio::spawn(async move {
            let at = t0() + Duration::milliseconds(i);
            throttle::update(
                store.as_ref(),
                "race",
                at,
                |_: &SendWindow| t0() + Duration::hours(2),
                |w| Ok::<_, ()>(w.record(at)),
            )
            .await
            .unwrap()
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let w: SendWindow = throttle::peek(s.throttle.as_ref(), "race", t0()).await.unwrap();
    assert_eq!(w.sent_at.len(), 20, "every concurrent update must land");
}

fn refresh_rec(hash: &str, family: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash.into(),
        user_id: "u1".into(),
        family_id: family.into(),
        generation: 0,
        rotated: false,
        expires_at: t0() + Duration::days(30),
    }
}

/// Rotates the token stored under `hash`, as the use case does: read, then rotate.
async fn rotate(r: &dyn RefreshTokenStore, hash: &str, next: &RefreshTokenRecord) -> Rotation {
    let old = r.get_refresh(hash).await.unwrap().expect("the token to rotate exists");
    r.rotate(&old, next).await.unwrap()
}

async fn refresh_rotation_and_reuse(s: &Stores) {
    let r = s.refresh_tokens.as_ref();
    r.create_family(&refresh_rec("h1", "fam")).await.unwrap();
    assert_eq!(r.get_refresh("h1").await.unwrap(), Some(refresh_rec("h1", "fam")));
    assert_eq!(rotate(r, "h1", &refresh_rec("h2", "ignored")).await, Rotation::Rotated);
    let h2 = r.get_refresh("h2").await.unwrap().unwrap();
    assert_eq!(h2.family_id, "fam", "the next token stays in its family");
    assert!(r.get_refresh("h1").await.unwrap().unwrap().rotated);
    // Presenting h1 again is reuse: the family dies, h2 with it.
    assert_eq!(rotate(r, "h1", &refresh_rec("h3", "fam")).await, Rotation::ReuseDetected);
    assert_eq!(rotate(r, "h2", &refresh_rec("h4", "fam")).await, Rotation::FamilyRevoked);
    assert_eq!(r.get_refresh("h4").await.unwrap(), None);
    // A stale copy does not fool it: the caller read h2 before the family was revoked.
    let stale = RefreshTokenRecord { rotated: false, ..h2 };
    assert_eq!(r.rotate(&stale, &refresh_rec("h5", "fam")).await.unwrap(), Rotation::FamilyRevoked);
    // Logout revokes a family explicitly; an unknown family is left alone, quietly.
    r.create_family(&refresh_rec("k1", "fam2")).await.unwrap();
    r.revoke_family("fam2").await.unwrap();
    assert_eq!(rotate(r, "k1", &refresh_rec("k2", "fam2")).await, Rotation::FamilyRevoked);
    r.revoke_family("no-such-family").await.unwrap();
    // A token that is not (or no longer) stored is not found, on every adapter.
    assert_eq!(
        r.rotate(&refresh_rec("never-stored", "fam4"), &refresh_rec("n2", "fam4")).await.unwrap(),
        Rotation::NotFound
    );
}

async fn two_rotations_of_one_token_race_to_one_winner(s: &Stores) {
    let r = s.refresh_tokens.clone();
    r.create_family(&refresh_rec("race1", "famr")).await.unwrap();
    let old = r.get_refresh("race1").await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (r, old) = (r.clone(), old.clone());
        tasks.push(tokio::spawn(async move {
            r.rotate(&old, &refresh_rec(&format!("race-next-{i}"), "famr")).await.unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    // One rotation wins; every other copy is reuse (or meets the family already revoked).
    assert_eq!(outcomes.iter().filter(|o| **o == Rotation::Rotated).count(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Rotation::Rotated | Rotation::ReuseDetected | Rotation::FamilyRevoked)));
    // The race is itself a reuse: the family is dead, the winner's new token with it.
    let mut stored = Vec::new();
    for i in 0..8 {
        if let Some(rec) = r.get_refresh(&format!("race-next-{i}")).await.unwrap() {
            stored.push(rec);
        }
    }
    assert_eq!(stored.len(), 1, "only the winner's token was stored");
    assert_eq!(r.rotate(&stored[0], &refresh_rec("after", "famr")).await.unwrap(), Rotation::FamilyRevoked);
}

async fn concurrent_signups_for_one_email_make_one_user(s: &Stores) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let users = s.users.clone();
        tasks.push(tokio::spawn(async move {
            let u = user("race@stark.example", &format!("racer{i}"));
            users.create_user(&u, &otp("m"), &[]).await.map(|_| u.id)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => winners.push(id),
            Err(CreateUserError::EmailTaken) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = s.users.user_by_email(&Email::parse("race@stark.example").unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.id, winners[0]);
}

async fn ping_answers(s: &Stores) {
    s.ping.ping().await.unwrap();
}

/// DynamoDB deletes a family by TTL: rotating must push the family's `ttl` out with each new
/// token, or a session kept alive by rotation would die 31 days after login.
#[tokio::test]
async fn dynamodb_rotation_extends_the_family_ttl() {
    let (client, table) = crate::aws::dynamo_table().await;
    let r = DynamoStore::new(client.clone(), table.clone());
    r.create_family(&refresh_rec("t1", "famt")).await.unwrap();
    let late = RefreshTokenRecord { expires_at: t0() + Duration::days(59), ..refresh_rec("t2", "famt") };
    let old = r.get_refresh("t1").await.unwrap().unwrap();
    assert_eq!(r.rotate(&old, &late).await.unwrap(), Rotation::Rotated);
    let item = client
        .get_item()
        .table_name(&table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S("FAMILY#famt".into()))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("FAMILY".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert_eq!(ttl, late.expires_at.timestamp() + 86_400);
    // And the table deletes by that attribute, as the template's does.
    let described = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let spec = described.time_to_live_description().unwrap();
    assert_eq!(spec.attribute_name(), Some("ttl"));
}
