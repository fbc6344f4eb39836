//! Warm handler cost per endpoint, in process on the embedded store (criterion; bench
//! profile = release as shipped). Run with `cargo bench -p stark-cli --bench handlers`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use stark::domain::{otp_mac, Email, OtpCode, OtpPurpose, Role};
use stark::security::jwt::TokenSigner;
use stark::security::password_hash::{hash_with, HashCost};

fn crypto(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let signer = TokenSigner::generate();
    let verifier = signer.verifier();
    let (token, _) = signer.issue("018f0000-0000-7000-8000-000000000000", Role::User, now);
    let mut g = c.benchmark_group("crypto");
    g.bench_function("jwt verify (Ed25519, verify_strict)", |b| {
        b.iter(|| verifier.verify(black_box(&token), now).unwrap())
    });
    g.bench_function("jwt issue (Ed25519 sign)", |b| b.iter(|| signer.issue(black_box("u1"), Role::User, now)));
    g.bench_function("refresh token hash (SHA-256)", |b| {
        b.iter(|| stark::security::token_hash(black_box("a-43-char-opaque-refresh-token-in-base64url")))
    });
    let email = Email::parse("tony@stark.example").unwrap();
    let code = OtpCode::parse("123456").unwrap();
    let pepper = [7u8; 32];
    g.bench_function("otp mac (HMAC-SHA-256)", |b| {
        b.iter(|| otp_mac(black_box(&pepper), OtpPurpose::Verification, &email, &code))
    });
    g.sample_size(10);
    g.bench_function("argon2id hash, production (m=19456 KiB, t=2)", |b| {
        b.iter(|| hash_with(HashCost::PRODUCTION, black_box("I-am-Iron-Man-3000")).unwrap())
    });
    g.finish();
}

criterion_group!(benches, crypto);
criterion_main!(benches);
