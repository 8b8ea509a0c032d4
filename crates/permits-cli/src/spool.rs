//! A job's captured output, bounded in memory: the first
//! [`IN_MEMORY`] bytes stay in a buffer, anything beyond goes to an
//! unlinked temporary file (in `$TMPDIR`, else `/tmp`), so a job printing
//! hundreds of megabytes costs `permits batch` a few hundred kilobytes of
//! memory. Used by `permits batch` for grouped output and for lines held
//! back by `--keep-order`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many bytes of one stream stay in memory before it spills to a file.
pub const IN_MEMORY: usize = 256 * 1024;

/// Output collected so far: in memory, or spilled to a temporary file.
#[derive(Debug, Default)]
pub struct Spool {
    memory: Vec<u8>,
    /// Everything after `memory`, once it is full.
    file: Option<File>,
    len: u64,
    /// Why some output was lost (the temporary file could not be made or
    /// written), if it was.
    pub lost: Option<String>,
}

impl Spool {
    /// Appends `bytes`, spilling to a temporary file past [`IN_MEMORY`].
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        if self.file.is_none() && self.memory.len() + bytes.len() <= IN_MEMORY {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(unlinked_temp_file()?),
        };
        file.write_all(bytes)
    }

    /// Counts `n` bytes passed on elsewhere (`--line-buffer`): they
    /// show in [`written`](Self::written) but are not kept.
    pub fn count_only(&mut self, n: usize) {
        self.len += n as u64;
    }

    /// How many bytes were written in all.
    pub fn written(&self) -> u64 {
        self.len
    }

    /// Copies everything written, in order, to `out` (nothing of what
    /// was only counted).
    pub fn copy_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.memory)?;
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(0))?;
            io::copy(file, out)?;
        }
        Ok(())
    }

    /// Everything written, in one buffer (for `--json`, which needs it
    /// whole).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut all = self.memory.clone();
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut all)?;
        }
        Ok(all)
    }

    /// Appends `bytes` read from a job's pipe. A failure to spool them
    /// is recorded in [`lost`](Self::lost), not returned: the pipe must
    /// still be drained, so the job is not blocked on it. After a loss,
    /// bytes are only counted, so what is kept stays a prefix.
    pub fn take(&mut self, bytes: &[u8]) {
        if self.lost.is_some() {
            self.count_only(bytes.len());
            return;
        }
        if let Err(e) = self.write(bytes) {
            self.lost = Some(format!(
                "cannot spool it to {}: {e}",
                std::env::temp_dir().display()
            ));
        }
    }
}

/// A new temporary file, already unlinked: it vanishes with its last
/// descriptor, even if we are killed.
fn unlinked_temp_file() -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("permits-spool-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_stays_in_memory_and_large_output_spills_in_order() {
        let mut small = Spool::default();
        small.write(b"hello").unwrap();
        assert!(small.file.is_none());
        assert_eq!(small.read_all().unwrap(), b"hello");

        let mut big = Spool::default();
        let chunk: Vec<u8> = (0..=255).collect();
        let mut expected = Vec::new();
        while expected.len() <= IN_MEMORY * 2 {
            big.write(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
        }
        assert!(big.file.is_some(), "past the threshold it spills");
        assert!(big.memory.len() <= IN_MEMORY);
        assert_eq!(big.written(), expected.len() as u64);
        let mut copied = Vec::new();
        big.copy_to(&mut copied).unwrap();
        assert_eq!(copied, expected);
        assert_eq!(big.read_all().unwrap(), expected);
    }
}
