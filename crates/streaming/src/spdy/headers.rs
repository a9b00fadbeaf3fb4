//! SPDY/3 name/value header blocks: the plain layout (a 32-bit count, then for each pair a
//! 32-bit length and the name, a 32-bit length and the value; several values of one name are
//! joined by NUL) and its compression, one zlib stream per direction of a connection with the
//! SPDY dictionary preset, each block ending on a sync flush.
//!
//! Blocks come from the network: the decoder bounds the decompressed size (a zlib bomb stops
//! at [`MAX_HEADER_BLOCK`]), the number of pairs and every length against what is left.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dict::dictionary;

/// The largest decompressed name/value block accepted.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most name/value pairs in one block.
pub const MAX_HEADER_PAIRS: usize = 256;

/// One header: a lowercase name and one value.
pub type Header = (String, String);

/// Why a header block is refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header block: zlib: {0}")]
    Zlib(String),
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes once decompressed")]
    TooLarge,
    #[error("header block has more than {MAX_HEADER_PAIRS} pairs")]
    TooManyPairs,
    #[error("header block truncated")]
    Truncated,
    #[error("header block has {0} bytes after its last pair")]
    Trailing(usize),
    #[error("header name or value is not UTF-8")]
    NotUtf8,
    #[error("header name is empty or not lowercase")]
    BadName,
}

/// Serialises headers as an uncompressed name/value block.
pub fn encode_block(headers: &[Header]) -> Vec<u8> {
    // Values of one name go together, NUL-separated, in first-seen order.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => merged.push((name, value.clone())),
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(merged.len() as u32).to_be_bytes());
    for (name, value) in &merged {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], HeaderError> {
    if buf.len() < n {
        return Err(HeaderError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_u32(buf: &mut &[u8]) -> Result<usize, HeaderError> {
    let b = take(buf, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Parses an uncompressed name/value block; a value holding NULs gives one header each.
pub fn decode_block(mut buf: &[u8]) -> Result<Vec<Header>, HeaderError> {
    let count = take_u32(&mut buf)?;
    if count > MAX_HEADER_PAIRS {
        return Err(HeaderError::TooManyPairs);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let n = take_u32(&mut buf)?;
        let name = std::str::from_utf8(take(&mut buf, n)?).map_err(|_| HeaderError::NotUtf8)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HeaderError::BadName);
        }
        let n = take_u32(&mut buf)?;
        let value = std::str::from_utf8(take(&mut buf, n)?).map_err(|_| HeaderError::NotUtf8)?;
        for v in value.split('\0') {
            if out.len() >= MAX_HEADER_PAIRS {
                return Err(HeaderError::TooManyPairs);
            }
            out.push((name.to_string(), v.to_string()));
        }
    }
    if !buf.is_empty() {
        return Err(HeaderError::Trailing(buf.len()));
    }
    Ok(out)
}

/// The compressing side of one direction.
pub struct Deflater {
    z: Compress,
    started: bool,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    pub fn new() -> Self {
        Self {
            z: Compress::new(Compression::default(), true),
            started: false,
        }
    }

    /// Compresses one block (ending on a sync flush), continuing the stream's history.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        if !self.started {
            self.z
                .set_dictionary(dictionary())
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            self.started = true;
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before_in = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            let used = (self.z.total_in() - before_in) as usize;
            input = input.get(used..).unwrap_or_default();
            // Done once all input is in and the flush left spare room in the output.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The decompressing side of one direction.
pub struct Inflater {
    z: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses one block, at most [`MAX_HEADER_BLOCK`] bytes of output.
    pub fn decompress(&mut self, mut input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(4).min(4096) + 64);
        let mut chunk = [0u8; 4096];
        let mut stalls = 0;
        loop {
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            let status = self.z.decompress(input, &mut chunk, FlushDecompress::Sync);
            let used = (self.z.total_in() - before_in) as usize;
            let made = (self.z.total_out() - before_out) as usize;
            input = input.get(used..).unwrap_or_default();
            if out.len() + made > MAX_HEADER_BLOCK {
                return Err(HeaderError::TooLarge);
            }
            out.extend_from_slice(chunk.get(..made).unwrap_or_default());
            match status {
                Ok(Status::StreamEnd) => {
                    // The peer must keep its stream open across blocks.
                    if !input.is_empty() {
                        return Err(HeaderError::Trailing(input.len()));
                    }
                    return Ok(out);
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
            // All input in and the output buffer not filled: the block is complete.
            if input.is_empty() && made < chunk.len() {
                return Ok(out);
            }
            if used == 0 && made == 0 {
                stalls += 1;
                if stalls > 2 {
                    return Err(HeaderError::Zlib("no progress".into()));
                }
            } else {
                stalls = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_one_stream() {
        let mut d = Deflater::new();
        let mut i = Inflater::new();
        for n in 0..5 {
            let headers = vec![
                ("streamtype".to_string(), "stdout".to_string()),
                ("port".to_string(), format!("{}", 8000 + n)),
            ];
            let block = encode_block(&headers);
            let z = d.compress(&block).unwrap();
            assert_eq!(decode_block(&i.decompress(&z).unwrap()).unwrap(), headers);
        }
    }

    #[test]
    fn multi_values_split_on_nul() {
        let block = encode_block(&[
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ]);
        assert_eq!(block.len(), 4 + 4 + 1 + 4 + 3);
        let h = decode_block(&block).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].1, "2");
    }

    #[test]
    fn hostile_blocks_are_errors() {
        assert!(decode_block(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Inflater::new().decompress(b"not zlib at all").is_err());
        // A bomb: 1 MiB of zeros compressed is refused at the bound.
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary()).unwrap();
        let mut out = Vec::with_capacity(1 << 20);
        z.compress_vec(&vec![0u8; 1 << 20], &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(matches!(
            Inflater::new().decompress(&out),
            Err(HeaderError::TooLarge)
        ));
    }
}
