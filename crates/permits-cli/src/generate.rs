//! `permits generate`: shell completions and man pages, made at run time
//! from the clap definitions in `args.rs` (by `clap_complete` and
//! `clap_mangen`), so they can never disagree with the flags the binary
//! actually takes. Packagers run it once at install time; `.ci/run` runs it
//! into `target/` on every build.

use crate::args::Cli;
use crate::{exit, Failure};
use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;
use clap_mangen::Man;
use std::path::{Path, PathBuf};

const INSTALL: &str = "\
Where to put them (per user; packages use the system directories):
  permits generate completions bash > ~/.local/share/bash-completion/completions/permits
  permits generate completions zsh > ~/.zfunc/_permits   # with fpath+=(~/.zfunc)
  permits generate completions fish > ~/.config/fish/completions/permits.fish
  permits generate man --dir ~/.local/share/man/man1     # then: man permits-batch";

/// `permits generate`.
#[derive(Debug, Args)]
#[command(after_help = INSTALL)]
pub struct GenerateArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: What,
}

/// What `permits generate` makes.
#[derive(Debug, Subcommand)]
pub enum What {
    /// Print the completion script for a shell
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page permits(1), or write every page into a directory
    Man {
        /// Write permits.1 and one page per subcommand (permits-run.1, ...)
        /// into DIR, creating it, and list the files written
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs `permits generate`: 0, or 141 when stdout's reader went away.
///
/// # Errors
///
/// A man-page directory that cannot be created or written (status 1).
pub fn run(args: GenerateArgs) -> Result<i32, Failure> {
    match args.what {
        What::Completions { shell } => Ok(exit::print(&completions(shell))),
        What::Man { dir: None } => {
            let page = man_pages().swap_remove(0);
            Ok(exit::print(&render(&page)?))
        }
        What::Man { dir: Some(dir) } => {
            let written = write_man_pages(&dir)?;
            let list: String = written
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect();
            Ok(exit::print(list.as_bytes()))
        }
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "permits", &mut script);
    script
}

/// One page per visible command: `permits` first, then its subcommands
/// depth first (`permits-run`, `permits-generate-man`, ...). Hidden
/// subcommands (the internal watchdog) and `help` get none.
pub fn man_pages() -> Vec<Man> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Building sets each subcommand's display name (`permits-run`), which
    // names its page.
    cli.build();
    let mut pages = Vec::new();
    add_pages(cli, &mut pages);
    pages
}

fn add_pages(cmd: clap::Command, pages: &mut Vec<Man>) {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    pages.push(Man::new(cmd));
    for sub in subcommands {
        add_pages(sub, pages);
    }
}

/// A page in roff.
pub fn render(page: &Man) -> Result<Vec<u8>, Failure> {
    let mut roff = Vec::new();
    page.render(&mut roff)
        .map_err(|e| Failure::io("rendering a man page", e))?;
    Ok(roff)
}

/// Writes every page into `dir` (created if missing); returns their paths.
fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::io(&format!("creating {}", dir.display()), e))?;
    man_pages()
        .iter()
        .map(|page| {
            let path = dir.join(page.get_filename());
            std::fs::write(&path, render(page)?)
                .map_err(|e| Failure::io(&format!("writing {}", path.display()), e))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command `permits --help` lists, with its path
    /// (`["batch"]`, `["generate", "man"]`, ...), hidden ones left out.
    fn visible_commands() -> Vec<Vec<String>> {
        fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let mut here = path.to_vec();
                here.push(sub.get_name().to_owned());
                walk(sub, &here, out);
                out.push(here);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), &[], &mut out);
        out
    }

    #[test]
    fn clap_definition_is_consistent() {
        // Conflicting short flags, bad defaults, unknown `requires` and the
        // like panic here instead of at some user's first odd invocation.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_shell_completes_every_command_and_long_flag() {
        let top = Cli::command();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).unwrap();
            assert!(!script.trim().is_empty(), "{shell}: empty script");
            for path in visible_commands() {
                let name = path.last().unwrap();
                assert!(script.contains(name.as_str()), "{shell}: no {name}");
            }
            for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
                for long in sub.get_arguments().filter_map(|a| a.get_long()) {
                    let spelled = match shell {
                        Shell::Fish => format!("-l {long}"),
                        _ => format!("--{long}"),
                    };
                    assert!(
                        script.contains(&spelled),
                        "{shell}: no {spelled} (of {})",
                        sub.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn every_command_has_a_man_page_with_its_flags() {
        let pages = man_pages();
        let names: Vec<String> = pages.iter().map(Man::get_filename).collect();
        assert_eq!(names[0], "permits.1");
        let mut expected: Vec<String> = visible_commands()
            .iter()
            .map(|path| format!("permits-{}.1", path.join("-")))
            .collect();
        expected.push("permits.1".to_owned());
        expected.sort();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, expected);

        let main = String::from_utf8(render(&pages[0]).unwrap()).unwrap();
        for path in visible_commands().iter().filter(|p| p.len() == 1) {
            // roff spells `-` as `\-`.
            let page = format!("permits\\-{}(1)", path[0]);
            assert!(main.contains(&page), "permits.1 does not point to {page}");
        }
        let top = Cli::command();
        for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
            let file = format!("permits-{}.1", sub.get_name());
            let at = names.iter().position(|n| *n == file).unwrap();
            let roff = String::from_utf8(render(&pages[at]).unwrap()).unwrap();
            for long in sub.get_arguments().filter_map(|a| a.get_long()) {
                let spelled = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(roff.contains(&spelled), "{file}: no --{long}");
            }
        }
    }
}
