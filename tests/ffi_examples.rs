//! Builds and runs every example of `ffi-examples/` against a registrar started here: C
//! (shared and static library), C++ (RAII wrapper), C with dlopen/dlsym only, Python with
//! ctypes, and C# with P/Invoke under Mono. Each asserts the notifications it receives.

mod support;

use lanscape_sip::testkit::registrar::{Registrar, digest_script};
use std::path::Path;
use std::process::Command;
use support::native::{build, c_example, compile, lib_dir, out, root, run, shared_link};

fn run_c_example(binary: &Path) {
    let registrar = Registrar::start(digest_script("MD5", "c-secret"));
    let stdout = run(Command::new(binary)
        .args(["127.0.0.1", &registrar.port().to_string(), "alice,bob"])
        .args(["test.realm", "alice", "c-secret"]));
    assert!(
        stdout.contains("registered=2 unregistered=2 failed=0: OK"),
        "{stdout}"
    );
    assert!(registrar.bindings("alice").is_empty() && registrar.bindings("bob").is_empty());
}

#[test]
fn c_example_with_the_shared_library() {
    let binary = c_example("register_demo_shared");
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&binary)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&needed.stdout).contains("[liblanscape_sip.so.1]"),
        "linked against the SONAME"
    );
    run_c_example(&binary);
}

#[test]
fn c_example_with_the_static_library() {
    let binary = out("register_demo_static");
    let archive = lib_dir().join("liblanscape_sip.a");
    compile(
        "cc",
        "-std=c11",
        "ffi-examples/c/register_demo.c",
        &binary,
        [archive.to_str().unwrap(), "-lpthread", "-ldl", "-lm"],
    );
    run_c_example(&binary);
}

#[test]
fn cpp_raii_example() {
    let binary = out("register_cpp");
    compile(
        "c++",
        "-std=c++17",
        "ffi-examples/cpp/main.cpp",
        &binary,
        shared_link(),
    );
    let registrar = Registrar::accepting();
    let stdout = run(Command::new(&binary).args(["127.0.0.1", &registrar.port().to_string()]));
    assert!(stdout.contains("C++ example OK"), "{stdout}");
    assert!(
        stdout.contains("refused: EnableSipRegisterServer: SipRegisterBadNameList"),
        "{stdout}"
    );
    assert!(registrar.bindings("cpp-alice").is_empty() && registrar.bindings("cpp-bob").is_empty());
}

#[test]
fn dlopen_example_loads_and_unloads_three_times() {
    let binary = out("dlopen_demo");
    compile(
        "cc",
        "-std=c11",
        "ffi-examples/dlopen/dlopen_demo.c",
        &binary,
        ["-ldl", "-lpthread"],
    );
    let registrar = Registrar::accepting();
    let library = lib_dir().join("liblanscape_sip.so");
    let stdout = run(Command::new(&binary)
        .arg(&library)
        .args(["127.0.0.1", &registrar.port().to_string()]));
    assert_eq!(
        stdout.matches("no thread left, unloaded").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("dlopen example OK"), "{stdout}");
}

#[test]
#[ignore = "needs python3 (scripts/test installs it and runs this)"]
fn python_ctypes_example() {
    let registrar = Registrar::accepting();
    let stdout = run(Command::new("python3")
        .arg(root().join("ffi-examples/python/register.py"))
        .arg(lib_dir().join("liblanscape_sip.so"))
        .args(["127.0.0.1", &registrar.port().to_string()]));
    assert!(stdout.contains("Python example OK"), "{stdout}");
    assert!(registrar.bindings("py-alice").is_empty() && registrar.bindings("py-bob").is_empty());
}

#[test]
#[ignore = "needs mono-mcs and mono-runtime (scripts/test installs them and runs this)"]
fn csharp_pinvoke_example_under_mono() {
    let exe = out("Register.exe");
    build(
        Command::new("mcs")
            .arg(format!("-out:{}", exe.display()))
            .arg(root().join("ffi-examples/dotnet/Register.cs")),
    );
    let registrar = Registrar::accepting();
    let stdout = run(Command::new("mono")
        .arg(&exe)
        .args(["127.0.0.1", &registrar.port().to_string()]));
    assert!(stdout.contains("C# example OK"), "{stdout}");
    assert!(registrar.bindings("cs-alice").is_empty() && registrar.bindings("cs-bob").is_empty());
}
