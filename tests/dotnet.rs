//! The managed assembly `LanScape.Sip.dll` (`bindings/dotnet/`), built with Mono's `mcs` and
//! used as .NET programs use it, against Kamailio: a program written only against
//! LanScape's documented `VoipMediaEngine` API (it compiles unchanged), and one using the
//! profile registry's objects.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::kamailio::{Kamailio, KamailioConfig};
use support::native::{build, out, root, run};

/// Builds the assembly and the two programs into a directory of their own; its path.
fn assembly_and_programs() -> PathBuf {
    let dir = out("dotnet");
    std::fs::create_dir_all(&dir).unwrap();
    let sources: Vec<PathBuf> = std::fs::read_dir(root().join("bindings/dotnet"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cs"))
        .collect();
    let dll = dir.join("LanScape.Sip.dll");
    build(
        Command::new("mcs")
            .args(["-warnaserror", "-target:library"])
            .arg(format!("-out:{}", dll.display()))
            .args(&sources),
    );
    for program in ["LanScapeApp", "ProfilesApp"] {
        build(
            Command::new("mcs")
                .arg("-warnaserror")
                .arg(format!("-r:{}", dll.display()))
                .arg(format!(
                    "-out:{}",
                    dir.join(format!("{program}.exe")).display()
                ))
                .arg(root().join(format!("tests/dotnet/{program}.cs"))),
        );
    }
    dir
}

fn mono(dir: &std::path::Path, program: &str, kam: &Kamailio) -> String {
    run(Command::new("mono")
        .arg(dir.join(format!("{program}.exe")))
        .args(kam.program_args()))
}

#[test]
#[ignore = "needs mono-mcs, mono-runtime and kamailio (scripts/test installs them and runs this)"]
fn managed_lanscape_api_and_profile_registry_against_kamailio() {
    let dir = assembly_and_programs();
    let kam = Kamailio::start(KamailioConfig {
        forbid_wrong_credentials: true,
        ..Default::default()
    });
    let stdout = mono(&dir, "LanScapeApp", &kam);
    assert!(stdout.contains("LanScape app OK"), "{stdout}");
    for line in [
        "SipRegisterAuthorizationError alice line 0",
        "SipRegisterSuccess alice line 0",
        "SipRegisterSuccess bob line 1",
        "SipUnregistered bob line 1",
    ] {
        assert!(stdout.contains(line), "{line}:\n{stdout}");
    }
    assert!(kam.contacts().is_empty(), "{:?}", kam.contacts());

    let stdout = mono(&dir, "ProfilesApp", &kam);
    assert!(stdout.contains("profiles app OK"), "{stdout}");
    assert!(stdout.contains("refused: SipBadParameter"), "{stdout}");
    assert!(kam.contacts().is_empty(), "{:?}", kam.contacts());
}
