//! What an installed berth ships, checked where it lands: `make install` into a DESTDIR (the
//! binary, every man page read with man(1), the bash completion run by bash, the zsh and fish
//! ones), and `make deb`'s package (its contents and control fields), installed with dpkg and
//! removed again. Needs root (dpkg writes /usr). Runs make in the source tree: the release
//! build is cargo's cached one after the first (`make test` makes it before the tests).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::harness::{self, stderr, stdout};

const SRC: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs make in the source tree, one at a time: both tests' targets remake target/docs.
fn make(args: &[&str]) -> Output {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(SRC)
        .args(args)
        // A make of its own, whatever make (`make test`) runs this test and its jobserver.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make {args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Says which of `tools` is missing and skips (fails in CI); true when all are there.
fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\" >/dev/null", "sh", *tool])
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            harness::skip_or_fail(&format!("{tool} is not installed (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// Runs `cmd`, which must succeed; its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// man(1) with `args`, as plain text wide enough that no name is hyphenated across lines,
/// with the spaces of justified lines made single.
fn man(args: &[&str]) -> String {
    let text = run_ok(
        Command::new("man")
            .args(args)
            .env("LC_ALL", "C")
            .env("MANWIDTH", "200")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .env_remove("MANOPT")
            .env_remove("MANPATH"),
    );
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.join("\n")
}

/// The subcommands `berth --help` lists (clap's `help` aside).
fn subcommands(berth: &Path) -> Vec<String> {
    let help = run_ok(Command::new(berth).arg("--help"));
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(
        subs.iter().any(|s| s == "create") && subs.iter().any(|s| s == "exec"),
        "no subcommands in berth --help: {help}"
    );
    subs
}

/// What the bash completion `script` offers for the command line `words` (the last one being
/// completed): the script sourced as bash-completion loads it, and the function it registers
/// for `berth` called as bash calls it.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let prog = r#"source "$1" || exit 1; shift
        spec=$(complete -p berth) || exit 1
        fn=${spec#*-F }; fn=${fn%% *}
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$fn" berth "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf '%s\n' "${COMPREPLY[@]}""#;
    let out = run_ok(
        Command::new("bash")
            .args(["-c", prog, "bash"])
            .arg(script)
            .args(words),
    );
    out.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn make_install_puts_the_binary_man_pages_and_completions_under_destdir_and_prefix() {
    harness::require_root();
    if !have(&["make", "man", "bash"]) {
        return;
    }
    let dest = tempfile::Builder::new()
        .prefix("berth-install-")
        .tempdir()
        .unwrap();
    make(&[
        "install",
        &format!("DESTDIR={}", dest.path().display()),
        "PREFIX=/usr",
    ]);
    let usr = dest.path().join("usr");

    let berth = usr.join("bin/berth");
    let version = run_ok(Command::new(&berth).arg("--version"));
    assert!(
        version.contains(&format!("berth version {VERSION}")),
        "{version}"
    );

    // berth(8) and one page per subcommand, nothing else (no page for clap's `help`).
    let subs = subcommands(&berth);
    let man8 = usr.join("share/man/man8");
    let mut pages: Vec<String> = fs::read_dir(&man8)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = subs.iter().map(|s| format!("berth-{s}.8")).collect();
    want.push("berth.8".into());
    want.sort();
    assert_eq!(pages, want, "man pages in {}", man8.display());

    let main_page = man(&["-l", man8.join("berth.8").to_str().unwrap()]);
    assert!(main_page.contains("berth - A runc-compatible OCI container runtime"));
    for sub in &subs {
        assert!(
            main_page.contains(&format!("berth-{sub}(8)")),
            "berth(8) does not list {sub}: {main_page}"
        );
    }
    assert!(main_page.contains("--root <DIR>"), "{main_page}");
    assert!(
        main_page.contains("global options come before the subcommand"),
        "{main_page}"
    );

    // Each subcommand's page has its options and arguments: clap defers them (cli::Deferred),
    // and a page made from the unbuilt command would list none.
    for sub in &subs {
        let page = man(&["-l", man8.join(format!("berth-{sub}.8")).to_str().unwrap()]);
        assert!(page.contains(&format!("berth-{sub} - ")), "{page}");
        assert!(
            page.contains(&format!("berth {sub} ")),
            "no synopsis: {page}"
        );
        assert!(page.contains("berth(8)"), "no SEE ALSO: {page}");
    }
    let create = man(&["-l", man8.join("berth-create.8").to_str().unwrap()]);
    for arg in ["-b, --bundle <DIR>", "--console-socket <SOCKET>", "<ID>"] {
        assert!(
            create.contains(arg),
            "no {arg} in berth-create(8): {create}"
        );
    }

    let bash = usr.join("share/bash-completion/completions/berth");
    assert_eq!(bash_complete(&bash, &["berth", "cre"]), ["create"]);
    let flags = bash_complete(&bash, &["berth", "create", "--bu"]);
    assert_eq!(flags, ["--bundle"], "create's flags completed");
    let globals = bash_complete(&bash, &["berth", "--sys"]);
    assert_eq!(globals, ["--systemd-cgroup"]);

    // zsh and fish are not installed to run them: each file is the one its shell loads for
    // berth, with the subcommands and their flags.
    for (file, header, flag) in [
        (
            "share/zsh/vendor-completions/_berth",
            "#compdef berth",
            "'--bundle=[",
        ),
        (
            "share/fish/vendor_completions.d/berth.fish",
            "complete -c berth",
            "-l bundle",
        ),
    ] {
        let text = fs::read_to_string(usr.join(file)).unwrap();
        assert!(text.contains(header), "{file}: no {header:?}");
        for sub in &subs {
            assert!(text.contains(sub.as_str()), "{file}: no {sub}");
        }
        assert!(text.contains(flag), "{file}: no {flag:?}");
    }
}

/// Purges the berth package when dropped, so that a failing test leaves no /usr/bin/berth.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "berth"]).output();
    }
}

fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", "berth"])
        .output()
        .is_ok_and(|o| o.status.success() && stdout(&o) == "installed")
}

