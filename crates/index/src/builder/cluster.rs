//! The block layout: which document goes into which block position ([`Reorder`]).
//!
//! Clustering works on each document's *signature*, its [`SIGNATURE_TERMS`] heaviest terms
//! that are not stopword-like. A document is scored against the centroids through, for
//! each of its signature terms, the [`LIST_CENTROIDS`] centroids that weigh that term most,
//! so scoring costs at most `SIGNATURE_TERMS * LIST_CENTROIDS` operations a document however
//! many documents and centroids share a term. The centroids are trained on a sample of
//! about [`SAMPLE_PER_CLUSTER`] documents a cluster, whose signatures are kept in memory
//! (8 bytes a term), in [`TRAIN_ROUNDS`] rounds on growing parts of it; then one parallel
//! pass over the other documents makes each one's signature, scores it and forgets it (a
//! sampled document keeps the cluster the last round gave it). On the
//! topical 1M collection of BENCHMARKS.md this took the layout from 4.8 s (every
//! document's signature kept, half of them assigned in each of three rounds before the
//! last) to about 2.2 s, and exact search scored 1-3 % more blocks (BENCHMARKS.md, "Build
//! on a topical 1M"); a cache line a centroid list, signatures made a batch at a time, and
//! scoring without branches on the lists' lengths or one long chain of compares took it to
//! 1.34 s (BENCHMARKS.md, "Build at 1M, session 18"); the sampled documents kept in the
//! clusters of the last round, the heavy keys made in the signatures' loop and the order by
//! a counting sort on the cluster, to 0.99 s ("Build at 1M, session 19").

use std::ops::Range;

use crate::builder::source::{map_chunks, DocBuf, DocSource, InMemory};
use crate::error::Result;
use crate::hint::{prefetch, prefetch_slice};

/// How the builder lays documents out in blocks. Block-max pruning skips a block when the
/// sum of the query's weights times the block's per-term maxima cannot reach the current
/// k-th score; with documents in arbitrary order every block holds some heavy document for
/// most terms and nothing is skipped. Grouping similar documents makes the maxima tight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reorder {
    /// Insertion order.
    None,
    /// [`Reorder::Clustered`], unless the collection is large (more than
    /// [`AUTO_SAMPLED_ABOVE`](crate::builder::AUTO_SAMPLED_ABOVE) documents) and clustering an
    /// evenly spaced sample of [`AUTO_SAMPLE_DOCS`](crate::builder::AUTO_SAMPLE_DOCS) of them
    /// cuts the sample's (block, term) pairs by less than
    /// [`AUTO_MIN_SLOT_CUT`](crate::builder::AUTO_MIN_SLOT_CUT): then insertion order. On a
    /// collection whose weights are flat the clustering cannot tighten the blocks' bounds
    /// (searches go term at a time there), and it is a large part of the build time: on the
    /// flat 1M collection of BENCHMARKS.md the sample's pairs shrank by 0.4 %, and the index
    /// in insertion order built in 2.3-3.2 s instead of 6.5 s (session 14; clustered, it
    /// takes about 4 s since session 17) and searched as fast; on the topical 200k they
    /// shrank by 7.3 % and clustering made exact search 1.47x faster (with a sample of
    /// 65,536; with today's 32,768, 0.3 % and 4.8 %).
    #[default]
    Auto,
    /// Sort documents by their heaviest term, then second heaviest, then third (weight
    /// descending, ties to the smaller term id; a missing term sorts last), then by
    /// insertion number. One sort: O(nnz + n log n).
    HeaviestTerms,
    /// Cluster documents (a few rounds of spherical k-means over the signatures of an
    /// evenly spaced sample of the documents, their 64 heaviest terms that are not in more
    /// than a quarter of the documents, with sparse centroids; about `4 * block size`
    /// documents per cluster, more in a collection of more than 2^18 documents (there the
    /// number of clusters grows with the square root of the collection), seeds evenly
    /// spaced in the sample, so deterministic; then every document outside the sample goes
    /// to its best centroid, and a sampled one stays in the cluster of the last round), then
    /// order clusters by number and documents inside a cluster as
    /// [`Reorder::HeaviestTerms`] does. Each round scores
    /// the signatures against the centroids through inverted lists of centroid terms
    /// (each cut to the centroids weighing the term most), in parallel.
    Clustered,
}

/// Terms of a document's signature (its heaviest terms that are not stopword-like). On a
/// topical synthetic collection (200k documents of 105 terms) exact search scored 183
/// blocks a query with 32 and 147 with 64 (142 with every term and full centroid lists,
/// at twice the build time; BENCHMARKS.md, "Index build").
pub(crate) const SIGNATURE_TERMS: usize = 64;
/// Terms kept per centroid.
const CENTROID_TERMS: usize = 48;
/// k-means rounds over [`Reorder::Clustered`]'s sample, each on twice the signatures of
/// the one before, the last on all of them; every document outside the sample is then
/// assigned once (a sampled one keeps its cluster of the last round: on the topical
/// collections of BENCHMARKS.md exact search scored 150.8 blocks a query instead of 149.8
/// at 200k documents, 146.9 instead of 146.7 at 1M, for a quarter less of the final
/// assignment, about 0.15 s of a 1M build).
const TRAIN_ROUNDS: usize = 3;
/// Documents a cluster in [`Reorder::Clustered`]'s sample.
const SAMPLE_PER_CLUSTER: usize = 32;
/// Terms in more than `1 / COMMON_TERM_DIVISOR` of the documents take no part in the
/// clustering (see [`Reorder::Clustered`]'s branch of [`document_order`]).
const COMMON_TERM_DIVISOR: usize = 4;
/// Per term, the centroids a document holding the term is scored against (in the training
/// rounds and in the final assignment): the ones weighing it most. (A stopword-like term
/// sits in most centroids; a full list would cost that many operations per document
/// holding it.) 8, 16 and 32 gave
/// 147.2, 146.5 and 147.3 blocks on the topical collection above (8 and 16: 75.1 and 74.0
/// on the WordNet glosses); on the flat 1M collection 8 takes about 1 of the 7.7 CPU
/// seconds of the clustering at 16 (BENCHMARKS.md, "Index build").
const LIST_CENTROIDS: usize = 8;
/// Documents read together in the parallel passes.
const CHUNK_DOCS: usize = 4096;
/// Blocks a cluster of [`Reorder::Clustered`] holds, up to [`ROOT_CLUSTERS_ABOVE`]
/// documents.
const CLUSTER_BLOCKS: usize = 4;
/// Above this many documents, [`cluster_count`] grows with the square root of the
/// collection instead of in proportion to it.
const ROOT_CLUSTERS_ABOVE: usize = 1 << 18;

/// The clusters [`Reorder::Clustered`] makes of `n` documents in blocks of `block_size`:
/// one every [`CLUSTER_BLOCKS`] blocks up to [`ROOT_CLUSTERS_ABOVE`] documents; above,
/// `sqrt(n * 2^18) / (CLUSTER_BLOCKS * block_size)`, rounded up: the count at 2^18, then
/// growing with the square root of the collection (at block 32, 128 documents a cluster at
/// 2^18, 250 at 10^6). Inside a cluster the documents are ordered by their heaviest terms,
/// which groups them further. The clustering's cost grows with the clusters: the sample it
/// trains on is [`SAMPLE_PER_CLUSTER`] documents a cluster, and each document's scores are
/// summed in one accumulator a cluster. On the topical 1M collection of BENCHMARKS.md
/// ("Session 32"), 8 blocks a cluster instead of 4 (the rule gives 7.8 there) took the
/// training from 0.47 s to 0.20 s of a two-thread build, and with the rule exact search
/// scored 131.7 blocks a query instead of 134.4. Collections of up to 2^18 documents (the
/// topical 200k, the WordNet glosses, the web queries) are laid out as before.
pub(crate) fn cluster_count(n: usize, block_size: usize) -> usize {
    // With c documents a cluster at 2^18: (2^18 / c) * sqrt(n / 2^18) = sqrt(n * 2^18) / c
    // above 2^18, n / c up to it; sqrt(n * 2^18) >= n exactly when n <= 2^18, so one
    // formula, the smaller of the two over c, covers both sides.
    let root = (n as u128 * ROOT_CLUSTERS_ABOVE as u128).isqrt() as usize;
    n.min(root)
        .div_ceil(CLUSTER_BLOCKS * block_size.max(1))
        .max(1)
}

