//! Generates the C header `include/lanscape_sip.h` from the `ffi` module with cbindgen.

fn main() {
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
