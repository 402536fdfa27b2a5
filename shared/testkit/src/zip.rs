//! Zip archives made by hand, for tests of what a server does with an upload: entries whose
//! compressed bytes the test made (a deflate stream of gigabytes made of one repeated block, in
//! a few milliseconds) and whose declared sizes and checksums may lie, as a bomb's do. The zip
//! crate writes neither.

use flate2::{Compress, Compression, FlushCompress};

/// One entry of [`archive`].
pub struct Entry<'a> {
    pub name: &'a str,
    /// Deflated (method 8), else stored (method 0).
    pub deflated: bool,
    /// The entry's bytes as stored in the archive (compressed when `deflated`).
    pub data: &'a [u8],
    /// What the archive says of the unpacked bytes: their CRC-32 and size.
    pub crc32: u32,
    pub size: u32,
}

impl<'a> Entry<'a> {
    /// An honest deflated entry of `compressed`, the deflate stream of `unpacked`.
    pub fn deflated(name: &'a str, unpacked: &[u8], compressed: &'a [u8]) -> Self {
        Self {
            name,
            deflated: true,
            data: compressed,
            crc32: crc32(unpacked),
            size: unpacked.len() as u32,
        }
    }
}

/// The zip archive of `entries`, without data descriptors or zip64 records.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let method: u16 = if e.deflated { 8 } else { 0 };
        let header = |signature: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&signature.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed to extract
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // time and date
            h.extend_from_slice(&e.crc32.to_le_bytes());
            h.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            h.extend_from_slice(&e.size.to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra field
            if central {
                h.extend_from_slice(&[0; 6]); // comment, disk, internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(e.name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(e.data);
        directory.extend(header(0x0201_4b50, true));
    }
    let start = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment
    out
}

/// The raw deflate stream of `data`.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut stream = compress(data, FlushCompress::Finish);
    stream.shrink_to_fit();
    stream
}

/// A raw deflate stream that inflates to `block` repeated `times`: `block` is compressed once
/// and flushed in full (byte-aligned, nothing after refers back to it), those bytes are
/// repeated, and a final empty block ends the stream.
pub fn deflate_repeated(block: &[u8], times: usize) -> Vec<u8> {
    let once = compress(block, FlushCompress::Full);
    let mut stream = Vec::with_capacity(once.len() * times + 2);
    for _ in 0..times {
        stream.extend_from_slice(&once);
    }
    // A final block of fixed codes holding nothing but its end.
    stream.extend_from_slice(&[0x03, 0x00]);
    stream
}

fn compress(data: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        c.compress_vec(&data[consumed..], &mut out, flush)
            .expect("deflate takes any input");
        let done = c.total_in() as usize == data.len() && out.capacity() > out.len();
        if done {
            return out;
        }
    }
}

/// The CRC-32 of `data`, as a zip declares it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_repeated_stream_inflates_to_the_repeated_block() {
        let block = b"D1,Deal,A1,Open,2021-01-01T00:00:00Z,no,Partner\n".repeat(100);
        let stream = deflate_repeated(&block, 7);
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(stream.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, block.repeat(7));
        let mut once = Vec::new();
        flate2::read::DeflateDecoder::new(deflate(&block).as_slice())
            .read_to_end(&mut once)
            .unwrap();
        assert_eq!(once, block);
    }
}
