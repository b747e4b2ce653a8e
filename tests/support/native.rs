//! Building and running native programs (the FFI examples, the stress program) against
//! the library cargo just built.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo put this build's libraries in, with the SONAME link programs
/// linked against the shared library need at run time.
///
/// `cargo test` builds only the rlib the tests link with, so the shared and static
/// libraries are built here once per test binary (a no-op when they are up to date).
pub fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command.args(["build", "--lib"]).current_dir(root());
            if dir.file_name().is_some_and(|p| p == "release") {
                command.arg("--release");
            }
            build(&mut command);
            assert!(
                dir.join("liblanscape_sip.so.2").exists(),
                "the build made the SONAME link (build.rs)"
            );
            dir
        })
        .clone()
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch file of the tests.
pub fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Runs a build step; fails the test with its output when it fails.
pub fn build(command: &mut Command) {
    let output = command.output().expect("the compiler is installed");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles one C or C++ source with warnings as errors against the generated header.
pub fn compile<S: AsRef<std::ffi::OsStr>>(
    compiler: &str,
    std: &str,
    source: &str,
    output: &Path,
    link: impl IntoIterator<Item = S>,
) {
    build(
        Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-D_DEFAULT_SOURCE",
                "-g",
            ])
            .arg("-I")
            .arg(root().join("include"))
            .arg(root().join(source))
            .args(link)
            .arg("-o")
            .arg(output),
    );
}

/// Runs an example; returns its standard output, failing the test on a non-zero exit.
pub fn run(command: &mut Command) -> String {
    let output = command.env("LD_LIBRARY_PATH", lib_dir()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Linker arguments for the shared library.
pub fn shared_link() -> Vec<String> {
    vec![
        "-L".into(),
        lib_dir().display().to_string(),
        "-llanscape_sip".into(),
        "-lpthread".into(),
    ]
}

/// Builds `ffi-examples/c/register_demo.c` against the shared library.
pub fn c_example(name: &str) -> PathBuf {
    let binary = out(name);
    compile(
        "cc",
        "-std=c11",
        "ffi-examples/c/register_demo.c",
        &binary,
        shared_link(),
    );
    binary
}
