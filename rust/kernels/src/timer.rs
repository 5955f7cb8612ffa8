// SPDX-License-Identifier: MIT
//! Timer schedules: iterate one step operation and sum the values; every schedule terminates.
//!
//! Numbers follow Python's rules inside the kernel's range: an int stays an int while every operand is an
//! int (64-bit, checked), anything involving a float is an IEEE double, comparisons between ints and floats
//! are exact, and `**` reproduces CPython's `float_pow`. Whatever Python would answer with a value outside
//! that range (an int overflow, a float power that overflows, a complex or undefined result) is refused with
//! [`KernelError::Range`]; the public timer layer then recomputes with unbounded Python arithmetic.
//! The pure-Python twin is `python/aiorequestful/_native_py.py` (`timer_plan`); the two must agree exactly.

use std::cmp::Ordering;

use crate::error::{KernelError, KernelResult};

/// The longest schedule a timer may have; longer ones are refused rather than looping forever.
/// must match `MAX_TIMER_STEPS` in `python/aiorequestful/_native_py.py`
pub const MAX_TIMER_STEPS: u64 = 1_000_000;

/// The names `timer_plan` accepts, in [`TimerKind`] order.
/// must match `TIMER_KINDS` in `python/aiorequestful/_native_py.py`
pub const TIMER_KINDS: [&str; 3] = ["step", "geometric", "power"];

/// A Python number inside the kernel's range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A Python int that fits 64 bits.
    Int(i64),
    /// A Python float.
    Float(f64),
}

impl Number {
    /// `float(self)`: ints convert with round-half-even, as CPython's `PyLong_AsDouble` does.
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        reason = "rounding to nearest is exactly Python's float(int)"
    )]
    pub fn to_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// Python `self + other`.
    ///
    /// # Errors
    /// [`KernelError::Range`] when two ints overflow 64 bits.
    pub fn py_add(self, other: Self) -> KernelResult<Self> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.checked_add(b).map(Self::Int).ok_or(KernelError::Range),
            _ => Ok(Self::Float(self.to_f64() + other.to_f64())),
        }
    }

    /// Python `self - other`.
    ///
    /// # Errors
    /// [`KernelError::Range`] when two ints overflow 64 bits.
    pub fn py_sub(self, other: Self) -> KernelResult<Self> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.checked_sub(b).map(Self::Int).ok_or(KernelError::Range),
            _ => Ok(Self::Float(self.to_f64() - other.to_f64())),
        }
    }

    /// Python `self * other`.
    ///
    /// # Errors
    /// [`KernelError::Range`] when two ints overflow 64 bits.
    pub fn py_mul(self, other: Self) -> KernelResult<Self> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.checked_mul(b).map(Self::Int).ok_or(KernelError::Range),
            _ => Ok(Self::Float(self.to_f64() * other.to_f64())),
        }
    }

    /// Python `self ** other`.
    ///
    /// # Errors
    /// [`KernelError::Range`] where Python's answer is not a 64-bit int or a double: an int overflow, `0 ** -n`,
    /// a negative base with a fractional exponent (Python: complex), a zero base with a negative exponent
    /// (Python: `ZeroDivisionError`) and a float power that overflows (Python: `OverflowError`).
    pub fn py_pow(self, other: Self) -> KernelResult<Self> {
        if let (Self::Int(a), Self::Int(b)) = (self, other) {
            if b >= 0 {
                return match a {
                    // Python computes these for any exponent; they never overflow.
                    0 => Ok(Self::Int(i64::from(b == 0))),
                    1 => Ok(Self::Int(1)),
                    -1 => Ok(Self::Int(if b % 2 == 0 { 1 } else { -1 })),
                    _ => {
                        let exponent = u32::try_from(b).map_err(|_| KernelError::Range)?;
                        a.checked_pow(exponent).map(Self::Int).ok_or(KernelError::Range)
                    }
                };
            }
            if a == 0 {
                return Err(KernelError::Range); // Python: ZeroDivisionError
            }
            // Python computes int ** negative int in floating point.
        }
        let (base, exponent) = (self.to_f64(), other.to_f64());
        if base < 0.0 && exponent.is_finite() && exponent.fract() != 0.0 {
            return Err(KernelError::Range); // Python would return a complex number
        }
        if base == 0.0 && exponent < 0.0 {
            return Err(KernelError::Range); // Python raises ZeroDivisionError
        }
        py_float_pow(base, exponent).map(Self::Float)
    }

    /// Python's `self < other` (exact across int and float; false when a NaN is involved).
    #[must_use]
    pub fn lt(self, other: Self) -> bool {
        matches!(self.py_cmp(other), Some(Ordering::Less))
    }

    /// Python's `self > other` (exact across int and float; false when a NaN is involved).
    #[must_use]
    pub fn gt(self, other: Self) -> bool {
        matches!(self.py_cmp(other), Some(Ordering::Greater))
    }

    /// Python's ordering: exact between an int and a float (no rounding), `None` when a NaN is involved.
    #[must_use]
    pub fn py_cmp(self, other: Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(&b)),
            (Self::Float(a), Self::Float(b)) => a.partial_cmp(&b),
            (Self::Int(a), Self::Float(b)) => cmp_int_float(a, b),
            (Self::Float(a), Self::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
        }
    }
}

