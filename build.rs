//! Generates the C header `include/lanscape_sip.h` from the `ffi` module with cbindgen.

/// SONAME major version; follows `LANSCAPE_SIP_ABI_VERSION` in `src/ffi/mod.rs`.
const SONAME_MAJOR: u32 = 1;

fn main() {
    // The shared library is versioned: liblanscape_sip.so.1 (scripts/install adds the links).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblanscape_sip.so.{SONAME_MAJOR}");
    }
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/lanscape_sip.h"));
        }
        // A syntax error is reported by rustc itself, with better messages.
        Err(e) => println!("cargo:warning=cbindgen could not generate the header: {e}"),
    }
}
