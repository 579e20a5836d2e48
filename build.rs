//! Links berth as a position-dependent executable: a PIE needs thousands of load-time
//! relocations, each dirtying a page, which made every command's resident set ~2 MiB larger.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    // `exec` and `create` re-execute berth from a sealed binary before the C library starts
    // (src/sealed_exe/before_libc.rs), which then goes on to glibc's `_start`.
    let target = |key| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_ARCH") == "x86_64" && target("CARGO_CFG_TARGET_OS") == "linux" {
        println!("cargo:rustc-link-arg-bins=-Wl,--entry=berth_entry");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
