//! The model card (`README.md`) written next to a trained model, with the sections and table
//! shapes of the card sentence-transformers writes for the same run
//! (`fixtures/train/card/README.md`): YAML front matter with `model-index`, model details,
//! usage, one metric table per evaluator, the training dataset (column statistics and
//! samples), the non-default and all hyperparameters, the training logs with one column per
//! evaluator, framework versions and the BibTeX citations of the losses.

use std::fmt::Write as _;

use splade_encoder::SparseEncoder;

use crate::data::TrainingData;
use crate::trainer::{TrainConfig, TrainReport};

/// An evaluator that returns a flat dictionary (similarity, triplet, reranking, ...): what the
/// card needs to give it a section, since its keys alone do not say what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedCard {
    /// Its name, the key prefix (`sts`).
    pub name: String,
    /// sentence-transformers' class (`SparseEmbeddingSimilarityEvaluator`).
    pub class: &'static str,
    /// sentence-transformers' description, the section title (`Semantic Similarity`).
    pub description: &'static str,
    /// The primary metric without the prefix (`spearman_cosine`).
    pub primary: String,
    /// Its keys without the prefix, in the evaluator's order.
    pub keys: Vec<String>,
}

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
    /// The evaluation rows (`eval_dataset`) and their name, when the run had them.
    pub eval_data: Option<(&'a TrainingData, String)>,
    /// The hyperparameters.
    pub config: &'a TrainConfig,
    /// The run's log and evaluations.
    pub report: &'a TrainReport,
    /// The evaluators' key prefixes in the run's order (`eval`, `scifact`, `NanoSciFact`, ...,
    /// `NanoBEIR_mean`): the order of the card's tables and log columns. Empty: by name.
    pub evaluator_order: &'a [String],
    /// The keyed evaluators of the run (their names are in `evaluator_order` too).
    pub keyed: &'a [KeyedCard],
}

fn len_stats(texts: impl Iterator<Item = usize>) -> (usize, f64, usize) {
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

/// One evaluator's metrics in the final evaluation, as the card groups them.
struct EvalGroup {
    /// Binary classification (`true`) or information retrieval.
    binary: bool,
    /// A NanoBEIR aggregate (`NanoBEIR_mean`): retrieval keys, its own section.
    nano: bool,
    /// A keyed evaluator (similarity, triplet, reranking, ...): its own section.
    keyed: Option<KeyedCard>,
    /// The evaluator's name (the key prefix): `eval` or the dataset name.
    name: String,
    /// Metric names without the prefix, in sentence-transformers' order, with values.
    metrics: Vec<(String, f64)>,
}

/// Where a metric name goes in sentence-transformers' order (accuracy … mcc, then sparsity
/// for binary classification; accuracy@k, precision@k, recall@k, ndcg, mrr, map, then
/// sparsity and FLOPS for retrieval).
fn metric_rank(metric: &str) -> (usize, String) {
    const RANKED: [&str; 6] = [
        "_accuracy@",
        "_precision@",
        "_recall@",
        "_ndcg@",
        "_mrr@",
        "_map@",
    ];
    let binary = [
        "_accuracy",
        "_accuracy_threshold",
        "_f1",
        "_f1_threshold",
        "_precision",
        "_recall",
        "_ap",
        "_mcc",
    ];
    let m = format!("_{metric}");
    if let Some(i) = binary.iter().position(|b| m.ends_with(b)) {
        // Grouped by similarity function, then the binary order.
        let function = metric.split('_').next().unwrap_or("").to_string();
        return (i, function);
    }
    for (i, o) in RANKED.iter().enumerate() {
        if let Some(pos) = m.find(o) {
            let k: usize = m[pos + o.len()..].parse().unwrap_or(0);
            return (20 + i * 1000 + k, String::new());
        }
    }
    let tail = [
        "active_dims",
        "sparsity_ratio",
        "query_active_dims",
        "query_sparsity_ratio",
        "corpus_active_dims",
        "corpus_sparsity_ratio",
        "avg_flops",
    ];
    match tail.iter().position(|t| metric == *t) {
        Some(i) => (100_000 + i, String::new()),
        None => (200_000, metric.to_string()),
    }
}

/// Splits the final evaluation into its evaluators: a retrieval evaluator has `NAME_avg_flops`,
/// a binary classification one `NAME_sparsity_ratio` without retrieval keys. A binary
/// evaluator keeps the metrics of the model's `similarity` function (and its sparsity).
///
/// Groups come in `order` (the key prefixes in the run's evaluator order; a prefix not listed
/// goes last), as sentence-transformers lists its evaluators; a retrieval group named
/// `NanoBEIR_*` is a NanoBEIR aggregate.
fn eval_groups(
    metrics: &crate::trainer::Metrics,
    similarity: &str,
    order: &[String],
    keyed: &[KeyedCard],
) -> Vec<EvalGroup> {
    // The keyed evaluators' keys are theirs, whatever they look like.
    let of_keyed = |k: &str| keyed.iter().any(|c| k.starts_with(&format!("{}_", c.name)));
    let own: crate::trainer::Metrics = metrics
        .iter()
        .filter(|(k, _)| !of_keyed(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let all = metrics;
    let metrics = &own;
    let ir: Vec<String> = metrics
        .keys()
        .filter_map(|k| k.strip_suffix("_avg_flops"))
        .map(str::to_string)
        .collect();
    let binary: Vec<String> = metrics
        .keys()
        .filter_map(|k| k.strip_suffix("_sparsity_ratio"))
        .filter(|p| !p.ends_with("_query") && !p.ends_with("_corpus") && !ir.iter().any(|n| n == p))
        .map(str::to_string)
        .collect();
    let mut groups = Vec::new();
    for (names, is_binary) in [(binary, true), (ir, false)] {
        for name in names {
            let prefix = format!("{name}_");
            let mut m: Vec<(String, f64)> = metrics
                .iter()
                .filter(|(k, _)| k.as_str() != crate::trainer::EVAL_LOSS)
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|r| (r.to_string(), *v)))
                // A binary evaluator named like a prefix of a retrieval one keeps its own keys.
                .filter(|(r, _)| {
                    !is_binary
                        || !r.contains('@') && !r.contains("query_") && !r.contains("corpus_")
                })
                .collect();
            if is_binary {
                // sentence-transformers' evaluator computes the model's similarity function
                // only; ours computes every function (all kept in `evaluations.json`).
                let functions = ["cosine_", "dot_", "euclidean_", "manhattan_", "max_"];
                let own = format!("{similarity}_");
                if m.iter().any(|(k, _)| k.starts_with(&own)) {
                    m.retain(|(k, _)| {
                        k.starts_with(&own) || !functions.iter().any(|f| k.starts_with(f))
                    });
                }
            }
            m.sort_by_key(|(k, _)| metric_rank(k));
            groups.push(EvalGroup {
                binary: is_binary,
                nano: !is_binary && name.starts_with("NanoBEIR_"),
                keyed: None,
                name,
                metrics: m,
            });
        }
    }
    for card in keyed {
        let m: Vec<(String, f64)> = card
            .keys
            .iter()
            .filter_map(|k| {
                let value = all.get(&format!("{}_{k}", card.name))?;
                Some((k.clone(), *value))
            })
            .collect();
        if !m.is_empty() {
            groups.push(EvalGroup {
                binary: false,
                nano: false,
                keyed: Some(card.clone()),
                name: card.name.clone(),
                metrics: m,
            });
        }
    }
    groups.sort_by_key(|g| {
        order
            .iter()
            .position(|n| *n == g.name)
            .unwrap_or(usize::MAX)
    });
    groups
}

/// Names as sentence-transformers lists datasets: `` `a` ``, `` `a` and `b` ``,
/// `` `a`, `b` and `c` ``.
fn and_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The metric that heads an evaluator (its column in the training logs, bold in its table):
/// AP for binary classification, nDCG@10 for retrieval, of the model's similarity function
/// (the one sentence-transformers' evaluators use by default), else of the best function
/// (`max_`), else the first.
fn primary_metric(group: &EvalGroup, similarity: &str) -> Option<String> {
    if let Some(card) = &group.keyed {
        return Some(card.primary.clone());
    }
    let suffix = if group.binary { "_ap" } else { "_ndcg@10" };
    let candidates: Vec<&String> = group
        .metrics
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(suffix))
        .collect();
    candidates
        .iter()
        .find(|k| k.starts_with(&format!("{similarity}_")))
        .or_else(|| candidates.iter().find(|k| k.starts_with("max_")))
        .or(candidates.first())
        .map(|k| k.to_string())
}

