//! Compression of a build context or of an `ADD`ed archive, detected from its first bytes as
//! Docker's `archive.DecompressStream` does (gzip, bzip2, xz, zstd), and the check that a stream
//! is a tar at all.

use std::io::{self, Cursor, Read};

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const BZIP2_MAGIC: &[u8] = &[0x42, 0x5a, 0x68];
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The longest magic number.
const MAGIC_LEN: usize = 6;

/// The size of a tar header block.
pub(crate) const BLOCK: usize = 512;

/// The compression of a stream starting with `prefix` (6 bytes are enough).
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(BZIP2_MAGIC) {
        Compression::Bzip2
    } else if prefix.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if prefix.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Detects the compression of `reader` and returns it with a reader of the decompressed bytes.
pub fn decompress<'a, R: Read + 'a>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut prefix = [0u8; MAGIC_LEN];
    let filled = read_up_to(&mut reader, &mut prefix)?;
    let compression = detect(&prefix[..filled]);
    let whole = Cursor::new(prefix[..filled].to_vec()).chain(reader);
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(whole),
        // Multi-member: pigz-style compressors write several gzip members.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    };
    Ok((compression, decoded))
}

/// Whether `block` (the first bytes of a decompressed stream) starts a tar: a header block whose
/// checksum is right, or the all-zero end-of-archive block of an empty tar. Go's
/// `tar.Reader.Next` accepts the same.
pub(crate) fn is_tar_start(block: &[u8]) -> bool {
    if block.len() < BLOCK {
        return false;
    }
    let header = &block[..BLOCK];
    if header.iter().all(|b| *b == 0) {
        return true;
    }
    let Some(stored) = parse_octal(&header[148..156]) else {
        return false;
    };
    // The checksum counts its own field as eight spaces; old tars summed signed bytes.
    let field = 148..156;
    let unsigned: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if field.contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    let signed: i64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if field.contains(&i) {
                32
            } else {
                i64::from(*b as i8)
            }
        })
        .sum();
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// A NUL/space-terminated octal number, as tar header fields hold them.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

/// Whether the stream `reader` is a (possibly compressed) tar archive, as Docker's
/// `isArchivePath` decides for `ADD`: it decompresses and its first block is a tar header.
pub fn is_archive(reader: impl Read) -> bool {
    let Ok((_, mut decoded)) = decompress(reader) else {
        return false;
    };
    let mut block = [0u8; BLOCK];
    match read_up_to(&mut decoded, &mut block) {
        // An empty tar (only zero blocks) is not worth extracting: Go's `Next` says io.EOF.
        Ok(n) => n == BLOCK && !block.iter().all(|b| *b == 0) && is_tar_start(&block),
        Err(_) => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A tar with one file `name` holding `data`.
    pub(crate) fn one_file_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    pub(crate) fn compress(data: &[u8], how: Compression) -> Vec<u8> {
        match how {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];

    #[test]
    fn every_compression_round_trips_and_is_detected() {
        let tar = one_file_tar("a.txt", b"hello");
        for how in ALL {
            let packed = compress(&tar, how);
            let (found, mut r) = decompress(&packed[..]).unwrap();
            assert_eq!(found, how);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, tar, "{how:?}");
            assert!(is_archive(&packed[..]), "{how:?}");
        }
    }

    #[test]
    fn text_is_not_a_tar() {
        let mut dockerfile = b"FROM busybox\nRUN echo hi\n".to_vec();
        dockerfile.resize(600, b'\n');
        assert!(!is_tar_start(&dockerfile));
        assert!(!is_archive(&dockerfile[..]));
        assert!(!is_archive(&compress(&dockerfile, Compression::Gzip)[..]));
        assert!(!is_archive(&b""[..]));
        let tar = one_file_tar("x", b"y");
        assert!(is_tar_start(&tar));
        let mut broken = tar.clone();
        broken[0] ^= 1;
        assert!(!is_tar_start(&broken));
        assert!(is_tar_start(&[0u8; BLOCK]));
    }
}