#[test]
fn make_deb_builds_a_package_that_installs_and_removes_cleanly() {
    harness::require_root();
    if !have(&["make", "man", "dpkg-deb", "readelf"]) {
        return;
    }
    make(&["deb"]);
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    let arch = arch.trim();
    let deb_version = VERSION.replace('-', "~");
    let deb = PathBuf::from(SRC).join(format!("target/deb/berth_{deb_version}_{arch}.deb"));
    assert!(deb.is_file(), "make deb made no {}", deb.display());

    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "berth");
    assert_eq!(field("Version"), deb_version);
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Section"), "admin");
    assert_eq!(field("Priority"), "optional");
    assert!(field("Maintainer").contains('@'), "{}", field("Maintainer"));
    assert!(field("Description").starts_with("runc-compatible OCI container runtime\n"));
    // The binary is static (checked below, installed): it depends on no package.
    assert_eq!(field("Depends"), "");
    let built_using = field("Built-Using");
    assert!(
        built_using.contains("glibc (= ") && built_using.contains("libseccomp (= "),
        "{built_using}"
    );

    // Every file, owned by root; the man pages gzipped.
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            assert!(l.contains(" root/root "), "not owned by root: {l}");
            l.rsplit(' ').next().unwrap()
        })
        .collect();
    let mut want = vec![
        "./usr/bin/berth".to_string(),
        "./usr/share/bash-completion/completions/berth".into(),
        "./usr/share/doc/berth/changelog.gz".into(),
        "./usr/share/doc/berth/copyright".into(),
        "./usr/share/fish/vendor_completions.d/berth.fish".into(),
        "./usr/share/lintian/overrides/berth".into(),
        "./usr/share/man/man8/berth.8.gz".into(),
        "./usr/share/zsh/vendor-completions/_berth".into(),
    ];
    for sub in subcommands(Path::new(harness::BERTH)) {
        want.push(format!("./usr/share/man/man8/berth-{sub}.8.gz"));
    }
    want.sort();
    let mut got: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "{listing}");

    // Installed for real only where that replaces nobody's berth; dpkg refuses to install over
    // a file of another package, but not over one put there by hand (`make install`).
    if Path::new("/usr/bin/berth").exists() || package_installed() {
        harness::skip_or_fail(
            "/usr/bin/berth exists already (installed by hand or as a package): \
             not installing the package over it",
        );
        return;
    }
    let purge = PurgeOnDrop;
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(package_installed());
    let version = run_ok(Command::new("/usr/bin/berth").arg("--version"));
    assert!(
        version.contains(&format!("berth version {VERSION}")),
        "{version}"
    );
    let ldd = Command::new("ldd").arg("/usr/bin/berth").output().unwrap();
    assert!(
        !ldd.status.success(),
        "the package has no Depends, but its binary is dynamic: {}",
        stdout(&ldd)
    );
    let sections = run_ok(Command::new("readelf").args(["-S", "-W", "/usr/bin/berth"]));
    assert!(!sections.contains(".symtab"), "not stripped: {sections}");

    let found = man(&["-aw", "berth"]);
    assert!(
        found.lines().any(|l| l == "/usr/share/man/man8/berth.8.gz"),
        "man -aw berth: {found}"
    );
    let found = man(&["-aw", "berth-create"]);
    assert!(
        found
            .lines()
            .any(|l| l == "/usr/share/man/man8/berth-create.8.gz"),
        "man -aw berth-create: {found}"
    );
    let page = man(&["-l", "/usr/share/man/man8/berth-create.8.gz"]);
    assert!(page.contains("-b, --bundle <DIR>"), "{page}");

    run_ok(Command::new("dpkg").args(["--purge", "berth"]));
    drop(purge);
    assert!(!package_installed(), "berth still installed after purge");
    for file in &want {
        let path = Path::new(file.trim_start_matches('.'));
        assert!(!path.exists(), "{} left after purge", path.display());
    }
    assert!(!Path::new("/usr/share/doc/berth").exists());
}

