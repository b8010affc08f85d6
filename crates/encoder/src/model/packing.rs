//! Packed ("unpadded") batches: the transformer runs its per-token layers (embeddings,
//! projections, feed-forward blocks, LayerNorms) on the real tokens only, `[n, hidden]` with
//! `n = Σ lengths`, and pads to `[batch, seq, …]` only around the attention product, which needs
//! one row per (text, position).
//!
//! With right-padded batches of texts of different lengths (a training batch of random Quora
//! questions holds ~58 % real tokens), this skips the padding's share of nearly every matrix
//! product. The real tokens' values are those of the padded computation: padding only ever
//! reaches them through attention, where it is masked out.

use candle_core::{Device, Tensor};

/// Where the real tokens of a right-padded `[batch, seq]` batch sit.
#[derive(Debug, Clone)]
pub struct Packing {
    batch: usize,
    seq: usize,
    /// `starts[r]..starts[r + 1]` are text `r`'s rows in the packed matrix.
    starts: Vec<usize>,
    /// `[n]` u32: the flat padded position `r * seq + i` of each packed row; `None` when the
    /// batch has no padding (packing is the identity).
    gather: Option<Tensor>,
    /// `[batch * seq]` u32: the packed row each padded slot reads (a padding slot reads its
    /// text's first token, which attention masks out).
    scatter: Option<Tensor>,
    /// `[n]` u32: each packed row's position in its text.
    positions: Tensor,
}

impl Packing {
    /// The packing of a right-padded batch whose row `r` has `lengths[r]` real tokens of `seq`.
    pub fn new(lengths: &[usize], seq: usize, device: &Device) -> candle_core::Result<Self> {
        let batch = lengths.len();
        if let Some(&bad) = lengths.iter().find(|&&l| l > seq) {
            candle_core::bail!("packing: a text has {bad} tokens in a batch of width {seq}");
        }
        if lengths.contains(&0) {
            candle_core::bail!(
                "packing: a text has no tokens at all (its tokenizer adds no special tokens to \
                 an empty text); drop empty texts or use a tokenizer with [CLS]/[SEP]"
            );
        }
        let mut starts = Vec::with_capacity(batch + 1);
        starts.push(0);
        for &len in lengths {
            starts.push(starts[starts.len() - 1] + len);
        }
        let n = starts[batch];
        let mut positions = Vec::with_capacity(n);
        for &len in lengths {
            positions.extend(0..len as u32);
        }
        let positions = Tensor::from_vec(positions, n, device)?;
        if n == batch * seq {
            return Ok(Self {
                batch,
                seq,
                starts,
                gather: None,
                scatter: None,
                positions,
            });
        }
        let mut gather = Vec::with_capacity(n);
        let mut scatter = Vec::with_capacity(batch * seq);
        for (r, &len) in lengths.iter().enumerate() {
            gather.extend((0..len).map(|i| (r * seq + i) as u32));
            scatter.extend((0..seq).map(|i| (starts[r] + if i < len { i } else { 0 }) as u32));
        }
        Ok(Self {
            batch,
            seq,
            starts,
            gather: Some(Tensor::from_vec(gather, n, device)?),
            scatter: Some(Tensor::from_vec(scatter, batch * seq, device)?),
            positions,
        })
    }

    /// Whether the batch has padding (texts of different lengths).
    pub fn is_padded(&self) -> bool {
        self.gather.is_some()
    }

    /// Texts in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The padded width.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// Real tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.starts[self.batch]
    }

    /// Row ranges of the texts: `starts()[r]..starts()[r + 1]`.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// `[n]` u32 position of each packed row in its text.
    pub fn positions(&self) -> &Tensor {
        &self.positions
    }

    /// Packs a padded `[batch, seq, …]` tensor into `[n, …]`.
    pub fn pack(&self, padded: &Tensor) -> candle_core::Result<Tensor> {
        let dims = padded.dims();
        if dims.len() < 2 || dims[0] != self.batch || dims[1] != self.seq {
            candle_core::bail!(
                "packing: expected a [{}, {}, ...] tensor, got {dims:?}",
                self.batch,
                self.seq
            );
        }
        let mut flat = vec![self.batch * self.seq];
        flat.extend_from_slice(&dims[2..]);
        let padded = padded.reshape(flat)?;
        match &self.gather {
            Some(g) => padded.index_select(g, 0),
            None => Ok(padded),
        }
    }

    /// Pads a packed `[n, …]` tensor into `[batch, seq, …]`; padding slots hold a copy of
    /// their text's first row (callers mask them).
    pub fn pad(&self, packed: &Tensor) -> candle_core::Result<Tensor> {
        if packed.dims().first() != Some(&self.tokens()) {
            candle_core::bail!(
                "packing: expected [{}, ...] packed rows, got {:?}",
                self.tokens(),
                packed.dims()
            );
        }
        let mut dims = vec![self.batch, self.seq];
        dims.extend_from_slice(&packed.dims()[1..]);
        match &self.scatter {
            Some(s) => packed.index_select(s, 0)?.reshape(dims),
            None => packed.reshape(dims),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_pad_round_trip_the_real_tokens() {
        let dev = Device::Cpu;
        let lengths = [2usize, 4, 1];
        let p = Packing::new(&lengths, 4, &dev).unwrap();
        assert_eq!(p.tokens(), 7);
        assert_eq!(p.starts(), &[0, 2, 6, 7]);
        let padded = Tensor::arange(0f32, 24., &dev)
            .unwrap()
            .reshape((3, 4, 2))
            .unwrap();
        let packed = p.pack(&padded).unwrap();
        assert_eq!(
            packed.to_vec2::<f32>().unwrap(),
            vec![
                vec![0., 1.],
                vec![2., 3.],
                vec![8., 9.],
                vec![10., 11.],
                vec![12., 13.],
                vec![14., 15.],
                vec![16., 17.]
            ]
        );
        assert_eq!(
            p.positions().to_vec1::<u32>().unwrap(),
            vec![0, 1, 0, 1, 2, 3, 0]
        );
        let back = p.pad(&packed).unwrap();
        assert_eq!(back.dims(), &[3, 4, 2]);
        let back = back.to_vec3::<f32>().unwrap();
        let orig = padded.to_vec3::<f32>().unwrap();
        for (r, &len) in lengths.iter().enumerate() {
            assert_eq!(back[r][..len], orig[r][..len]);
            // Padding slots repeat the text's first token.
            assert!(back[r][len..].iter().all(|slot| *slot == orig[r][0]));
        }
    }

    #[test]
    fn an_unpadded_batch_needs_no_gather() {
        let p = Packing::new(&[3, 3], 3, &Device::Cpu).unwrap();
        assert!(p.gather.is_none() && p.scatter.is_none());
        let x = Tensor::ones((2, 3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(p.pack(&x).unwrap().dims(), &[6, 5]);
        assert_eq!(p.pad(&p.pack(&x).unwrap()).unwrap().dims(), &[2, 3, 5]);
        assert!(Packing::new(&[4], 3, &Device::Cpu).is_err());
        assert!(p
            .pack(&Tensor::ones((6, 5), candle_core::DType::F32, &Device::Cpu).unwrap())
            .is_err());
        assert!(Packing::new(&[0], 3, &Device::Cpu).is_err());
        let five = Tensor::ones((5, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(p.pad(&five).is_err());
    }
}
