//! Links the bare-metal programs with the small linker script of their
//! architecture (`link/thumb.x` or `link/riscv.x`). Host builds (the
//! library's tests) get no linker script.

use std::env;

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let script = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("arm") => "thumb.x",
        Ok("riscv32") => "riscv.x",
        other => panic!("no linker script for target_arch {other:?}"),
    };
    println!("cargo:rustc-link-search={dir}/link");
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
