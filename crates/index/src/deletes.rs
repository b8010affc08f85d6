//! Deletion sets: the deleted documents of one segment, by local document number.
//!
//! On disk (`del-SEGMENT-GENERATION.bin`, little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `SPLDEL\0\x01` |
//! | 8 | u64: the segment's document count |
//! | 8 | u64: `count`, the number of deleted documents |
//! | 4 × count | u32: the deleted document numbers, strictly ascending, `< document count` |
//! | 4 | u32: CRC32 of all the bytes before it |
//!
//! The multi-segment manifest also records the file's name, size, CRC32 and count. A
//! deletion file is never rewritten: a commit that deletes more documents of a segment
//! writes a new file named with the new generation.

use std::path::Path;

use crate::error::{IndexError, Result};
use crate::format::crc32;

/// The first bytes of every deletion file.
pub(crate) const MAGIC: &[u8; 8] = b"SPLDEL\x00\x01";
const HEADER: usize = 24;

/// A set of deleted local document numbers, as a sorted list and a bitset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeleteSet {
    docs: Vec<u32>,
    words: Vec<u64>,
}

impl DeleteSet {
    /// The set of `docs` (sorted and deduplicated here); every number must be `< num_docs`
    /// (the caller guarantees it).
    pub(crate) fn new(mut docs: Vec<u32>, num_docs: usize) -> Self {
        docs.sort_unstable();
        docs.dedup();
        let mut words = Vec::new();
        if !docs.is_empty() {
            words = vec![0u64; num_docs.div_ceil(64)];
            for &d in &docs {
                if let Some(w) = words.get_mut(d as usize / 64) {
                    *w |= 1 << (d % 64);
                }
            }
        }
        Self { docs, words }
    }

    pub(crate) fn len(&self) -> usize {
        self.docs.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The deleted documents, ascending.
    pub(crate) fn docs(&self) -> &[u32] {
        &self.docs
    }

    /// The bitset: bit `d % 64` of word `d / 64` is set when `d` is deleted (empty when
    /// nothing is).
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    #[inline]
    pub(crate) fn contains(&self, doc: u32) -> bool {
        is_deleted(&self.words, doc)
    }

    /// The file contents.
    pub(crate) fn encode(&self, num_docs: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 4 * self.docs.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(num_docs as u64).to_le_bytes());
        out.extend_from_slice(&(self.docs.len() as u64).to_le_bytes());
        for d in &self.docs {
            out.extend_from_slice(&d.to_le_bytes());
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks a deletion file of a segment of `num_docs` documents; errors name
    /// `path`.
    pub(crate) fn decode(bytes: &[u8], num_docs: usize, path: &Path) -> Result<Self> {
        let err = |reason: String| IndexError::corrupt(path, reason);
        if bytes.len() < HEADER + 4 {
            return Err(err(format!(
                "{} bytes, too short for a deletion file (truncated?)",
                bytes.len()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(err("not a deletion file (bad magic bytes)".into()));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let actual = crc32(body);
        if stored != actual {
            return Err(err(format!(
                "checksum mismatch (crc32 {actual:08x}, file says {stored:08x})"
            )));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let (docs_in_file, count) = (word(8), word(16));
        if docs_in_file != num_docs as u64 {
            return Err(err(format!(
                "written for a segment of {docs_in_file} documents, the segment has {num_docs}"
            )));
        }
        let expected = count
            .checked_mul(4)
            .and_then(|c| c.checked_add(HEADER as u64));
        if expected != Some(body.len() as u64) {
            return Err(err(format!(
                "{} bytes for {count} deleted documents (truncated?)",
                bytes.len()
            )));
        }
        let docs: Vec<u32> = body[HEADER..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(p) = docs.windows(2).position(|w| w[0] >= w[1]) {
            return Err(err(format!("entry {} is not ascending", p + 1)));
        }
        if let Some(&last) = docs.last() {
            if last as usize >= num_docs {
                return Err(err(format!(
                    "document {last} is out of range (the segment has {num_docs})"
                )));
            }
        }
        Ok(Self::new(docs, num_docs))
    }
}

/// Whether bit `doc` of `words` is set (false past the end).
#[inline]
pub(crate) fn is_deleted(words: &[u64], doc: u32) -> bool {
    words
        .get(doc as usize / 64)
        .is_some_and(|w| (w >> (doc % 64)) & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let set = DeleteSet::new(vec![70, 3, 3, 0, 129], 130);
        assert_eq!(set.docs(), &[0, 3, 70, 129]);
        assert!(set.contains(0) && set.contains(129) && !set.contains(1) && !set.contains(500));
        let bytes = set.encode(130);
        let path = Path::new("del.bin");
        assert_eq!(DeleteSet::decode(&bytes, 130, path).unwrap(), set);
        assert!(DeleteSet::decode(&bytes, 131, path).is_err());
        for cut in 0..bytes.len() {
            assert!(DeleteSet::decode(&bytes[..cut], 130, path).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(DeleteSet::decode(&b, 130, path).is_err(), "flip at {i}");
        }
        let empty = DeleteSet::new(Vec::new(), 5);
        assert!(empty.words().is_empty() && !empty.contains(0));
        assert_eq!(DeleteSet::decode(&empty.encode(5), 5, path).unwrap(), empty);
    }
}
