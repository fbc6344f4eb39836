//! The local mailer: writes each email as an RFC 5322 `.eml` file (multipart/alternative,
//! text and HTML) into `<data-dir>/outbox/`. This is the only local home of a one-time code.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ports::{Clock, Mailer, OutgoingEmail, SendFailure};

#[derive(Clone)]
pub struct EmlOutbox {
    dir: PathBuf,
    from: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmlOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmlOutbox").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A header value as RFC 2047 encoded-words when it is not plain ASCII.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        use base64::Engine;
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s))
    }
}

impl EmlOutbox {
    pub fn new(dir: &Path, from: impl Into<String>, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create outbox {}: {e}", dir.display()))?;
        Ok(EmlOutbox { dir: dir.to_path_buf(), from: from.into(), clock })
    }

    /// Writes the email; the file name starts with the job id, so a job delivered twice
    /// overwrites its own file instead of sending twice.
    pub fn write(&self, email: &OutgoingEmail) -> anyhow::Result<PathBuf> {
        let boundary = format!("=_stark_{}", email.job_id);
        let eml = format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@stark.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n--{boundary}--\r\n",
            from = self.from,
            to = email.to,
            subject = header_text(&email.subject),
            date = self.clock.now().to_rfc2822(),
            id = email.job_id,
            text = email.text.replace("\r\n", "\n").replace('\n', "\r\n"),
            html = email.html,
        );
        // The template in the name is for people browsing the folder.
        let name = format!("{}-{}.eml", email.job_id, email.template.as_str());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(name);
        // Write then rename, so a reader never sees half a message.
        std::fs::write(&tmp, eml)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

#[async_trait]
impl Mailer for EmlOutbox {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendFailure> {
        let (me, email) = (self.clone(), email.clone());
        let path = tokio::task::spawn_blocking(move || me.write(&email))
            .await
            .map_err(|e| SendFailure::Transient(e.into()))?
            .map_err(SendFailure::Transient)?;
        Ok(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    }
}
