//! The Python package (`pyproject.toml`, `bindings/python/`) as its users get it: a virtual
//! environment, `pip install` of the repository (which builds and bundles the library), then
//! a program using the package against Kamailio.

mod support;

use std::process::Command;
use support::kamailio::{Kamailio, KamailioConfig};
use support::native::{build, out, root};

#[test]
#[ignore = "needs python3-venv, PyPI (setuptools) and kamailio (scripts/test installs them and runs this)"]
fn pip_installed_package_registers_against_kamailio() {
    let venv = out("python-venv");
    let _ = std::fs::remove_dir_all(&venv);
    build(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let python = venv.join("bin/python");
    build(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .arg(root()),
    );
    let kam = Kamailio::start(KamailioConfig {
        forbid_wrong_credentials: true,
        ..Default::default()
    });
    // Run from elsewhere, so that the installed package is imported, not the source tree.
    let output = Command::new(&python)
        .arg(root().join("tests/python/use_package.py"))
        .args(kam.program_args())
        .current_dir(&venv)
        .env_remove("LANSCAPE_SIP_LIBRARY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("python package OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("refused: SipRegisterAuthorizationError"),
        "{stdout}"
    );
    assert!(kam.contacts().is_empty(), "{:?}", kam.contacts());
}
