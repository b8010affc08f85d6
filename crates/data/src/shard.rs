//! Splitting an input into shards for encoding on several machines (`--shard I/N`).
//!
//! Shard `I` of `N` (numbered from 0, like the ranks of Ray, torchrun or Kubernetes indexed
//! jobs, so `--shard $RANK/$WORLD_SIZE` works as it is) holds one **contiguous range** of the
//! input's documents (texts of a plain-text input, records of a JSONL one: the documents the
//! command reads without `--shard`), made of whole **chunks**: the input is cut into chunks
//! of `chunk` documents (the last one shorter), and shard `I` takes chunks
//! `floor(I * C / N) .. floor((I + 1) * C / N)` of the `C` chunks. Shards differ by at most
//! one chunk.
//!
//! Why whole chunks: the commands encode `chunk` texts per call (`--chunk-size`, 4,096 by
//! default), batched by length inside the call, and the last bits of a vector can depend on
//! which texts share its batch (the kernels' summation order follows the batch's shape). A
//! shard that starts on a chunk boundary encodes every chunk in the same call, with the same
//! batches, as the run over the whole input, so its vectors are bit for bit the same.
//!
//! Why contiguous ranges rather than `k mod N`: the shards' outputs **concatenated in shard
//! order are the whole input's output**, byte for byte (`cat shard-0 shard-1 ... > all`),
//! and shard indexes merged in shard order hold the documents in the whole corpus's order
//! (which breaks score ties), so the merge is a plain concatenation and needs no record of
//! how documents were dealt out. Every shard reads the whole input to count it, which costs
//! little next to encoding it.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::DataError;

/// One shard of an input: shard [`Shard::index`] of [`Shard::count`] (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Shard `index` of `count`; error unless `count >= 1` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, DataError> {
        let spec = format!("{index}/{count}");
        if count == 0 {
            return Err(shard_error(
                &spec,
                "the number of shards N must be at least 1",
            ));
        }
        if index >= count {
            return Err(shard_error(
                &spec,
                &format!(
                    "shard {index} does not exist: shards are numbered from 0, so I must be below N ({}/{count} is the last)",
                    count - 1
                ),
            ));
        }
        Ok(Self { index, count })
    }

    /// The whole input as one shard (`0/1`).
    pub fn whole() -> Self {
        Self { index: 0, count: 1 }
    }

    /// The 0-based shard number `I`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of shards `N`.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The positions of this shard's documents among `total` cut into chunks of `chunk`
    /// documents (see the module documentation): chunks `floor(I * C / N) ..
    /// floor((I + 1) * C / N)` of the `C = ceil(total / chunk)` chunks. `chunk` 0 counts
    /// as 1.
    pub fn range(&self, total: usize, chunk: usize) -> Range<usize> {
        let chunk = chunk.max(1);
        let chunks = total.div_ceil(chunk);
        let at = |i: usize| {
            let c = ((i as u128 * chunks as u128) / self.count as u128) as usize;
            c.saturating_mul(chunk).min(total)
        };
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn shard_error(spec: &str, message: &str) -> DataError {
    DataError::InvalidData(format!("shard '{spec}': {message}"))
}

impl FromStr for Shard {
    type Err = DataError;

    /// Parses `I/N` (two decimal numbers, `0 <= I < N`).
    fn from_str(spec: &str) -> Result<Self, DataError> {
        let expected = "expected I/N: shard I (counted from 0) of N, e.g. 0/4 .. 3/4";
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| shard_error(spec, expected))?;
        let number = |s: &str, what: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(shard_error(
                    spec,
                    &format!("{what} '{s}' is not a number ({expected})"),
                ));
            }
            s.parse::<usize>()
                .map_err(|_| shard_error(spec, &format!("{what} '{s}' is too large")))
        };
        Shard::new(number(i, "I")?, number(n, "N")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_whole_chunks_contiguous_and_cover_everything() {
        for total in [0usize, 1, 2, 5, 7, 100, 101, 4097] {
            for chunk in [1usize, 3, 8, 4096] {
                let chunks = total.div_ceil(chunk);
                for n in 1..=9usize {
                    let mut next = 0;
                    for i in 0..n {
                        let r = Shard::new(i, n).unwrap().range(total, chunk);
                        assert_eq!(r.start, next, "total {total}, chunk {chunk}, shard {i}/{n}");
                        assert_eq!(r.start % chunk, 0);
                        let whole = r.len().div_ceil(chunk);
                        assert!(whole == chunks / n || whole == chunks / n + 1);
                        next = r.end;
                    }
                    assert_eq!(next, total);
                }
            }
        }
        assert_eq!(Shard::whole().range(9, 4), 0..9);
        assert_eq!("1/3".parse::<Shard>().unwrap().range(10, 1), 3..6);
        assert_eq!("1/3".parse::<Shard>().unwrap().range(10, 2), 2..6);
        assert_eq!("2/3".parse::<Shard>().unwrap().range(10, 4096), 0..10);
        assert_eq!("0/3".parse::<Shard>().unwrap().range(10, 4096), 0..0);
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index(), s.count(), s.to_string()), (2, 4, "2/4".into()));
        let err = |spec: &str| spec.parse::<Shard>().unwrap_err().to_string();
        assert!(
            err("2/2").contains("shards are numbered from 0"),
            "{}",
            err("2/2")
        );
        assert!(err("2/2").contains("1/2 is the last"), "{}", err("2/2"));
        assert!(err("0/0").contains("at least 1"), "{}", err("0/0"));
        assert!(err("x").contains("expected I/N"), "{}", err("x"));
        assert!(err("1/").contains("N '' is not a number"), "{}", err("1/"));
        assert!(
            err("-1/2").contains("I '-1' is not a number"),
            "{}",
            err("-1/2")
        );
        assert!(err(" 1/2").contains("not a number"), "{}", err(" 1/2"));
        assert!(err("1/99999999999999999999999").contains("too large"));
    }
}