/// A value as sentence-transformers' card tables print it: 4 decimals, trailing zeros cut
/// (one kept).
fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// A Markdown table, cells padded to their column's width as `make_markdown_table` does.
fn table(header: &[String], rows: &[Vec<String>], centered: bool, indent: &str) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{indent}| {} |\n", padded.join(" | "))
    };
    let mut s = line(header);
    let rule: Vec<String> = widths
        .iter()
        .map(|w| {
            if centered {
                format!(":{}:", "-".repeat(*w))
            } else {
                format!(":{}", "-".repeat(w + 1))
            }
        })
        .collect();
    s.push_str(&format!("{indent}|{}|\n", rule.join("|")));
    for r in rows {
        s.push_str(&line(r));
    }
    s
}

/// The retrieval table: one `Value` column for one dataset, else one column per dataset.
fn ir_table(ir: &[&EvalGroup], similarity: &str) -> String {
    let mut header = vec!["Metric".to_string()];
    if ir.len() == 1 {
        header.push("Value".into());
    } else {
        header.extend(ir.iter().map(|g| g.name.clone()));
    }
    let rows: Vec<Vec<String>> = ir[0]
        .metrics
        .iter()
        .map(|(k, _)| {
            let bold = ir
                .iter()
                .any(|g| primary_metric(g, similarity).as_deref() == Some(k.as_str()));
            let mut row = vec![if bold { format!("**{k}**") } else { k.clone() }];
            for g in ir {
                let v = g
                    .metrics
                    .iter()
                    .find(|(n, _)| n == k)
                    .map_or("-".to_string(), |(_, v)| fmt_value(*v));
                row.push(if bold { format!("**{v}**") } else { v });
            }
            row
        })
        .collect();
    table(&header, &rows, false, "")
}

