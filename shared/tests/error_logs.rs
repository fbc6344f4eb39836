//! A failed dependency is logged with its cause chain on one line and without a backtrace,
//! even with backtraces switched on: rendering one made a warm Lambda keep ~35 MiB more for
//! the rest of its life (see `stark::logs`). One test in its own binary, so the switch below
//! comes before anything in the process makes an error.

use std::io::Write;
use std::sync::{Arc, Mutex};

use stark::http::ApiError;
use stark::ports::Unavailable;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_503_is_logged_as_its_cause_chain_on_one_line_without_the_backtrace_it_captured() {
    // Before the first error of the process: std reads the switch once.
    std::env::set_var("RUST_LIB_BACKTRACE", "1");
    let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out after 6s");
    let e = Unavailable::error("DynamoDB", timeout).context("TransactWriteItems (signup)");
    assert_eq!(
        e.backtrace().status(),
        std::backtrace::BacktraceStatus::Captured,
        "the error must carry a backtrace, or this test shows nothing"
    );
    assert!(format!("{e:?}").contains("Stack backtrace"), "anyhow's Debug renders the backtrace");

    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let resp = tracing::subscriber::with_default(subscriber, || ApiError::Internal(e).into_response());
    assert_eq!(resp.status, http::StatusCode::SERVICE_UNAVAILABLE);

    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let records: Vec<serde_json::Value> = logged.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "one record: {logged}");
    let fields = &records[0]["fields"];
    assert_eq!(fields["message"], "a dependency failed");
    assert_eq!(fields["error"], "TransactWriteItems (signup): DynamoDB is unavailable: operation timed out after 6s");
    assert!(!logged.to_lowercase().contains("backtrace"), "no backtrace in the log: {logged}");
}
