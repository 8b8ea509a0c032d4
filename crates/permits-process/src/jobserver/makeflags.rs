//! Parsing `MAKEFLAGS` (and `CARGO_MAKEFLAGS`, `MFLAGS`): pure text
//! handling, no I/O. [`Client`](super::Client) validates what this finds.
//!
//! The shape, as GNU make 4.3/4.4 and cargo write it:
//!
//! * an optional first word of single-letter flags without a dash
//!   (`ks`, or `n` for a dry run); without letter flags the value starts
//!   with a space;
//! * `-jN` (or bare `-j`, "unlimited": no jobserver at all);
//! * `--jobserver-auth=R,W` (make ≥ 4.2), the older `--jobserver-fds=R,W`,
//!   or `--jobserver-auth=fifo:PATH` (make ≥ 4.4) where spaces in `PATH`
//!   are escaped with a backslash. **The last one wins**, whichever
//!   spelling: make 4.4 appends `--jobserver-auth=-2,-2` for recipes it
//!   does not treat as recursive, and negative descriptors mean
//!   "disabled";
//! * variable overrides after ` -- `, never parsed as options.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// The `-j` setting found in `MAKEFLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Jobs {
    /// `-jN` / `--jobs=N`.
    Limit(NonZeroUsize),
    /// Bare `-j` / `--jobs`: no limit (and, in make, no jobserver).
    Unlimited,
}

impl Jobs {
    /// The limit, if one is set.
    pub fn limit(self) -> Option<usize> {
        match self {
            Jobs::Limit(n) => Some(n.get()),
            Jobs::Unlimited => None,
        }
    }
}

impl fmt::Display for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jobs::Limit(n) => write!(f, "-j{n}"),
            Jobs::Unlimited => f.write_str("-j"),
        }
    }
}

/// Where the jobserver is, as the last `--jobserver-auth=` (or
/// `--jobserver-fds=`) option says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Auth {
    /// `R,W`: inherited descriptors of a pipe (or FIFO).
    Pipe {
        /// Descriptor to read tokens from.
        read: i32,
        /// Descriptor to write tokens back to.
        write: i32,
    },
    /// `fifo:PATH` (make ≥ 4.4), with backslash escapes removed.
    Fifo(PathBuf),
    /// A negative descriptor: "the jobserver is disabled for this process"
    /// (make 4.4 writes `-2,-2` for non-recursive recipes).
    Disabled,
    /// Text this parser does not understand (for example a Windows
    /// semaphore name, or garbage). Holds the raw value.
    Malformed(String),
}

/// What a `MAKEFLAGS`-style value says about parallelism.
///
/// # Examples
///
/// ```
/// use permits_process::jobserver::{Auth, Jobs, MakeFlags};
///
/// let flags = MakeFlags::parse(" -j4 --jobserver-auth=3,4 --jobserver-auth=-2,-2");
/// assert_eq!(flags.auth(), Some(&Auth::Disabled)); // the last one wins
/// assert_eq!(flags.jobs().and_then(Jobs::limit), Some(4));
///
/// let fifo = MakeFlags::parse("-j2 --jobserver-auth=fifo:/tmp/sp\\ ace/GMfifo1");
/// assert_eq!(fifo.auth(), Some(&Auth::Fifo("/tmp/sp ace/GMfifo1".into())));
///
/// assert!(MakeFlags::parse("kn -j3").dry_run());
/// assert_eq!(MakeFlags::parse(" -j").auth(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MakeFlags {
    jobs: Option<Jobs>,
    dry_run: bool,
    auth: Option<Auth>,
    auth_option: Option<String>,
}

impl MakeFlags {
    /// Parses a `MAKEFLAGS`, `CARGO_MAKEFLAGS` or `MFLAGS` value. Never
    /// fails: what it does not understand is ignored, or reported as
    /// [`Auth::Malformed`] when it is a jobserver option.
    pub fn parse(value: &str) -> MakeFlags {
        let mut flags = MakeFlags::default();
        for (index, word) in words(value).into_iter().enumerate() {
            if word == "--" {
                break; // variable overrides follow
            }
            if index == 0 && is_letter_group(&word) {
                flags.dry_run |= word.contains('n');
                continue;
            }
            if let Some(value) = word
                .strip_prefix("--jobserver-auth=")
                .or_else(|| word.strip_prefix("--jobserver-fds="))
            {
                flags.auth = Some(parse_auth(value));
                flags.auth_option = Some(word.clone());
            } else if word == "--dry-run" || word == "--just-print" || word == "--recon" {
                flags.dry_run = true;
            } else if word == "-j" || word == "--jobs" {
                flags.jobs = Some(Jobs::Unlimited);
            } else if let Some(n) = word
                .strip_prefix("--jobs=")
                .or_else(|| word.strip_prefix("-j"))
            {
                // `-j0`, overflow and garbage leave the setting unchanged.
                if let Some(n) = n.parse::<usize>().ok().and_then(NonZeroUsize::new) {
                    flags.jobs = Some(Jobs::Limit(n));
                }
            } else if is_letter_group(&word) {
                flags.dry_run |= word.contains('n');
            }
        }
        flags
    }

    /// The `-j` setting, if any.
    pub fn jobs(&self) -> Option<Jobs> {
        self.jobs
    }