/// Title-cases a metric name as the `model-index` does (`cosine_ap` → `Cosine Ap`).
fn metric_title(metric: &str) -> String {
    metric
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn yaml_str(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_alphanumeric() || " ?.,'-_()".contains(c))
        && !s.starts_with(['\'', '-', '?', ' '])
        && !s.ends_with(' ')
    {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

const CITE_ST: &str = r#"@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}"#;

const CITE_SPLADE: &str = r#"@misc{formal2022distillationhardnegativesampling,
      title={From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More Effective},
      author={Thibault Formal and Carlos Lassance and Benjamin Piwowarski and Stéphane Clinchant},
      year={2022},
      eprint={2205.04733},
      archivePrefix={arXiv},
      primaryClass={cs.IR},
      url={https://arxiv.org/abs/2205.04733},
}"#;

const CITE_MNRL: &str = r#"@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}"#;

const CITE_MARGIN_MSE: &str = r#"@misc{hofstätter2021improving,
    title={Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
    author={Sebastian Hofstätter and Sophia Althammer and Michael Schröder and Mete Sertkan and Allan Hanbury},
    year={2021},
    eprint={2010.02666},
    archivePrefix={arXiv},
    primaryClass={cs.IR}
}"#;

const CITE_FLOPS: &str = r#"@article{paria2020minimizing,
    title={Minimizing flops to learn efficient sparse representations},
    author={Paria, Biswajit and Yeh, Chih-Kuan and Yen, Ian EH and Xu, Ning and Ravikumar, Pradeep and P{'o}czos, Barnab{'a}s},
    journal={arXiv preprint arXiv:2004.05665},
    year={2020}
}"#;

const CITE_MSE: &str = r#"@inproceedings{reimers-2020-multilingual-sentence-bert,
    title = "Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2020",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/2004.09813",
}"#;

/// sentence-transformers cites CoSENT for both SparseCoSENTLoss and SparseAnglELoss.
const CITE_COSENT: &str = r#"@article{10531646,
    author={Huang, Xiang and Peng, Hao and Zou, Dongcheng and Liu, Zhiwei and Li, Jianxin and Liu, Kay and Wu, Jia and Su, Jianlin and Yu, Philip S.},
    journal={IEEE/ACM Transactions on Audio, Speech, and Language Processing},
    title={CoSENT: Consistent Sentence Embedding via Similarity Ranking},
    year={2024},
    doi={10.1109/TASLP.2024.3402087}
}"#;

const CITE_TRIPLET: &str = r#"@misc{hermans2017defense,
    title={In Defense of the Triplet Loss for Person Re-Identification},
    author={Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year={2017},
    eprint={1703.07737},
    archivePrefix={arXiv},
    primaryClass={cs.CV}
}"#;

const CITE_DISTILL_KL: &str = r#"@misc{lin2020distillingdenserepresentationsranking,
      title={Distilling Dense Representations for Ranking using Tightly-Coupled Teachers},
      author={Sheng-Chieh Lin and Jheng-Hong Yang and Jimmy Lin},
      year={2020},
      eprint={2010.11386},
      archivePrefix={arXiv},
      primaryClass={cs.IR},
      url={https://arxiv.org/abs/2010.11386},
}"#;

/// The base loss as sentence-transformers prints it in the card, its class name, and its
/// citation (the `citation` property of sentence-transformers' class; none for
/// SparseCosineSimilarityLoss).
fn base_loss(c: &TrainConfig) -> (String, &'static str, Option<&'static str>) {
    use crate::loss::BaseLoss;
    match c.loss.base {
        BaseLoss::MultipleNegativesRanking => (
            format!(
                "SparseMultipleNegativesRankingLoss(scale={:?}, similarity_fct='dot_score', gather_across_devices=False, directions=('query_to_doc',), partition_mode='joint', hardness_mode=None, hardness_strength=0.0)",
                c.loss.scale
            ),
            "SparseMultipleNegativesRankingLoss",
            Some(CITE_MNRL),
        ),
        BaseLoss::MarginMse => (
            "SparseMarginMSELoss(similarity_fct='pairwise_dot_score')".to_string(),
            "SparseMarginMSELoss",
            Some(CITE_MARGIN_MSE),
        ),
        BaseLoss::Mse => (
            "SparseMSELoss()".to_string(),
            "SparseMSELoss",
            Some(CITE_MSE),
        ),
        BaseLoss::CosineSimilarity => (
            "SparseCosineSimilarityLoss(loss_fct='torch.nn.modules.loss.MSELoss')".to_string(),
            "SparseCosineSimilarityLoss",
            None,
        ),
        BaseLoss::CoSent { scale } => (
            format!("SparseCoSENTLoss(scale={scale}, similarity_fct='pairwise_cos_sim')"),
            "SparseCoSENTLoss",
            Some(CITE_COSENT),
        ),
        BaseLoss::AnglE { scale } => (
            format!("SparseAnglELoss(scale={scale}, similarity_fct='pairwise_angle_sim')"),
            "SparseAnglELoss",
            Some(CITE_COSENT),
        ),
        BaseLoss::Triplet { distance, margin } => (
            format!(
                "SparseTripletLoss(distance_metric='TripletDistanceMetric.{}', triplet_margin={margin})",
                distance.name()
            ),
            "SparseTripletLoss",
            Some(CITE_TRIPLET),
        ),
        BaseLoss::DistillKlDiv {
            student_temperature,
            teacher_temperature,
        } => (
            format!(
                "SparseDistillKLDivLoss(similarity_fct='pairwise_dot_score', student_temperature={student_temperature}, teacher_temperature={teacher_temperature})"
            ),
            "SparseDistillKLDivLoss",
            Some(CITE_DISTILL_KL),
        ),
    }
}

