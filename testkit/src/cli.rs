//! The `carepost` command line as an operator runs it: in the install's directory, next to
//! its `carepost.toml`, bounded in time, never reading `CAREPOST_CONFIG` from the test's
//! environment.

use std::path::Path;

/// Runs `bin ARGS --config carepost.toml` in `dir`: its exit code, standard output and
/// standard error.
pub fn carepost(bin: impl AsRef<Path>, dir: &Path, args: &[&str]) -> (i32, String, String) {
    crate::run(bin.as_ref(), dir, &with_config(args))
}

/// [`carepost`] with `stdin` as its standard input (`--password-stdin` and the like).
pub fn carepost_with_stdin(bin: impl AsRef<Path>, dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    crate::run_with_stdin(bin.as_ref(), dir, &with_config(args), stdin)
}

/// [`carepost`], failing the test unless it exits 0: its standard output.
pub fn carepost_ok(bin: impl AsRef<Path>, dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = carepost(bin, dir, args);
    assert_eq!(code, 0, "carepost {args:?}: {out}{err}");
    out
}

/// `carepost user add LOGIN --password-stdin` with `extra` arguments (a role), failing the
/// test unless the account is made.
pub fn add_user(bin: impl AsRef<Path>, dir: &Path, login: &str, extra: &[&str], password: &str) {
    let mut args = vec!["user", "add", login];
    args.extend_from_slice(extra);
    args.push("--password-stdin");
    let (code, out, err) = carepost_with_stdin(bin, dir, &args, &format!("{password}\n"));
    assert_eq!(code, 0, "carepost user add {login}: {out}{err}");
}

fn with_config<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut full = args.to_vec();
    full.extend(["--config", "carepost.toml"]);
    full
}

/// `carepost apikey create ARGS`, failing the test unless it succeeds: the new key.
pub fn create_api_key(bin: impl AsRef<Path>, dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["apikey", "create"];
    full.extend_from_slice(args);
    carepost_ok(bin, dir, &full).trim().to_owned()
}
