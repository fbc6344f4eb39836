//! How an error goes into a log line: its cause chain on one line ("outer: cause: root cause"),
//! never a backtrace.
//!
//! With `RUST_BACKTRACE=1` or `RUST_LIB_BACKTRACE=1` in the environment, anyhow captures a
//! backtrace with every error, and its `Debug` output renders it. Rendering one symbolizes it:
//! the process reads and indexes its own binary's symbol and unwind tables, and keeps them
//! until it exits. A warm signup Lambda went from 28.7 to 63.6 MiB at its first 503 that way
//! (BENCHMARKS.md, 2026-12-03). The release binaries are stripped, so that backtrace named
//! nothing anyway; the chain names the dependency, the operation and the SDK's reason. So an
//! `anyhow::Error` is logged as `error = %logs::chain(&e)`, never as `?e`.

use std::fmt;

/// `e` and its causes, outermost first, joined by ": " on one line.
pub fn chain(e: &anyhow::Error) -> impl fmt::Display + '_ {
    Chain(e)
}

struct Chain<'a>(&'a anyhow::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // anyhow's alternate Display is the chain, without the backtrace even when one was
        // captured; a cause whose own text spans lines is kept on one.
        f.write_str(&format!("{:#}", self.0).replace('\n', " "))
    }
}
