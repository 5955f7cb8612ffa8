// SPDX-License-Identifier: MIT
//! The one error type of the kernels.
//!
//! Every variant renders the exact message the pure-Python twin (`python/aiorequestful/_native_py.py`) raises;
//! `rust/bindings/errors.rs` maps each variant to a built-in Python exception type.

use std::fmt;

/// Raised (as Python `ArithmeticError`) when a timer computation leaves the kernel's number range.
/// must match `TIMER_RANGE_ERROR` in `python/aiorequestful/_native_py.py`
pub const TIMER_RANGE_ERROR: &str = "timer arithmetic is outside the kernel's range";
/// Both or neither of `steps`/`final` were given to `timer_plan`.
pub const STEPS_OR_FINAL: &str = "Give exactly one of steps or final";
/// A negative `steps` was given to `timer_plan`.
pub const NEGATIVE_STEPS: &str = "steps must not be negative";
/// A query item of `cache_key` is not a `(str, str)` tuple.
pub const BAD_QUERY_ITEM: &str = "query items must be (str, str) tuples";
/// `bucket_take` was given a rate that is zero or negative.
pub const RATE_NOT_POSITIVE: &str = "rate must be positive";
/// `bucket_take` was given a burst smaller than one token.
pub const BURST_TOO_SMALL: &str = "burst must be at least 1";

/// Which built-in Python exception a [`KernelError`] becomes (the mapping lives in `rust/bindings/errors.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Python `TypeError`: an argument of the wrong type.
    Type,
    /// Python `ValueError`: an argument of the right type with a bad value.
    Value,
    /// Python `ArithmeticError`: a computation outside the kernel's range.
    Arithmetic,
}

/// Everything a kernel can refuse. The `Display` text is the Python message, byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelError {
    /// `timer_plan` got a kind it does not know; holds the Python `repr()` of what it got.
    UnknownTimerKind(String),
    /// `timer_plan` got both or neither of `steps` and `final`.
    StepsOrFinal,
    /// A timer operand (`start`, `param`, `final`) is not an int or a float; holds the name and the type name.
    NotANumber {
        /// The argument name.
        name: &'static str,
        /// `type(value).__name__` of what was given.
        type_name: String,
    },
    /// `steps` is not an int; holds the type name.
    StepsNotInt(String),
    /// `steps` is negative.
    NegativeSteps,
    /// The schedule would take more than `MAX_TIMER_STEPS` steps (refuse rather than loop: a schedule that never reaches its end would).
    TooManySteps,
    /// Timer arithmetic left the 64-bit int / finite double range.
    Range,
    /// A status code is not an int; holds the type name.
    StatusNotInt(String),
    /// A status code is outside 100..=999; holds its decimal text.
    InvalidStatus(String),
    /// `cache_key`'s method is not a str; holds the type name.
    MethodNotStr(String),
    /// `cache_key`'s url is not a str; holds the type name.
    UrlNotStr(String),
    /// A `cache_key` query item is not a `(str, str)` tuple.
    BadQueryItem,
    /// A `cache_key` part has a type the key cannot hold; holds the type name.
    UnsupportedPart(String),
    /// A `bucket_take` argument is not an int or a float; holds the name and the type name.
    BucketNotANumber {
        /// The argument name.
        name: &'static str,
        /// `type(value).__name__` of what was given.
        type_name: String,
    },
    /// A `bucket_take` argument is NaN or infinite; holds the name.
    NotFinite(&'static str),
    /// `bucket_take`'s rate is zero or negative.
    RateNotPositive,
    /// `bucket_take`'s burst is below one token.
    BurstTooSmall,
}

