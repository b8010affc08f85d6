//! The model card (`README.md`) written next to a trained model, in the shape of the
//! sentence-transformers cards: model description, usage, evaluation, training details,
//! logs, hyperparameters, framework versions.

use std::fmt::Write as _;

use splade_encoder::SparseEncoder;

use crate::data::TrainingData;
use crate::trainer::{TrainConfig, TrainReport};

/// What the card describes besides the model itself.
pub struct CardInput<'a> {
    /// The model as trained.
    pub encoder: &'a SparseEncoder,
    /// Where the base model came from (path, Hub id or `splade-tiny`).
    pub base_model: &'a str,
    /// Name of the training data (e.g. its file name).
    pub dataset_name: &'a str,
    /// The training rows.
    pub data: &'a TrainingData,
    /// The hyperparameters.
    pub config: &'a TrainConfig,
    /// The run's log and evaluations.
    pub report: &'a TrainReport,
}

fn text_stats(texts: impl Iterator<Item = usize>) -> (usize, f64, usize) {
    let (mut min, mut sum, mut max, mut n) = (usize::MAX, 0usize, 0usize, 0usize);
    for len in texts {
        min = min.min(len);
        max = max.max(len);
        sum += len;
        n += 1;
    }
    if n == 0 {
        (0, 0.0, 0)
    } else {
        (min, sum as f64 / n as f64, max)
    }
}