    /// Whether make runs with `-n` (dry run): the first word of letter
    /// flags contains `n`. A client should not take tokens then.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The jobserver the last `--jobserver-auth=`/`--jobserver-fds=`
    /// option names; `None` if there is none (`-j`, `-jN` alone, or an
    /// empty value all mean "no jobserver").
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// The last jobserver option, verbatim (for messages).
    pub fn auth_option(&self) -> Option<&str> {
        self.auth_option.as_deref()
    }
}

/// Splits on unescaped ASCII whitespace; a backslash escapes the next
/// character (make writes spaces in fifo paths as `\ `).
fn words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                started = true;
                match chars.next() {
                    Some(next) => word.push(next),
                    None => word.push('\\'),
                }
            }
            c if c.is_ascii_whitespace() => {
                if started {
                    words.push(core::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// `ks`, `-kn`: single-letter flags (with at most one leading dash). `-j…`
/// is not one: `j` takes an argument.
fn is_letter_group(word: &str) -> bool {
    let letters = word.strip_prefix('-').unwrap_or(word);
    !letters.is_empty()
        && !letters.starts_with('-')
        && !letters.starts_with('j')
        && letters.chars().all(|c| c.is_ascii_alphabetic())
}

fn parse_auth(value: &str) -> Auth {
    if let Some(path) = value.strip_prefix("fifo:") {
        return if path.is_empty() {
            Auth::Malformed(value.to_owned())
        } else {
            Auth::Fifo(PathBuf::from(path))
        };
    }
    let mut parts = value.split(',');
    let (Some(r), Some(w), None) = (parts.next(), parts.next(), parts.next()) else {
        return Auth::Malformed(value.to_owned());
    };
    match (r.trim().parse::<i32>(), w.trim().parse::<i32>()) {
        (Ok(r), Ok(w)) if r < 0 || w < 0 => Auth::Disabled,
        (Ok(read), Ok(write)) => Auth::Pipe { read, write },
        _ => Auth::Malformed(value.to_owned()),
    }
}

/// Escapes a fifo path the way make does (`\ ` for spaces, `\\` for
/// backslashes), so that [`MakeFlags::parse`] reads it back unchanged.
pub(crate) fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '\\' || c.is_ascii_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(s: &str) -> Option<Auth> {
        MakeFlags::parse(s).auth().cloned()
    }

    #[test]
    fn shapes_make_and_cargo_write() {
        assert_eq!(
            auth("ks -j3 --jobserver-auth=3,4"),
            Some(Auth::Pipe { read: 3, write: 4 })
        );
        assert_eq!(
            auth("-j --jobserver-fds=6,7 --jobserver-auth=6,7"),
            Some(Auth::Pipe { read: 6, write: 7 })
        );
        assert_eq!(
            auth(" -j3 --jobserver-fds=3,4"),
            Some(Auth::Pipe { read: 3, write: 4 })
        );
        assert_eq!(auth(" -j1"), None);
        assert_eq!(auth(""), None);
        assert_eq!(
            MakeFlags::parse(" -j1").jobs().and_then(Jobs::limit),
            Some(1)
        );
        assert_eq!(MakeFlags::parse(" -j").jobs(), Some(Jobs::Unlimited));
        assert_eq!(
            MakeFlags::parse(" --jobs=5").jobs().and_then(Jobs::limit),
            Some(5)
        );
    }

    #[test]
    fn last_auth_wins_whatever_the_spelling() {
        assert_eq!(
            auth("-j4 --jobserver-auth=3,4 --jobserver-fds=5,6"),
            Some(Auth::Pipe { read: 5, write: 6 })
        );
        assert_eq!(
            auth(" -j4 --jobserver-auth=3,4 --jobserver-auth=-2,-2"),
            Some(Auth::Disabled)
        );
        assert_eq!(
            auth("--jobserver-auth=-2,-2 --jobserver-auth=fifo:/x"),
            Some(Auth::Fifo("/x".into()))
        );
    }

    #[test]
    fn garbage_and_edge_values() {
        for bad in [
            "abc",
            "3",
            "3,4,5",
            "3,x",
            "fifo:",
            "99999999999,4",
            "gmake_semaphore_1",
        ] {
            assert_eq!(
                auth(&format!("-j2 --jobserver-auth={bad}")),
                Some(Auth::Malformed(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(auth("--jobserver-auth=-1,4"), Some(Auth::Disabled));
        assert_eq!(MakeFlags::parse("-j0").jobs(), None);
        assert_eq!(MakeFlags::parse("-j4294967297000000000000").jobs(), None);
    }

    #[test]
    fn overrides_after_double_dash_are_not_options() {
        assert_eq!(auth(" -j2 -- X=--jobserver-auth=3,4"), None);
        assert!(!MakeFlags::parse(" -- n=1").dry_run());
    }

    #[test]
    fn dry_run_only_from_letter_flags() {
        assert!(MakeFlags::parse("n --jobserver-auth=3,4").dry_run());
        assert!(MakeFlags::parse("-kn").dry_run());
        assert!(!MakeFlags::parse("ks -j3").dry_run());
        assert!(!MakeFlags::parse(" --jobserver-auth=fifo:/tmp/n").dry_run());
        assert!(!MakeFlags::parse("-j3").dry_run());
    }

    #[test]
    fn escaped_paths_round_trip() {
        let path = "/tmp/a b\\c/GMfifo1";
        let flags = format!("-j2 --jobserver-auth=fifo:{}", escape_path(path));
        assert_eq!(auth(&flags), Some(Auth::Fifo(path.into())));
    }
}