impl KernelError {
    /// The built-in Python exception type this error becomes.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotANumber { .. }
            | Self::StepsNotInt(_)
            | Self::StatusNotInt(_)
            | Self::MethodNotStr(_)
            | Self::UrlNotStr(_)
            | Self::BadQueryItem
            | Self::UnsupportedPart(_)
            | Self::BucketNotANumber { .. } => ErrorKind::Type,
            Self::UnknownTimerKind(_)
            | Self::StepsOrFinal
            | Self::NegativeSteps
            | Self::TooManySteps
            | Self::InvalidStatus(_)
            | Self::NotFinite(_)
            | Self::RateNotPositive
            | Self::BurstTooSmall => ErrorKind::Value,
            Self::Range => ErrorKind::Arithmetic,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTimerKind(repr) => write!(f, "Unknown timer kind: {repr}"),
            Self::StepsOrFinal => f.write_str(STEPS_OR_FINAL),
            Self::NotANumber { name, type_name } => write!(f, "{name} must be an int or a float, not {type_name}"),
            Self::StepsNotInt(type_name) => write!(f, "steps must be an int, not {type_name}"),
            Self::NegativeSteps => f.write_str(NEGATIVE_STEPS),
            Self::TooManySteps => write!(f, "Timer schedule exceeds {} steps", crate::timer::MAX_TIMER_STEPS),
            Self::Range => f.write_str(TIMER_RANGE_ERROR),
            Self::StatusNotInt(type_name) => write!(f, "Status codes must be int, not {type_name}"),
            Self::InvalidStatus(code) => write!(f, "Invalid status code: {code}"),
            Self::MethodNotStr(type_name) => write!(f, "method must be str, not {type_name}"),
            Self::UrlNotStr(type_name) => write!(f, "url must be str, not {type_name}"),
            Self::BadQueryItem => f.write_str(BAD_QUERY_ITEM),
            Self::UnsupportedPart(type_name) => write!(f, "Unsupported cache key part type: {type_name}"),
            Self::BucketNotANumber { name, type_name } => write!(f, "{name} must be a number, not {type_name}"),
            Self::NotFinite(name) => write!(f, "{name} must be finite"),
            Self::RateNotPositive => f.write_str(RATE_NOT_POSITIVE),
            Self::BurstTooSmall => f.write_str(BURST_TOO_SMALL),
        }
    }
}

impl std::error::Error for KernelError {}

/// The result type of every fallible kernel (one alias, so every signature reads the same).
pub type KernelResult<T> = Result<T, KernelError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_twin() {
        let cases: Vec<(KernelError, &str, ErrorKind)> = vec![
            (
                KernelError::UnknownTimerKind("'linear'".into()),
                "Unknown timer kind: 'linear'",
                ErrorKind::Value,
            ),
            (
                KernelError::StepsOrFinal,
                "Give exactly one of steps or final",
                ErrorKind::Value,
            ),
            (
                KernelError::NotANumber {
                    name: "start",
                    type_name: "str".into(),
                },
                "start must be an int or a float, not str",
                ErrorKind::Type,
            ),
            (
                KernelError::StepsNotInt("float".into()),
                "steps must be an int, not float",
                ErrorKind::Type,
            ),
            (
                KernelError::NegativeSteps,
                "steps must not be negative",
                ErrorKind::Value,
            ),
            (
                KernelError::TooManySteps,
                "Timer schedule exceeds 1000000 steps",
                ErrorKind::Value,
            ),
            (
                KernelError::Range,
                "timer arithmetic is outside the kernel's range",
                ErrorKind::Arithmetic,
            ),
            (
                KernelError::StatusNotInt("str".into()),
                "Status codes must be int, not str",
                ErrorKind::Type,
            ),
            (
                KernelError::InvalidStatus("99".into()),
                "Invalid status code: 99",
                ErrorKind::Value,
            ),
            (
                KernelError::MethodNotStr("bytes".into()),
                "method must be str, not bytes",
                ErrorKind::Type,
            ),
            (
                KernelError::UrlNotStr("URL".into()),
                "url must be str, not URL",
                ErrorKind::Type,
            ),
            (
                KernelError::BadQueryItem,
                "query items must be (str, str) tuples",
                ErrorKind::Type,
            ),
            (
                KernelError::UnsupportedPart("float".into()),
                "Unsupported cache key part type: float",
                ErrorKind::Type,
            ),
            (
                KernelError::BucketNotANumber {
                    name: "rate",
                    type_name: "NoneType".into(),
                },
                "rate must be a number, not NoneType",
                ErrorKind::Type,
            ),
            (KernelError::NotFinite("now"), "now must be finite", ErrorKind::Value),
            (KernelError::RateNotPositive, "rate must be positive", ErrorKind::Value),
            (KernelError::BurstTooSmall, "burst must be at least 1", ErrorKind::Value),
        ];
        for (error, message, kind) in cases {
            assert_eq!(error.to_string(), message);
            assert_eq!(error.kind(), kind, "{message}");
        }
    }
}