/// Renders the card as Markdown.
pub fn model_card(input: &CardInput<'_>) -> String {
    let folder = input.encoder.folder();
    let mut s = String::new();
    let _ = writeln!(s, "---\nlibrary_name: sentence-transformers\ntags:\n- sentence-transformers\n- sparse-encoder\n- sparse\n- splade\n- splade-rs\npipeline_tag: feature-extraction\nbase_model: {}\n---\n", input.base_model);
    let _ = writeln!(
        s,
        "# SPLADE model fine-tuned from {} on {}\n",
        input.base_model, input.dataset_name
    );
    let _ = writeln!(
        s,
        "This is a [SPLADE](https://huggingface.co/papers/2107.05720) sparse encoder fine-tuned with \
         [splade-rs](https://github.com/splade-rs/splade-rs). It maps sentences and paragraphs to a \
         {}-dimensional sparse vector space (one dimension per vocabulary token) and can be used for \
         semantic search and sparse retrieval.\n",
        folder.backbone.vocab_size
    );
    let _ = writeln!(s, "## Model Details\n");
    let _ = writeln!(s, "- **Model Type:** SPLADE Sparse Encoder");
    let _ = writeln!(s, "- **Base model:** {}", input.base_model);
    let _ = writeln!(
        s,
        "- **Maximum Sequence Length:** {} tokens",
        folder.max_seq_length
    );
    let _ = writeln!(
        s,
        "- **Output Dimensionality:** {} dimensions",
        folder.backbone.vocab_size
    );
    let _ = writeln!(s, "- **Similarity Function:** {}", folder.similarity);
    let _ = writeln!(
        s,
        "- **Training Dataset:** {} ({} rows)\n",
        input.dataset_name,
        input.data.rows.len()
    );
    let transformer = format!(
        "Transformer({{'max_seq_length': {}, 'do_lower_case': {}, 'architecture': '{}'}})",
        folder.max_seq_length,
        if folder.do_lower_case {
            "True"
        } else {
            "False"
        },
        folder.backbone.architecture.class_name(),
    );
    let pooling = format!(
        "SpladePooling({{'pooling_strategy': '{}', 'activation_function': '{}', 'word_embedding_dimension': {}}})",
        folder.pooling.strategy.name(),
        folder.pooling.activation.name(),
        folder.backbone.vocab_size
    );
    let modules = match &folder.router {
        // An inference-free model: one Router whose routes are listed with their modules.
        Some(router) => {
            let routes: Vec<String> = router
                .routes
                .iter()
                .map(|r| match &r.kind {
                    splade_encoder::RouteKind::Static { .. } => format!(
                        "    ({}): SparseStaticEmbedding({{'dim': {}}})",
                        r.name, folder.backbone.vocab_size
                    ),
                    splade_encoder::RouteKind::Splade { .. } => {
                        format!("    ({}): [{transformer}, {pooling}]", r.name)
                    }
                })
                .collect();
            format!("  (0): Router(\n{}\n  )", routes.join("\n"))
        }
        None => format!("  (0): {transformer}\n  (1): {pooling}"),
    };
    let _ = writeln!(
        s,
        "### Full Model Architecture\n\n```\nSparseEncoder(\n{modules}\n)\n```\n"
    );
    let _ = writeln!(s, "## Usage\n\n### splade-rs\n\n```bash\nsplade encode --model PATH --top-tokens 10 < texts.txt\nsplade index build --model PATH --corpus corpus.jsonl --out index\nsplade search --index index --model PATH \"your query\"\n```\n");
    let _ = writeln!(s, "### Sentence Transformers\n\n```python\nfrom sentence_transformers import SparseEncoder\n\nmodel = SparseEncoder(\"PATH\")\nembeddings = model.encode([\"How do I learn Python?\", \"What is the best way to learn Python?\"])\nprint(model.similarity(embeddings, embeddings))\n```\n");
    if let Some((step, metrics)) = input.report.evaluations.last() {
        let _ = writeln!(s, "## Evaluation\n\nMetrics of the final model (evaluation at step {step}):\n\n| Metric | Value |\n|:--|--:|");
        for (k, v) in metrics {
            let _ = writeln!(s, "| {k} | {v:.4} |");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Training Details\n\n### Training Dataset\n\n* Size: {} training samples\n* Columns: {}\n* Approximate statistics based on the training samples (characters):\n", input.data.rows.len(),
        input.data.columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "));
    let _ = writeln!(
        s,
        "| | {} |\n|:--|{}",
        input.data.columns.join(" | "),
        ":--|".repeat(input.data.columns.len())
    );
    let stats: Vec<(usize, f64, usize)> = (0..input.data.columns.len())
        .map(|c| text_stats(input.data.rows.iter().map(|r| r[c].chars().count())))
        .collect();
    let _ = writeln!(s, "| type | {} |", vec!["string"; stats.len()].join(" | "));
    let _ = writeln!(
        s,
        "| details | {} |\n",
        stats
            .iter()
            .map(|(a, m, b)| format!("min: {a}, mean: {m:.1}, max: {b}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let c = input.config;
    let base = match c.loss.base {
        crate::loss::BaseLoss::MultipleNegativesRanking => format!(
            "SparseMultipleNegativesRankingLoss(scale={}, similarity_fct='dot_score')",
            c.loss.scale
        ),
        crate::loss::BaseLoss::MarginMse => {
            "SparseMarginMSELoss(similarity_fct='pairwise_dot_score')".to_string()
        }
        crate::loss::BaseLoss::Mse => "SparseMSELoss()".to_string(),
        crate::loss::BaseLoss::CosineSimilarity => {
            "SparseCosineSimilarityLoss(loss_fct='torch.nn.modules.loss.MSELoss')".to_string()
        }
        crate::loss::BaseLoss::CoSent { scale } => {
            format!("SparseCoSENTLoss(scale={scale}, similarity_fct='pairwise_cos_sim')")
        }
        crate::loss::BaseLoss::AnglE { scale } => {
            format!("SparseAnglELoss(scale={scale}, similarity_fct='pairwise_angle_sim')")
        }
        crate::loss::BaseLoss::Triplet { distance, margin } => format!(
            "SparseTripletLoss(distance_metric='TripletDistanceMetric.{}', triplet_margin={margin})",
            distance.name()
        ),
        crate::loss::BaseLoss::DistillKlDiv {
            student_temperature,
            teacher_temperature,
        } => format!(
            "SparseDistillKLDivLoss(similarity_fct='pairwise_dot_score', student_temperature={student_temperature}, teacher_temperature={teacher_temperature})"
        ),
    };
    let _ = writeln!(s, "* Loss: `SpladeLoss` with these parameters:\n  ```json\n  {{\n      \"loss\": \"{base}\",\n      \"document_regularizer_weight\": {},\n      \"query_regularizer_weight\": {}\n  }}\n  ```\n", c.loss.lambda_document, c.loss.lambda_query);
    let _ = writeln!(s, "### Training Hyperparameters\n");
    let _ = writeln!(s, "- `per_device_train_batch_size`: {}", c.batch_size);
    let _ = writeln!(s, "- `learning_rate`: {}", c.learning_rate);
    match c.max_steps {
        Some(n) => {
            let _ = writeln!(s, "- `max_steps`: {n}");
        }
        None => {
            let _ = writeln!(s, "- `num_train_epochs`: {}", c.epochs);
        }
    }
    let _ = writeln!(s, "- `warmup_ratio`: {}", c.warmup_ratio);
    let _ = writeln!(s, "- `weight_decay`: {}", c.weight_decay);
    let _ = writeln!(
        s,
        "- `max_grad_norm`: {}",
        c.max_grad_norm
            .map_or("none".to_string(), |x| x.to_string())
    );
    let _ = writeln!(
        s,
        "- `gradient_accumulation_steps`: {}",
        c.gradient_accumulation
    );
    let _ = writeln!(s, "- `seed`: {}", c.seed);
    let _ = writeln!(
        s,
        "- `dropout`: {}",
        if c.dropout {
            "the model config's (train mode)"
        } else {
            "off"
        }
    );
    let _ = writeln!(s, "- `batch_sampler`: {:?}", c.sampler);
    let _ = writeln!(s, "- `lr_scheduler_type`: linear");
    let _ = writeln!(
        s,
        "- `regularizer_warmup`: {:?} over {:.3} of the steps",
        c.regularizer_warmup.1, c.regularizer_warmup.0
    );
    if let Some(m) = &c.best_metric {
        let _ = writeln!(s, "- `load_best_model_at_end`: True (metric `{m}`)");
    }
    let _ = writeln!(s, "\n### Training Logs\n\n![training loss and evaluation metrics](training_plot.png)\n\n| Epoch | Step | Training Loss | Base loss | Query FLOPS | Document FLOPS |\n|:--|:--|:--|:--|:--|:--|");
    for e in &input.report.log {
        let _ = writeln!(
            s,
            "| {:.4} | {} | {:.4} | {:.4} | {:.6} | {:.6} |",
            e.epoch,
            e.step,
            e.loss,
            e.base_loss,
            e.query_regularizer_loss,
            e.document_regularizer_loss
        );
    }
    if !input.report.evaluations.is_empty() {
        let _ = writeln!(s, "\n### Evaluations during training\n");
        let keys: Vec<&String> = input.report.evaluations[0]
            .1
            .keys()
            .filter(|k| k.contains("ap") || k.contains("ndcg@10") || k.contains("accuracy"))
            .take(6)
            .collect();
        let _ = writeln!(
            s,
            "| Step | {} |\n|:--|{}",
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            ":--|".repeat(keys.len())
        );
        for (step, m) in &input.report.evaluations {
            let best = if input.report.best_step == Some(*step) {
                " (best)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "| {step}{best} | {} |",
                keys.iter()
                    .map(|k| m.get(*k).map_or("-".into(), |v| format!("{v:.4}")))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    let _ = writeln!(
        s,
        "\n### Framework Versions\n\n- splade-rs: {}\n- candle: 0.11",
        env!("CARGO_PKG_VERSION")
    );
    s
}
