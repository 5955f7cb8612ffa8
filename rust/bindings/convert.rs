// SPDX-License-Identifier: MIT
//! Python -> kernel conversions, each mirroring one type check of the twin (`_native_py.py`).
//!
//! Subclasses of int/float/str/bytes are read by value (`PyLong_AsLongLong`, `PyFloat_AS_DOUBLE`, the str's
//! UTF-8), as the twin does with `int.__int__`, `float.__float__`, `str.encode` and `memoryview`.

use std::borrow::Cow;

use aiorequestful_kernels::timer::Number;
use aiorequestful_kernels::KernelError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString, PyType};

use crate::errors::kernel_error;

/// `type(value).__name__`, for error messages.
pub fn type_name(value: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(value.get_type().name()?.to_string())
}

/// Python `int` (the type object), for calling its unbound methods on subclasses.
fn int_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static INT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    INT.import(py, "builtins", "int")
}

/// Python `str` (the type object).
fn str_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static STR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    STR.import(py, "builtins", "str")
}

/// `int.__repr__(value)`: the decimal text of an int of any size (raises Python's `ValueError` past
/// `sys.get_int_max_str_digits()`, exactly as the twin's formatting does).
pub fn int_decimal(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(small) = value.extract::<i64>() {
        return Ok(small.to_string());
    }
    let py = value.py();
    int_type(py)?
        .getattr(intern!(py, "__repr__"))?
        .call1((value,))?
        .extract::<String>()
}

/// Whether `value` is an int but not a bool (the twin's `not isinstance(v, bool) and isinstance(v, int)`).
pub fn is_plain_int(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>()
}

/// A timer operand: int (64-bit, else `ArithmeticError`) or float; anything else is a `TypeError`.
pub fn timer_number(value: &Bound<'_, PyAny>, name: &'static str) -> PyResult<Number> {
    if is_plain_int(value) {
        // The only way extracting from an int fails is OverflowError: outside the kernel's range.
        return value
            .extract::<i64>()
            .map(Number::Int)
            .map_err(|_| kernel_error(KernelError::Range));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        return Ok(Number::Float(float.value()));
    }
    Err(kernel_error(KernelError::NotANumber {
        name,
        type_name: type_name(value)?,
    }))
}

/// `steps`: an int (not a bool); one too large for 64 bits saturates, which the kernel then refuses by sign.
pub fn timer_steps(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if !is_plain_int(value) {
        return Err(kernel_error(KernelError::StepsNotInt(type_name(value)?)));
    }
    if let Ok(steps) = value.extract::<i64>() {
        return Ok(steps);
    }
    let py = value.py();
    let plain = int_type(py)?.getattr(intern!(py, "__int__"))?.call1((value,))?;
    Ok(if plain.lt(0)? { i64::MIN } else { i64::MAX })
}

/// A status code: an int (not a bool) in `100..=999`. A code outside 64 bits is reported with its full text.
pub fn status_code(value: &Bound<'_, PyAny>) -> PyResult<u16> {
    let code = status_int(value)?;
    match code {
        Some(code) => aiorequestful_kernels::dispatch::check_status(code).map_err(kernel_error),
        None => Err(kernel_error(KernelError::InvalidStatus(int_decimal(value)?))),
    }
}

/// An int status to look up (`None` when it does not fit 64 bits); a non-int is a `TypeError`.
pub fn status_int(value: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if !is_plain_int(value) {
        return Err(kernel_error(KernelError::StatusNotInt(type_name(value)?)));
    }
    Ok(value.extract::<i64>().ok())
}

/// The UTF-8 bytes of a str, lone surrogates encoded with `surrogatepass` (the twin's `_text`).
pub fn text_bytes<'a>(value: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    match value.to_str() {
        Ok(text) => Ok(Cow::Borrowed(text.as_bytes())),
        // Only a str holding lone surrogates has no UTF-8 form; the failed attempt's error is dropped here.
        Err(_) => surrogatepass(value).map(Cow::Owned),
    }
}

#[cold]
fn surrogatepass(value: &Bound<'_, PyString>) -> PyResult<Vec<u8>> {
    let py = value.py();
    let encoded = str_type(py)?.getattr(intern!(py, "encode"))?.call1((
        value,
        intern!(py, "utf-8"),
        intern!(py, "surrogatepass"),
    ))?;
    Ok(encoded.cast_into::<PyBytes>()?.as_bytes().to_vec())
}

/// `str.upper(method)` as UTF-8: ASCII is upper-cased here; anything else goes through Python's `str.upper`, so
/// the Unicode case tables are CPython's, not Rust's (they differ in version).
pub fn upper_bytes<'a>(value: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(text) = value.to_str() {
        if text.is_ascii() {
            return Ok(if text.bytes().any(|b| b.is_ascii_lowercase()) {
                Cow::Owned(text.to_ascii_uppercase().into_bytes())
            } else {
                Cow::Borrowed(text.as_bytes())
            });
        }
    }
    let py = value.py();
    let upper = str_type(py)?
        .getattr(intern!(py, "upper"))?
        .call1((value,))?
        .cast_into::<PyString>()?;
    Ok(Cow::Owned(text_bytes(&upper)?.into_owned()))
}

/// A `bucket_take` argument: an int or a float (not a bool), as a double (`float(value)`, which raises
/// `OverflowError` for an int too large), then finite.
pub fn bucket_number(value: &Bound<'_, PyAny>, name: &'static str) -> PyResult<f64> {
    if !(is_plain_int(value) || value.is_instance_of::<PyFloat>()) {
        return Err(kernel_error(KernelError::BucketNotANumber {
            name,
            type_name: type_name(value)?,
        }));
    }
    let number = value.extract::<f64>()?;
    aiorequestful_kernels::bucket::check_finite(name, number).map_err(kernel_error)
}

/// A kernel number as a Python int or float.
pub fn number_to_py(py: Python<'_>, number: Number) -> PyResult<Bound<'_, PyAny>> {
    Ok(match number {
        Number::Int(int) => int.into_pyobject(py)?.into_any(),
        Number::Float(float) => float.into_pyobject(py)?.into_any(),
    })
}

/// An argument that must be iterated when given (even when it is `None`, which then fails as in the twin), and
/// stands for an empty tuple when left out.
pub struct Iterable<'py>(pub Option<Bound<'py, PyAny>>);

impl Iterable<'_> {
    /// The argument was left out.
    pub const ABSENT: Self = Self(None);
}

impl<'py> FromPyObject<'_, 'py> for Iterable<'py> {
    type Error = PyErr;

    fn extract(value: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        Ok(Self(Some(value.to_owned())))
    }
}
