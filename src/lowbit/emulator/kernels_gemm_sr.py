"""Stochastic rounding of the fast GEMM kernels' accumulator (step kind 7), exact for any
number of random bits.

The register block runs with the host rounding toward zero (x86 MXCSR, as for
``kernels_gemm_fast.odd_sum_rz``), so the float32 sum ``s = RZ(acc + p)`` is the exact sum ``x``
truncated: ``|x| = |s| + E`` with ``0 <= E < ulp32(s)``. With ``u`` the format's quantum at
``|x|``, ``f`` the exact fraction of ``|x|`` above the grid point below it (in quanta) and ``R``
the ``N`` random bits, P3109 StochasticA rounds up iff ``floor(f * 2^N) + R >= 2^N``
(``docs/rounding.md``). Let ``sh = 23 - m`` (the bits of a float32 below the format's
quantum in its normal range) and ``k = min(N, sh)``:

* ``y`` is ``|s|``'s bit pattern in the format's normal range, and that of ``|s| + 2^emin``
  (truncated: the float32 grid there is ``2^(emin - 23)``, the format's subnormal quantum over
  ``2^sh``) below it, so that in both cases the low ``sh`` bits of ``y`` are
  ``floor(f * 2^sh)``. ``A = floor(f * 2^k)`` is their top ``k`` bits; ``B`` is the top ``k``
  bits of ``R`` (the high random word). ``t = y + B * 2^(sh - k)`` (``y``'s bits below
  ``sh - k`` cleared) carries into bit ``sh`` iff ``A + B >= 2^k``, and ``t`` with its low
  ``sh`` bits cleared is the rounded magnitude (less ``2^emin`` in the subnormal range);
* that decision is exact unless ``N > k`` and ``A + B = 2^k - 1`` (the low ``sh`` bits of ``t``
  all ones): probability ``2^-k`` per step. Such a lane is *ambiguous*: with
  ``w = u * 2^-k``, ``L = |s| mod w``, ``q = log2 u`` and ``b`` the low ``N - k`` bits of
  ``R``, it rounds up iff ``E >= (2^(N-k) - b) * 2^(q-N) - L``, which is
  ``f * 2^k - A >= 1 - b / 2^(N-k)`` multiplied out. A branch taken only when some lane of
  the k-step is ambiguous computes it in float64 from the truncation's error ``E``, by
  Fast2Sum under round-toward-zero with the operands ordered by magnitude: ``z = s - big`` is
  exact, and so is ``small - z`` (the low bits of ``small`` that the truncation dropped)
  unless the terms have opposite signs and ``small`` lies far below ``ulp(s)``. There
  ``E = ulp(s) - |small|`` may need more than 24 bits, and the comparison is made as
  ``|z| - threshold >= |small|`` (``|z| = ulp(s)``), exact in float64.

Both sides of that comparison are exact float64 values while ``N - k <= 53`` (required:
``exact_resolution_ok``) and ``d - k <= 53``, ``d`` the bits of ``s`` below the quantum; an
ambiguous lane with a sum so far below the quantum sets the block's fail flag, and the caller
runs the generic kernel instead (``kernels_gemm_api.fast_run``). No format and operands the fast
path takes can produce one (fp16 products are at least 2^-48, fp8 ones far larger); the flag
is a guard.

Random bits: element ``e`` at global step ``g`` uses the counter-based stream at index
``e * K + g`` (``rng``); its Weyl sum ``key + lo32(index) * WEYL + hi32(index) * WEYL_HI`` is
computed per lane at the start of a block call (``weyl_start``) and advanced by ``WEYL`` per
step, which is exact while ``lo32(index)`` does not wrap inside the call (``wrap_steps``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir

from ._jit import jit_inline
from .kernels_gemm_fast import intrinsic_fn, rz_remainder
from .llvm_round import _c, _finish, any_lane, finalise32, lanes, like, splat
from .rng import LANE, WEYL, WEYL_HI

__all__ = ["SR_KIND", "Lane", "Grid", "grid", "decide", "resolve_all", "opaque", "finish",
           "finish_unchecked", "weyl_start", "wrap_steps", "exact_resolution_ok",
           "round_binary32", "BINARY32_BITS"]

#: The ``mantissa_bits`` field of a binary32 stochastic step (``round_binary32``).
BINARY32_BITS = 23

#: The step kind of stochastic rounding in ``kernels_gemm_micro``.
SR_KIND = 7

_I32, _I64, _F64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
_M32 = np.uint64(0xFFFFFFFF)
_W, _WH = np.uint64(WEYL), np.uint64(WEYL_HI)


def exact_resolution_ok(mantissa_bits: int, nbits: int) -> bool:
    """Whether ambiguous lanes of a format with ``mantissa_bits`` under ``nbits`` random bits
    resolve in float64 (``N - k <= 53`` with ``k >= 23 - m`` for every normal-range sum); else
    the fast kernel would hand every ambiguous block back."""
    return nbits - (23 - mantissa_bits) <= 53


@jit_inline
def weyl_start(key, index):
    """The Weyl sum (``rng.hash32`` before its finaliser, lane 0) of stream index ``index``."""
    idx = np.uint64(index)
    return np.uint32((np.uint64(key) + (idx & _M32) * _W + (idx >> np.uint64(32)) * _WH) & _M32)


@jit_inline
def wrap_steps(index):
    """Steps from stream index ``index`` before its low word wraps (at least 1)."""
    return np.int64((1 << 32) - (np.int64(index) & 0xFFFFFFFF))


def _pow2(b, e, n):
    """2.0**e as float64 (lanes ``n``) from an i32 exponent within float64's normal range."""
    e64 = b.sext(e, like(_I64, n))
    bits = b.shl(b.add(e64, _c(1023, e64.type)), _c(52, e64.type))
    return b.bitcast(bits, like(_F64, n))