const HEAVY_KEY: usize = 3;

/// The `HEAVY_KEY` heaviest term ids of a document, heaviest first, ties to the smaller term
/// (`u32::MAX` pads).
fn heavy_key(terms: &[u32], values: &[f32]) -> [u32; HEAVY_KEY] {
    let mut top = [0u64; HEAVY_KEY];
    for (&t, &v) in terms.iter().zip(values) {
        keep_heaviest(&mut top, signature_key(t, v));
    }
    heavy_terms(top)
}

/// Keeps in `top` (largest first) the [`HEAVY_KEY`] largest [`signature_key`]s seen, `key`
/// now among them: no branch (most keys go nowhere, at places a branch would not predict).
#[inline(always)]
fn keep_heaviest(top: &mut [u64; HEAVY_KEY], key: u64) {
    let mut carry = key;
    for slot in top.iter_mut() {
        let (hi, lo) = ((*slot).max(carry), (*slot).min(carry));
        *slot = hi;
        carry = lo;
    }
}

/// The terms of [`keep_heaviest`]'s keys (0, no key, is `u32::MAX`).
fn heavy_terms(top: [u64; HEAVY_KEY]) -> [u32; HEAVY_KEY] {
    top.map(|k| !(k as u32))
}

/// A signature term's sort key: heavier first, then the smaller term (weights are
/// non-negative and finite, never -0.0, so their bits order as they do).
fn signature_key(term: u32, weight: f32) -> u64 {
    (u64::from(weight.to_bits()) << 32) | u64::from(!term)
}

/// The term and weight of a [`signature_key`].
fn key_pair(key: u64) -> (u32, f32) {
    (!(key as u32), f32::from_bits((key >> 32) as u32))
}

/// The `k` largest of `keys` (all of them when there are no more), in no particular order.
fn heaviest(keys: &mut [u64], k: usize) -> &[u64] {
    match keys.len().checked_sub(k) {
        Some(cut) if cut > 0 => {
            keys.select_nth_unstable(cut);
            &keys[cut..]
        }
        _ => keys,
    }
}

/// Appends the signature of the document `t`, `v` to `terms` and `values`: its
/// [`SIGNATURE_TERMS`] heaviest terms (ties to the smaller term) that are not `common`
/// (`keys` is scratch). Returns the document's [`heavy_key`] (made in the same loop).
fn push_signature(
    t: &[u32],
    v: &[f32],
    common: &[bool],
    keys: &mut Vec<u64>,
    terms: &mut Vec<u32>,
    values: &mut Vec<f32>,
) -> [u32; HEAVY_KEY] {
    // Every posting's key is written, the next one over it unless it is kept: no branch
    // a posting.
    if keys.len() < t.len() {
        keys.resize(t.len(), 0);
    }
    let mut len = 0;
    let mut heavy = [0u64; HEAVY_KEY];
    for (&t, &v) in t.iter().zip(v) {
        let key = signature_key(t, v);
        keys[len] = key;
        keep_heaviest(&mut heavy, key);
        len += usize::from(v > 0.0 && !common.get(t as usize).copied().unwrap_or(true));
    }
    let top = heaviest(&mut keys[..len], SIGNATURE_TERMS);
    terms.extend(top.iter().map(|&k| key_pair(k).0));
    values.extend(top.iter().map(|&k| key_pair(k).1));
    heavy_terms(heavy)
}

/// The signatures of consecutive documents (or sampled ones), flattened: the `i`-th one's
/// terms and weights are `terms[offsets[i]..offsets[i + 1]]` and the same of `values`, and
/// its [`heavy_key`] is `heavy[i]` (a document added by [`Self::push_unsigned`] has an empty
/// signature).
struct SignatureRun {
    offsets: Vec<u32>,
    terms: Vec<u32>,
    values: Vec<f32>,
    /// Each document's [`heavy_key`].
    heavy: Vec<[u32; HEAVY_KEY]>,
}

impl SignatureRun {
    /// Room for `docs` signatures.
    fn with_capacity(docs: usize) -> Self {
        let cap = docs * SIGNATURE_TERMS;
        let mut offsets = Vec::with_capacity(docs + 1);
        offsets.push(0);
        SignatureRun {
            offsets,
            terms: Vec::with_capacity(cap),
            values: Vec::with_capacity(cap),
            heavy: Vec::with_capacity(docs),
        }
    }

    /// Forgets every signature (keeps the room).
    fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.terms.clear();
        self.values.clear();
        self.heavy.clear();
    }

    /// Appends the signature and the heavy key of the document `t`, `v` (see
    /// [`push_signature`]; `keys` is scratch).
    fn push(&mut self, t: &[u32], v: &[f32], common: &[bool], keys: &mut Vec<u64>) {
        let heavy = push_signature(t, v, common, keys, &mut self.terms, &mut self.values);
        self.offsets.push(self.terms.len() as u32);
        self.heavy.push(heavy);
    }

    /// Appends a document without a signature (an empty one), with its heavy key.
    fn push_unsigned(&mut self, heavy: [u32; HEAVY_KEY]) {
        self.offsets.push(self.terms.len() as u32);
        self.heavy.push(heavy);
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn doc(&self, i: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.terms[s..e], &self.values[s..e])
    }
}

/// The signatures of a sample of the documents, kept in the chunks they were made in
/// (signature `i` in chunk `i / CHUNK_DOCS`).
struct Signatures {
    chunks: Vec<SignatureRun>,
    len: usize,
}

