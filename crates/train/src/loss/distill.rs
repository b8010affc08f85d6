//! The distillation losses of sentence-transformers: `SparseDistillKLDivLoss` (onto a
//! teacher's candidate scores) and `SparseMSELoss` (onto a teacher's embeddings).

use candle_core::{DType, Result, Tensor, D};

/// `SparseDistillKLDivLoss(similarity_fct=pairwise_dot_score, temperature)`: with columns
/// `[queries, candidate_1, ..., candidate_N]` (N ≥ 2) and teacher scores `labels` of shape
/// `[batch, N]`, `KL(softmax(labels / T_t) ‖ softmax(dot(q, c) / T_s))` averaged over the batch
/// (`KLDivLoss(reduction="batchmean")`), times `T_s²`. The reference's default temperature is
/// 2 for both.
pub fn distill_kl_div_loss(
    columns: &[Tensor],
    labels: &Tensor,
    student_temperature: f64,
    teacher_temperature: f64,
) -> Result<Tensor> {
    if columns.len() < 3 {
        candle_core::bail!(
            "SparseDistillKLDivLoss expects at least 3 columns (query, positive, negative_1, ...), but got {}",
            columns.len()
        );
    }
    for (what, t) in [
        ("student", student_temperature),
        ("teacher", teacher_temperature),
    ] {
        if !(t > 0.0 && t.is_finite()) {
            candle_core::bail!("{what} temperature must be a positive finite number, got {t}");
        }
    }
    let query = &columns[0];
    let b = query.dim(0)?;
    let n = columns.len() - 1;
    if labels.dims() != [b, n] {
        candle_core::bail!(
            "SparseDistillKLDivLoss expects teacher scores of shape (batch_size, N) = ({b}, {n}) for N candidate columns, but got {:?}",
            labels.dims()
        );
    }
    let scores = columns[1..]
        .iter()
        .map(|c| (query * c)?.sum(1))
        .collect::<Result<Vec<_>>>()?;
    let student = (Tensor::stack(&scores, 1)? / student_temperature)?;
    let student_log = candle_nn::ops::log_softmax(&student, D::Minus1)?;
    let teacher = (labels.detach().to_dtype(DType::F32)? / teacher_temperature)?;
    let teacher_log = candle_nn::ops::log_softmax(&teacher, D::Minus1)?;
    let teacher_probs = teacher_log.exp()?;
    // xlogy(p, p) − p · log q, 0 where p = 0 (exp of a finite log-probability is never 0
    // unless it underflows, where the product underflows too).
    let pointwise = (&teacher_probs * (teacher_log - student_log)?)?;
    (pointwise.sum_all()? / b as f64)? * (student_temperature * student_temperature)
}

/// `SparseMSELoss` (`EmbedDistillLoss(distance_metric="mse")`): for each column, the mean
/// squared error between the student's embeddings and the teacher's, then the mean over the
/// columns. `teacher` holds one `[batch, vocab]` tensor for every column, or one shared by all.
pub fn mse_loss(columns: &[Tensor], teacher: &[Tensor]) -> Result<Tensor> {
    if columns.is_empty() {
        candle_core::bail!("SparseMSELoss needs at least one text column");
    }
    if teacher.len() != 1 && teacher.len() != columns.len() {
        candle_core::bail!(
            "SparseMSELoss: {} teacher embedding columns for {} text columns",
            teacher.len(),
            columns.len()
        );
    }
    let mut losses = Vec::with_capacity(columns.len());
    for (i, student) in columns.iter().enumerate() {
        let t = &teacher[if teacher.len() == 1 { 0 } else { i }];
        if t.dims() != student.dims() {
            candle_core::bail!(
                "SparseMSELoss: teacher embeddings of shape {:?} for student embeddings of shape {:?}",
                t.dims(),
                student.dims()
            );
        }
        let t = t.detach().to_dtype(student.dtype())?;
        losses.push((student - t)?.sqr()?.mean_all()?);
    }
    Tensor::stack(&losses, 0)?.mean_all()
}