/// The release binary, built by `make build`, and what `rustc -vV` says of the toolchain.
fn release_binary() -> (std::path::PathBuf, String) {
    make(&["build"]);
    let host = run_ok(Command::new("rustc").arg("-vV"));
    let triple = host
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let binary = Path::new(SRC).join(format!("target/{triple}/release/berth"));
    (binary, host)
}

/// The release binary (`make build`) lays out the functions of hack/berth.order (those the
/// everyday commands run) before all its other Rust functions, in one block: a command then
/// maps a few hundred KiB of berth's text instead of most of it. Fails when the ordering is
/// not passed to the linker, or when the file has gone stale (few of its names left).
#[test]
fn the_release_binary_places_the_functions_berth_runs_together() {
    if !have(&["nm", "rustc"]) {
        return;
    }
    let (binary, host) = release_binary();
    let minor: u32 = host
        .lines()
        .find_map(|l| l.strip_prefix("release: 1."))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .expect("rustc -vV names its release");
    assert!(
        minor >= 90,
        "Rust 1.{minor} links with GNU ld, which cannot order functions (the Makefile leaves the order out); Rust 1.90 or newer links with LLD"
    );
    let order = fs::read_to_string(Path::new(SRC).join("hack/berth.order")).unwrap();
    let order: std::collections::HashSet<&str> = order.lines().collect();
    let listing = run_ok(
        Command::new("nm")
            .args(["-n", "--defined-only"])
            .arg(&binary),
    );
    // Rust's functions only: glibc's come in one section per object file, several functions
    // each, so an ordered one brings its neighbours along.
    let rust: Vec<bool> = listing
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "t" | "T", name] if name.starts_with("_ZN") || name.starts_with("_R") => {
                Some(order.contains(name))
            }
            _ => None,
        })
        .collect();
    let ordered = rust.iter().filter(|&&o| o).count();
    assert!(
        ordered >= 500,
        "only {ordered} functions of hack/berth.order are in the binary: regenerate it (sudo make order)"
    );
    let first_other = rust.iter().position(|&o| !o).unwrap_or(rust.len());
    assert_eq!(
        first_other,
        ordered,
        "the ordered functions are not the first {ordered} of the binary's {} Rust functions",
        rust.len()
    );
}

#[test]
fn the_release_binary_starts_at_berths_entry_whose_code_calls_nothing() {
    // src/sealed_exe/before_libc.rs runs before glibc has relocated its IFUNCs (memcpy,
    // memset) or set up thread-local storage: it must call no function at all, and hand on
    // to glibc's `_start`.
    if !have(&["objdump", "readelf", "rustc"]) {
        return;
    }
    let (binary, _) = release_binary();
    let header = run_ok(Command::new("readelf").arg("-h").arg(&binary));
    let entry = header
        .lines()
        .find_map(|l| l.trim().strip_prefix("Entry point address:"))
        .map(|a| u64::from_str_radix(a.trim().trim_start_matches("0x"), 16).unwrap())
        .expect("readelf -h gives the entry point");
    let listing = run_ok(
        Command::new("objdump")
            .args(["-d", "--no-show-raw-insn", "-M", "intel"])
            .arg(&binary),
    );
    // objdump's functions: "ADDR <NAME>:" then their instructions, up to a blank line.
    let function = |wanted: &dyn Fn(&str) -> bool| -> (u64, Vec<String>) {
        let mut lines = listing.lines();
        while let Some(l) = lines.next() {
            if let Some((addr, rest)) = l.split_once(" <") {
                if let Some(name) = rest.strip_suffix(">:") {
                    if wanted(name) {
                        let body = lines
                            .by_ref()
                            .take_while(|l| !l.trim().is_empty())
                            .map(String::from)
                            .collect();
                        return (u64::from_str_radix(addr, 16).unwrap(), body);
                    }
                }
            }
        }
        panic!("no such function in the release binary");
    };
    let (entry_at, entry_body) = function(&|n| n == "berth_entry");
    assert_eq!(entry, entry_at, "the ELF entry point is not berth_entry");
    let calls: Vec<&String> = entry_body.iter().filter(|l| l.contains("call")).collect();
    assert!(
        calls.len() == 1 && calls[0].contains("before_libc"),
        "{entry_body:#?}"
    );
    assert!(
        entry_body
            .last()
            .is_some_and(|l| l.contains("jmp") && l.ends_with("<_start>")),
        "{entry_body:#?}"
    );
    let (_, body) = function(&|n| n.contains("before_libc") && n.starts_with("_ZN"));
    assert!(body.len() > 20, "{body:#?}");
    for line in &body {
        let insn = line.split('\t').nth(1).unwrap_or_default();
        assert!(!insn.starts_with("call"), "before_libc calls: {line}");
        // A jump names its target: somewhere in before_libc itself.
        if let Some((_, target)) = insn.split_once('<') {
            assert!(
                target.contains("before_libc"),
                "before_libc leaves itself: {line}"
            );
        }
    }
}