impl Signatures {
    fn doc(&self, d: usize) -> (&[u32], &[f32]) {
        self.chunks[d / CHUNK_DOCS].doc(d % CHUNK_DOCS)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Every signature's heavy key, in sample order.
    fn heavy_keys(&self) -> Vec<[u32; HEAVY_KEY]> {
        self.chunks
            .iter()
            .flat_map(|c| c.heavy.iter().copied())
            .collect()
    }
}

/// Collections of more than this many documents are laid out by [`Reorder::Auto`] after
/// clustering a sample of theirs ([`AUTO_SAMPLE_DOCS`]); smaller ones are clustered.
pub const AUTO_SAMPLED_ABOVE: usize = 131_072;
/// The documents of [`Reorder::Auto`]'s sample, evenly spaced. A sample of 65,536 took
/// 0.34 s of a 2.5 s build of the flat 1M collection in session 14, when every round
/// scored half the documents; this one, with today's clustering, a few hundredths.
pub const AUTO_SAMPLE_DOCS: usize = 32_768;
/// [`Reorder::Auto`] clusters a large collection when clustering the sample cuts its
/// (block, term) slots by at least this fraction (with the sample of 32,768: 0.3 % on the
/// flat 1M collection of BENCHMARKS.md, 4.8 % on the topical 200k).
pub const AUTO_MIN_SLOT_CUT: f64 = 0.02;

/// The number of (block, term) slots of the layout `order` of `src`'s documents: per block
/// of `block_size` positions, the distinct terms of its documents.
fn count_slots(src: &dyn DocSource, order: &[u32], block_size: usize, dim: usize) -> Result<usize> {
    let mut seen = vec![u32::MAX; dim];
    let mut buf = DocBuf::default();
    let mut slots = 0;
    for (b, block) in order.chunks(block_size.max(1)).enumerate() {
        for &d in block {
            let d = d as usize;
            let chunk = src.chunk(d, d + 1, &mut buf)?;
            for &t in chunk.doc(d).0 {
                if seen[t as usize] != b as u32 {
                    seen[t as usize] = b as u32;
                    slots += 1;
                }
            }
        }
    }
    Ok(slots)
}

/// The fraction of the (block, term) slots that clustering saves on an evenly spaced sample
/// of `sampling.docs` of `src`'s documents, against the sample in its own order; `None`
/// when the collection holds no more than `sampling.above` documents.
fn sample_slot_cut(
    src: &dyn DocSource,
    block_size: usize,
    dim: usize,
    sampling: Sampling,
) -> Result<Option<f64>> {
    use rayon::prelude::*;
    let n = src.len();
    let s = sampling.docs;
    if n <= sampling.above.max(s) {
        return Ok(None);
    }
    // The sample's documents are copied in parallel, a piece of consecutive ones at a time
    // (each one a read of its own: they are far apart).
    let pieces = (0..s.div_ceil(CHUNK_DOCS))
        .into_par_iter()
        .map_init(DocBuf::default, |buf, p| {
            let (mut lens, mut terms, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for i in p * CHUNK_DOCS..((p + 1) * CHUNK_DOCS).min(s) {
                let d = i * n / s;
                let chunk = src.chunk(d, d + 1, buf)?;
                let (t, v) = chunk.doc(d);
                terms.extend_from_slice(t);
                values.extend_from_slice(v);
                lens.push(t.len() as u64);
            }
            Ok((lens, terms, values))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut indptr = Vec::with_capacity(s + 1);
    indptr.push(0u64);
    let (mut terms, mut values) = (Vec::new(), Vec::new());
    for (lens, t, v) in pieces {
        for len in lens {
            indptr.push(indptr[indptr.len() - 1] + len);
        }
        terms.extend_from_slice(&t);
        values.extend_from_slice(&v);
    }
    let mut df = vec![0u32; dim];
    terms.iter().for_each(|&t| df[t as usize] += 1);
    let sample = InMemory {
        indptr: &indptr,
        terms: &terms,
        values: &values,
    };
    let clustered = document_order_sampled(&sample, Reorder::Clustered, block_size, &df, sampling)?;
    let own: Vec<u32> = (0..s as u32).collect();
    let (with, without) = rayon::join(
        || count_slots(&sample, &clustered, block_size, dim),
        || count_slots(&sample, &own, block_size, dim),
    );
    let (with, without) = (with?, without?);
    Ok(Some(1.0 - with as f64 / without.max(1) as f64))
}

/// The block layout of `src`'s documents: `order[position] = document number`. `df` holds
/// every term's document frequency (up to the largest term used).
pub(crate) fn document_order(
    src: &dyn DocSource,
    reorder: Reorder,
    block_size: usize,
    df: &[u32],
) -> Result<Vec<u32>> {
    let sampling = Sampling {
        docs: AUTO_SAMPLE_DOCS,
        above: AUTO_SAMPLED_ABOVE,
    };
    document_order_sampled(src, reorder, block_size, df, sampling)
}

/// [`Reorder::Auto`]'s sample: `docs` documents, taken from collections of more than
/// `above`.
#[derive(Clone, Copy)]
struct Sampling {
    docs: usize,
    above: usize,
}

/// [`document_order`] with [`Reorder::Auto`]'s `sampling`.
fn document_order_sampled(
    src: &dyn DocSource,
    reorder: Reorder,
    block_size: usize,
    df: &[u32],
    sampling: Sampling,
) -> Result<Vec<u32>> {
    let n = src.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let reorder = match reorder {
        Reorder::Auto => match sample_slot_cut(src, block_size, df.len(), sampling)? {
            Some(cut) if cut < AUTO_MIN_SLOT_CUT => Reorder::None,
            _ => Reorder::Clustered,
        },
        other => other,
    };
    match reorder {
        Reorder::None | Reorder::Auto => {}
        Reorder::HeaviestTerms => {
            let keys: Vec<[u32; HEAVY_KEY]> = map_chunks(src, CHUNK_DOCS, |chunk, docs| {
                docs.map(|d| {
                    let (t, v) = chunk.doc(d);
                    heavy_key(t, v)
                })
                .collect::<Vec<_>>()
            })?
            .concat();
            order.sort_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]).then(a.cmp(&b)));
        }
        Reorder::Clustered => {
            // Stopword-like terms (in more than `1 / COMMON_TERM_DIVISOR` of the documents)
            // say little about a document's cluster, but sit in nearly every centroid:
            // scoring a document through their inverted lists would cost `clusters`
            // operations per such term (on a collection with a few dozen of them in every
            // document, most of the build time). They are left out of the signatures.
            let common: Vec<bool> = df
                .iter()
                .map(|&f| f as usize > n / COMMON_TERM_DIVISOR)
                .collect();
            let clusters = cluster_count(n, block_size);
            let (centroids, sampled) = if clusters > 1 {
                let step = sample_step(n, clusters);
                let sample = sample_signatures(src, &common, step)?;
                let trained = train_centroids(df.len(), &sample, clusters);
                let sampled = Sampled {
                    clusters: trained.sample_clusters,
                    heavy: sample.heavy_keys(),
                    step,
                };
                (trained.centroids, Some(sampled))
            } else {
                (Vec::new(), None)
            };
            let lists = CentroidLists::new(df.len(), &centroids);
            let keys = assign_documents(src, &common, &lists, clusters, sampled.as_ref())?;
            order = cluster_order(&keys, clusters);
        }
    }
    Ok(order)
}

/// The documents by cluster (`keys[d]`: document `d`'s cluster, at most `clusters`, and
/// heavy key), then heavy key, then number: a counting sort by cluster, then each cluster's
/// documents sorted, clusters in parallel (one parallel sort of all the keys took twice as
/// long).
fn cluster_order(keys: &[(u32, [u32; HEAVY_KEY])], clusters: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let mut starts = vec![0usize; clusters + 2];
    for &(c, _) in keys {
        starts[c as usize + 1] += 1;
    }
    for c in 0..=clusters {
        starts[c + 1] += starts[c];
    }
    let mut fill = starts.clone();
    let mut by_cluster = vec![([0u32; HEAVY_KEY], 0u32); keys.len()];
    for (d, &(c, key)) in keys.iter().enumerate() {
        let at = &mut fill[c as usize];
        by_cluster[*at] = (key, d as u32);
        *at += 1;
    }
    let mut groups = Vec::with_capacity(clusters + 1);
    let mut rest = &mut by_cluster[..];
    for w in starts.windows(2) {
        let (group, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
        groups.push(group);
        rest = tail;
    }
    // A cluster may hold most documents (the one of documents sharing no listed term, on a
    // collection of unrelated ones): such a group is sorted in parallel too.
    groups.into_par_iter().for_each(|g| {
        if g.len() > CHUNK_DOCS * 16 {
            g.par_sort_unstable();
        } else {
            g.sort_unstable();
        }
    });
    by_cluster.into_iter().map(|(_, d)| d).collect()
}

/// The step of [`Reorder::Clustered`]'s sample (every `step`-th document): about
/// [`SAMPLE_PER_CLUSTER`] documents a cluster.
fn sample_step(n: usize, clusters: usize) -> usize {
    (n.div_ceil(clusters.max(1)) / SAMPLE_PER_CLUSTER).max(1)
}

/// The signatures of every `step`-th document of `src` (signature `i` is document
/// `i * step`'s), in parallel.
fn sample_signatures(src: &dyn DocSource, common: &[bool], step: usize) -> Result<Signatures> {
    use rayon::prelude::*;
    let len = src.len().div_ceil(step);
    let chunks = (0..len.div_ceil(CHUNK_DOCS))
        .into_par_iter()
        .map_init(DocBuf::default, |buf, c| {
            let range = c * CHUNK_DOCS..((c + 1) * CHUNK_DOCS).min(len);
            let mut run = SignatureRun::with_capacity(range.len());
            let mut scratch = Vec::new();
            // Read in pieces of at most `CHUNK_DOCS` consecutive documents (one positioned
            // read of each forward file a piece, not one a sampled document).
            let per_piece = (CHUNK_DOCS / step).max(1);
            for piece in range.clone().step_by(per_piece) {
                let sampled = piece..(piece + per_piece).min(range.end);
                let (first, last) = (sampled.start * step, (sampled.end - 1) * step);
                let chunk = src.chunk(first, last + 1, buf)?;
                for i in sampled {
                    // Sampled documents are far apart: the one two on is fetched now.
                    src.prefetch((i + 2) * step);
                    let (t, v) = chunk.doc(i * step);
                    run.push(t, v, common, &mut scratch);
                }
            }
            Ok(run)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Signatures { chunks, len })
}

/// What [`train_centroids`] trained.
struct Trained {
    centroids: Vec<Vec<(u32, f32)>>,
    /// The cluster the last round gave each signature of the sample (made with the
    /// centroids before that round's update; see [`CentroidLists::best`]).
    sample_clusters: Vec<u32>,
}

/// The clusters of [`Reorder::Clustered`]'s sample (every `step`-th document), as the last
/// training round gave them, and their heavy keys.
struct Sampled {
    clusters: Vec<u32>,
    heavy: Vec<[u32; HEAVY_KEY]>,
    step: usize,
}

impl Sampled {
    /// Document `d`'s cluster and heavy key if it is in the sample.
    fn get(&self, d: usize) -> Option<(u32, [u32; HEAVY_KEY])> {
        if d.is_multiple_of(self.step) {
            let i = d / self.step;
            self.clusters
                .get(i)
                .copied()
                .zip(self.heavy.get(i).copied())
        } else {
            None
        }
    }
}

/// A centroid from the summed weights of its terms as [`signature_key`]s: the
/// [`CENTROID_TERMS`] heaviest (ties to the smaller term), L2-normalised.
fn centroid(keys: &mut [u64]) -> Vec<(u32, f32)> {
    let mut pairs: Vec<(u32, f32)> = heaviest(keys, CENTROID_TERMS)
        .iter()
        .map(|&k| key_pair(k))
        .collect();
    // In f64: a cluster's summed weights may be too large to square in f32.
    let norm = pairs
        .iter()
        .map(|p| f64::from(p.1).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        pairs
            .iter_mut()
            .for_each(|p| p.1 = (f64::from(p.1) / norm) as f32);
    }
    pairs
}

/// Spherical k-means over the sample's signatures with sparse (top-`CENTROID_TERMS`)
/// centroids, seeded with signatures evenly spaced in the sample; round `r` of
/// [`TRAIN_ROUNDS`] assigns every `2^(TRAIN_ROUNDS - 1 - r)`-th signature of the sample (a
/// sample of the sample, the last round all of it) and moves each centroid to the
/// normalised sum of what it was assigned.
fn train_centroids(dim: usize, sample: &Signatures, clusters: usize) -> Trained {
    use rayon::prelude::*;
    let m = sample.len();
    let mut sample_clusters = Vec::new();
    let mut centroids: Vec<Vec<(u32, f32)>> = (0..clusters)
        .map(|c| {
            let (t, v) = sample.doc(c * m / clusters);
            let mut keys: Vec<u64> = t
                .iter()
                .zip(v)
                .map(|(&t, &v)| signature_key(t, v))
                .collect();
            centroid(&mut keys)
        })
        .collect();
    for round in 0..TRAIN_ROUNDS {
        let step = 1usize << (TRAIN_ROUNDS - 1 - round);
        let lists = CentroidLists::new(dim, &centroids);
        let assigned: Vec<u32> = (0..m.div_ceil(step))
            .into_par_iter()
            .map_init(
                || (vec![0f32; clusters], ScoreScratch::default()),
                |(acc, scratch), i| {
                    let i = i * step;
                    // The lists of the next signature are fetched while this one is
                    // scored.
                    if i + step < m {
                        lists.prefetch(sample.doc(i + step).0);
                    }
                    let (t, v) = sample.doc(i);
                    lists.best(t, v, acc, scratch)
                },
            )
            .collect();
        // New centroids: the normalised sum of each cluster's signatures (of the ones
        // assigned this round), truncated.
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); clusters];
        for (j, &c) in assigned.iter().enumerate() {
            if (c as usize) < clusters {
                members[c as usize].push((j * step) as u32);
            }
        }
        let fresh: Vec<Option<Vec<(u32, f32)>>> = members
            .par_iter()
            .map_init(
                || (vec![0f32; dim], Vec::<u32>::new(), Vec::<u64>::new()),
                |(acc, touched, keys), docs| {
                    if docs.is_empty() {
                        return None;
                    }
                    // Every term is written down, the next one over it unless its sum was
                    // zero (weights are positive): no branch a term, and at most one place
                    // a distinct term.
                    let most = (docs.len() * SIGNATURE_TERMS).min(dim + 1);
                    if touched.len() < most {
                        touched.resize(most, 0);
                    }
                    let mut distinct = 0;
                    // The members are all over the sample: the signature two members on is
                    // fetched while this one is added.
                    for (k, &i) in docs.iter().enumerate() {
                        if let Some(&ahead) = docs.get(k + 2) {
                            let (t, v) = sample.doc(ahead as usize);
                            prefetch_slice(t, SIGNATURE_LINES);
                            prefetch_slice(v, SIGNATURE_LINES);
                        }
                        let (t, v) = sample.doc(i as usize);
                        for (&t, &w) in t.iter().zip(v) {
                            let sum = &mut acc[t as usize];
                            touched[distinct] = t;
                            distinct += usize::from(*sum == 0.0);
                            *sum += w;
                        }
                    }
                    keys.clear();
                    keys.extend(
                        touched[..distinct]
                            .iter()
                            .map(|&t| signature_key(t, std::mem::take(&mut acc[t as usize]))),
                    );
                    Some(centroid(keys))
                },
            )
            .collect();
        for (c, f) in fresh.into_iter().enumerate() {
            if let Some(f) = f {
                centroids[c] = f;
            }
        }
        if step == 1 {
            sample_clusters = assigned;
        }
    }
    Trained {
        centroids,
        sample_clusters,
    }
}

/// Every document's cluster (0 for all when no list holds a term; otherwise its cluster in
/// `sampled` for a sampled document, and for the others the centroid of `lists` scoring best
/// against its signature, `clusters` when none shares a term with it) and heavy key, in one
/// parallel pass over the documents: the signatures are made on the way, a batch of
/// [`SIGNATURE_BATCH`] at a time, and dropped once scored.
fn assign_documents(
    src: &dyn DocSource,
    common: &[bool],
    lists: &CentroidLists,
    clusters: usize,
    sampled: Option<&Sampled>,
) -> Result<Vec<(u32, [u32; HEAVY_KEY])>> {
    let in_sample = |d: usize| sampled.and_then(|s| s.get(d));
    let parts = map_chunks(src, CHUNK_DOCS, |chunk, docs| {
        let (mut acc, mut scores) = (vec![0f32; clusters], ScoreScratch::default());
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(docs.len());
        if lists.is_empty() {
            for d in docs {
                let (t, v) = chunk.doc(d);
                out.push((0, heavy_key(t, v)));
            }
            return out;
        }
        // The signatures are made a batch at a time (one tight loop, then the scoring
        // loop), the next batch's before this one is scored, so that the lists of the
        // next document are fetched while one is scored, across batches too.
        let batch = || SignatureRun::with_capacity(SIGNATURE_BATCH);
        let (mut this, mut next) = (batch(), batch());
        let fill = |run: &mut SignatureRun, docs: Range<usize>, keys: &mut Vec<u64>| {
            run.clear();
            for d in docs {
                match in_sample(d) {
                    // Its cluster and heavy key are known: no signature.
                    Some((_, heavy)) => run.push_unsigned(heavy),
                    None => {
                        let (t, v) = chunk.doc(d);
                        run.push(t, v, common, keys);
                    }
                }
            }
        };
        let (first, end) = (docs.start, docs.end);
        fill(
            &mut next,
            first..(first + SIGNATURE_BATCH).min(end),
            &mut scratch,
        );
        if next.len() > 0 {
            lists.prefetch(next.doc(0).0);
        }
        for b in (first..end).step_by(SIGNATURE_BATCH) {
            std::mem::swap(&mut this, &mut next);
            let after = (b + SIGNATURE_BATCH).min(end);
            fill(
                &mut next,
                after..(after + SIGNATURE_BATCH).min(end),
                &mut scratch,
            );
            for j in 0..this.len() {
                if j + 1 < this.len() {
                    lists.prefetch(this.doc(j + 1).0);
                } else if next.len() > 0 {
                    lists.prefetch(next.doc(0).0);
                }
                let cluster = match in_sample(b + j) {
                    Some((c, _)) => c,
                    None => {
                        let (st, sv) = this.doc(j);
                        lists.best(st, sv, &mut acc, &mut scores)
                    }
                };
                out.push((cluster, this.heavy[j]));
            }
        }
        out
    })?;
    Ok(parts.concat())
}

/// Cache lines of a signature's terms (and of its weights).
const SIGNATURE_LINES: usize = SIGNATURE_TERMS * 4 / 64;

/// Documents whose signatures are made together in [`assign_documents`].
const SIGNATURE_BATCH: usize = 32;

/// Inverted lists of the centroids (of one training round, or the final ones): per term,
/// the [`LIST_CENTROIDS`] centroids weighing it most (ties to the smaller centroid), with
/// those weights, each term's list in one cache line of its own (a term's line is fetched
/// in one go). Up to [`DIRECT_LINES`] terms, every term has a line, found by its number;
/// above, only the terms some centroid holds do (the lines stay a small array whatever
/// the dimension), found through a line number a term (4 bytes; one more load a term,
/// about 3 % of a topical 1M build, so not taken where the direct table is small).
struct CentroidLists {
    /// Term `t`'s list is the first `lens[l]` entries of `lines[l]`, `l` its
    /// [`Self::line_number`].
    lens: Vec<u8>,
    lines: Vec<ListLine>,
    /// Per term, its line number (line 0 is then the empty list); empty when lines are
    /// found directly (term `t`'s is line `t`).
    line_of: Vec<u32>,
    /// Whether every list is empty.
    empty: bool,
}

/// Dimensions up to which [`CentroidLists`] holds a line for every term (64 bytes each, 32
/// MiB at most; vocabularies of the field's models are 30,522 to 250,002 terms).
const DIRECT_LINES: usize = 1 << 19;

/// A list of no entries.
const EMPTY_LINE: ListLine = ListLine([(0, 0.0); LIST_CENTROIDS]);

/// One term's list: up to [`LIST_CENTROIDS`] (centroid, weight) pairs in one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ListLine([(u32, f32); LIST_CENTROIDS]);

const _: () = assert!(
    std::mem::size_of::<ListLine>() == 64,
    "a list is one cache line"
);

impl CentroidLists {
    fn new(dim: usize, centroids: &[Vec<(u32, f32)>]) -> Self {
        Self::with_table(dim, centroids, dim <= DIRECT_LINES)
    }