def _exponent(b, a):
    """The binary exponent of float32 magnitudes ``a`` (i32 bit patterns), subnormals and zero
    counted as -126: ``ulp = 2^(exponent - 23)``."""
    ti = a.type
    ebits = b.lshr(a, _c(23, ti))
    return b.sub(b.select(b.icmp_unsigned("<", ebits, _c(1, ti)), _c(1, ti), ebits),
                 _c(127, ti))


def _exact_error(b, s, acc, p):
    """(``|x| - |s|`` truncated to float32, whether that was exact, ``|z|``, ``|small|``;
    float32 values, i1) for the truncated sum ``s = RZ(acc + p)``: ``z = s - big`` is exact,
    and so is ``small - z`` unless the terms have opposite signs and ``|small|`` lies far below
    ``ulp(s)`` (the error ``ulp(s) - |small|`` may then need more than 24 bits; ``|z|`` is
    ``ulp(s)`` there). ``z + RZ(small - z) == small`` tells which."""
    ti = like(_I32, lanes(s))
    z, small, err = rz_remainder(b, s, acc, p)
    exact = b.fcmp_ordered("==", b.fadd(z, err), small)

    def fabs(v):
        return b.bitcast(b.and_(b.bitcast(v, ti), _c(0x7FFFFFFF, ti)), s.type)
    return fabs(err), exact, fabs(z), fabs(small)


class Lane(NamedTuple):
    """One vector's state between the decision and the result (IR values)."""

    s: object       #: the truncated float32 sum
    acc: object     #: its operands (for the exact error of ambiguous lanes)
    p: object
    weyl: object    #: the Weyl sums (i32)
    hi: object      #: the high random words
    a: object       #: |s| bits
    small: object   #: i1: |s| below the format's smallest normal (``y = |s| + 2^emin``)
    t: object       #: the pattern ``y`` plus the random bits: the result's bits above ``sh``
    amb: object     #: i1: ambiguous lanes


class Grid(NamedTuple):
    """Constants of the format and step (i32 vectors, and the Python ints they come from)."""

    m: object
    emin: object
    minnorm: object  #: bits of 2^emin
    sh: int          #: 23 - m: bits of a float32 below the format's quantum
    k: int           #: random bits read from the high word (min(N, 23 - m))
    nbits: int


def grid(b, g, nbits: int, n: int, mantissa_bits: int) -> Grid:
    """The ``Grid`` of parameters ``g`` (``quantize._f32_params``) with ``mantissa_bits`` known
    statically (it fixes the shifts)."""
    ti = like(_I32, n)
    m, emin = (splat(b, v, n) for v in g[:2])
    minnorm = b.shl(b.add(emin, _c(127, ti)), _c(23, ti))
    sh = 23 - mantissa_bits
    return Grid(m, emin, minnorm, sh, min(nbits, sh), nbits)


