//! The C example and a multi-threaded FFI stress program under valgrind's memcheck: no
//! invalid access, no use of uninitialised memory, and no definite leak.

mod support;

use lanscape_sip::testkit::registrar::{Registrar, digest_script};
use std::process::Command;
use support::native::{c_example, compile, out, run, shared_link};

fn memcheck() -> Command {
    let mut command = Command::new("valgrind");
    command.args([
        "-q",
        // valgrind runs one thread at a time; without a fair hand-over the stress program's
        // busy prober thread can keep the lock and starve every other thread.
        "--fair-sched=yes",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ]);
    command
}

#[test]
#[ignore = "needs valgrind (scripts/test installs it and runs this)"]
fn ffi_stress_under_memcheck() {
    let binary = out("ffi_stress");
    compile(
        "cc",
        "-std=c11",
        "tests/native/ffi_stress.c",
        &binary,
        shared_link(),
    );
    let registrar = Registrar::accepting();
    // Two workers of two engines each, a prober of stale and forged handles, and registry
    // churn: valgrind runs one thread at a time, so more only costs time.
    let stdout =
        run(memcheck()
            .arg(&binary)
            .args(["127.0.0.1", &registrar.port().to_string(), "2", "2"]));
    assert!(
        stdout.contains("4 engines") && stdout.contains(", 0 failures"),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs valgrind (scripts/test installs it and runs this)"]
fn c_example_under_memcheck() {
    let binary = c_example("register_demo_memcheck");
    let registrar = Registrar::start(digest_script("SHA-256", "vg-secret"));
    let stdout = run(memcheck()
        .arg(&binary)
        .args(["127.0.0.1", &registrar.port().to_string(), "alice"])
        .args(["test.realm", "alice", "vg-secret"]));
    assert!(
        stdout.contains("registered=1 unregistered=1 failed=0: OK"),
        "{stdout}"
    );
}
