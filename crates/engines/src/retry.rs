//! Retrying a request a bounded number of times with exponential backoff, for the batches
//! of an export (a restarting server, a dropped connection).

use std::time::Duration;

/// How often and how patiently a failing request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub first_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 0.5, 1, 2 and 4 s between them (7.5 s in all).
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds or the attempts are spent; returns the last error,
    /// prefixed with the number of attempts when there was more than one.
    pub fn run<T, E: std::fmt::Display>(
        &self,
        mut op: impl FnMut() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, String> {
        let attempts = self.attempts.max(1);
        let mut delay = self.first_delay;
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= attempts => {
                    return Err(if attempts > 1 {
                        format!("{e} (after {attempts} attempts)")
                    } else {
                        e.to_string()
                    });
                }
                Err(_) => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_success_and_reports_the_last_error() {
        let policy = RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let ok = policy.run(|| {
            calls += 1;
            if calls < 3 {
                Err("down")
            } else {
                Ok(calls)
            }
        });
        assert_eq!(ok, Ok(3));
        let err = policy.run(|| Err::<(), _>("still down")).unwrap_err();
        assert_eq!(err, "still down (after 3 attempts)");
    }
}
