//! Milvus, live: milvus-lite started on 127.0.0.1 by the test, our export, Milvus's search
//! compared with our exact search.

use splade_engines::milvus::{export_milvus, MilvusCollection, MilvusExportOptions, MilvusTarget};
use splade_engines::retry::RetryPolicy;
use splade_engines::{DocumentSource, ExportDocument};

use crate::corpus::{assert_same_top_k, documents, exact_top_k, queries};
use crate::engine_servers::MilvusLite;

const DIM: u32 = 3000;

fn quiet() -> impl FnMut(usize) {
    |_| {}
}

#[test]
fn milvus_search_equals_our_exact_top_10_and_reexport_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MilvusLite::start(&tmp.path().join("milvus"));
    let docs = documents(1200, DIM, 7);
    let target = MilvusTarget::new(&server.uri(), "synthetic").unwrap();
    let options = MilvusExportOptions {
        batch_size: 250,
        ..MilvusExportOptions::default()
    };
    let mut batches = Vec::new();
    let report = export_milvus(&target, &docs, &options, &mut |n| batches.push(n)).unwrap();
    assert!(report.created);
    assert_eq!(report.count, 1200);
    assert_eq!(batches, vec![250, 500, 750, 1000, 1200]);

    let collection = MilvusCollection::connect(&target).unwrap();
    let qs = queries(40, DIM, 8);
    let views: Vec<_> = qs.iter().map(|q| q.view()).collect();
    let found = collection.search(&views, 10).unwrap();
    for (q, hits) in qs.iter().zip(&found) {
        let ours = exact_top_k(&docs, DIM, q, 10);
        let theirs: Vec<(String, f32)> = hits.iter().map(|h| (h.id.clone(), h.score)).collect();
        assert_same_top_k("milvus", &ours, &theirs, 1e-5);
    }

    // Again: nothing added, nothing changed.
    let again = export_milvus(&target, &docs, &options, &mut quiet()).unwrap();
    assert!(!again.created);
    assert_eq!(again.count, 1200);
    let mut ids = collection.all_ids().unwrap();
    ids.sort();
    let mut expected: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(collection.search(&views, 10).unwrap(), found);
}

#[test]
fn an_index_with_deletions_exports_its_live_documents_only() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = documents(300, DIM, 11);
    // An index of the documents, then 40 of them deleted.
    let dir = tmp.path().join("index");
    let mut builder = splade_index::IndexBuilder::new(DIM as usize);
    for d in &docs {
        builder.add(&d.id, d.vector.view()).unwrap();
    }
    builder.write(&dir).unwrap();
    let deleted: Vec<String> = (0..300).step_by(7).map(|i| format!("doc-{i}")).collect();
    let mut writer = splade_index::IndexWriter::open(&dir).unwrap();
    for id in &deleted {
        assert!(writer.delete(id));
    }
    writer.commit().unwrap();

    let live = DocumentSource::Index(dir).read_all().unwrap();
    assert_eq!(live.len(), 300 - deleted.len());
    let server = MilvusLite::start(&tmp.path().join("milvus"));
    let target = MilvusTarget::new(&server.uri(), "after_delete").unwrap();
    let report = export_milvus(
        &target,
        &live,
        &MilvusExportOptions::default(),
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(report.count as usize, live.len());
    let ids = MilvusCollection::connect(&target)
        .unwrap()
        .all_ids()
        .unwrap();
    for d in &deleted {
        assert!(!ids.contains(d), "deleted {d} was exported");
    }
    assert_eq!(ids.len(), live.len());
}

#[test]
fn a_server_killed_mid_export_then_resumed_holds_every_document_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("milvus");
    let mut server = MilvusLite::start(&data);
    let port = server.port;
    let docs = documents(2000, DIM, 21);
    let target = MilvusTarget::new(&server.uri(), "crash").unwrap();
    let options = MilvusExportOptions {
        batch_size: 100,
        retry: RetryPolicy {
            attempts: 2,
            first_delay: std::time::Duration::from_millis(100),
            max_delay: std::time::Duration::from_millis(100),
        },
        ..MilvusExportOptions::default()
    };
    // The server dies after the fifth batch was acknowledged.
    let mut killed_at = None;
    let err = export_milvus(&target, &docs, &options, &mut |n| {
        if n == 500 {
            server.kill();
            killed_at = Some(n);
        }
    })
    .unwrap_err()
    .to_string();
    assert_eq!(killed_at, Some(500));
    assert!(err.contains("Milvus at http://127.0.0.1"), "{err}");
    assert!(err.contains("documents 501..600"), "{err}");

    // Restarted on its data; the export run again.
    let server = MilvusLite::start_on(&data, port);
    let collection = MilvusCollection::connect(&target).unwrap();
    let before = collection.count().unwrap();
    assert!(
        before <= 500,
        "{before} documents survived a crash after 500"
    );
    let report = export_milvus(&target, &docs, &options, &mut quiet()).unwrap();
    assert!(!report.created);
    assert_eq!(report.count, 2000);
    let mut ids = collection.all_ids().unwrap();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicates after the resumed export");
    assert_eq!(n, 2000, "documents missing after the resumed export");
    drop(server);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let docs = vec![
        ExportDocument::new("a", documents(1, DIM, 1)[0].vector.clone()),
        ExportDocument::new("a", documents(1, DIM, 2)[0].vector.clone()),
    ];
    // Refused before any connection is made.
    let target = MilvusTarget::new("http://127.0.0.1:9", "c").unwrap();
    let err = export_milvus(
        &target,
        &docs,
        &MilvusExportOptions::default(),
        &mut quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("document 2 repeats the id \"a\""), "{err}");
    let err = MilvusCollection::connect(&target)
        .and_then(|c| c.exists().map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Milvus at http://127.0.0.1:9"), "{err}");
}

#[test]
fn texts_are_stored_and_a_layout_mismatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MilvusLite::start(&tmp.path().join("milvus"));
    let mut docs = documents(50, DIM, 51);
    for d in &mut docs {
        d.text = Some(format!("the text of {}", d.id));
    }
    let with_text = MilvusExportOptions {
        store_text: true,
        ..MilvusExportOptions::default()
    };
    let target = MilvusTarget::new(&server.uri(), "texts").unwrap();
    let report = export_milvus(&target, &docs, &with_text, &mut quiet()).unwrap();
    assert_eq!(report.count, 50);
    let layout = MilvusCollection::connect(&target)
        .unwrap()
        .layout()
        .unwrap();
    assert!(layout.has_text);
    let err = export_milvus(
        &target,
        &docs,
        &MilvusExportOptions::default(),
        &mut quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("has a \"text\" field"), "{err}");
    let plain = MilvusTarget::new(&server.uri(), "plain").unwrap();
    export_milvus(&plain, &docs, &MilvusExportOptions::default(), &mut quiet()).unwrap();
    let err = export_milvus(&plain, &docs, &with_text, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no \"text\" field"), "{err}");
    docs[3].text = None;
    let err = export_milvus(&target, &docs, &with_text, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("document \"doc-3\" has no text"), "{err}");
}