    /// [`Self::new`] with lines found directly or not.
    fn with_table(dim: usize, centroids: &[Vec<(u32, f32)>], direct: bool) -> Self {
        let mut full = vec![0u32; dim + 1];
        for c in centroids {
            for &(t, _) in c {
                full[t as usize + 1] += 1;
            }
        }
        for t in 0..dim {
            full[t + 1] += full[t];
        }
        let mut fill = full.clone();
        let mut all = vec![(0u32, 0f32); full[dim] as usize];
        for (ci, c) in centroids.iter().enumerate() {
            for &(t, w) in c {
                all[fill[t as usize] as usize] = (ci as u32, w);
                fill[t as usize] += 1;
            }
        }
        let mut line_of = if direct { Vec::new() } else { vec![0u32; dim] };
        let (mut lens, mut lines) = if direct {
            (Vec::with_capacity(dim), Vec::with_capacity(dim))
        } else {
            (vec![0u8], vec![EMPTY_LINE])
        };
        for t in 0..dim {
            let list = &mut all[full[t] as usize..full[t + 1] as usize];
            if list.is_empty() {
                if direct {
                    lines.push(EMPTY_LINE);
                    lens.push(0);
                }
                continue;
            }
            if list.len() > LIST_CENTROIDS {
                list.select_nth_unstable_by(LIST_CENTROIDS - 1, |a, b| {
                    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                });
            }
            let kept = list.len().min(LIST_CENTROIDS);
            let mut line = EMPTY_LINE;
            line.0[..kept].copy_from_slice(&list[..kept]);
            if !direct {
                line_of[t] = lines.len() as u32;
            }
            lines.push(line);
            lens.push(kept as u8);
        }
        CentroidLists {
            lens,
            lines,
            line_of,
            empty: full[dim] == 0,
        }
    }

