//! Input items of `permits batch` and the command template they go into.
//!
//! Items are bytes end to end (file names need not be UTF-8): lines of a
//! stream, NUL-separated records (`-0`), or values given after `:::`. An
//! item is always *one argument* of the command, never code: a template
//! of several words runs directly (the item replaces a placeholder inside
//! a word, or becomes the last argument); a template of one word runs with
//! `sh -c`, and every substituted value is single-quoted for the shell.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// The replacement strings, as GNU parallel spells them.
pub const REPLACEMENTS: [&str; 7] = ["{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"];

/// The separator between a template and items on the command line.
pub const ITEMS_FOLLOW: &str = ":::";

/// Where items come from.
pub enum Source {
    /// Given on the command line (all known from the start).
    Given(std::vec::IntoIter<Vec<u8>>),
    /// Read from a stream, one record at a time (nothing read ahead).
    Stream {
        /// The stream.
        reader: Box<dyn BufRead + Send>,
        /// The record separator (`\n` or NUL).
        separator: u8,
    },
    /// A stream read by a thread of its own ([`Source::read_on_a_thread`]),
    /// which hands over one item (or the read error) at a time.
    Threaded(mpsc::Receiver<io::Result<Vec<u8>>>),
}

impl Source {
    /// The next non-empty item; `None` at the end of the input.
    pub fn next_item(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self {
            Source::Given(items) => Ok(items.next()),
            Source::Stream { reader, separator } => loop {
                let mut record = Vec::new();
                if reader.read_until(*separator, &mut record)? == 0 {
                    return Ok(None);
                }
                if record.last() == Some(separator) {
                    record.pop();
                }
                if !record.is_empty() {
                    return Ok(Some(record));
                }
            },
            Source::Threaded(items) => items.recv().map_or(Ok(None), |item| item.map(Some)),
        }
    }

    /// [`next_item`](Self::next_item), except that it gives up and returns
    /// `None` once `stop` is set (checked every `every` while a
    /// [threaded](Self::read_on_a_thread) stream has no item ready).
    pub fn next_item_unless(
        &mut self,
        stop: &AtomicBool,
        every: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        let Source::Threaded(items) = self else {
            return self.next_item();
        };
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            match items.recv_timeout(every) {
                Ok(item) => return item.map(Some),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }

    /// Moves the reading of a stream to a thread of its own (items given
    /// on the command line stay as they are), so that waiting for the next
    /// item can give up ([`next_item_unless`](Self::next_item_unless))
    /// while a `read(2)` on an input that stays open (`tail -f`, a
    /// producer that waits) still blocks. The thread reads at most one
    /// item ahead; it ends at the end of the input, after a read error, or
    /// with the process.
    pub fn read_on_a_thread(self) -> io::Result<Source> {
        let Source::Stream { .. } = self else {
            return Ok(self);
        };
        let mut stream = self;
        // A rendezvous: each item waits for the dispatcher to ask for it.
        let (tx, rx) = mpsc::sync_channel(0);
        thread::Builder::new()
            .name("permits-items".into())
            .spawn(move || loop {
                let item = match stream.next_item() {
                    Ok(Some(item)) => Ok(item),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            })?;
        Ok(Source::Threaded(rx))
    }

    /// How many items there are, when known in advance.
    pub fn len(&self) -> Option<usize> {
        match self {
            Source::Given(items) => Some(items.len()),
            Source::Stream { .. } | Source::Threaded(_) => None,
        }
    }
}

/// A command template: the words after `--` with replacement strings.
#[derive(Debug, Clone)]
pub struct Template {
    words: Vec<Vec<u8>>,
    /// `-I STR`: what stands for the item instead of `{}`.
    replace: Vec<u8>,
    /// One word: run with `sh -c`, substituted values quoted.
    shell: bool,
    /// No replacement string anywhere: the item is the last argument.
    append: bool,
}

/// What one job's item is expanded with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The item.
    pub item: &'a [u8],
    /// The job number (1-based, input order).
    pub number: usize,
    /// The slot number (1-based, lowest free one).
    pub slot: usize,
}

impl Template {
    /// A template from the words after `--`; `replace` is `-I STR`.
    pub fn new(words: &[OsString], replace: Option<&OsStr>) -> Template {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let replace = replace.map_or_else(|| b"{}".to_vec(), |r| r.as_bytes().to_vec());
        let append = !words.iter().any(|w| has_replacement(w, &replace));
        Template {
            shell: words.len() == 1,
            words,
            replace,
            append,
        }
    }