/// Compare an int with a float exactly, as CPython's `float_richcompare` does.
#[allow(
    clippy::cast_possible_truncation,
    reason = "the float is checked to lie in [-2**63, 2**63) and truncated first, so the cast is exact"
)]
fn cmp_int_float(int: i64, float: f64) -> Option<Ordering> {
    // 2**63 is exactly representable; every i64 is below it and at or above its negation.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let whole = float.trunc();
    match int.cmp(&(whole as i64)) {
        Ordering::Equal => {
            let frac = float - whole;
            Some(if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
        unequal => Some(unequal),
    }
}

/// `DOUBLE_IS_ODD_INTEGER` from CPython's `floatobject.c`.
#[allow(clippy::float_cmp, reason = "an exact comparison is the definition")]
fn is_odd_integer(x: f64) -> bool {
    x.abs() % 2.0 == 1.0
}

/// CPython's `float_pow` (Objects/floatobject.c), step for step; the platform `pow` does the finite case, as in
/// CPython. Where CPython raises, this returns [`KernelError::Range`].
#[allow(
    clippy::float_cmp,
    reason = "CPython's special cases compare exactly against 0, 1 and floor(w)"
)]
fn py_float_pow(iv: f64, iw: f64) -> KernelResult<f64> {
    if iw == 0.0 {
        return Ok(1.0); // v**0 is 1, even 0**0 and nan**0
    }
    if iv.is_nan() {
        return Ok(iv);
    }
    if iw.is_nan() {
        return Ok(if iv == 1.0 { 1.0 } else { iw });
    }
    if iw.is_infinite() {
        let magnitude = iv.abs();
        return Ok(if magnitude == 1.0 {
            1.0
        } else if (iw > 0.0) == (magnitude > 1.0) {
            iw.abs()
        } else {
            0.0
        });
    }
    if iv.is_infinite() {
        let odd = is_odd_integer(iw);
        return Ok(if iw > 0.0 {
            if odd {
                iv
            } else {
                iv.abs()
            }
        } else if odd {
            0.0_f64.copysign(iv)
        } else {
            0.0
        });
    }
    if iv == 0.0 {
        if iw < 0.0 {
            return Err(KernelError::Range); // ZeroDivisionError
        }
        return Ok(if is_odd_integer(iw) { iv } else { 0.0 });
    }
    let mut base = iv;
    let mut negate = false;
    if iv < 0.0 {
        if iw != iw.floor() {
            return Err(KernelError::Range); // complex result
        }
        base = -iv;
        negate = is_odd_integer(iw);
    }
    if base == 1.0 {
        return Ok(if negate { -1.0 } else { 1.0 });
    }
    let result = base.powf(iw);
    // CPython turns an infinite result from finite operands into OverflowError (_Py_ADJUST_ERANGE1);
    // an underflow to zero is not an error there.
    if result.is_infinite() {
        return Err(KernelError::Range);
    }
    Ok(if negate { -result } else { result })
}

/// The step operation of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// `x + param` (Step*Timer).
    Step,
    /// `x * param` (Geometric*Timer).
    Geometric,
    /// `x ** param` (Power*Timer).
    Power,
}