def decide(b, s, acc, p, weyl, gr: Grid) -> Lane:
    """The round-up decision of every lane from the high random word: ``t``'s bits above
    ``sh`` are the rounded magnitude's (of ``y``), exact unless ``amb``."""
    n = lanes(s)
    ti, tf = like(_I32, n), s.type
    hi = finalise32(b, weyl)
    a = b.and_(b.bitcast(s, ti), _c(0x7FFFFFFF, ti))
    small = b.icmp_signed("<", a, gr.minnorm)  # (both below 2^31: one signed comparison)
    shifted = b.bitcast(b.fadd(b.bitcast(a, tf), b.bitcast(gr.minnorm, tf)), ti)
    y = b.select(small, shifted, a)
    drop = gr.sh - gr.k   # bits of y below the k-bit decision
    if drop:
        y = b.and_(y, _c(~((1 << drop) - 1), ti))
    t = b.add(y, b.shl(b.lshr(hi, _c(32 - gr.k, ti)), _c(drop, ti)))
    mask = _c((1 << gr.sh) - 1, ti)
    amb = ir.Constant(ir.VectorType(ir.IntType(1), n), [0] * n)
    if gr.nbits > gr.k:  # (infinite and NaN sums may flag too: ``_resolve`` leaves them)
        amb = b.icmp_unsigned("==", b.and_(t, mask), mask)
    return Lane(s, acc, p, weyl, hi, a, small, t, amb)


def _resolve(b, ln: Lane, gr: Grid):
    """(``t`` with the ambiguous lanes decided exactly, i1: lanes float64 cannot decide); see
    the module docstring."""
    n = lanes(ln.s)
    ti, t64, tf = like(_I32, n), like(_I64, n), like(_F64, n)
    k, nbits = _c(gr.k, ti), gr.nbits
    err, err_exact, z, small = (b.fpext(v, tf) if i != 1 else v for i, v in
                                enumerate(_exact_error(b, ln.s, ln.acc, ln.p)))
    sa = b.fpext(b.bitcast(ln.a, ln.s.type), tf)
    ex = _exponent(b, ln.a)
    q = b.sub(b.select(b.icmp_signed(">", ex, gr.emin), ex, gr.emin), gr.m)
    w = _pow2(b, b.sub(q, k), n)
    floor = intrinsic_fn(b.module, f"llvm.floor.v{n}f64", tf, [tf])
    low = b.fsub(sa, b.fmul(b.call(floor, [b.fmul(sa, _pow2(b, b.sub(k, q), n))]), w))
    lo_word = finalise32(b, b.add(ln.weyl, _c(LANE, ti)))
    rnd = b.or_(b.shl(b.zext(ln.hi, t64), _c(32, t64)), b.zext(lo_word, t64))
    rest_bits = nbits - gr.k
    rest = b.and_(b.lshr(rnd, _c(64 - nbits, t64)), _c((1 << rest_bits) - 1, t64))
    gap = b.uitofp(b.sub(_c(1 << rest_bits, t64), rest), tf)
    threshold = b.fsub(b.fmul(gap, _pow2(b, b.sub(q, _c(nbits, ti)), n)), low)
    amb = b.and_(ln.amb, b.icmp_signed("<", ln.a, _c(0x7F800000, ti)))  # finite sums only
    # E >= threshold, with E = |z| - |small| where its float32 truncation was inexact (then
    # |z| = ulp(s), and |z| - threshold is exact: below 2^(q - k) for a positive threshold,
    # in units of 2^(q - N) or of s's last bit; a negative one leaves it above |small| anyway)
    up_inexact = b.fcmp_ordered(">=", b.fsub(z, threshold), small)
    up = b.and_(amb, b.select(err_exact, b.fcmp_ordered(">=", err, threshold), up_inexact))
    d = b.sub(b.add(q, _c(23, ti)), ex)  # bits of s below the quantum
    too_wide = b.and_(b.and_(amb, b.icmp_unsigned("!=", ln.a, _c(0, ti))),
                      b.icmp_signed(">", b.sub(d, k), _c(53, ti)))  # (a zero sum is exact)
    return b.add(ln.t, b.zext(up, ti)), too_wide


