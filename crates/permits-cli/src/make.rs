//! What make asks of the commands it runs, read once per `permits run` or
//! `permits batch` from `CARGO_MAKEFLAGS`, `MAKEFLAGS` or `MFLAGS`: a dry
//! run (`make -n`: print the commands, run nothing), a jobserver to join,
//! or a jobserver advertised but unusable (a warning, then on without it).

use permits_process::jobserver::{EnvErrorCategory, JobserverSemaphore};
use std::ffi::OsString;

/// What the environment says about make.
pub enum Make {
    /// No make, or make without a (usable) jobserver.
    Absent,
    /// `make -n`: say what would run, run nothing.
    DryRun,
    /// make's jobserver.
    Pool(JobserverSemaphore),
}

impl Make {
    /// Reads the environment. An unusable jobserver is reported on stderr
    /// as a warning ending with `otherwise` (what happens instead). The
    /// library never reads from a descriptor it has not checked to be a
    /// pipe or fifo of the jobserver.
    pub fn from_env(otherwise: &str) -> Make {
        match JobserverSemaphore::from_env() {
            Ok(sem) => Make::Pool(sem),
            Err(e) => match e.category() {
                EnvErrorCategory::DryRun => Make::DryRun,
                EnvErrorCategory::NoJobserver => Make::Absent,
                // Broken, i/o, and whatever a later version adds: say so.
                _ => {
                    eprintln!("permits: warning: {e}; {otherwise}");
                    Make::Absent
                }
            },
        }
    }
}

/// A command line as a shell would read it back (words quoted when they
/// need it), for dry runs.
pub fn shell_line(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_lines_quote_what_the_shell_would_split() {
        let words: Vec<OsString> = ["touch", "/tmp/a b", "it's", ""]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(shell_line(&words), r"touch '/tmp/a b' 'it'\''s' ''");
    }
}
