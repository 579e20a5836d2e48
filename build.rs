//! Links berth as a position-dependent executable: a PIE needs thousands of load-time
//! relocations, each dirtying a page, which made every command's resident set ~2 MiB larger.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