    /// Whether no centroid holds any term (there are none).
    fn is_empty(&self) -> bool {
        self.empty
    }

    /// Term `t`'s line number (past the lines for a term past the dimension).
    fn line_number(&self, t: u32) -> usize {
        if self.line_of.is_empty() {
            t as usize
        } else {
            self.held_line(t)
        }
    }

    /// Term `t`'s line number through `line_of` (past the lines for a term past the
    /// dimension).
    fn held_line(&self, t: u32) -> usize {
        self.line_of
            .get(t as usize)
            .map_or(usize::MAX, |&l| l as usize)
    }

    /// Term `t`'s list (none for a term past the dimension).
    #[cfg(test)]
    fn list(&self, t: u32) -> &[(u32, f32)] {
        let l = self.line_number(t);
        match (self.lines.get(l), self.lens.get(l)) {
            (Some(line), Some(&len)) => &line.0[..len as usize],
            _ => &[],
        }
    }

    /// Fetches the lists of `terms` (one cache line each).
    fn prefetch(&self, terms: &[u32]) {
        for &t in terms {
            if let Some(line) = self.lines.get(self.line_number(t)) {
                prefetch(line);
            }
        }
    }

    /// Copies the lines of `terms` into `entries` one after another, the run's end moved
    /// on by each list's length, with each entry's term weight in `w_of`; `number` is
    /// [`Self::line_number`]. Returns the length of the run.
    fn gather(
        &self,
        terms: &[u32],
        weights: &[f32],
        entries: &mut [(u32, f32)],
        w_of: &mut [f32],
        number: impl Fn(u32) -> usize,
    ) -> usize {
        let mut n = 0;
        for (&t, &w) in terms.iter().zip(weights) {
            let l = number(t);
            let (line, len) = match (self.lines.get(l), self.lens.get(l)) {
                (Some(line), Some(&len)) => (line, len as usize),
                _ => (&EMPTY_LINE, 0),
            };
            entries[n..n + LIST_CENTROIDS].copy_from_slice(&line.0);
            w_of[n..n + LIST_CENTROIDS].fill(w);
            n += len;
        }
        n
    }

