//! Builds and runs every example of `ffi-examples/` against a registrar started here: C
//! (shared and static library), C++ (RAII wrapper), C with dlopen/dlsym only, Python with
//! ctypes, and C# with P/Invoke under Mono. Each asserts the notifications it receives. The
//! C, C++, Python and C# examples run once over UDP and once over TLS.

mod support;

use lanscape_sip::testkit::pki::TestPki;
use lanscape_sip::testkit::registrar::{
    Action, Listen, Registrar, RegistrarState, Req, digest_script,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::native::{build, c_example, compile, lib_dir, out, root, run, shared_link};

/// A TLS registrar on 127.0.0.1 whose certificate names that address, and its CA file.
fn tls_registrar(
    script: impl FnMut(&Req, &mut RegistrarState) -> Action + Send + 'static,
) -> (Registrar, PathBuf) {
    let pki = TestPki::new(&["127.0.0.1"]);
    let dir = out(&format!("pki-{}", std::process::id()));
    let (ca, _, _) = pki.write(&dir.join(format!("{:?}", std::thread::current().id())));
    let registrar = Registrar::start_on(
        "127.0.0.1:0".parse().unwrap(),
        Listen::Tls(pki.server_config()),
        script,
    );
    (registrar, ca)
}

fn accept(_: &Req, _: &mut RegistrarState) -> Action {
    Action::Register
}

fn run_c_example(binary: &Path) {
    for tls in [false, true] {
        let script = digest_script("MD5", "c-secret");
        let (registrar, ca) = if tls {
            tls_registrar(script)
        } else {
            (Registrar::start(script), PathBuf::new())
        };
        let mut command = Command::new(binary);
        command
            .args(["127.0.0.1", &registrar.port().to_string(), "alice,bob"])
            .args(["test.realm", "alice", "c-secret"]);
        if tls {
            command.arg("--tls").arg(&ca);
        }
        let stdout = run(&mut command);
        assert!(
            stdout.contains("registered=2 unregistered=2 failed=0: OK"),
            "tls {tls}: {stdout}"
        );
        assert!(registrar.bindings("alice").is_empty() && registrar.bindings("bob").is_empty());
        assert!(!registrar.registers().is_empty());
    }
}

/// Runs an example over UDP, then over TLS (`--tls CA_FILE` after its arguments); checks
/// what it printed and that the registrar holds nothing afterwards.
fn run_twice(
    example: impl Fn(&Registrar, Option<&Path>) -> Command,
    printed: &[&str],
    users: [&str; 2],
) {
    for tls in [false, true] {
        let (registrar, ca) = if tls {
            tls_registrar(accept)
        } else {
            (Registrar::start(accept), PathBuf::new())
        };
        let stdout = run(&mut example(&registrar, tls.then_some(ca.as_path())));
        for line in printed {
            assert!(stdout.contains(line), "tls {tls}: {stdout}");
        }
        assert!(
            users.iter().all(|u| registrar.bindings(u).is_empty()),
            "tls {tls}: left behind"
        );
        let registered: Vec<String> = registrar.registers().iter().map(|r| r.to_user()).collect();
        for user in users {
            assert!(
                registered.iter().any(|u| u == user),
                "tls {tls}: {registered:?}"
            );
        }
    }
}

/// `--tls CA_FILE`, when given.
fn tls_args(ca: Option<&Path>) -> Vec<std::ffi::OsString> {
    ca.map(|ca| vec!["--tls".into(), ca.into()])
        .unwrap_or_default()
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
        String::from_utf8_lossy(&needed.stdout).contains("[liblanscape_sip.so.2]"),
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
    run_twice(
        |registrar, ca| {
            let mut command = Command::new(&binary);
            command
                .args(["127.0.0.1", &registrar.port().to_string()])
                .args(tls_args(ca));
            command
        },
        &[
            "refused: EnableSipRegisterServer: SipRegisterBadNameList",
            "C++ example OK",
        ],
        ["cpp-alice", "cpp-bob"],
    );
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
    run_twice(
        |registrar, ca| {
            let mut command = Command::new("python3");
            command
                .arg(root().join("ffi-examples/python/register.py"))
                .arg(lib_dir().join("liblanscape_sip.so"))
                .args(["127.0.0.1", &registrar.port().to_string()])
                .args(tls_args(ca));
            command
        },
        &["Python example OK"],
        ["py-alice", "py-bob"],
    );
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
    run_twice(
        |registrar, ca| {
            let mut command = Command::new("mono");
            command
                .arg(&exe)
                .args(["127.0.0.1", &registrar.port().to_string()])
                .args(tls_args(ca));
            command
        },
        &["C# example OK"],
        ["cs-alice", "cs-bob"],
    );
}
