//! Generates the C header from the `ffi` module with cbindgen, into `OUT_DIR`. The header
//! users include is the committed `include/lanscape_sip.h`; a unit test
//! (`ffi::tests::committed_header_is_the_generated_one`) fails when it differs from this
//! one, and `UPDATE_HEADER=1 cargo test --lib header` rewrites it.

/// SONAME major version; follows `LANSCAPE_SIP_ABI_VERSION` in `src/ffi/mod.rs`.
const SONAME_MAJOR: u32 = 2;

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    // The shared library is versioned: liblanscape_sip.so.2 (scripts/install adds the links).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblanscape_sip.so.{SONAME_MAJOR}");
        soname_link_in_build_tree(&out_dir);
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    // A header that cannot be generated fails the build: a stale one must never ship.
    let bindings = cbindgen::generate_with_config(&crate_dir, config)
        .unwrap_or_else(|e| panic!("cbindgen could not generate the C header: {e}"));
    bindings.write_to_file(format!("{out_dir}/lanscape_sip.h"));
}

/// Makes `cargo build` + `-L target/<profile> -llanscape_sip` give a program that starts:
/// it needs the SONAME, so `target/<profile>/liblanscape_sip.so.N` links to the library
/// cargo writes beside it. The one file this script writes outside `OUT_DIR`
/// (`target/<profile>/build/lanscape_sip-<hash>/out`); cargo-c would make it too, but
/// Debian's cargo-c (0.9.14) predates the 2024 edition of this manifest.
fn soname_link_in_build_tree(out_dir: &str) {
    let Some(profile_dir) = std::path::Path::new(out_dir).ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(format!("liblanscape_sip.so.{SONAME_MAJOR}"));
    #[cfg(unix)]
    if std::fs::symlink_metadata(&link).is_err() {
        // Several builds may race here; whoever loses finds the link made.
        let _ = std::os::unix::fs::symlink("liblanscape_sip.so", &link);
    }
}