impl TimerKind {
    /// The kind called `name` (one of [`TIMER_KINDS`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "step" => Some(Self::Step),
            "geometric" => Some(Self::Geometric),
            "power" => Some(Self::Power),
            _ => None,
        }
    }

    /// The name `from_name` accepts for this kind.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Step => TIMER_KINDS[0],
            Self::Geometric => TIMER_KINDS[1],
            Self::Power => TIMER_KINDS[2],
        }
    }

    /// One step from `value`.
    ///
    /// # Errors
    /// [`KernelError::Range`] outside the kernel's range (see [`Number`]).
    pub fn apply(self, value: Number, param: Number) -> KernelResult<Number> {
        match self {
            Self::Step => value.py_add(param),
            Self::Geometric => value.py_mul(param),
            Self::Power => value.py_pow(param),
        }
    }
}

/// Where a schedule stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Apply the operation exactly this many times (count timers). An int too large for 64 bits
    /// is passed saturated: the check against [`MAX_TIMER_STEPS`] refuses it just the same.
    Steps(i64),
    /// Apply `x = min(final, op(x))` while `x < final` (ceiling timers), stopping early when a
    /// step makes no progress (it would otherwise loop forever).
    Final(Number),
}

/// How the running Python's builtin `sum()` adds floats; the kernel reproduces it so that a schedule's total is
/// the very number `sum(values)` gives on that interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumMode {
    /// Left to right, one rounding per addition (CPython 3.11 and older).
    Plain,
    /// Neumaier-compensated float additions (CPython 3.12 and newer). Ints met after the first float are still
    /// added plainly there, and the compensation is applied at the end only when it is finite and non-zero.
    Compensated,
}

/// CPython's `sum(values)` with the default int start `0`, fed one value at a time.
///
/// While every value is an int the sum is an exact int; the first float is added to that int sum with a plain
/// `int + float`, and from then on floats go through [`SumMode`]'s algorithm.
#[derive(Debug, Clone, Copy)]
struct PySum {
    mode: SumMode,
    int_sum: i64,
    float_sum: Option<(f64, f64)>,
}

impl PySum {
    const fn new(mode: SumMode) -> Self {
        Self {
            mode,
            int_sum: 0,
            float_sum: None,
        }
    }

    fn add(&mut self, value: Number) -> KernelResult<()> {
        match (self.float_sum.as_mut(), value) {
            (None, Number::Int(i)) => {
                self.int_sum = self.int_sum.checked_add(i).ok_or(KernelError::Range)?;
            }
            (None, Number::Float(x)) => {
                self.float_sum = Some((Number::Int(self.int_sum).to_f64() + x, 0.0));
            }
            (Some((total, _)), Number::Int(i)) => *total += Number::Int(i).to_f64(),
            (Some((total, compensation)), Number::Float(x)) => match self.mode {
                SumMode::Plain => *total += x,
                SumMode::Compensated => {
                    let t = *total + x;
                    if total.abs() >= x.abs() {
                        *compensation += (*total - t) + x;
                    } else {
                        *compensation += (x - t) + *total;
                    }
                    *total = t;
                }
            },
        }
        Ok(())
    }

    fn result(self) -> Number {
        match self.float_sum {
            None => Number::Int(self.int_sum),
            Some((total, compensation)) => {
                // CPython skips a zero compensation (keeps the sign of -0.0) and a non-finite one (an overflowed
                // sum stays infinite instead of becoming NaN).
                if compensation != 0.0 && compensation.is_finite() {
                    Number::Float(total + compensation)
                } else {
                    Number::Float(total)
                }
            }
        }
    }
}

/// The outcome of [`timer_plan`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerPlan {
    /// The last value of the schedule (the first one when no step was taken).
    pub last: Number,
    /// `sum(values)` as the running Python computes it (see [`SumMode`]).
    pub total: Number,
    /// `total - start`: what the values after the start add up to, derived the way the reference derives it.
    pub after: Number,
    /// How many steps were taken.
    pub steps: u64,
}

