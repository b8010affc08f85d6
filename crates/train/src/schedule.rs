//! Schedules: the regulariser-weight warm-up of sentence-transformers'
//! `SpladeRegularizerWeightSchedulerCallback`, and the linear learning-rate schedule.

/// How the regulariser weights grow during warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WarmupShape {
    /// λ · (step / warmup_steps)² (the default).
    #[default]
    Quadratic,
    /// λ · step / warmup_steps.
    Linear,
}

/// Regulariser weight at `step` (0-based, the step about to run): warmed up over the first
/// `warmup_ratio` of `total_steps` (at least one step), then constant.
pub fn regularizer_weight(
    max: f64,
    step: usize,
    total_steps: usize,
    warmup_ratio: f64,
    shape: WarmupShape,
) -> f64 {
    let warmup = ((total_steps as f64 * warmup_ratio) as usize).max(1);
    if step >= warmup {
        return max;
    }
    let ratio = step as f64 / warmup as f64;
    match shape {
        WarmupShape::Quadratic => max * ratio * ratio,
        WarmupShape::Linear => max * ratio,
    }
}

/// Linear learning-rate schedule with warm-up, as transformers' `get_linear_schedule_with_warmup`:
/// rises from 0 to `peak` over `warmup_steps`, then decays linearly to 0 at `total_steps`.
pub fn linear_lr(peak: f64, step: usize, warmup_steps: usize, total_steps: usize) -> f64 {
    if step < warmup_steps {
        return peak * step as f64 / warmup_steps.max(1) as f64;
    }
    let remaining = total_steps.saturating_sub(step) as f64;
    let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
    peak * (remaining / span).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_warmup_matches_the_reference_formula() {
        // total 30, ratio 1/3 -> 10 warm-up steps.
        assert_eq!(
            regularizer_weight(5e-5, 0, 30, 1.0 / 3.0, WarmupShape::Quadratic),
            0.0
        );
        assert!(
            (regularizer_weight(5e-5, 5, 30, 1.0 / 3.0, WarmupShape::Quadratic) - 5e-5 * 0.25)
                .abs()
                < 1e-18
        );
        assert_eq!(
            regularizer_weight(5e-5, 10, 30, 1.0 / 3.0, WarmupShape::Quadratic),
            5e-5
        );
        assert!(
            (regularizer_weight(1.0, 5, 30, 1.0 / 3.0, WarmupShape::Linear) - 0.5).abs() < 1e-12
        );
        // Fewer steps than needed for one warm-up step still warms up over one step.
        assert_eq!(
            regularizer_weight(1.0, 1, 2, 1.0 / 3.0, WarmupShape::Quadratic),
            1.0
        );
    }

    #[test]
    fn linear_lr_rises_then_decays_to_zero() {
        assert_eq!(linear_lr(2e-5, 0, 0, 100), 2e-5);
        assert!((linear_lr(2e-5, 50, 0, 100) - 1e-5).abs() < 1e-18);
        assert_eq!(linear_lr(2e-5, 100, 0, 100), 0.0);
        assert!((linear_lr(1.0, 5, 10, 110) - 0.5).abs() < 1e-12);
        assert!((linear_lr(1.0, 60, 10, 110) - 0.5).abs() < 1e-12);
    }
}
