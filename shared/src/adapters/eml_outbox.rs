//! The local mailer: writes each email as an RFC 5322 `.eml` file (multipart/alternative,
//! text and HTML, built by `email::mime` as SES gets it) into `<data-dir>/outbox/`. This is
//! the only local home of a one-time code.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::email::mime;
use crate::ports::{Clock, Mailer, OutgoingEmail, SendFailure};

#[derive(Clone)]
pub struct EmlOutbox {
    dir: PathBuf,
    from: lettre::message::Mailbox,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmlOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmlOutbox").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl EmlOutbox {
    pub fn new(dir: &Path, from: impl Into<String>, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let from = mime::mailbox(&from.into())?;
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create outbox {}: {e}", dir.display()))?;
        Ok(EmlOutbox { dir: dir.to_path_buf(), from, clock })
    }

    /// Writes the email; the file name starts with the job id, so a job delivered twice
    /// overwrites its own file instead of sending twice.
    pub fn write(&self, email: &OutgoingEmail) -> anyhow::Result<PathBuf> {
        let eml = mime::message(&self.from, email, self.clock.now())?;
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
