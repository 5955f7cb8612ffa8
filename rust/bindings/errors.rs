// SPDX-License-Identifier: MIT
//! The single `KernelError` -> Python exception mapping: the only place that decides which Python exception a kernel error becomes.
//!
//! Every variant becomes a **built-in** exception (`TypeError`, `ValueError`, `ArithmeticError`) carrying the
//! kernel's `Display` text, which is byte for byte the twin's message. The public layer turns those into
//! aiorequestful exceptions where the public API documents one.
//!
//! Rust's orphan rule forbids `impl From<KernelError> for PyErr` here (both types are foreign to this crate), so
//! the mapping is one function, [`kernel_error`], and [`KernelResultExt::py`] applies it to a result.

use aiorequestful_kernels::{ErrorKind, KernelError, KernelResult};
use pyo3::exceptions::{PyArithmeticError, PyTypeError, PyValueError};
use pyo3::PyErr;

/// The Python exception for a kernel error.
#[cold]
#[must_use]
#[allow(
    clippy::needless_pass_by_value,
    reason = "by value so that it plugs into map_err(kernel_error)"
)]
pub fn kernel_error(error: KernelError) -> PyErr {
    let message = error.to_string();
    match error.kind() {
        ErrorKind::Type => PyTypeError::new_err(message),
        ErrorKind::Value => PyValueError::new_err(message),
        ErrorKind::Arithmetic => PyArithmeticError::new_err(message),
    }
}

/// `?`-friendly conversion of a kernel result into a Python result.
pub trait KernelResultExt<T> {
    /// Map the error with [`kernel_error`].
    ///
    /// # Errors
    /// The mapped kernel error.
    fn py(self) -> Result<T, PyErr>;
}

impl<T> KernelResultExt<T> for KernelResult<T> {
    #[inline]
    fn py(self) -> Result<T, PyErr> {
        self.map_err(kernel_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiorequestful_kernels::error::TIMER_RANGE_ERROR;
    use pyo3::prelude::*;
    use pyo3::types::PyType;

    fn check(error: KernelError, expected: &Bound<'_, PyType>, message: &str) {
        let py = expected.py();
        let err = kernel_error(error);
        // The exact built-in type, not a subclass (ArithmeticError, not OverflowError).
        assert!(
            err.get_type(py).is(expected),
            "{} is not {}",
            err.get_type(py),
            expected
        );
        assert_eq!(err.value(py).to_string(), message);
    }

    #[test]
    fn every_kind_maps_to_its_builtin() {
        Python::initialize();
        Python::attach(|py| {
            let type_error = py.get_type::<PyTypeError>();
            let value_error = py.get_type::<PyValueError>();
            let arithmetic_error = py.get_type::<PyArithmeticError>();
            check(KernelError::Range, &arithmetic_error, TIMER_RANGE_ERROR);
            check(
                KernelError::TooManySteps,
                &value_error,
                "Timer schedule exceeds 1000000 steps",
            );
            check(KernelError::NegativeSteps, &value_error, "steps must not be negative");
            check(
                KernelError::StepsOrFinal,
                &value_error,
                "Give exactly one of steps or final",
            );
            check(
                KernelError::UnknownTimerKind("None".into()),
                &value_error,
                "Unknown timer kind: None",
            );
            check(
                KernelError::NotANumber {
                    name: "param",
                    type_name: "str".into(),
                },
                &type_error,
                "param must be an int or a float, not str",
            );
            check(
                KernelError::StepsNotInt("float".into()),
                &type_error,
                "steps must be an int, not float",
            );
            check(
                KernelError::StatusNotInt("bool".into()),
                &type_error,
                "Status codes must be int, not bool",
            );
            check(
                KernelError::InvalidStatus("1000".into()),
                &value_error,
                "Invalid status code: 1000",
            );
            check(
                KernelError::MethodNotStr("bytes".into()),
                &type_error,
                "method must be str, not bytes",
            );
            check(
                KernelError::UrlNotStr("URL".into()),
                &type_error,
                "url must be str, not URL",
            );
            check(
                KernelError::BadQueryItem,
                &type_error,
                "query items must be (str, str) tuples",
            );
            check(
                KernelError::UnsupportedPart("float".into()),
                &type_error,
                "Unsupported cache key part type: float",
            );
            check(
                KernelError::BucketNotANumber {
                    name: "now",
                    type_name: "str".into(),
                },
                &type_error,
                "now must be a number, not str",
            );
            check(KernelError::NotFinite("rate"), &value_error, "rate must be finite");
            check(KernelError::RateNotPositive, &value_error, "rate must be positive");
            check(KernelError::BurstTooSmall, &value_error, "burst must be at least 1");
        });
    }

    #[test]
    fn result_extension_maps_only_errors() {
        Python::initialize();
        Python::attach(|py| {
            let ok: KernelResult<u8> = Ok(7);
            assert_eq!(ok.py().ok(), Some(7));
            let err: KernelResult<u8> = Err(KernelError::Range);
            let mapped = err.py().err();
            assert!(mapped.is_some_and(|e| e.is_instance_of::<PyArithmeticError>(py)));
        });
    }
}