/// A number as Python prints it (`1e-05`, `0.0`, `2`).
fn py_float(v: f64) -> String {
    if v == 0.0 {
        return "0.0".into();
    }
    if v.abs() < 1e-4 {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e-{:02}", -e);
    }
    format!("{v:?}")
}

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// A Python-dict rendering of ordered pairs.
fn py_dict<V>(pairs: &[(String, V)], value: impl Fn(&V) -> String) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("'{k}': {}", value(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Every hyperparameter of our trainer ([`TrainConfig`], destructured without `..` so that a
/// new field cannot be left out), in the order of the reference card: under Hugging Face /
/// sentence-transformers `TrainingArguments` names where the option is the same thing, under
/// our own names otherwise (`dropout`, `regularizer_warmup`, `gradient_cache`, ...). The flag
/// says whether the value differs from the default (`TrainingArguments`' for the shared
/// names, ours for the others). Run-time controls (`stop`, `show_progress`) are not
/// hyperparameters.
fn hyperparameters(c: &TrainConfig) -> Vec<(&'static str, String, bool)> {
    let TrainConfig {
        batch_size,
        epochs,
        max_steps,
        learning_rate,
        warmup_ratio,
        weight_decay,
        max_grad_norm,
        gradient_accumulation,
        seed,
        dropout,
        sampler,
        loss,
        regularizer_warmup,
        logging_steps,
        eval_batch_size,
        eval_steps,
        best_metric,
        stop: _,
        resume_from,
        show_progress: _,
        precision,
        gradient_cache,
        router_mapping,
        learning_rate_mapping,
        csr,
    } = c;
    let ours = TrainConfig::default();
    let sampler_name = match sampler {
        crate::sampler::BatchSampler::NoDuplicates => "no_duplicates",
        crate::sampler::BatchSampler::Shuffled => "batch_sampler",
        crate::sampler::BatchSampler::Sequential => "sequential",
    };
    let bf16 = *precision == candle_core::DType::BF16;
    let none = || "None".to_string();
    vec![
        (
            "per_device_train_batch_size",
            batch_size.to_string(),
            *batch_size != 8,
        ),
        (
            "per_device_eval_batch_size",
            eval_batch_size.to_string(),
            *eval_batch_size != 8,
        ),
        ("num_train_epochs", format!("{epochs}"), *epochs != 3.0),
        (
            "max_steps",
            max_steps.map_or("-1".into(), |n| n.to_string()),
            max_steps.is_some(),
        ),
        (
            "learning_rate",
            py_float(*learning_rate),
            *learning_rate != 5e-5,
        ),
        (
            "warmup_ratio",
            py_float(*warmup_ratio),
            *warmup_ratio != 0.0,
        ),
        (
            "weight_decay",
            py_float(*weight_decay),
            *weight_decay != 0.0,
        ),
        (
            "gradient_accumulation_steps",
            gradient_accumulation.to_string(),
            *gradient_accumulation != 1,
        ),
        (
            "max_grad_norm",
            max_grad_norm.map_or("0.0".into(), py_float),
            *max_grad_norm != Some(1.0),
        ),
        ("bf16", py_bool(bf16), bf16),
        (
            "logging_steps",
            logging_steps.to_string(),
            *logging_steps != 500,
        ),
        (
            "eval_steps",
            eval_steps.map_or_else(none, |n| n.to_string()),
            eval_steps.is_some(),
        ),
        (
            "metric_for_best_model",
            best_metric.clone().unwrap_or_else(none),
            best_metric.is_some(),
        ),
        ("seed", seed.to_string(), *seed != 42),
        (
            "resume_from_checkpoint",
            // The checkpoint's folder name only: no machine path in the card.
            resume_from.as_ref().map_or_else(none, |p| {
                p.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().to_string())
            }),
            resume_from.is_some(),
        ),
        (
            "batch_sampler",
            sampler_name.into(),
            sampler_name != "batch_sampler",
        ),
        (
            "router_mapping",
            py_dict(router_mapping, |v| format!("'{v}'")),
            !router_mapping.is_empty(),
        ),
        (
            "learning_rate_mapping",
            py_dict(learning_rate_mapping, |v| py_float(*v)),
            !learning_rate_mapping.is_empty(),
        ),
        (
            "loss",
            loss.base.class_name().into(),
            loss.base != ours.loss.base,
        ),
        (
            "query_regularizer_weight",
            py_float(loss.lambda_query),
            loss.lambda_query != ours.loss.lambda_query,
        ),
        (
            "document_regularizer_weight",
            py_float(loss.lambda_document),
            loss.lambda_document != ours.loss.lambda_document,
        ),
        (
            "regularizer_warmup",
            format!(
                "{:?} over {} of the steps",
                regularizer_warmup.1,
                py_float(regularizer_warmup.0)
            ),
            *regularizer_warmup != ours.regularizer_warmup,
        ),
        (
            "gradient_cache",
            gradient_cache.map_or_else(none, |n| n.to_string()),
            gradient_cache.is_some(),
        ),
        ("dropout", py_bool(*dropout), !*dropout),
        ("csr_beta", py_float(csr.beta), csr.beta != ours.csr.beta),
        (
            "csr_gamma",
            py_float(csr.gamma),
            csr.gamma != ours.csr.gamma,
        ),
        (
            "csr_k",
            csr.k.map_or_else(none, |n| n.to_string()),
            csr.k.is_some(),
        ),
        (
            "csr_k_aux",
            csr.k_aux.map_or_else(none, |n| n.to_string()),
            csr.k_aux.is_some(),
        ),
    ]
}

/// One dataset of the "Training Details": its name, size, columns, token statistics (as
/// the reference counts them, over the first 100 rows) and first rows.
fn dataset_section(
    s: &mut String,
    encoder: &SparseEncoder,
    kind: &str,
    name: &str,
    data: &TrainingData,
) {
    let columns = &data.columns;
    let cols_text = match columns.len() {
        1 => format!("<code>{}</code>", columns[0]),
        2 => format!(
            "<code>{}</code> and <code>{}</code>",
            columns[0], columns[1]
        ),
        _ => format!(
            "{}, and <code>{}</code>",
            columns[..columns.len() - 1]
                .iter()
                .map(|c| format!("<code>{c}</code>"))
                .collect::<Vec<_>>()
                .join(", "),
            columns[columns.len() - 1]
        ),
    };
    let first = &data.rows[..data.rows.len().min(100)];
    let _ = writeln!(s, "#### Unnamed Dataset\n\n* Loaded from: `{name}`\n* Size: {} {kind} samples\n* Columns: {cols_text}\n* Approximate statistics based on the first {} samples:", data.rows.len(), first.len());
    let tokenizer = encoder.tokenizer();
    let stats: Vec<String> = (0..columns.len())
        .map(|c| {
            let texts: Vec<&str> = first.iter().map(|r| r[c].as_str()).collect();
            let lens: Vec<usize> = match tokenizer.encode(&texts) {
                Ok(t) => t.iter().map(|t| t.ids.len()).collect(),
                Err(_) => texts.iter().map(|t| t.split_whitespace().count()).collect(),
            };
            let (a, m, b) = len_stats(lens.into_iter());
            format!("<ul><li>min: {a} tokens</li><li>mean: {m:.2} tokens</li><li>max: {b} tokens</li></ul>")
        })
        .collect();
    let mut header = vec![String::new()];
    header.extend(columns.iter().cloned());
    let mut type_row = vec!["type".to_string()];
    type_row.extend(columns.iter().map(|_| "string".to_string()));
    let mut modality_row = vec!["modality".to_string()];
    modality_row.extend(columns.iter().map(|_| "text".to_string()));
    let mut details = vec!["details".to_string()];
    details.extend(stats);
    s.push_str(&table(
        &header,
        &[type_row, modality_row, details],
        false,
        "  ",
    ));
    let _ = writeln!(s, "* Samples:");
    let samples: Vec<Vec<String>> = data
        .rows
        .iter()
        .take(3)
        .map(|r| {
            r.iter()
                .map(|t| format!("<code>{}</code>", t.replace('|', "\\|")))
                .collect()
        })
        .collect();
    s.push_str(&table(columns, &samples, false, "  "));
}

/// The "Framework Versions" list in sentence-transformers' shape (`- Name: version` lines):
/// rustc, splade-rs, candle and tokenizers as this build resolved them (`build.rs`).
fn framework_versions() -> String {
    format!(
        "- Rust: {}\n- splade-rs: {}\n- candle: {}\n- Tokenizers: {}\n",
        env!("SPLADE_RUSTC_VERSION"),
        env!("CARGO_PKG_VERSION"),
        env!("SPLADE_CANDLE_VERSION"),
        env!("SPLADE_TOKENIZERS_VERSION"),
    )
}

/// One evaluator's section with a `Metric | Value` table, its primary metric bold.
fn value_section(s: &mut String, g: &EvalGroup, title: &str, class: &str, similarity: &str) {
    let primary = primary_metric(g, similarity);
    let _ = writeln!(s, "\n#### {title}\n\n* Dataset: `{}`\n* Evaluated with [<code>{class}</code>](https://sbert.net/docs/package_reference/sparse_encoder/evaluation.html#sentence_transformers.sparse_encoder.evaluation.{class})\n", g.name);
    let rows: Vec<Vec<String>> = g
        .metrics
        .iter()
        .map(|(k, v)| {
            if primary.as_deref() == Some(k.as_str()) {
                vec![format!("**{k}**"), format!("**{}**", fmt_value(*v))]
            } else {
                vec![k.clone(), fmt_value(*v)]
            }
        })
        .collect();
    s.push_str(&table(&["Metric".into(), "Value".into()], &rows, false, ""));
}

/// Renders the card as Markdown.
pub fn model_card(input: &CardInput<'_>) -> String {
    let folder = input.encoder.folder();
    let c = input.config;
    let similarity = input.encoder.similarity_fn().name().to_string();
    let (loss_repr, loss_name, loss_cite) = base_loss(c);
    let groups = input
        .report
        .evaluations
        .last()
        .map(|(_, m)| eval_groups(m, &similarity, input.evaluator_order, input.keyed))
        .unwrap_or_default();
    let model_name = "SPLADE Sparse Encoder";
    // A local folder by its name only: no machine path in the card.
    let base = std::path::Path::new(input.base_model);
    let base_model = if base.is_dir() {
        base.file_name().map_or(input.base_model.to_string(), |n| {
            n.to_string_lossy().to_string()
        })
    } else {
        input.base_model.to_string()
    };
    let mut s = String::new();

    // Front matter.
    let _ = writeln!(s, "---\ntags:\n- sentence-transformers\n- sparse-encoder\n- sparse\n- splade\n- splade-rs\n- generated_from_trainer\n- dataset_size:{}\n- loss:SpladeLoss\n- loss:{loss_name}\n- loss:FlopsLoss", input.data.rows.len());
    if let Some(first) = input.data.rows.first().and_then(|r| r.first()) {
        let _ = writeln!(s, "widget:\n- text: {}", yaml_str(first));
    }
    let _ = writeln!(
        s,
        "pipeline_tag: feature-extraction\nlibrary_name: sentence-transformers"
    );
    if !groups.is_empty() {
        let _ = writeln!(s, "metrics:");
        let mut seen = Vec::new();
        for g in &groups {
            for (k, _) in &g.metrics {
                if !seen.contains(k) {
                    let _ = writeln!(s, "- {k}");
                    seen.push(k.clone());
                }
            }
        }
        let _ = writeln!(s, "model-index:\n- name: {model_name}\n  results:");
        let keyed_task: std::collections::HashMap<String, String> = groups
            .iter()
            .filter_map(|g| g.keyed.as_ref())
            .map(|c| {
                (
                    c.name.clone(),
                    c.description.to_lowercase().replace(' ', "-"),
                )
            })
            .collect();
        for g in &groups {
            let (ty, name) = if g.binary {
                (
                    "sparse-binary-classification",
                    "Sparse Binary Classification",
                )
            } else if g.nano {
                ("sparse-nano-beir", "Sparse Nano BEIR")
            } else if let Some(card) = &g.keyed {
                (keyed_task[&card.name].as_str(), card.description)
            } else {
                (
                    "sparse-information-retrieval",
                    "Sparse Information Retrieval",
                )
            };
            let _ = writeln!(s, "  - task:\n      type: {ty}\n      name: {name}\n    dataset:\n      name: {}\n      type: {}\n    metrics:", g.name.replace(['_', '-'], " "), g.name);
            for (k, v) in &g.metrics {
                let _ = writeln!(
                    s,
                    "    - type: {k}\n      value: {v:?}\n      name: {}",
                    metric_title(k)
                );
            }
        }
    }
    let _ = writeln!(s, "---\n");

    let _ = writeln!(s, "# {model_name}\n");
    let _ = writeln!(s, "This is a [SPLADE Sparse Encoder](https://www.sbert.net/docs/sparse_encoder/usage/usage.html) model finetuned from `{base_model}` using [splade-rs](https://github.com/splade-rs/splade-rs), in the format of the [sentence-transformers](https://www.SBERT.net) library. It maps inputs to a {}-dimensional sparse vector space and can be used for semantic search and sparse retrieval.", folder.backbone.vocab_size);
    let _ = writeln!(s, "## Model Details\n\n### Model Description");
    let _ = writeln!(s, "- **Model Type:** SPLADE Sparse Encoder");
    let _ = writeln!(s, "- **Base model:** `{base_model}`");
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
    let sim_name = match input.encoder.similarity_fn() {
        splade_sparse::Similarity::Dot => "Dot Product",
        splade_sparse::Similarity::Cosine => "Cosine Similarity",
        splade_sparse::Similarity::Euclidean => "Euclidean Distance",
        splade_sparse::Similarity::Manhattan => "Manhattan Distance",
    };
    let _ = writeln!(s, "- **Similarity Function:** {sim_name}");
    let _ = writeln!(s, "- **Supported Modality:** Text");
    let _ = writeln!(
        s,
        "- **Training Dataset:** `{}` ({} rows)",
        input.dataset_name,
        input.data.rows.len()
    );
    let _ = writeln!(
        s,
        "<!-- - **Language:** Unknown -->\n<!-- - **License:** Unknown -->\n"
    );
    let _ = writeln!(s, "### Model Sources\n\n- **Documentation:** [Sentence Transformers Documentation](https://sbert.net)\n- **Documentation:** [Sparse Encoder Documentation](https://www.sbert.net/docs/sparse_encoder/usage/usage.html)\n- **Repository:** [Sentence Transformers on GitHub](https://github.com/huggingface/sentence-transformers)\n- **Hugging Face:** [Sparse Encoders on Hugging Face](https://huggingface.co/models?library=sentence-transformers&other=sparse-encoder)\n");
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
        "SpladePooling({{'pooling_strategy': '{}', 'activation_function': '{}', 'embedding_dimension': {}}})",
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
    let examples: Vec<&String> = input
        .data
        .rows
        .iter()
        .flat_map(|r| r.iter().take(2))
        .take(3)
        .collect();
    let _ = writeln!(s, "## Usage\n\n### Direct Usage (Sentence Transformers)\n\nFirst install the Sentence Transformers library:\n\n```bash\npip install -U sentence-transformers\n```\nThen you can load this model and run inference.\n```python\nfrom sentence_transformers import SparseEncoder\n\nmodel = SparseEncoder(\"PATH\")\nsentences = [\n{}\n]\nembeddings = model.encode(sentences)\nprint(embeddings.shape)\n# [{}, {}]\nsimilarities = model.similarity(embeddings, embeddings)\nprint(similarities)\n```\nWith splade-rs:\n```bash\nsplade encode --model PATH --top-tokens 10 < texts.txt\nsplade index build --model PATH --corpus corpus.jsonl --out index\nsplade search --index index --model PATH \"your query\"\n```",
        examples.iter().map(|e| format!("    {},", serde_json::to_string(e).unwrap_or_default())).collect::<Vec<_>>().join("\n"),
        examples.len(), folder.backbone.vocab_size);
    let _ = writeln!(s, "<!--\n### Direct Usage (Transformers)\n\n<details><summary>Click to see the direct usage in Transformers</summary>\n\n</details>\n-->\n\n<!--\n### Downstream Usage (Sentence Transformers)\n\nYou can finetune this model on your own dataset.\n\n<details><summary>Click to expand</summary>\n\n</details>\n-->\n\n<!--\n### Out-of-Scope Use\n\n*List how the model may foreseeably be misused and address what users ought not to do with the model.*\n-->");

    // Evaluation: one table per evaluator kind; retrieval has one column per dataset.
    if !groups.is_empty() {
        let _ = writeln!(s, "\n## Evaluation\n\n### Metrics");
        for g in groups.iter().filter(|g| g.binary) {
            value_section(
                &mut s,
                g,
                "Sparse Binary Classification",
                "SparseBinaryClassificationEvaluator",
                &similarity,
            );
        }
        let ir: Vec<&EvalGroup> = groups
            .iter()
            .filter(|g| !g.binary && !g.nano && g.keyed.is_none())
            .collect();
        if !ir.is_empty() {
            let names: Vec<String> = ir.iter().map(|g| g.name.clone()).collect();
            let label = if ir.len() > 1 { "Datasets" } else { "Dataset" };
            let _ = writeln!(s, "\n#### Sparse Information Retrieval\n\n* {label}: {}\n* Evaluated with [<code>SparseInformationRetrievalEvaluator</code>](https://sbert.net/docs/package_reference/sparse_encoder/evaluation.html#sentence_transformers.sparse_encoder.evaluation.SparseInformationRetrievalEvaluator)\n", and_list(&names));
            s.push_str(&ir_table(&ir, &similarity));
        }
        // The NanoBEIR aggregate: its own section (the per-dataset columns are in the
        // retrieval table above), as sentence-transformers' card has it.
        for g in groups.iter().filter(|g| g.nano) {
            let _ = writeln!(s, "\n#### Sparse Nano BEIR\n\n* Dataset: `{}`\n* Evaluated with [<code>SparseNanoBEIREvaluator</code>](https://sbert.net/docs/package_reference/sparse_encoder/evaluation.html#sentence_transformers.sparse_encoder.evaluation.SparseNanoBEIREvaluator)\n", g.name);
            s.push_str(&ir_table(&[g], &similarity));
        }
        for g in groups.iter().filter(|g| g.keyed.is_some()) {
            let card = g.keyed.as_ref().expect("filtered");
            value_section(&mut s, g, card.description, card.class, &similarity);
        }
    }
    let _ = writeln!(s, "\n<!--\n## Bias, Risks and Limitations\n\n*What are the known or foreseeable issues stemming from this model? You could also flag here known failure cases or weaknesses of the model.*\n-->\n\n<!--\n### Recommendations\n\n*What are recommendations with respect to the foreseeable issues? For example, filtering explicit content.*\n-->\n");

    // Training details: the training (and evaluation) dataset, its column statistics and
    // first rows, and the loss.
    let loss_text = if input.encoder.is_csr() {
        // A CSR model trains with CSRLoss around the base loss (as sentence-transformers'
        // get_config_dict writes it: beta, gamma, the base loss's class name).
        format!("* Loss: [<code>CSRLoss</code>](https://sbert.net/docs/package_reference/sparse_encoder/losses.html#csrloss) with these parameters:\n  ```json\n  {{\n      \"beta\": {},\n      \"gamma\": {},\n      \"loss\": \"{}\"\n  }}\n  ```\n", py_float(c.csr.beta), py_float(c.csr.gamma), c.loss.base.class_name())
    } else {
        format!("* Loss: [<code>SpladeLoss</code>](https://sbert.net/docs/package_reference/sparse_encoder/losses.html#spladeloss) with these parameters:\n  ```json\n  {{\n      \"loss\": \"{}\",\n      \"document_regularizer_weight\": {},\n      \"query_regularizer_weight\": {}\n  }}\n  ```\n", loss_repr.replace('"', "\\\""), py_float(c.loss.lambda_document), py_float(c.loss.lambda_query))
    };
    let _ = writeln!(s, "## Training Details\n");
    let mut datasets = vec![("Training", "training", input.dataset_name, input.data)];
    if let Some((rows, name)) = &input.eval_data {
        datasets.push(("Evaluation", "evaluation", name.as_str(), *rows));
    }
    for (title, kind, name, data) in datasets {
        let _ = writeln!(s, "### {title} Dataset\n");
        dataset_section(&mut s, input.encoder, kind, name, data);
        let _ = writeln!(s, "{loss_text}");
    }

    // Hyperparameters under TrainingArguments names.
    let hp = hyperparameters(c);
    let _ = writeln!(
        s,
        "### Training Hyperparameters\n#### Non-Default Hyperparameters\n"
    );
    for (name, value, non_default) in &hp {
        if *non_default {
            let _ = writeln!(s, "- `{name}`: {value}");
        }
    }
    let _ = writeln!(
        s,
        "\n#### All Hyperparameters\n<details><summary>Click to expand</summary>\n"
    );
    for (name, value, _) in &hp {
        let _ = writeln!(s, "- `{name}`: {value}");
    }
    let _ = writeln!(s, "\n</details>\n");

    // Training logs: one row per logged step or evaluation, one column per evaluator.
    let metric_cols: Vec<String> = groups
        .iter()
        .filter_map(|g| primary_metric(g, &similarity).map(|m| format!("{}_{m}", g.name)))
        .collect();
    let mut steps: Vec<usize> = input
        .report
        .log
        .iter()
        .map(|e| e.step)
        .chain(input.report.evaluations.iter().map(|(s, _)| *s))
        .collect();
    steps.sort_unstable();
    steps.dedup();
    if !steps.is_empty() {
        let _ = writeln!(s, "### Training Logs");
        let mut header: Vec<String> = vec!["Epoch".into(), "Step".into(), "Training Loss".into()];
        // The loss on the evaluation rows, as sentence-transformers' card names it.
        let validation = input
            .report
            .evaluations
            .iter()
            .any(|(_, m)| m.contains_key(crate::trainer::EVAL_LOSS));
        if validation {
            header.push("Validation Loss".into());
        }
        header.extend(metric_cols.iter().cloned());
        let steps_per_epoch = input
            .report
            .log
            .iter()
            .find(|e| e.epoch > 0.0)
            .map(|e| e.step as f64 / e.epoch);
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|step| {
                let entry = input.report.log.iter().find(|e| e.step == *step);
                let epoch = entry
                    .map(|e| e.epoch)
                    .or(steps_per_epoch.map(|k| *step as f64 / k))
                    .unwrap_or(0.0);
                let best = input.report.best_step == Some(*step);
                let mut row = vec![
                    fmt_value(epoch),
                    step.to_string(),
                    entry.map_or("-".into(), |e| format!("{:.4}", e.loss)),
                ];
                let eval = input.report.evaluations.iter().find(|(s, _)| s == step);
                if validation {
                    row.push(
                        eval.and_then(|(_, m)| m.get(crate::trainer::EVAL_LOSS))
                            .map_or("-".into(), |v| format!("{v:.4}")),
                    );
                }
                for col in &metric_cols {
                    row.push(
                        eval.and_then(|(_, m)| m.get(col))
                            .map_or("-".into(), |v| fmt_value(*v)),
                    );
                }
                if best {
                    row = row.into_iter().map(|c| format!("**{c}**")).collect();
                }
                row
            })
            .collect();
        s.push_str(&table(&header, &rows, true, ""));
        if input.report.best_step.is_some() {
            let _ = writeln!(s, "\n* The bold row denotes the saved checkpoint.");
        }
        let _ = writeln!(
            s,
            "\n![training loss and evaluation metrics](training_plot.png)\n"
        );
        // Seconds of the logged steps (each entry's mean step time over its steps).
        let mut seconds = 0.0;
        let mut prev = 0;
        for e in &input.report.log {
            seconds += e.seconds_per_step * (e.step - prev) as f64;
            prev = e.step;
        }
        let _ = writeln!(
            s,
            "### Training Time\n- **Training**: {seconds:.1} seconds\n"
        );
    }
    let _ = writeln!(s, "### Framework Versions\n{}", framework_versions());
    let _ = writeln!(s, "## Additional Resources\n\n- [Training and Finetuning Sparse Embedding Models with Sentence Transformers](https://huggingface.co/blog/train-sparse-encoder): the end-to-end guide for training or finetuning SPLADE and other sparse encoder models.\n");
    let _ = writeln!(s, "## Citation\n\n### BibTeX\n");
    let mut cites = vec![
        ("Sentence Transformers", CITE_ST),
        ("SpladeLoss", CITE_SPLADE),
    ];
    if let Some(cite) = loss_cite {
        cites.push((loss_name, cite));
    }
    cites.push(("FlopsLoss", CITE_FLOPS));
    for (name, cite) in cites {
        let _ = writeln!(s, "#### {name}\n```bibtex\n{cite}\n```\n");
    }
    let _ = writeln!(s, "<!--\n## Glossary\n\n*Clearly define terms in order to be accessible across audiences.*\n-->\n\n<!--\n## Model Card Authors\n\n*Lists the people who create the model card, providing recognition and accountability for the detailed work that goes into its construction.*\n-->\n\n<!--\n## Model Card Contact\n\n*Provides a way for people who have updates to the Model Card, suggestions, or questions, to contact the Model Card authors.*\n-->");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(keys: &[&str]) -> crate::trainer::Metrics {
        keys.iter().map(|k| (k.to_string(), 0.5)).collect()
    }

    #[test]
    fn groups_binary_and_one_ir_column_per_dataset() {
        let m = metrics(&[
            "eval_cosine_ap",
            "eval_dot_ap",
            "eval_active_dims",
            "eval_sparsity_ratio",
            "NanoA_cosine_ndcg@10",
            "NanoA_cosine_accuracy@1",
            "NanoA_query_sparsity_ratio",
            "NanoA_avg_flops",
            "NanoB_cosine_ndcg@10",
            "NanoB_cosine_accuracy@1",
            "NanoB_query_sparsity_ratio",
            "NanoB_avg_flops",
        ]);
        let groups = eval_groups(&m, "cosine", &[], &[]);
        assert_eq!(groups.len(), 3);
        assert!(groups[0].binary && groups[0].name == "eval");
        let binary: Vec<&str> = groups[0].metrics.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(binary, ["cosine_ap", "active_dims", "sparsity_ratio"]);
        let ir: Vec<&EvalGroup> = groups.iter().filter(|g| !g.binary).collect();
        let names: Vec<&str> = ir[0].metrics.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "cosine_accuracy@1",
                "cosine_ndcg@10",
                "query_sparsity_ratio",
                "avg_flops"
            ]
        );
        let t = ir_table(&ir, "cosine");
        assert!(t.starts_with("| Metric "), "{t}");
        let header: Vec<&str> = t
            .lines()
            .next()
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(header, ["", "Metric", "NanoA", "NanoB", ""], "{t}");
        assert!(t.contains("| **cosine_ndcg@10**"), "{t}");
        assert_eq!(
            primary_metric(&groups[0], "cosine").as_deref(),
            Some("cosine_ap")
        );
        assert_eq!(
            primary_metric(&groups[0], "dot").as_deref(),
            Some("cosine_ap")
        );
    }

    #[test]
    fn values_and_numbers_print_as_python_does() {
        assert_eq!(fmt_value(1.0), "1.0");
        assert_eq!(fmt_value(0.70952), "0.7095");
        assert_eq!(fmt_value(163.875), "163.875");
        assert_eq!(py_float(2e-5), "2e-05");
        assert_eq!(py_float(3e-5), "3e-05");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1.0), "1.0");
    }
}
