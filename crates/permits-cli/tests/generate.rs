//! Packaging tests of the `permits` binary: `permits generate` prints
//! completions for bash, zsh and fish and writes man pages that name every
//! subcommand `permits --help` lists, and `--version` names the commit of
//! the checkout it was built from. (The clap definition itself is checked
//! by `Command::debug_assert` in `src/generate.rs`.)

use assert_cmd::Command;
use predicates::prelude::*;

fn permits() -> Command {
    Command::cargo_bin("permits").unwrap()
}

fn stdout(args: &[&str]) -> String {
    let out = permits().args(args).output().unwrap();
    assert!(out.status.success(), "permits {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands under "Commands:" in `permits --help` (what a user
/// sees), without `help`.
fn listed_subcommands() -> Vec<String> {
    let help = stdout(&["--help"]);
    let names: Vec<String> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 5, "too few subcommands in --help: {names:?}");
    names
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let subcommands = listed_subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&["generate", "completions", shell]);
        assert!(script.len() > 100, "{shell}: {script:?}");
        for name in &subcommands {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
        }
    }
}

#[test]
fn man_page_names_every_subcommand() {
    let page = stdout(&["generate", "man"]);
    assert!(
        page.contains("\n.TH permits 1 "),
        "not a man page: {page:.200}"
    );
    for name in listed_subcommands() {
        assert!(page.contains(&format!("permits\\-{name}(1)")), "no {name}");
    }
}

#[test]
fn man_dir_gets_one_page_per_subcommand_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let listed = stdout(&["generate", "man", "--dir", out_dir.to_str().unwrap()]);
    let mut expected = vec![out_dir.join("permits.1")];
    for name in listed_subcommands() {
        expected.push(out_dir.join(format!("permits-{name}.1")));
    }
    for path in &expected {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(".TH "), "{}: not a man page", path.display());
        assert!(listed.contains(path.to_str().unwrap()), "{listed}");
    }
    // The internal watchdog stays out of the manual.
    assert!(!listed.contains("watchdog"), "{listed}");
}

#[test]
fn unknown_shell_is_a_usage_error() {
    permits()
        .args(["generate", "completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn version_names_the_commit_of_the_checkout() {
    let version = stdout(&["--version"]);
    let plain = format!("permits {}", env!("CARGO_PKG_VERSION"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8(out.stdout).unwrap().trim().to_owned());
    match head {
        Some(commit) => assert_eq!(version, format!("{plain} (commit {commit})\n")),
        // Built outside a checkout (or without git): the plain version.
        None => assert_eq!(version, format!("{plain}\n")),
    }
}
