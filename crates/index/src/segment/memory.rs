//! What the automatic traversal (`Traversal::Auto`, in `search`) learned from a segment's
//! searches: kept with the segment, read and written only by the search.

use std::sync::atomic::{AtomicU32, Ordering};

/// What `Traversal::Auto` learned from a segment's recent searches. Probing
/// block-max pruning (its bound pass and first blocks) before handing over costs about as
/// much as the term-at-a-time search itself on a collection where it hands over every
/// time (SciFact), and the queries of one index tend to be alike. So once the last
/// [`TRUST`] probes in a row handed over, the searches go term at a time directly, except
/// one in [`PROBE_EVERY`], which probes again; a probe that finishes by block-max pruning
/// starts the count again. Only exact searches skip the probe (approximate ones always
/// probe: the hand-over gives exact hits where block-max with α < 1 might not), so only
/// speed depends on this history, never a result.
#[derive(Debug, Default)]
pub(crate) struct TraversalMemory {
    /// Hand-overs in a row (capped at [`TRUST`]); written only by probes.
    handovers: AtomicU32,
}

/// Consecutive hand-overs after which [`TraversalMemory`] goes term at a time directly.
const TRUST: u32 = 4;
/// One search in this many probes block-max pruning even when trusted.
const PROBE_EVERY: u32 = 64;

impl TraversalMemory {
    /// Whether search number `n` of a searcher (counted per searcher, so that threads
    /// do not contend on a shared counter) should go term at a time without probing.
    pub(crate) fn skip_probe(&self, n: u32) -> bool {
        self.handovers.load(Ordering::Relaxed) >= TRUST && n % PROBE_EVERY != 0
    }

    /// Records how a probe ended: handed over to term at a time, or finished.
    pub(crate) fn record(&self, handed_over: bool) {
        if handed_over {
            let _ = self
                .handovers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                    Some((h + 1).min(TRUST))
                });
        } else {
            self.handovers.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes until [`TRUST`] hand-overs in a row, then direct except one search in
    /// [`PROBE_EVERY`]; a probe that finishes starts over.
    #[test]
    fn traversal_memory_trusts_consecutive_handovers_only() {
        let m = TraversalMemory::default();
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
}
