//! Generates the C header from the `ffi` module with cbindgen, into `OUT_DIR`. The header
//! users include is the committed `include/lanscape_sip.h`; a unit test
//! (`ffi::tests::committed_header_is_the_generated_one`) fails when it differs from this
//! one, and `UPDATE_HEADER=1 cargo test --lib header` rewrites it.

/// SONAME major version; follows `LANSCAPE_SIP_ABI_VERSION` in `src/ffi/mod.rs`.
const SONAME_MAJOR: u32 = 1;

fn main() {
    // The shared library is versioned: liblanscape_sip.so.1 (scripts/install adds the links).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblanscape_sip.so.{SONAME_MAJOR}");
    }
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    // A header that cannot be generated fails the build: a stale one must never ship.
    let bindings = cbindgen::generate_with_config(&crate_dir, config)
        .unwrap_or_else(|e| panic!("cbindgen could not generate the C header: {e}"));
    bindings.write_to_file(format!("{out_dir}/lanscape_sip.h"));
}
