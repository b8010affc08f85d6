//! What the automatic traversal (`Traversal::Auto`, in `search`) learned from a segment's
//! searches: kept with the segment, read and written only by the search.

use std::sync::atomic::{AtomicU32, Ordering};

/// What `Traversal::Auto` learned from a segment's recent searches, a [`ProbeHistory`] per
/// class of queries by their number of terms (fewer than 8, 8-15, 16-31, 32-63, 64 or more).
/// Whether block-max pruning finishes depends on the query's length: with one history for
/// all queries of Quora's index, the short queries' probes, which finish, kept resetting the
/// count of hand-overs and set the running means, so the 2 % of queries of 64 terms or more
/// kept probing and then handing over; with a history per class they go term at a time
/// directly, 1.10-1.26 ms a query instead of 1.56-2.01 ms, and the p99 of a stream of
/// queries falls by 6-15 % (BENCHMARKS.md, "Session 28"). The other collections measured
/// did not move.
#[derive(Debug, Default)]
pub(crate) struct TraversalMemory {
    classes: [ProbeHistory; QUERY_CLASSES],
}

/// Classes of queries in [`TraversalMemory`].
const QUERY_CLASSES: usize = 5;

impl TraversalMemory {
    /// The history of the queries of `terms` terms.
    pub(crate) fn for_query(&self, terms: usize) -> &ProbeHistory {
        &self.classes[query_class(terms)]
    }
}

/// The class of a query of `terms` terms: 0 below 8, then one a doubling, the last from 64.
fn query_class(terms: usize) -> usize {
    ((usize::BITS - (terms >> 3).leading_zeros()) as usize).min(QUERY_CLASSES - 1)
}

/// What `Traversal::Auto` learned from a segment's recent searches of one class of queries
/// (see [`TraversalMemory`]). Probing block-max pruning (its bound pass and first blocks)
/// before handing over costs about as much as the term-at-a-time search itself on a
/// collection where it hands over every time (SciFact), and the queries of one class tend
/// to be alike. So the searches go term at a time directly, except one in [`PROBE_EVERY`],
/// which probes again, once
/// - the last [`TRUST`] probes in a row handed over (a probe that finishes by block-max
///   pruning starts the count again), or
/// - the exact searches that went term at a time directly have taken less time, on average,
///   than those that probed (running means of their measured times). On a collection where
///   a fifth of the probes finish by block-max pruning (the DBpedia-Entity subset of
///   BENCHMARKS.md, session 24), the count alone was rarely reached and most searches paid
///   for a probe and then the term-at-a-time search.
///
/// Only exact searches skip the probe on this history (approximate ones probe unless the
/// query alone sends the segment term at a time, `SwitchRule::direct`: the hand-over gives
/// exact hits where block-max with α < 1 might not), and only theirs are timed; a probe
/// that [`Self::usually_hands_over`] leaves its slot table for later (which changes its
/// speed only). So only speed depends on this history, never a result.
#[derive(Debug, Default)]
pub(crate) struct ProbeHistory {
    /// Hand-overs in a row (capped at [`TRUST`]); written only by probes.
    handovers: AtomicU32,
    /// Running means of the time (ns, as f32 bits; 0 before the first) of the exact searches
    /// that probed, and of those that went term at a time directly.
    probe_ns: AtomicU32,
    direct_ns: AtomicU32,
}

/// Consecutive hand-overs after which [`TraversalMemory`] goes term at a time directly.
const TRUST: u32 = 4;
/// One search in this many probes block-max pruning even when trusted.
const PROBE_EVERY: u32 = 64;
/// Weight of a new time in [`TraversalMemory`]'s running means.
const TIME_WEIGHT: f32 = 1.0 / 16.0;

impl ProbeHistory {
    /// Whether search number `n` of a thread (counted per thread, so that threads do not
    /// contend on a shared counter) should go term at a time without probing.
    pub(crate) fn skip_probe(&self, n: u32) -> bool {
        if n.is_multiple_of(PROBE_EVERY) {
            return false;
        }
        if self.handovers.load(Ordering::Relaxed) >= TRUST {
            return true;
        }
        let mean = |cell: &AtomicU32| f32::from_bits(cell.load(Ordering::Relaxed));
        let (probed, direct) = (mean(&self.probe_ns), mean(&self.direct_ns));
        probed > 0.0 && direct > 0.0 && direct < probed
    }