    /// The centroid scoring best against the signature `terms`, `weights` (ties to the
    /// smaller centroid; the number of centroids when no list holds a term of it);
    /// `acc` (one score a centroid) is zero before and after.
    fn best(
        &self,
        terms: &[u32],
        weights: &[f32],
        acc: &mut [f32],
        scratch: &mut ScoreScratch,
    ) -> u32 {
        // The signature's list entries are first copied into one flat run, each with its
        // term's weight: a term's whole line is copied and the run's end moves on by the
        // list's length, so no branch depends on a list's length (a loop over each list
        // would end at an unpredictable place every term). Before the `i`-th term's copy the
        // run holds at most `i * LIST_CENTROIDS` entries, so the copies stay in `room`.
        let room = terms.len() * LIST_CENTROIDS;
        let ScoreScratch {
            entries,
            weights: w_of,
        } = scratch;
        if entries.len() < room {
            entries.resize(room, (0, 0.0));
            w_of.resize(room, 0.0);
        }
        // One loop for each kind of line table (the choice made once, not a term).
        let n = if self.line_of.is_empty() {
            self.gather(terms, weights, entries, w_of, |t| t as usize)
        } else {
            self.gather(terms, weights, entries, w_of, |t| self.held_line(t))
        };
        // A centroid's score only grows as its contributions are added (each is a product
        // of positive weights), so the best of the scores seen along the way is the best
        // of the final scores: no second pass to find it. Scores and centroids are
        // compared as one key, the score's bits (non-negative floats order as their bits
        // do) above the centroid's complement (ties to the smaller centroid), without a
        // branch; 0 is no centroid (no key is 0: centroids are below `u32::MAX`).
        // Four running maxima, each over every fourth entry: one chain of compares would
        // cost two cycles an entry.
        let mut best = [0u64; 4];
        let mut add = |(c, cw): (u32, f32), w: f32| {
            let score = &mut acc[c as usize];
            *score += w * cw;
            (u64::from(score.to_bits()) << 32) | u64::from(!c)
        };
        let (e, w) = (&entries[..n], &w_of[..n]);
        let (e4, w4) = (e.chunks_exact(4), w.chunks_exact(4));
        let (e_rest, w_rest) = (e4.remainder(), w4.remainder());
        for (e, w) in e4.zip(w4) {
            for lane in 0..4 {
                best[lane] = best[lane].max(add(e[lane], w[lane]));
            }
        }
        for (&e, &w) in e_rest.iter().zip(w_rest) {
            best[0] = best[0].max(add(e, w));
        }
        let best = best.into_iter().max().unwrap_or(0);
        // Cleared whole where the accumulators are few against the entries (a sequential
        // fill of at most 16 a store: the topical 1M collection of BENCHMARKS.md has 4,000
        // clusters and about 386 entries a document, and its final assignment took 0.52 s
        // instead of 0.56, session 36), else from the run (one sequential list), not by
        // walking the lists again.
        if acc.len() <= CLEAR_WHOLE_PER_ENTRY * n {
            acc.fill(0.0);
        } else {
            for &(c, _) in &entries[..n] {
                acc[c as usize] = 0.0;
            }
        }
        if best == 0 {
            acc.len() as u32
        } else {
            !(best as u32)
        }
    }
}

/// [`CentroidLists::best`] clears its accumulators whole when there are at most this many a
/// list entry scored, else entry by entry.
const CLEAR_WHOLE_PER_ENTRY: usize = 16;

/// [`CentroidLists::best`]'s scratch: the entries of a signature's lists, one after
/// another, and each one's term weight.
#[derive(Default)]
struct ScoreScratch {
    entries: Vec<(u32, f32)>,
    weights: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;

    /// `n` documents of 30 distinct terms below `dim`, weights in (0, 1]: with `topics`, each
    /// document draws its terms from its topic's 60 terms (the topics in turn); without,
    /// from the whole vocabulary.
    fn collection(
        n: usize,
        dim: u32,
        topics: Option<u32>,
        seed: u64,
    ) -> (Vec<u64>, Vec<u32>, Vec<f32>) {
        let mut next = xorshift(seed);
        let mut indptr = vec![0u64];
        let (mut terms, mut values) = (Vec::new(), Vec::new());
        for d in 0..n {
            let mut doc: Vec<u32> = (0..30)
                .map(|_| match topics {
                    Some(k) => (d as u32 % k) * 60 + (next() % 60) as u32,
                    None => (next() % dim as u64) as u32,
                })
                .collect();
            doc.sort_unstable();
            doc.dedup();
            for t in doc {
                terms.push(t);
                values.push(((next() % 1000) + 1) as f32 / 1000.0);
            }
            indptr.push(terms.len() as u64);
        }
        (indptr, terms, values)
    }

    /// The documents of collection `c` as a source, and their document frequencies over
    /// `dim` terms.
    fn source(c: &(Vec<u64>, Vec<u32>, Vec<f32>), dim: usize) -> (InMemory<'_>, Vec<u32>) {
        let mut df = vec![0u32; dim];
        c.1.iter().for_each(|&t| df[t as usize] += 1);
        let src = InMemory {
            indptr: &c.0,
            terms: &c.1,
            values: &c.2,
        };
        (src, df)
    }

    fn order(
        c: &(Vec<u64>, Vec<u32>, Vec<f32>),
        dim: usize,
        reorder: Reorder,
        sample: usize,
    ) -> Vec<u32> {
        let (src, df) = source(c, dim);
        let sampling = Sampling {
            docs: sample,
            above: 2 * sample,
        };
        document_order_sampled(&src, reorder, 8, &df, sampling).unwrap()
    }

    /// Up to 2^18 documents a cluster every four blocks; above, the count grows with the
    /// square root of the collection, from where it was at 2^18 (no jump), never above a
    /// cluster every four blocks, never falling as documents are added, and without
    /// overflow at any size.
    #[test]
    fn clusters_grow_with_the_collection_then_with_its_square_root() {
        for bs in [16usize, 32, 64] {
            for n in [0usize, 1, 4 * bs - 1, 4 * bs, 4 * bs + 1, 100_000, 1 << 18] {
                assert_eq!(
                    cluster_count(n, bs),
                    n.div_ceil(4 * bs).max(1),
                    "{n} at {bs}"
                );
            }
        }
        // Block 32: 2,048 clusters at 2^18 documents, 4,096 at four times that, 4,000 at a
        // million (250 documents a cluster), 12,650 at 10 million.
        assert_eq!(cluster_count(1 << 18, 32), 2048);
        assert_eq!(cluster_count((1 << 18) + 1, 32), 2048);
        assert_eq!(cluster_count(1 << 20, 32), 4096);
        assert_eq!(cluster_count(1_000_000, 32), 4000);
        assert_eq!(cluster_count(10_000_000, 32), 12_650);
        let mut last = 0;
        for n in ((1 << 18) - 1000..(1 << 18) + 100_000).step_by(7) {
            let c = cluster_count(n, 32);
            assert!(c >= last, "{c} clusters at {n} documents, {last} before");
            assert!(c <= n.div_ceil(128), "{c} clusters at {n} documents");
            last = c;
        }
        // sqrt((2^64 - 1) * 2^18) is just under 2^41: 2^41 / 128 clusters.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(cluster_count(usize::MAX, 32), 1 << 34);
    }

    /// `Auto` lays a small collection out as `Clustered` does; a large one whose documents
    /// share no structure in insertion order (clustering its sample cut the pairs by less
    /// than `AUTO_MIN_SLOT_CUT`); a large topical one (documents of the same topic 40 apart
    /// in insertion order) as `Clustered` does.
    #[test]
    fn auto_clusters_only_where_a_sample_shows_it_pays() {
        let (dim, sample) = (20_000usize, 1024);
        let topical = collection(3000, dim as u32, Some(40), 7);
        let clustered = order(&topical, dim, Reorder::Clustered, sample);
        let identity: Vec<u32> = (0..3000).collect();
        assert_ne!(clustered, identity);
        assert_eq!(order(&topical, dim, Reorder::Auto, sample), clustered);
        let flat = collection(3000, dim as u32, None, 11);
        assert_eq!(order(&flat, dim, Reorder::Auto, sample), identity);
        // The sample's slot cut, `None` where the collection is not above `above` documents.
        let cut = |c: &(Vec<u64>, Vec<u32>, Vec<f32>), above: usize| {
            let src = InMemory {
                indptr: &c.0,
                terms: &c.1,
                values: &c.2,
            };
            let sampling = Sampling {
                docs: sample,
                above,
            };
            sample_slot_cut(&src, 8, dim, sampling).unwrap()
        };
        let (topical_cut, flat_cut) = (
            cut(&topical, 2 * sample).unwrap(),
            cut(&flat, 2 * sample).unwrap(),
        );
        eprintln!("sample slot cuts: topical {topical_cut}, flat {flat_cut}");
        assert!(topical_cut > 2.0 * AUTO_MIN_SLOT_CUT, "{topical_cut}");
        assert!(flat_cut < 0.5 * AUTO_MIN_SLOT_CUT, "{flat_cut}");
        assert_ne!(order(&flat, dim, Reorder::Clustered, sample), identity);
        // Not above the sampling threshold (here 4x the sample): no sample, so clustered
        // whatever the documents.
        assert_eq!(cut(&flat, 4 * sample), None);
        // A threshold below the sample size: no collection of at most the sample's size is
        // sampled (it would be the whole collection), a larger one is.
        let few = collection(1000, dim as u32, None, 11);
        assert_eq!(cut(&few, sample / 2), None);
        assert!(cut(&flat, sample / 2).is_some());
        // At most twice the sample: clustered whatever the documents.
        let small = collection(2048, dim as u32, None, 11);
        assert_eq!(
            order(&small, dim, Reorder::Auto, sample),
            order(&small, dim, Reorder::Clustered, sample)
        );
    }

