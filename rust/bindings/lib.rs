// SPDX-License-Identifier: MIT
//! PyO3 bindings: the module `aiorequestful._native`, the only code that says `use pyo3`.
//!
//! Its surface is exactly that of the pure-Python twin `python/aiorequestful/_native_py.py`: the same names,
//! signatures (positional-only parameters, defaults), results (int vs float included), exception types and
//! messages. `tests/test_parity.py` holds the two together.

use aiorequestful_kernels::bucket;
use aiorequestful_kernels::cache_key::{CacheKey, Part};
use aiorequestful_kernels::error::TIMER_RANGE_ERROR;
use aiorequestful_kernels::timer::{self, Limit, SumMode, TimerKind, MAX_TIMER_STEPS, TIMER_KINDS};
use aiorequestful_kernels::KernelError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyString, PyTuple};
use std::sync::OnceLock;

mod convert;
mod dispatch;
mod errors;
mod json;

use convert::{
    bucket_number, int_decimal, is_plain_int, number_to_py, text_bytes, timer_number, timer_steps, Iterable,
};
use errors::{kernel_error, KernelResultExt};

/// Bumped whenever a name, signature or behaviour of the kernel surface changes.
/// must match `KERNEL_API` in `python/aiorequestful/_native_py.py`
const KERNEL_API: u32 = 2;

/// The module's public names, in the twin's order.
/// must match `__all__` in `python/aiorequestful/_native_py.py`
const ALL: [&str; 9] = [
    "KERNEL_API",
    "MAX_TIMER_STEPS",
    "TIMER_KINDS",
    "TIMER_RANGE_ERROR",
    "DispatchTable",
    "bucket_take",
    "cache_key",
    "json_loads",
    "timer_plan",
];

/// The result of `timer_plan`: `(last, total, total_after_start, n)`.
type PlanTuple<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, u64);

/// How the running interpreter's builtin `sum()` adds floats: compensated from CPython 3.12 on, plain before.
/// Set once when the module is initialised; a schedule's total must be exactly what `sum(values)` returns.
static SUM_MODE: OnceLock<SumMode> = OnceLock::new();

fn sum_mode(py: Python<'_>) -> SumMode {
    *SUM_MODE.get_or_init(|| {
        if py.version_info() >= (3, 12) {
            SumMode::Compensated
        } else {
            SumMode::Plain
        }
    })
}

/// A timer's schedule from ``start``, summed as the running Python's ``sum()`` would; schedules always terminate.
#[pyfunction(signature = (kind, start, param, /, steps = None, r#final = None))]
fn timer_plan<'py>(
    kind: &Bound<'py, PyAny>,
    start: &Bound<'py, PyAny>,
    param: &Bound<'py, PyAny>,
    steps: Option<&Bound<'py, PyAny>>,
    r#final: Option<&Bound<'py, PyAny>>,
) -> PyResult<PlanTuple<'py>> {
    let py = kind.py();
    // The twin's check order: kind, exactly one limit, start, param, then the limit itself.
    let known = kind
        .cast::<PyString>()
        .ok()
        .and_then(|name| name.to_str().ok())
        .and_then(TimerKind::from_name);
    let Some(kind) = known else {
        return Err(kernel_error(KernelError::UnknownTimerKind(kind.repr()?.to_string())));
    };
    // `None` passed explicitly is the same as leaving the argument out (the twin tests `is None`).
    let steps = steps.filter(|value| !value.is_none());
    let ceiling = r#final.filter(|value| !value.is_none());
    if steps.is_some() == ceiling.is_some() {
        return Err(kernel_error(KernelError::StepsOrFinal));
    }
    let start = timer_number(start, "start")?;
    let param = timer_number(param, "param")?;
    let limit = match (steps, ceiling) {
        (Some(steps), _) => Limit::Steps(timer_steps(steps)?),
        (None, Some(ceiling)) => Limit::Final(timer_number(ceiling, "final")?),
        (None, None) => return Err(kernel_error(KernelError::StepsOrFinal)),
    };
    let plan = timer::timer_plan(kind, start, param, limit, sum_mode(py)).py()?;
    Ok((
        number_to_py(py, plan.last)?,
        number_to_py(py, plan.total)?,
        number_to_py(py, plan.after)?,
        plan.steps,
    ))
}

