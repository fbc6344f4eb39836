//! Human-readable texts for codes and field problems. English only for now; the translation
//! work replaces this with per-language catalogs behind the same function.

pub fn text(key: &str) -> &'static str {
    match key {
        // Errors
        "validation_error" => "Some fields are not valid.",
        "malformed_json" => "The request body is not a JSON object.",
        "payload_too_large" => "The request body is larger than 64 KiB.",
        "not_found" => "There is nothing at this path.",
        "method_not_allowed" => "This method is not allowed on this path.",
        "unauthorized" => "Sign in to continue.",
        "forbidden" => "You are not allowed to do this.",
        "email_not_verified" => "Verify your email address first.",
        "email_taken" => "An account with this email already exists.",
        "username_taken" => "This username is taken.",
        "otp_invalid" => "The code is not valid.",
        "otp_expired" => "The code has expired. Ask for a new one.",
        "otp_attempts_exceeded" => "Too many wrong codes. Ask for a new one.",
        "already_verified" => "This email address is already verified.",
        "invalid_credentials" => "The email or password is wrong.",
        "too_many_attempts" => "Too many failed attempts. Try again later.",
        "otp_resend_cooldown" => "Please wait before asking for another code.",
        "internal_error" => "Something went wrong on our side. Try again.",
        // Successes
        "signup_ok" => "Account created. We sent a verification code to your email.",
        "verify_ok" => "Your email address is verified.",
        "login_ok" => "Signed in.",
        "resend_ok" => "If the account needs one, a new code is on its way.",
        "forgot_ok" => "If an account exists for this email, a reset code is on its way.",
        "reset_ok" => "Your password has been changed. Sign in again.",
        "refresh_ok" => "Session renewed.",
        // Field problems
        "field.required" => "This field is required.",
        "field.string" => "This field must be a string.",
        "field.email" => "Enter a valid email address.",
        "field.username" => "Use 3 to 32 letters, digits, '_', '.' or '-'.",
        "field.password_short" => "Use at least 8 characters.",
        "field.password_long" => "Use at most 128 characters.",
        "field.otp" => "Enter the 6-digit code.",
        _ => "Something went wrong.",
    }
}
