//! Links `berth-init` statically, whatever image it runs in.
//!
//! `-C target-feature=+crt-static` cannot be given to one binary of a workspace (a `[target]`
//! rustflag would make every binary static and break proc-macros), and a build script can only
//! add linker arguments at the end of rustc's command line, after rustc's own
//! `-Wl,-Bdynamic -lgcc_s ... -lc`. So the script makes a directory where each of those
//! libraries names its static archive (`libgcc_s.a` is `libgcc_eh.a`), puts it in the search
//! path before the system's, and asks for a non-PIE static link: every `-l` then finds an
//! archive.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-libs");
    std::fs::create_dir_all(&dir).expect("creating OUT_DIR/static-libs");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let archive = |name: &str| -> PathBuf {
        let output = std::process::Command::new(&cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .unwrap_or_else(|e| panic!("running {cc} -print-file-name={name}: {e}"));
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(
            path.is_absolute() && path.exists(),
            "{name} not found (berth-init links statically: install libc6-dev / glibc-static)"
        );
        path
    };
    for (link, real) in [
        ("libc.a", "libc.a"),
        ("libm.a", "libm.a"),
        ("librt.a", "librt.a"),
        ("libpthread.a", "libpthread.a"),
        ("libdl.a", "libdl.a"),
        ("libutil.a", "libutil.a"),
        ("libgcc_s.a", "libgcc_eh.a"),
    ] {
        let path = dir.join(link);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(archive(real), &path)
            .unwrap_or_else(|e| panic!("linking {}: {e}", path.display()));
    }
    // A `-L` of this binary's link only (`rustc-link-search` would reach the test binaries
    // too, which link dynamically): it comes after rustc's own `-L`s, which hold no libc, and
    // before the system's directories, which ld always searches last.
    let search = format!("-L{}", dir.display());
    for arg in [search.as_str(), "-static", "-no-pie", "-lgcc", "-lc"] {
        println!("cargo:rustc-link-arg-bin=berth-init={arg}");
    }
}