    /// The program and its arguments for one job.
    pub fn expand(&self, cx: Context<'_>) -> Vec<OsString> {
        let mut argv: Vec<Vec<u8>> = self
            .words
            .iter()
            .map(|w| substitute(w, &self.replace, cx, self.shell))
            .collect();
        if self.append {
            if self.shell {
                argv[0].push(b' ');
                argv[0].extend(quote(cx.item));
            } else {
                argv.push(cx.item.to_vec());
            }
        }
        if self.shell {
            let script = argv.pop().unwrap_or_default();
            argv = vec![b"sh".to_vec(), b"-c".to_vec(), script];
        }
        argv.into_iter().map(OsString::from_vec).collect()
    }
}

/// Whether `word` holds a replacement string (or `replace`).
pub fn has_replacement(word: &[u8], replace: &[u8]) -> bool {
    (0..word.len()).any(|i| {
        word[i..].starts_with(replace)
            || REPLACEMENTS
                .iter()
                .any(|r| word[i..].starts_with(r.as_bytes()))
    })
}

/// `word` with every replacement string replaced (quoted for the shell
/// when `shell`).
fn substitute(word: &[u8], replace: &[u8], cx: Context<'_>, shell: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(word.len() + cx.item.len());
    let mut i = 0;
    while i < word.len() {
        let rest = &word[i..];
        let found = if !replace.is_empty() && rest.starts_with(replace) {
            Some((replace.len(), cx.item.to_vec()))
        } else {
            // Longest first: `{//}` before `{/}`, `{/.}` before `{/}`.
            [
                ("{//}", dirname(cx.item)),
                ("{/.}", strip_extension(basename(cx.item)).to_vec()),
                ("{/}", basename(cx.item).to_vec()),
                ("{.}", strip_extension(cx.item).to_vec()),
                ("{#}", cx.number.to_string().into_bytes()),
                ("{%}", cx.slot.to_string().into_bytes()),
                ("{}", cx.item.to_vec()),
            ]
            .into_iter()
            .find(|(r, _)| rest.starts_with(r.as_bytes()))
            .map(|(r, value)| (r.len(), value))
        };
        match found {
            Some((len, value)) => {
                if shell {
                    out.extend(quote(&value));
                } else {
                    out.extend(value);
                }
                i += len;
            }
            None => {
                out.push(word[i]);
                i += 1;
            }
        }
    }
    out
}

/// `value` as one word for `sh`: single-quoted, each `'` written `'\''`.
pub fn quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Everything after the last `/` (as GNU parallel's `{/}`).
fn basename(item: &[u8]) -> &[u8] {
    match item.iter().rposition(|&b| b == b'/') {
        Some(i) => &item[i + 1..],
        None => item,
    }
}

/// Everything before the last `/`: `.` without one, `/` for the root.
fn dirname(item: &[u8]) -> Vec<u8> {
    match item.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/".to_vec(),
        Some(i) => item[..i].to_vec(),
        None => b".".to_vec(),
    }
}

/// Without the last `.ext` of the last path component.
fn strip_extension(item: &[u8]) -> &[u8] {
    let start = item.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    match item[start..].iter().rposition(|&b| b == b'.') {
        Some(dot) if start + dot + 1 < item.len() => &item[..start + dot],
        _ => item,
    }
}

/// A command line for people (and for `--dry-run`): words that need it
/// are quoted, so it can be pasted into a shell.
pub fn display(argv: &[OsString]) -> String {
    let words: Vec<Vec<u8>> = match argv {
        [sh, c, script] if sh == "sh" && c == "-c" => vec![script.as_bytes().to_vec()],
        _ => argv
            .iter()
            .map(|w| {
                let w = w.as_bytes();
                let plain = !w.is_empty()
                    && w.iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(b));
                if plain {
                    w.to_vec()
                } else {
                    quote(w)
                }
            })
            .collect(),
    };
    String::from_utf8_lossy(&words.join(&b' ')).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(words: &[&str], item: &[u8]) -> Vec<Vec<u8>> {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        Template::new(&words, None)
            .expand(Context {
                item,
                number: 7,
                slot: 2,
            })
            .into_iter()
            .map(OsString::into_vec)
            .collect()
    }

    #[test]
    fn replacement_strings_follow_gnu_parallel() {
        let got = expand(
            &["x", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"],
            b"a/b.c/d.tar.gz",
        );
        let want: Vec<&[u8]> = vec![
            b"x",
            b"a/b.c/d.tar.gz",
            b"a/b.c/d.tar",
            b"d.tar.gz",
            b"a/b.c",
            b"d.tar",
            b"7",
            b"2",
        ];
        assert_eq!(got, want);
        assert_eq!(
            expand(&["x", "{.}", "{//}"], b"b.c/d"),
            [&b"x"[..], b"b.c/d", b"b.c"]
        );
        assert_eq!(expand(&["x", "{//}"], b"f"), [&b"x"[..], b"."]);
    }

    #[test]
    fn without_a_placeholder_the_item_is_the_last_argument() {
        assert_eq!(
            expand(&["gzip", "-9"], b"-x y"),
            [&b"gzip"[..], b"-9", b"-x y"]
        );
    }

    #[test]
    fn one_word_runs_with_the_shell_and_items_are_quoted() {
        let got = expand(&["echo {} >{.}.out"], b"it's $(x).log");
        assert_eq!(
            got,
            [
                &b"sh"[..],
                b"-c",
                b"echo 'it'\\''s $(x).log' >'it'\\''s $(x)'.out"
            ]
        );
        assert_eq!(
            expand(&["gzip"], b"a b"),
            [&b"sh"[..], b"-c", b"gzip 'a b'"]
        );
    }

    #[test]
    fn streams_split_records_and_skip_empty_ones() {
        let mut s = Source::Stream {
            reader: Box::new(&b"a\0\0b\xff\nc\0d"[..]),
            separator: 0,
        };
        let mut got = Vec::new();
        while let Some(item) = s.next_item().unwrap() {
            got.push(item);
        }
        assert_eq!(got, [&b"a"[..], b"b\xff\nc", b"d"]);
    }
}