    /// Whether the last [`TRUST`] probes in a row handed over (the block-max search is then
    /// likely to hand over again; an approximate search may use it to steer its speed, never
    /// its hits).
    pub(crate) fn usually_hands_over(&self) -> bool {
        self.handovers.load(Ordering::Relaxed) >= TRUST
    }

    /// Records how long an exact search of the segment took: `probed`, when it probed
    /// block-max pruning first (however that ended), else term at a time directly. (Threads
    /// may overwrite each other's updates: the means only steer the speed.)
    pub(crate) fn record_time(&self, probed: bool, elapsed: std::time::Duration) {
        let cell = if probed {
            &self.probe_ns
        } else {
            &self.direct_ns
        };
        let ns = (elapsed.as_nanos() as f32).max(1.0);
        let old = f32::from_bits(cell.load(Ordering::Relaxed));
        let new = if old > 0.0 {
            old + TIME_WEIGHT * (ns - old)
        } else {
            ns
        };
        cell.store(new.to_bits(), Ordering::Relaxed);
    }

    /// Records how a probe ended: handed over to term at a time, or finished.
    pub(crate) fn record(&self, handed_over: bool) {
        // Written only when it changes: every search of every thread records, and a write
        // moves the cache line away from the other cores.
        let h = self.handovers.load(Ordering::Relaxed);
        let next = if handed_over { (h + 1).min(TRUST) } else { 0 };
        if next != h {
            self.handovers.store(next, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queries of 0-7, 8-15, 16-31, 32-63 and 64 or more terms each have their own history:
    /// hand-overs of long queries send only long queries term at a time directly.
    #[test]
    fn each_class_of_queries_has_its_own_history() {
        let classes: Vec<usize> = [0, 7, 8, 15, 16, 31, 32, 63, 64, 30_522]
            .iter()
            .map(|&t| query_class(t))
            .collect();
        assert_eq!(classes, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
        let m = TraversalMemory::default();
        for _ in 0..TRUST {
            m.for_query(80).record(true);
        }
        assert!(m.for_query(64).skip_probe(1));
        for short in [3, 12, 20, 40] {
            assert!(!m.for_query(short).skip_probe(1), "{short} terms");
        }
    }

    /// Probes until [`TRUST`] hand-overs in a row, then direct except one search in
    /// [`PROBE_EVERY`]; a probe that finishes starts over.
    #[test]
    fn traversal_memory_trusts_consecutive_handovers_only() {
        let m = ProbeHistory::default();
        for n in 1..=TRUST {
            assert!(!m.skip_probe(n));
            m.record(true);
        }
        let skipped = (0..PROBE_EVERY).filter(|&n| m.skip_probe(n)).count();
        assert_eq!(skipped as u32, PROBE_EVERY - 1);
        m.record(false);
        assert!(!m.skip_probe(1));
        m.record(true);
        assert!(!m.skip_probe(1), "one hand-over is not enough again");
    }

    /// Without a run of hand-overs, the probe is skipped once direct searches took less
    /// time on average than probing ones, and taken again once they take more; never
    /// skipped before both have been timed, nor on every [`PROBE_EVERY`]-th search.
    #[test]
    fn traversal_memory_skips_the_probe_when_direct_searches_were_faster() {
        use std::time::Duration;
        let m = ProbeHistory::default();
        m.record_time(true, Duration::from_micros(20));
        assert!(!m.skip_probe(1), "no direct search timed yet");
        m.record_time(false, Duration::from_micros(10));
        assert!(m.skip_probe(1));
        assert!(
            !m.skip_probe(PROBE_EVERY),
            "every PROBE_EVERY-th search probes"
        );
        // Direct searches turn slow: the mean follows, and probing comes back.
        for _ in 0..64 {
            m.record_time(false, Duration::from_micros(40));
        }
        assert!(!m.skip_probe(1));
        // Probing turns slower still.
        for _ in 0..64 {
            m.record_time(true, Duration::from_micros(80));
        }
        assert!(m.skip_probe(1));
    }
}
