//! Why a document scored what it did: the matching terms and their contributions.

use splade_sparse::SparseView;

use crate::brute::dot_slices;
use crate::index::Index;

/// One matching term of a query and a document. Term ids are vocabulary ids; mapping them
/// to tokens needs the model's tokenizer (the CLI does so when given `--model`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TermContribution {
    /// Term id.
    pub term: u32,
    /// The query's weight for the term.
    pub query_weight: f32,
    /// The document's weight for the term.
    pub doc_weight: f32,
    /// `query_weight * doc_weight` (computed in f64, rounded to f32).
    pub contribution: f32,
}

/// The matching terms of a query and a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Document number.
    pub doc: u32,
    /// The exact score, as search returns it. It is the f64 sum of the contributions in
    /// ascending term order, rounded to f32.
    pub score: f32,
    /// Matching terms, largest contribution first (ties to the smaller term id).
    pub terms: Vec<TermContribution>,
}

impl Index {
    /// Explains the score of document `doc` for `query`; `None` when `doc` is out of range.
    pub fn explain(&self, query: SparseView<'_>, doc: u32) -> Option<Explanation> {
        let (di, dv) = self.document_slices(doc)?;
        let (qi, qv) = (query.indices(), query.values());
        let mut terms = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < qi.len() && j < di.len() {
            match qi[i].cmp(&di[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    terms.push(TermContribution {
                        term: qi[i],
                        query_weight: qv[i],
                        doc_weight: dv[j],
                        contribution: (qv[i] as f64 * dv[j] as f64) as f32,
                    });
                    i += 1;
                    j += 1;
                }
            }
        }
        terms.sort_by(|a, b| {
            b.contribution
                .total_cmp(&a.contribution)
                .then(a.term.cmp(&b.term))
        });
        Some(Explanation {
            doc,
            score: dot_slices(qi, qv, di, dv),
            terms,
        })
    }
}