def round_binary32(b, s, acc, p, weyl, nbits: int, weyl_low=None):
    """The stochastic step of a binary32 accumulator (IR, float32 vectors; the block runs
    toward zero): ``s = RZ(acc + p)`` goes one unit away from zero iff
    ``floor(f 2^N) + R >= 2^N``, with ``f = E / ulp(s)`` from the truncation's exact error ``E``
    and ``R`` the top ``N`` bits of the lane's 64-bit random word. There are no bits of ``s``
    below the format's quantum, so every decision reads ``E`` (``_exact_error``):

    * where its float32 value is exact, ``floor(f 2^j) = floor(E 2^(j - log2 ulp))``, exact in
      float32 (``E`` has at most 24 bits);
    * otherwise (a product of the opposite sign far below ``ulp(s)``) ``E = ulp - |small|``, so
      ``floor(f 2^j) = 2^j - ceil(|small| 2^(j - log2 ulp))``.

    The high random word decides with ``j = k = min(N, 32)``: with ``F`` and ``W`` the top
    ``k`` bits of ``f`` and of the word, placed at the top of 32 bits, ``F + W`` carrying out of
    32 bits means up, and a sum below ``2^32 - 1`` means down, whatever the low bits. A sum of
    exactly ``2^32 - 1`` with ``N > 32`` (probability ``2^-32`` per lane) is decided in a branch
    taken only then, in 64-bit integers with ``j = N`` (``_binary32_exact``).

    ``ulp(s)`` is ``2^(e - 23)`` for a normal ``s``, ``2^-149`` below. Infinite and NaN sums
    stay as they are; a step up from the largest value is infinity (IEEE overflow).
    ``weyl_low`` (tests) replaces the low word's Weyl sum ``weyl + LANE``."""
    n = lanes(s)
    ti = like(_I32, n)
    k = min(nbits, 32)
    hi = finalise32(b, weyl)
    a = b.and_(b.bitcast(s, ti), _c(0x7FFFFFFF, ti))
    ulog = b.sub(_exponent(b, a), _c(23, ti))  # log2 ulp(s)
    err, exact, _, small = _exact_error(b, s, acc, p)
    # 2^(k - ulog) as float32: k - ulog <= 32 + 149, past float32's range for tiny sums, so
    # the scaling goes in two factors (each a power of two within range: exact)
    half = b.ashr(b.sub(_c(k, ti), ulog), _c(1, ti))
    other = b.sub(b.sub(_c(k, ti), ulog), half)
    tf = s.type

    def scaled(v):
        for e in (half, other):
            v = b.fmul(v, b.bitcast(b.shl(b.add(e, _c(127, ti)), _c(23, ti)), tf))
        return v
    floor = intrinsic_fn(b.module, f"llvm.floor.v{n}f32", tf, [tf])
    ceil = intrinsic_fn(b.module, f"llvm.ceil.v{n}f32", tf, [tf])
    f_low = b.fptoui(b.call(floor, [scaled(err)]), ti)
    g = b.fptoui(b.call(ceil, [scaled(small)]), ti)
    g = b.select(b.icmp_unsigned("<", g, _c(1, ti)), _c(1, ti), g)  # (underflowed: still > 0)
    top = b.select(exact, f_low, b.sub(_c((1 << k) & 0xFFFFFFFF, ti), g))  # floor(f 2^k)
    if k < 32:
        top = b.shl(top, _c(32 - k, ti))
        word = b.and_(hi, _c((0xFFFFFFFF << (32 - k)) & 0xFFFFFFFF, ti))
    else:
        word = hi
    total = b.add(top, word)
    up = b.icmp_unsigned("<", total, top)  # carried out of 32 bits
    finite = b.icmp_unsigned("<", a, _c(0x7F800000, ti))
    if nbits > 32:
        amb = b.and_(b.icmp_unsigned("==", total, _c(0xFFFFFFFF, ti)), finite)
        start = b.block
        slow = b.append_basic_block("sr32.ambiguous")
        join = b.append_basic_block("sr32.join")
        b.cbranch(any_lane(b, amb), slow, join)
        b.position_at_end(slow)
        exact_up = _binary32_exact(b, hi, weyl, ulog, err, exact, small, nbits, weyl_low)
        slow_up = b.select(amb, exact_up, up)
        slow_end = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(up.type)
        phi.add_incoming(up, start)
        phi.add_incoming(slow_up, slow_end)
        up = phi
    up = b.and_(up, finite)
    return b.bitcast(b.add(b.bitcast(s, ti), b.zext(up, ti)), s.type)


