// SPDX-License-Identifier: MIT
//! One token-bucket reservation (flow control).
//!
//! The bucket refills at `rate` tokens per second up to `burst`. A caller that finds less than one token still
//! takes one (the count goes negative) and is told how long to wait for it, so concurrent callers are served in
//! the order they called, each at its exact slot. A clock that goes backwards refills nothing.
//! The pure-Python twin is `bucket_take` in `python/aiorequestful/_native_py.py`.

use crate::error::{KernelError, KernelResult};

/// The argument names of [`bucket_take`], in order (they appear in the error messages).
pub const BUCKET_ARGS: [&str; 5] = ["tokens", "updated", "now", "rate", "burst"];

/// The outcome of one reservation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Take {
    /// Seconds the caller must wait before using its token (0.0 when one was available).
    pub wait: f64,
    /// Tokens left after the reservation (negative while callers are queued).
    pub tokens: f64,
    /// The time the bucket was last refilled.
    pub updated: f64,
}

/// Refuse a NaN or infinite argument.
///
/// # Errors
/// [`KernelError::NotFinite`] naming the argument.
pub fn check_finite(name: &'static str, value: f64) -> KernelResult<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(KernelError::NotFinite(name))
    }
}

/// Reserve one token.
///
/// # Errors
/// [`KernelError::NotFinite`] for the first non-finite argument (in [`BUCKET_ARGS`] order), then
/// [`KernelError::RateNotPositive`] and [`KernelError::BurstTooSmall`].
pub fn bucket_take(tokens: f64, updated: f64, now: f64, rate: f64, burst: f64) -> KernelResult<Take> {
    for (name, value) in BUCKET_ARGS.into_iter().zip([tokens, updated, now, rate, burst]) {
        check_finite(name, value)?;
    }
    if rate <= 0.0 {
        return Err(KernelError::RateNotPositive);
    }
    if burst < 1.0 {
        return Err(KernelError::BurstTooSmall);
    }
    let elapsed = now - updated;
    let (mut tokens, updated) = if elapsed > 0.0 {
        let refilled = tokens + elapsed * rate;
        // Python's min(burst, refilled) keeps `burst` unless refilled is strictly smaller.
        (if refilled < burst { refilled } else { burst }, now)
    } else {
        (tokens, updated)
    };
    tokens -= 1.0;
    let wait = if tokens >= 0.0 { 0.0 } else { -tokens / rate };
    Ok(Take { wait, tokens, updated })
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "the expected values are exact")]
mod tests {
    use super::*;

    #[test]
    fn full_bucket_serves_at_once() -> KernelResult<()> {
        let t = bucket_take(5.0, 0.0, 10.0, 1.0, 5.0)?;
        assert_eq!((t.wait, t.tokens, t.updated), (0.0, 4.0, 10.0));
        Ok(())
    }

    #[test]
    fn empty_bucket_queues_callers_in_order() -> KernelResult<()> {
        // rate 2/s: each queued caller waits half a second more than the one before.
        let a = bucket_take(0.0, 10.0, 10.0, 2.0, 1.0)?;
        assert_eq!((a.wait, a.tokens, a.updated), (0.5, -1.0, 10.0));
        let b = bucket_take(a.tokens, a.updated, 10.0, 2.0, 1.0)?;
        assert_eq!((b.wait, b.tokens), (1.0, -2.0));
        // A quarter of a second later, the queue has shrunk by half a token.
        let c = bucket_take(b.tokens, b.updated, 10.25, 2.0, 1.0)?;
        assert_eq!((c.wait, c.tokens, c.updated), (1.25, -2.5, 10.25));
        Ok(())
    }

    #[test]
    fn refill_is_capped_at_burst() -> KernelResult<()> {
        let t = bucket_take(0.0, 0.0, 1000.0, 3.0, 4.0)?;
        assert_eq!((t.wait, t.tokens, t.updated), (0.0, 3.0, 1000.0));
        // Overflow to infinity is capped too.
        let t = bucket_take(0.0, -1e308, 1e308, 1e308, 2.0)?;
        assert_eq!(t.tokens, 1.0);
        Ok(())
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() -> KernelResult<()> {
        let t = bucket_take(2.0, 50.0, 40.0, 10.0, 5.0)?;
        assert_eq!((t.wait, t.tokens, t.updated), (0.0, 1.0, 50.0));
        Ok(())
    }

    #[test]
    fn validation_order_and_messages() {
        assert_eq!(
            bucket_take(f64::NAN, f64::INFINITY, 0.0, 0.0, 0.0),
            Err(KernelError::NotFinite("tokens"))
        );
        assert_eq!(
            bucket_take(0.0, 0.0, f64::NEG_INFINITY, 0.0, 0.0),
            Err(KernelError::NotFinite("now"))
        );
        assert_eq!(bucket_take(0.0, 0.0, 0.0, 0.0, 0.0), Err(KernelError::RateNotPositive));
        assert_eq!(bucket_take(0.0, 0.0, 0.0, -1.0, 0.0), Err(KernelError::RateNotPositive));
        assert_eq!(bucket_take(0.0, 0.0, 0.0, 1.0, 0.999), Err(KernelError::BurstTooSmall));
        assert_eq!(check_finite("burst", f64::NAN), Err(KernelError::NotFinite("burst")));
    }
}
