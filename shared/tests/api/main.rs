//! API tests through the real local server, one test binary for all of them.

mod helpers;

mod conventions;
mod login;
mod otp;
mod signup;
mod tokens;