def _binary32_exact(b, hi, weyl, ulog, err, exact, small, nbits: int, weyl_low=None):
    """``round_binary32``'s decision (i1 per lane) with the whole ``N``-bit ``R``, from its
    high word ``hi``, ``log2 ulp(s)`` and the truncation's error: up iff
    ``R >= 2^N - floor(f 2^N)`` in 64-bit integers, ``floor(f 2^N)`` from float64 (exact)."""
    n = lanes(hi)
    ti, t64, tf = like(_I32, n), like(_I64, n), like(_F64, n)
    lo = finalise32(b, b.add(weyl, _c(LANE, ti)) if weyl_low is None else weyl_low)
    rnd = b.or_(b.shl(b.zext(hi, t64), _c(32, t64)), b.zext(lo, t64))
    r = b.lshr(rnd, _c(64 - nbits, t64))
    scale = _pow2(b, b.sub(_c(nbits, ti), ulog), n)
    floor = intrinsic_fn(b.module, f"llvm.floor.v{n}f64", tf, [tf])
    ceil = intrinsic_fn(b.module, f"llvm.ceil.v{n}f64", tf, [tf])
    f_low = b.call(floor, [b.fmul(b.fpext(err, tf), scale)])
    g = b.call(ceil, [b.fmul(b.fpext(small, tf), scale)])
    whole = b.fptosi(b.select(exact, f_low, g), t64)
    threshold = b.select(exact, b.sub(_c(1 << nbits, t64), whole), whole)
    return b.icmp_signed(">=", r, threshold)


def opaque(b, value):
    """``value`` through an empty inline-asm statement: the same bits, but a value LLVM cannot
    identify with the original, so that computations repeated from it are not merged with the
    original ones (which would keep their results alive across a branch)."""
    vector = isinstance(value.type, ir.VectorType)
    fn = ir.FunctionType(value.type, [value.type])
    return b.asm(fn, "", "=x,0" if vector else "=r,0", [value], side_effect=False)


def resolve_all(b, cells: list, gr: Grid, fail, redo=None) -> list:
    """The ``t`` of every cell, ambiguous lanes decided exactly in a branch taken only when
    some lane of some cell is ambiguous; sets ``*fail`` (i32) where float64 cannot decide.
    ``redo()``, if given, rebuilds the cells inside that branch (from values ``opaque`` hides),
    so that the common path need not keep each cell's sum, operands and random words alive."""
    if gr.nbits <= gr.k:
        return [ln.t for ln in cells]
    amb = cells[0].amb
    for ln in cells[1:]:
        amb = b.or_(amb, ln.amb)
    start = b.block
    slow = b.append_basic_block("sr.ambiguous")
    join = b.append_basic_block("sr.join")
    b.cbranch(any_lane(b, amb), slow, join)
    b.position_at_end(slow)
    resolved, bad = [], None
    for ln in (redo() if redo is not None else cells):
        t, wide = _resolve(b, ln, gr)
        resolved.append(t)
        bad = wide if bad is None else b.or_(bad, wide)
    b.store(b.or_(b.load(fail), b.zext(any_lane(b, bad), _I32)), fail)
    slow_end = b.block
    b.branch(join)
    b.position_at_end(join)
    out = []
    for ln, t in zip(cells, resolved):
        phi = b.phi(t.type)
        phi.add_incoming(ln.t, start)
        phi.add_incoming(t, slow_end)
        out.append(phi)
    return out


def _magnitude(b, ln: Lane, t, gr: Grid):
    """The rounded magnitude's bits from a lane's (resolved) ``t`` (the format's subnormal
    range shifted back)."""
    ti, tf = ln.a.type, ln.s.type
    r = b.and_(t, _c(~((1 << gr.sh) - 1), ti))
    back = b.bitcast(b.fsub(b.bitcast(r, tf), b.bitcast(gr.minnorm, tf)), ti)
    return b.select(ln.small, back, r)


def finish(b, ln: Lane, t, gr: Grid, g):
    """The rounded float32 from a lane's (resolved) ``t``: the magnitude, then overflow,
    specials and sign (``llvm_round._finish``)."""
    n = lanes(ln.s)
    max_bits, over, inf_bits, negzero = (splat(b, g[i], n) for i in (3, 4, 6, 8))
    sign = b.xor(b.bitcast(ln.s, ln.a.type), ln.a)
    return _finish(b, _magnitude(b, ln, t, gr), ln.a, sign, over, max_bits, inf_bits, negzero)


def finish_unchecked(b, ln: Lane, t, gr: Grid):
    """``finish`` without the overflow and special selects: (the float32, its magnitude's
    bits). Right wherever that magnitude is at most the format's largest value (``g[3]``);
    an overflow, or an infinite or NaN sum, gives a magnitude above it (a pattern at or past
    infinity's, its low bits cleared, stays there), which ``kernels_gemm_micro``'s lazy plan
    catches with one unsigned maximum. The sign is kept on zeros: the fast path's formats all
    have ``-0``."""
    mag = _magnitude(b, ln, t, gr)
    sign = b.xor(b.bitcast(ln.s, ln.a.type), ln.a)
    return b.bitcast(b.or_(mag, sign), ln.s.type), mag
