// Checks on what a process logged. Shared by the tests that read the logs of the real
// binaries (`functions/tests/runtime.rs`, `cli/tests/cli.rs`) through `#[path]`.

#![allow(dead_code)]

/// `number` appears in `text` as a whole number, not inside a longer run of digits
/// (timestamps and durations are full of six-digit runs).
pub fn contains_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + number.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn a_code_inside_a_timestamp_is_not_the_code() {
    assert!(contains_number("code 123456 sent", "123456"));
    assert!(contains_number("123456", "123456"));
    assert!(!contains_number("at 07:42:37.1234567Z", "123456"));
    assert!(!contains_number("micros=9123456", "123456"));
}