/// The values of a schedule from `start` until `limit`, summed as Python's `sum()` would.
///
/// Count schedules (`Limit::Steps`) of the `Step` kind compute each value as `start + param * i`, the others
/// apply the operation to the previous value; ceiling schedules iterate `min(final, op(last))`. These are the
/// reference implementation's formulas, so totals agree with it to the last bit.
///
/// # Errors
/// [`KernelError::NegativeSteps`] / [`KernelError::TooManySteps`] for a bad `Limit::Steps`,
/// [`KernelError::TooManySteps`] for a ceiling schedule longer than [`MAX_TIMER_STEPS`], and
/// [`KernelError::Range`] when the arithmetic leaves the kernel's range.
pub fn timer_plan(
    kind: TimerKind,
    start: Number,
    param: Number,
    limit: Limit,
    mode: SumMode,
) -> KernelResult<TimerPlan> {
    let mut sum = PySum::new(mode);
    let mut last = start;
    let mut taken: u64 = 0;
    match limit {
        Limit::Steps(steps) => {
            let steps = u64::try_from(steps).map_err(|_| KernelError::NegativeSteps)?;
            if steps > MAX_TIMER_STEPS {
                return Err(KernelError::TooManySteps);
            }
            if kind == TimerKind::Step {
                for i in 0..=steps {
                    // i <= MAX_TIMER_STEPS, so it fits an i64.
                    let i = i64::try_from(i).map_err(|_| KernelError::Range)?;
                    last = start.py_add(param.py_mul(Number::Int(i))?)?;
                    sum.add(last)?;
                }
            } else {
                sum.add(start)?;
                for _ in 0..steps {
                    last = kind.apply(last, param)?;
                    sum.add(last)?;
                }
            }
            taken = steps;
        }
        Limit::Final(ceiling) => {
            sum.add(start)?;
            while last.lt(ceiling) {
                let stepped = kind.apply(last, param)?;
                // Python's min(final, x) keeps `final` unless x is strictly smaller (a NaN step yields final).
                let next = if stepped.lt(ceiling) { stepped } else { ceiling };
                if !next.gt(last) {
                    break; // no progress: the sequence can never reach `final`: stop instead of looping forever
                }
                if taken >= MAX_TIMER_STEPS {
                    return Err(KernelError::TooManySteps);
                }
                last = next;
                sum.add(next)?;
                taken += 1;
            }
        }
    }
    let total = sum.result();
    Ok(TimerPlan {
        last,
        total,
        after: total.py_sub(start)?,
        steps: taken,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "the expected values are exact")]
mod tests {
    use super::*;
    use Number::{Float, Int};

    fn plan(kind: &str, start: Number, param: Number, limit: Limit) -> KernelResult<TimerPlan> {
        let kind = TimerKind::from_name(kind).ok_or_else(|| KernelError::UnknownTimerKind(kind.to_owned()))?;
        timer_plan(kind, start, param, limit, SumMode::Compensated)
    }

    fn ok(kind: &str, start: Number, param: Number, limit: Limit) -> TimerPlan {
        match plan(kind, start, param, limit) {
            Ok(p) => p,
            Err(e) => panic!("{kind} {start:?} {param:?} {limit:?}: {e}"),
        }
    }

    #[test]
    fn kinds_round_trip() {
        for name in TIMER_KINDS {
            assert_eq!(TimerKind::from_name(name).map(TimerKind::name), Some(name));
        }
        assert_eq!(TimerKind::from_name("Step"), None);
    }

    #[test]
    fn count_timer_examples_from_api_md() {
        // StepCountTimer(2, 5, 3): final 17, total 57.
        let p = ok("step", Int(2), Int(3), Limit::Steps(5));
        assert_eq!((p.last, p.total, p.after, p.steps), (Int(17), Int(57), Int(55), 5));
        // ... after 2 increases (value 8), total_remaining over 3 steps from float(8) is 42.0.
        let p = ok("step", Float(8.0), Int(3), Limit::Steps(3));
        assert_eq!(p.after, Float(42.0));
        // GeometricCountTimer(1, 3): final 8, total 15.
        let p = ok("geometric", Int(1), Int(2), Limit::Steps(3));
        assert_eq!((p.last, p.total), (Int(8), Int(15)));
        // PowerCountTimer(2, 3): 2 -> 4 -> 16 -> 256, total 278.
        let p = ok("power", Int(2), Int(2), Limit::Steps(3));
        assert_eq!((p.last, p.total), (Int(256), Int(278)));
    }

    #[test]
    fn zero_steps_keep_start_and_after_is_total_minus_start() {
        let p = ok("step", Float(1.5), Int(1), Limit::Steps(0));
        assert_eq!(
            (p.last, p.total, p.after, p.steps),
            (Float(1.5), Float(1.5), Float(0.0), 0)
        );
        let p = ok("geometric", Int(3), Int(2), Limit::Steps(0));
        assert_eq!((p.last, p.total, p.after, p.steps), (Int(3), Int(3), Int(0), 0));
    }

    #[test]
    fn step_count_values_are_start_plus_step_times_i() {
        // 0.1 + 0.1 * i, not 0.1 + 0.1 + ... : the reference's terms, summed by 3.12+'s sum().
        let p = ok("step", Float(0.1), Float(0.1), Limit::Steps(10));
        assert_eq!((p.last, p.total), (Float(1.1), Float(6.600_000_000_000_000_5)));
        let p = timer_plan(
            TimerKind::Step,
            Float(0.1),
            Float(0.1),
            Limit::Steps(10),
            SumMode::Plain,
        );
        assert_eq!(p.map(|p| p.total), Ok(Float(6.600_000_000_000_001)));
        // A NaN or infinite step times 0 is NaN, so even the first term is NaN (Python: 1 + inf * 0).
        let p = ok("step", Int(1), Float(f64::INFINITY), Limit::Steps(0));
        assert!(matches!(p.last, Float(v) if v.is_nan()));
    }

    #[test]
    fn after_is_total_minus_start() {
        // GeometricCountTimer(0.1, 5, 2): 6.300000000000001 - 0.1, not 0.2 + 0.4 + ... + 3.2.
        let p = ok("geometric", Float(0.1), Int(2), Limit::Steps(5));
        assert_eq!(
            (p.total, p.after),
            (Float(6.300_000_000_000_001), Float(6.200_000_000_000_001))
        );
    }

    #[test]
    fn sum_follows_cpython() {
        fn total(values: &[Number], mode: SumMode) -> Number {
            let mut sum = PySum::new(mode);
            for value in values {
                sum.add(*value).unwrap_or_else(|e| panic!("{e}"));
            }
            sum.result()
        }
        let values = [Float(1e16), Float(1.0), Float(-1e16)];
        assert_eq!(total(&values, SumMode::Plain), Float(0.0));
        assert_eq!(total(&values, SumMode::Compensated), Float(1.0));
        // An int after the first float is added without compensation, as CPython 3.12/3.13 do.
        let values = [Float(1e16), Int(1), Float(-1e16)];
        assert_eq!(total(&values, SumMode::Compensated), Float(0.0));
        // The int prefix is exact, then joins the first float with one plain addition.
        let values = [Int(i64::MAX), Int(-i64::MAX), Float(0.5)];
        assert_eq!(total(&values, SumMode::Compensated), Float(0.5));
        assert_eq!(total(&[Int(2), Int(3)], SumMode::Compensated), Int(5));
        // A non-finite compensation is dropped: an overflowed sum stays infinite.
        let values = [Float(f64::MAX), Float(f64::MAX)];
        assert_eq!(total(&values, SumMode::Compensated), Float(f64::INFINITY));
        // The int start 0 makes sum([-0.0]) a positive zero, as in Python.
        let values = [Float(-0.0), Float(-0.0)];
        assert!(matches!(total(&values, SumMode::Compensated), Float(v) if v == 0.0 && v.is_sign_positive()));
    }

    #[test]
    fn ceiling_timer_examples_from_api_md() {
        // StepCeilingTimer(1, 9.5, 2): 1,3,5,7,9,9.5 -> count 5, total 34.5.
        let p = ok("step", Int(1), Int(2), Limit::Final(Float(9.5)));
        assert_eq!((p.last, p.total, p.steps), (Float(9.5), Float(34.5), 5));
        // StepCeilingTimer(0, 1, 0.1) has 11 steps: float accumulation is observable.
        let p = ok("step", Int(0), Float(0.1), Limit::Final(Int(1)));
        assert_eq!((p.steps, p.last), (11, Int(1)));
        // GeometricCeilingTimer(2, 10): 2,4,8,10 -> count 3, total 24.
        let p = ok("geometric", Int(2), Int(2), Limit::Final(Int(10)));
        assert_eq!((p.last, p.total, p.after, p.steps), (Int(10), Int(24), Int(22), 3));
        // PowerCeilingTimer(2, 60): 2,4,16,60.
        let p = ok("power", Int(2), Int(2), Limit::Final(Int(60)));
        assert_eq!((p.last, p.total, p.steps), (Int(60), Int(82), 3));
    }

    #[test]
    fn non_progress_terminates() {
        for (kind, start, param) in [
            ("step", Int(1), Int(0)),
            ("step", Int(1), Int(-1)),
            ("step", Float(1.0), Float(-0.5)),
            ("geometric", Int(0), Int(2)),
            ("geometric", Int(3), Int(1)),
            ("geometric", Float(3.0), Float(0.5)),
            ("power", Int(1), Int(2)),
            ("power", Float(0.5), Int(2)),
            ("power", Int(0), Int(3)),
        ] {
            let p = ok(kind, start, param, Limit::Final(Int(10)));
            let zero = if matches!(start, Float(_)) { Float(0.0) } else { Int(0) };
            assert_eq!((p.last, p.total, p.after, p.steps), (start, start, zero, 0), "{kind}");
        }
        // A NaN step is replaced by `final` (Python's min keeps its first argument), which is progress.
        let p = ok("step", Int(1), Float(f64::NAN), Limit::Final(Float(f64::INFINITY)));
        assert_eq!((p.last, p.steps), (Float(f64::INFINITY), 1));
        // Tiny float steps stall once x + step == x.
        let p = ok("step", Float(1e17), Float(1.0), Limit::Final(Float(1e18)));
        assert_eq!(p.steps, 0);
    }

    #[test]
    fn start_at_or_above_final_or_nan_takes_no_step() {
        for (start, ceiling) in [
            (Int(10), Int(10)),
            (Int(11), Int(10)),
            (Float(f64::NAN), Int(10)),
            (Int(1), Float(f64::NAN)),
        ] {
            let p = ok("step", start, Int(1), Limit::Final(ceiling));
            assert_eq!(p.steps, 0);
        }
    }

    #[test]
    fn step_limits() {
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Steps(-1)),
            Err(KernelError::NegativeSteps)
        );
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Steps(i64::MIN)),
            Err(KernelError::NegativeSteps)
        );
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Steps(1_000_001)),
            Err(KernelError::TooManySteps)
        );
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Steps(i64::MAX)),
            Err(KernelError::TooManySteps)
        );
        let p = ok("step", Int(0), Int(1), Limit::Steps(1_000_000));
        assert_eq!((p.last, p.steps), (Int(1_000_000), 1_000_000));
        // Exactly MAX_TIMER_STEPS ceiling steps are fine; one more is refused.
        let p = ok("step", Int(0), Int(1), Limit::Final(Int(1_000_000)));
        assert_eq!(p.steps, 1_000_000);
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Final(Int(1_000_001))),
            Err(KernelError::TooManySteps)
        );
        assert_eq!(
            plan("step", Int(0), Int(1), Limit::Final(Float(f64::INFINITY))),
            Err(KernelError::TooManySteps)
        );
    }

    #[test]
    fn int_overflow_is_a_range_error() {
        assert_eq!(
            plan("step", Int(i64::MAX), Int(1), Limit::Steps(1)),
            Err(KernelError::Range)
        );
        assert_eq!(
            plan("geometric", Int(1 << 62), Int(2), Limit::Steps(1)),
            Err(KernelError::Range)
        );
        assert_eq!(plan("power", Int(2), Int(64), Limit::Steps(1)), Err(KernelError::Range));
        assert_eq!(
            plan("power", Int(2), Int(i64::MAX), Limit::Steps(1)),
            Err(KernelError::Range)
        );
        // The total overflows even though each value fits.
        assert_eq!(
            plan("step", Int(i64::MAX - 1), Int(0), Limit::Steps(1)),
            Err(KernelError::Range)
        );
        let p = ok("power", Int(2), Int(62), Limit::Steps(1));
        assert_eq!(p.last, Int(1 << 62));
        let p = ok("step", Int(i64::MIN), Int(0), Limit::Steps(0));
        assert_eq!(p.total, Int(i64::MIN));
    }

    #[test]
    fn int_pow_special_bases() {
        let cases = [
            (0, 0, 1),
            (0, 5, 0),
            (1, i64::MAX, 1),
            (-1, i64::MAX, -1),
            (-1, i64::MAX - 1, 1),
            (0, i64::MAX, 0),
            (-2, 63, i64::MIN),
            (3, 39, 4_052_555_153_018_976_267),
        ];
        for (a, b, expected) in cases {
            assert_eq!(Int(a).py_pow(Int(b)), Ok(Int(expected)), "{a} ** {b}");
        }
        assert_eq!(Int(0).py_pow(Int(-1)), Err(KernelError::Range));
        assert_eq!(Int(2).py_pow(Int(-1)), Ok(Float(0.5)));
        assert_eq!(Int(-2).py_pow(Int(-1)), Ok(Float(-0.5)));
    }

    #[test]
    fn float_pow_matches_cpython_special_cases() {
        let inf = f64::INFINITY;
        let nan = f64::NAN;
        let cases: [(f64, f64, f64); 16] = [
            (nan, 0.0, 1.0),
            (1.0, nan, 1.0),
            (0.5, inf, 0.0),
            (2.0, inf, inf),
            (-1.0, inf, 1.0),
            (0.5, -inf, inf),
            (2.0, -inf, 0.0),
            (inf, 3.0, inf),
            (-inf, 3.0, -inf),
            (-inf, 2.0, inf),
            (-inf, -3.0, -0.0),
            (-inf, -2.0, 0.0),
            (-0.0, 3.0, -0.0),
            (-0.0, 2.0, 0.0),
            (-8.0, 3.0, -512.0),
            (-1.0, 1e300, 1.0),
        ];
        for (base, exponent, expected) in cases {
            let got = Float(base).py_pow(Float(exponent));
            match got {
                Ok(Float(value)) => {
                    assert_eq!(value, expected, "{base} ** {exponent}");
                    assert_eq!(
                        value.is_sign_negative(),
                        expected.is_sign_negative(),
                        "{base} ** {exponent}"
                    );
                }
                other => panic!("{base} ** {exponent}: {other:?}"),
            }
        }
        assert!(matches!(Float(nan).py_pow(Float(2.0)), Ok(Float(v)) if v.is_nan()));
        assert!(matches!(Float(2.0).py_pow(Float(nan)), Ok(Float(v)) if v.is_nan()));
    }

    #[test]
    fn float_pow_declines_where_python_raises_or_goes_complex() {
        for (base, exponent) in [
            (10.0, 400.0),     // OverflowError
            (-10.0, 401.0),    // OverflowError, negative
            (-8.0, 1.0 / 3.0), // complex
            (0.0, -1.0),       // ZeroDivisionError
            (-0.0, -2.0),      // ZeroDivisionError
            (0.0, -f64::INFINITY),
            (-f64::INFINITY, 0.5),
        ] {
            assert_eq!(
                Float(base).py_pow(Float(exponent)),
                Err(KernelError::Range),
                "{base} ** {exponent}"
            );
        }
        // Underflow is fine: CPython returns the (sub)normal or zero result.
        assert_eq!(Float(0.5).py_pow(Float(1074.0)), Ok(Float(5e-324)));
        assert_eq!(Float(0.5).py_pow(Float(2000.0)), Ok(Float(0.0)));
        assert_eq!(Int(10).py_pow(Float(-400.0)), Ok(Float(0.0)));
    }

    #[test]
    fn int_float_comparisons_are_exact() {
        let big = 1_i64 << 53;
        assert!(Int(big + 1).gt(Float(9_007_199_254_740_992.0)));
        assert!(Float(9_007_199_254_740_992.0).lt(Int(big + 1)));
        assert_eq!(Int(big).py_cmp(Float(9_007_199_254_740_992.0)), Some(Ordering::Equal));
        assert!(Int(i64::MAX).lt(Float(9_223_372_036_854_775_808.0)));
        assert!(Int(i64::MIN).gt(Float(-9_223_372_036_854_775_808.0 * 2.0)));
        assert_eq!(
            Int(i64::MIN).py_cmp(Float(-9_223_372_036_854_775_808.0)),
            Some(Ordering::Equal)
        );
        assert!(Int(2).lt(Float(2.5)));
        assert!(Int(-3).lt(Float(-2.5)));
        assert!(Int(-2).gt(Float(-2.5)));
        assert!(Int(0).gt(Float(-0.5)));
        assert!(Int(0).lt(Float(f64::INFINITY)));
        assert!(Int(0).gt(Float(f64::NEG_INFINITY)));
        assert_eq!(Int(0).py_cmp(Float(f64::NAN)), None);
        assert_eq!(Int(0).py_cmp(Float(-0.0)), Some(Ordering::Equal));
    }

    #[test]
    fn mixed_arithmetic_promotes_to_float() {
        assert_eq!(Int(1).py_add(Float(0.5)), Ok(Float(1.5)));
        assert_eq!(Float(2.0).py_mul(Int(3)), Ok(Float(6.0)));
        // float(int) rounds half to even, like Python.
        assert_eq!(
            Int((1 << 53) + 1).py_add(Float(0.0)),
            Ok(Float(9_007_199_254_740_992.0))
        );
        // Float overflow in + and * is not an error in Python either.
        assert_eq!(Float(f64::MAX).py_add(Float(f64::MAX)), Ok(Float(f64::INFINITY)));
    }
}
