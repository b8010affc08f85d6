//! Prometheus metrics: text-embeddings-inference's `te_*` families (same names, labels and
//! buckets) plus `splade_search_*` and `splade_index_*`, rendered by `GET /metrics`.
//!
//! Each server has its own recorder (nothing global), so several servers in one process
//! (the tests) keep separate counts.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const METADATA: Metadata<'static> = Metadata::new("splade_server", Level::INFO, None);

/// The server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A recorder with TEI's buckets (`max_input_length` bounds the input-length buckets).
    pub fn new(max_input_length: usize) -> anyhow::Result<Self> {
        // Durations: 35 buckets growing by 1.5 from 15 µs, as TEI.
        let mut value = 0.00001;
        let durations: Vec<f64> = (0..35)
            .map(|_| {
                value *= 1.5;
                value
            })
            .collect();
        let powers = |n: i32| (0..n).map(|x| 2.0_f64.powi(x)).collect::<Vec<f64>>();
        let input_lengths: Vec<f64> = powers(20)
            .into_iter()
            .filter(|x| *x as usize <= max_input_length.max(1))
            .collect();
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration".into()), &durations)?
            .set_buckets_for_metric(
                Matcher::Full("te_request_input_length".into()),
                &input_lengths,
            )?
            .set_buckets_for_metric(Matcher::Full("te_batch_next_size".into()), &powers(13))?
            .set_buckets_for_metric(Matcher::Full("te_batch_next_tokens".into()), &powers(21))?
            .set_buckets_for_metric(
                Matcher::Full("splade_index_commit_documents".into()),
                &powers(21),
            )?
            .build_recorder();
        let handle = recorder.handle();
        Ok(Self { recorder, handle })
    }

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        Key::from_parts(
            name,
            labels
                .iter()
                .map(|(k, v)| Label::new(*k, *v))
                .collect::<Vec<_>>(),
        )
    }

    /// The counter `name{labels}`.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
    }

    /// The gauge `name{labels}`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
    }

    /// The histogram `name{labels}`.
    pub fn histogram(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// Adds one to `name{labels}`.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, &'static str)]) {
        self.counter(name, labels).increment(1);
    }

    /// Records a duration in seconds.
    pub fn time(&self, name: &'static str, duration: Duration) {
        self.histogram(name, &[]).record(duration.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_are_rendered_with_their_labels() {
        let m = Metrics::new(512).unwrap();
        m.count("te_request_count", &[("method", "single")]);
        m.count("te_request_count", &[("method", "single")]);
        m.gauge("te_queue_size", &[]).increment(3.0);
        m.time("te_request_duration", Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("te_request_count{method=\"single\"} 2"),
            "{text}"
        );
        assert!(text.contains("te_queue_size 3"), "{text}");
        assert!(text.contains("te_request_duration_bucket{le="), "{text}");
        assert!(text.contains("te_request_duration_count 1"), "{text}");
    }
}