    /// The slot count is the number of distinct (block, term) pairs of the layout.
    #[test]
    fn slots_are_the_distinct_terms_of_each_block() {
        let indptr = vec![0u64, 2, 3, 5, 6];
        let terms = vec![1u32, 4, 4, 0, 1, 9];
        let values = vec![1.0f32; 6];
        let src = InMemory {
            indptr: &indptr,
            terms: &terms,
            values: &values,
        };
        // Blocks {0, 1}: {1, 4}; {2, 3}: {0, 1, 9}.
        assert_eq!(count_slots(&src, &[0, 1, 2, 3], 2, 10).unwrap(), 5);
        // Blocks {0, 2}: {0, 1, 4}; {1, 3}: {4, 9}.
        assert_eq!(count_slots(&src, &[0, 2, 1, 3], 2, 10).unwrap(), 5);
        // Blocks {0, 3}: {1, 4, 9}; {1, 2}: {0, 1, 4}.
        assert_eq!(count_slots(&src, &[3, 0, 2, 1], 2, 10).unwrap(), 6);
    }

    /// A signature is the document's `SIGNATURE_TERMS` heaviest terms that are not common
    /// and weigh more than zero, ties to the smaller term (checked against a sort).
    #[test]
    fn signatures_are_the_heaviest_uncommon_terms() {
        let mut next = xorshift(5);
        let dim = 500usize;
        let common: Vec<bool> = (0..dim).map(|t| t % 7 == 0).collect();
        let mut keys = Vec::new();
        for len in [0usize, 1, 10, 63, 64, 65, 80, 200, 499] {
            let mut terms: Vec<u32> = (0..dim as u32).collect();
            for i in (1..terms.len()).rev() {
                terms.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            let mut terms = terms[..len].to_vec();
            terms.sort_unstable();
            // Few distinct weights (ties), zeros among them.
            let values: Vec<f32> = terms.iter().map(|_| (next() % 6) as f32 / 4.0).collect();
            let (mut got_t, mut got_v) = (Vec::new(), Vec::new());
            let heavy = push_signature(&terms, &values, &common, &mut keys, &mut got_t, &mut got_v);
            // The heavy key: the three heaviest of all terms, common and zero ones too.
            let mut all: Vec<(u32, f32)> = terms.iter().copied().zip(values.clone()).collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut want_heavy = [u32::MAX; HEAVY_KEY];
            for (w, p) in want_heavy.iter_mut().zip(&all) {
                *w = p.0;
            }
            assert_eq!(heavy, want_heavy, "{len} terms");
            assert_eq!(heavy_key(&terms, &values), want_heavy, "{len} terms");
            let mut got: Vec<(u32, f32)> = got_t.into_iter().zip(got_v).collect();
            got.sort_by_key(|p| p.0);
            let mut want: Vec<(u32, f32)> = terms
                .iter()
                .zip(&values)
                .filter(|(&t, &v)| v > 0.0 && !common[t as usize])
                .map(|(&t, &v)| (t, v))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(SIGNATURE_TERMS);
            want.sort_by_key(|p| p.0);
            assert_eq!(got, want, "{len} terms");
        }
        // A term past the statistics (none can be, but no panic either) is left out.
        let (mut got_t, mut got_v) = (Vec::new(), Vec::new());
        push_signature(
            &[1, 600],
            &[1.0, 2.0],
            &common,
            &mut keys,
            &mut got_t,
            &mut got_v,
        );
        assert_eq!((got_t, got_v), (vec![1], vec![1.0]));
    }

    /// `clusters` centroids of up to `draws` distinct terms each (terms and weights drawn by
    /// `term` and `weight` from `next`), in term order.
    fn random_centroids(
        clusters: usize,
        draws: usize,
        next: &mut dyn FnMut() -> u64,
        term: fn(&mut dyn FnMut() -> u64) -> u32,
        weight: fn(&mut dyn FnMut() -> u64) -> f32,
    ) -> Vec<Vec<(u32, f32)>> {
        (0..clusters)
            .map(|_| {
                let mut terms: Vec<u32> = (0..draws).map(|_| term(next)).collect();
                terms.sort_unstable();
                terms.dedup();
                terms.into_iter().map(|t| (t, weight(next))).collect()
            })
            .collect()
    }

    #[test]
    fn both_line_tables_hold_the_same_lists_and_pick_the_same_centroids() {
        let mut next = xorshift(21);
        let (dim, clusters) = (500usize, 60usize);
        // Terms below 400 only, the smaller ones held by many centroids (lists cut to the
        // heaviest).
        let centroids = random_centroids(
            clusters,
            30,
            &mut next,
            |next| (next() % 400).min(next() % 400) as u32,
            |next| (1 + next() % 1000) as f32 / 1000.0,
        );
        let direct = CentroidLists::with_table(dim, &centroids, true);
        let numbered = CentroidLists::with_table(dim, &centroids, false);
        assert!(!direct.line_of.is_empty() || direct.lines.len() == dim);
        assert!(numbered.lines.len() < dim, "only the held terms have lines");
        for t in 0..dim as u32 + 3 {
            assert_eq!(direct.list(t), numbered.list(t), "term {t}");
            assert!(direct.list(t).len() <= LIST_CENTROIDS);
        }
        assert!((0..dim as u32).any(|t| direct.list(t).len() == LIST_CENTROIDS));
        assert!(direct.list(450).is_empty() && direct.list(600).is_empty());
        let (mut acc, mut scratch) = (vec![0f32; clusters], ScoreScratch::default());
        for _ in 0..200 {
            let terms: Vec<u32> = (0..40).map(|_| (next() % 520) as u32).collect();
            let weights: Vec<f32> = terms
                .iter()
                .map(|_| (next() % 100) as f32 / 10.0 + 0.1)
                .collect();
            let a = direct.best(&terms, &weights, &mut acc, &mut scratch);
            assert!(acc.iter().all(|&s| s == 0.0), "scores cleared");
            let b = numbered.best(&terms, &weights, &mut acc, &mut scratch);
            assert_eq!(a, b);
        }
        // A signature of one term held by few centroids: too few entries for the scores to
        // be cleared whole; cleared entry by entry.
        let few: Vec<u32> = (0..dim as u32)
            .filter(|&t| (1..=3).contains(&direct.list(t).len()))
            .collect();
        assert!(!few.is_empty());
        for t in few {
            assert!(clusters > CLEAR_WHOLE_PER_ENTRY * direct.list(t).len());
            let a = direct.best(&[t], &[1.0], &mut acc, &mut scratch);
            assert!(acc.iter().all(|&s| s == 0.0), "scores cleared");
            assert_eq!(a, numbered.best(&[t], &[1.0], &mut acc, &mut scratch));
        }
    }

    /// Every document goes to the centroid scoring best through the cut lists (each term's
    /// `LIST_CENTROIDS` heaviest centroids), ties to the smaller centroid, `clusters` when
    /// it shares no listed term: checked against scoring every centroid directly (weights
    /// are multiples of 1/8, so every sum is exact in any order).
    #[test]
    fn every_document_goes_to_its_best_centroid() {
        let mut next = xorshift(9);
        // Centroids hold terms below 60 only; documents use all 80 (some none below 60, one
        // is empty).
        let (dim, clusters) = (80usize, 40usize);
        let centroids = random_centroids(
            clusters,
            12,
            &mut next,
            |next| (next() % 60) as u32,
            |next| (1 + next() % 4) as f32 / 8.0,
        );
        let lists = CentroidLists::new(dim, &centroids);
        // Per term, the centroids holding it, heaviest first (ties to the smaller).
        let listed = |t: u32| {
            let mut holders: Vec<(u32, f32)> = centroids
                .iter()
                .enumerate()
                .filter_map(|(c, pairs)| pairs.iter().find(|p| p.0 == t).map(|p| (c as u32, p.1)))
                .collect();
            holders.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            holders.truncate(LIST_CENTROIDS);
            holders
        };
        let mut c = collection(300, dim as u32, None, 3);
        for doc in [&[61u32, 70, 79][..], &[65], &[]] {
            c.1.extend_from_slice(doc);
            c.2.extend(doc.iter().map(|_| 0.5f32));
            c.0.push(c.1.len() as u64);
        }
        let n = c.0.len() - 1;
        let src = InMemory {
            indptr: &c.0,
            terms: &c.1,
            values: &c.2,
        };
        // Document weights as multiples of 1/8 too.
        let values: Vec<f32> = c.2.iter().map(|v| (v * 8.0).ceil() / 8.0).collect();
        let src_exact = InMemory {
            values: &values,
            ..src
        };
        let common = vec![false; dim];
        let got = assign_documents(&src_exact, &common, &lists, clusters, None).unwrap();
        let mut shared_none = 0;
        assert_eq!(got.len(), n);
        for (d, &(cluster, key)) in got.iter().enumerate() {
            let (s, e) = (c.0[d] as usize, c.0[d + 1] as usize);
            let (mut sig_t, mut sig_v) = (Vec::new(), Vec::new());
            push_signature(
                &c.1[s..e],
                &values[s..e],
                &common,
                &mut Vec::new(),
                &mut sig_t,
                &mut sig_v,
            );
            let mut score = vec![0f32; clusters];
            for (&t, &w) in sig_t.iter().zip(&sig_v) {
                for (cent, cw) in listed(t) {
                    score[cent as usize] += w * cw;
                }
            }
            let best = (0..clusters)
                .filter(|&k| score[k] > 0.0)
                .max_by(|&a, &b| score[a].total_cmp(&score[b]).then(b.cmp(&a)))
                .map_or(clusters as u32, |k| k as u32);
            shared_none += usize::from(best == clusters as u32);
            assert_eq!(cluster, best, "document {d}");
            assert_eq!(key, heavy_key(&c.1[s..e], &values[s..e]));
        }
        assert!(shared_none < n, "some document shares a listed term");
        assert!(shared_none >= 3, "the last three share none: {shared_none}");
        // Sampled documents (every 7th) keep the clusters and heavy keys they are given (the
        // sample's), the others are assigned as above.
        let sampled = Sampled {
            clusters: (0..n.div_ceil(7))
                .map(|i| (i * 13 % clusters) as u32)
                .collect(),
            heavy: (0..n.div_ceil(7) as u32).map(|i| [i, 7, 7]).collect(),
            step: 7,
        };
        let with_sample =
            assign_documents(&src_exact, &common, &lists, clusters, Some(&sampled)).unwrap();
        assert_eq!(with_sample.len(), n);
        for (d, (&(cluster, key), &(assigned, want_key))) in
            with_sample.iter().zip(&got).enumerate()
        {
            let want = if d % 7 == 0 {
                (sampled.clusters[d / 7], sampled.heavy[d / 7])
            } else {
                (assigned, want_key)
            };
            assert_eq!((cluster, key), want, "document {d}");
        }
        assert!(
            (0..n).step_by(7).any(|d| got[d].0 != with_sample[d].0),
            "the given clusters are not the best ones"
        );
        // Without centroids, every document is in cluster 0.
        let none = CentroidLists::new(dim, &[]);
        assert!(assign_documents(&src_exact, &common, &none, 1, None)
            .unwrap()
            .iter()
            .all(|&(c, _)| c == 0));
    }

    /// Documents go by cluster, then heavy key, then number (what one sort of all three
    /// gives), the `clusters`-th cluster (no shared term) last.
    #[test]
    fn documents_are_ordered_by_cluster_then_heavy_key() {
        let mut next = xorshift(21);
        let clusters = 17;
        let keys: Vec<(u32, [u32; HEAVY_KEY])> = (0..2_000)
            .map(|_| {
                let c = (next() % (clusters as u64 + 1)) as u32;
                // Few distinct heavy keys, so that numbers break ties.
                (c, [(next() % 3) as u32, (next() % 2) as u32, u32::MAX])
            })
            .collect();
        let mut want: Vec<(u32, [u32; HEAVY_KEY], u32)> = keys
            .iter()
            .enumerate()
            .map(|(d, &(c, k))| (c, k, d as u32))
            .collect();
        want.sort();
        let want: Vec<u32> = want.into_iter().map(|(_, _, d)| d).collect();
        assert_eq!(cluster_order(&keys, clusters), want);
        assert!(cluster_order(&[], 3).is_empty());
    }

    /// The clustered pipeline at a sample step above 1 (the in-file collections above sample
    /// every document): a sampled document keeps the cluster the last round gave its
    /// signature, and its own heavy key, the others go to their best centroid.
    #[test]
    fn sampled_documents_keep_their_last_round_clusters() {
        let (n, dim, clusters) = (3_000usize, 1_500usize, 12usize);
        let c = collection(n, dim as u32, Some(25), 13);
        let (src, df) = source(&c, dim);
        let common: Vec<bool> = df
            .iter()
            .map(|&f| f as usize > n / COMMON_TERM_DIVISOR)
            .collect();
        let step = sample_step(n, clusters);
        assert_eq!(step, 7);
        let sample = sample_signatures(&src, &common, step).unwrap();
        assert_eq!(sample.len(), n.div_ceil(step));
        let trained = train_centroids(dim, &sample, clusters);
        assert_eq!(trained.sample_clusters.len(), sample.len());
        let lists = CentroidLists::new(dim, &trained.centroids);
        let sampled = Sampled {
            clusters: trained.sample_clusters.clone(),
            heavy: sample.heavy_keys(),
            step,
        };
        let got = assign_documents(&src, &common, &lists, clusters, Some(&sampled)).unwrap();
        let scored = assign_documents(&src, &common, &lists, clusters, None).unwrap();
        let mut agree = 0;
        for (d, (&(cluster, key), &best)) in got.iter().zip(&scored).enumerate() {
            let (s, e) = (c.0[d] as usize, c.0[d + 1] as usize);
            assert_eq!(key, heavy_key(&c.1[s..e], &c.2[s..e]), "document {d}");
            if d % step == 0 {
                assert_eq!(cluster, trained.sample_clusters[d / step], "document {d}");
                agree += usize::from(cluster == best.0);
            } else {
                assert_eq!((cluster, key), best, "document {d}");
            }
        }
        // The last round's clusters are those of the right documents: nearly all agree
        // with the final centroids (a shifted sample would agree about once in 12).
        let sampled_docs = n.div_ceil(step);
        assert!(
            agree * 10 >= sampled_docs * 9,
            "{agree} of {sampled_docs} sampled documents"
        );
    }

    /// The sample holds about `SAMPLE_PER_CLUSTER` documents a cluster, at least one.
    #[test]
    fn the_sample_step_keeps_enough_documents_a_cluster() {
        assert_eq!(sample_step(1_000_000, 7813), 4);
        assert_eq!(sample_step(1_000, 1000), 1);
        assert_eq!(sample_step(100, 1), 3);
        assert_eq!(sample_step(10, 0), 1);
    }

    /// Degenerate collections still get a layout (a permutation of the documents): every
    /// document the same (every term common, so every signature empty), or every document
    /// empty.
    #[test]
    fn degenerate_collections_are_laid_out() {
        let same = (
            (0..=200u64).map(|d| d * 3).collect::<Vec<u64>>(),
            [1u32, 5, 9].repeat(200),
            [0.5f32, 1.0, 2.0].repeat(200),
        );
        let empty = (vec![0u64; 201], Vec::new(), Vec::new());
        for c in [&same, &empty] {
            let mut order = order(c, 16, Reorder::Clustered, 64);
            order.sort_unstable();
            assert_eq!(order, (0..200).collect::<Vec<u32>>());
        }
    }
}
