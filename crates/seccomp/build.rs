//! Gives the cache key (src/cache.rs) the SHA-256 of this crate's sources, so that a build
//! whose compiler of filters changed never reads programs an older build stored (the crate
//! version alone does not change between commits).

use std::path::Path;

use sha2::{Digest, Sha256};

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src");
    let mut list = Vec::new();
    files(Path::new("src"), &mut list)?;
    list.sort();
    let mut hash = Sha256::new();
    for path in list {
        let data = std::fs::read(&path)?;
        let name = path.to_string_lossy();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(&data);
    }
    println!(
        "cargo:rustc-env=BERTH_SECCOMP_SOURCE_HASH={}",
        hex::encode(hash.finalize())
    );
    Ok(())
}