/// A stable hex SHA-256 digest identifying a request.
// The twin's defaults are `()`; `Iterable::ABSENT` stands for them, so an explicit None still fails to iterate.
#[pyfunction(signature = (method, url, query = Iterable::ABSENT, parts = Iterable::ABSENT, /))]
#[pyo3(text_signature = "(method, url, query=(), parts=(), /)")]
fn cache_key(
    method: &Bound<'_, PyAny>,
    url: &Bound<'_, PyAny>,
    query: Iterable<'_>,
    parts: Iterable<'_>,
) -> PyResult<String> {
    let Ok(method) = method.cast::<PyString>() else {
        return Err(kernel_error(KernelError::MethodNotStr(convert::type_name(method)?)));
    };
    let Ok(url) = url.cast::<PyString>() else {
        return Err(kernel_error(KernelError::UrlNotStr(convert::type_name(url)?)));
    };
    let mut key = CacheKey::new(&convert::upper_bytes(method)?, &text_bytes(url)?);

    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(query) = query.0 {
        for pair in query.try_iter()? {
            pairs.push(query_pair(&pair?)?);
        }
    }
    key.query(&mut pairs);

    if let Some(parts) = parts.0 {
        for part in parts.try_iter()? {
            add_part(&mut key, &part?)?;
        }
    }
    Ok(key.hexdigest())
}

/// One `(str, str)` query item as UTF-8 bytes.
fn query_pair(pair: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, Vec<u8>)> {
    let bad = || kernel_error(KernelError::BadQueryItem);
    let pair = pair.cast::<PyTuple>().map_err(|_| bad())?;
    if pair.len() != 2 {
        return Err(bad());
    }
    let name = pair.get_item(0)?;
    let value = pair.get_item(1)?;
    let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
        return Err(bad());
    };
    Ok((text_bytes(name)?.into_owned(), text_bytes(value)?.into_owned()))
}

/// Append one extra key part, typed as the twin types it.
fn add_part(key: &mut CacheKey, part: &Bound<'_, PyAny>) -> PyResult<()> {
    if part.is_none() {
        key.part(Part::None);
    } else if let Ok(flag) = part.cast::<PyBool>() {
        key.part(Part::Bool(flag.is_true()));
    } else if is_plain_int(part) {
        key.part(Part::Int(int_decimal(part)?.as_bytes()));
    } else if let Ok(text) = part.cast::<PyString>() {
        key.part(Part::Str(&text_bytes(text)?));
    } else if let Ok(bytes) = part.cast::<PyBytes>() {
        key.part(Part::Bytes(bytes.as_bytes()));
    } else if let Ok(array) = part.cast::<PyByteArray>() {
        key.part(Part::Bytes(&array.to_vec()));
    } else {
        return Err(kernel_error(KernelError::UnsupportedPart(convert::type_name(part)?)));
    }
    Ok(())
}

/// Reserve one token from a bucket; returns ``(wait, tokens, updated)``.
#[pyfunction(signature = (tokens, updated, now, rate, burst, /))]
fn bucket_take(
    tokens: &Bound<'_, PyAny>,
    updated: &Bound<'_, PyAny>,
    now: &Bound<'_, PyAny>,
    rate: &Bound<'_, PyAny>,
    burst: &Bound<'_, PyAny>,
) -> PyResult<(f64, f64, f64)> {
    // Each argument is type-checked and finiteness-checked before the next, as in the twin.
    let tokens = bucket_number(tokens, "tokens")?;
    let updated = bucket_number(updated, "updated")?;
    let now = bucket_number(now, "now")?;
    let rate = bucket_number(rate, "rate")?;
    let burst = bucket_number(burst, "burst")?;
    let take = bucket::bucket_take(tokens, updated, now, rate, burst).py()?;
    Ok((take.wait, take.tokens, take.updated))
}

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    sum_mode(py);
    // setattr, not add: PyModule::add appends to __all__, which is set once, below, in the twin's order.
    m.setattr("KERNEL_API", KERNEL_API)?;
    m.setattr("MAX_TIMER_STEPS", MAX_TIMER_STEPS)?;
    m.setattr("TIMER_KINDS", PyTuple::new(py, TIMER_KINDS)?)?;
    m.setattr("TIMER_RANGE_ERROR", TIMER_RANGE_ERROR)?;
    m.setattr("DispatchTable", py.get_type::<dispatch::PyDispatchTable>())?;
    m.setattr("bucket_take", wrap_pyfunction!(bucket_take, m)?)?;
    m.setattr("cache_key", wrap_pyfunction!(cache_key, m)?)?;
    m.setattr("json_loads", wrap_pyfunction!(json::json_loads, m)?)?;
    m.setattr("timer_plan", wrap_pyfunction!(timer_plan, m)?)?;
    m.setattr("__version__", env!("CARGO_PKG_VERSION"))?;
    m.setattr("__all__", PyTuple::new(py, ALL)?)?;
    Ok(())
}
