//! Builds the C example against the generated header and runs it, linked to the shared
//! library and to the static one, against a registrar that asks for digest auth.

use lanscape_sip::testkit::registrar::{Registrar, digest_script};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo put this build's libraries in (target/<profile>).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compile(output: &Path, link: &[&str]) {
    let status = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_POSIX_C_SOURCE=200809L",
            "-g",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("ffi-examples/c/register_demo.c"))
        .args(link)
        .arg("-o")
        .arg(output)
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling the C example failed");
}

fn run(binary: &Path) {
    let registrar = Registrar::start(digest_script("MD5", "c-secret"));
    let output = Command::new(binary)
        .env("LD_LIBRARY_PATH", lib_dir())
        .args(["127.0.0.1", &registrar.port().to_string(), "alice,bob"])
        .args(["test.realm", "alice", "c-secret"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{binary:?} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("registered=2 unregistered=2 failed=0: OK"),
        "{stdout}"
    );
    assert!(stdout.contains("event SipRegisterSuccess"), "{stdout}");
    assert!(registrar.bindings("alice").is_empty() && registrar.bindings("bob").is_empty());
}

#[test]
fn c_example_with_the_shared_library() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let binary = dir.join("register_demo_shared");
    let lib = lib_dir();
    compile(
        &binary,
        &["-L", lib.to_str().unwrap(), "-llanscape_sip", "-lpthread"],
    );
    run(&binary);
}

#[test]
fn c_example_with_the_static_library() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let binary = dir.join("register_demo_static");
    let archive = lib_dir().join("liblanscape_sip.a");
    compile(
        &binary,
        &[archive.to_str().unwrap(), "-lpthread", "-ldl", "-lm"],
    );
    run(&binary);
}
