"""Deterministic rounding of a float32 bit pattern, emitted directly as 32-bit LLVM IR.

numba widens integer arithmetic to 64 bits, which halves the SIMD width of a quantiser; an
intrinsic keeps every lane 32 bits wide (about twice as fast). The algorithm is exactly that of
``kernels_f32.round_bits`` (which stays the reference for stochastic rounding and is tested
against this one), one intrinsic per rounding mode so that each loop is branch-free.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, STOCHASTIC, TO_ODD, TOWARD_ZERO, UP
from .rng import MUL1, MUL2, WEYL, WEYL_HI

__all__ = ["ROUNDERS", "NEAREST_EVEN_MAGIC", "round_ne_magic", "magic_rne_ok",
           "magic_round_abs", "finalise32", "any_lane", "lanes", "like", "splat"]

_I32 = ir.IntType(32)


def _c(v: int, ty: ir.Type = _I32) -> ir.Constant:
    """The i32 constant ``v``, or its splat when ``ty`` is a vector of i32 (or i1)."""
    if isinstance(ty, ir.VectorType):
        width = ty.element.width
        return ir.Constant(ty, [v & ((1 << width) - 1)] * ty.count)
    return ir.Constant(ty, v & ((1 << ty.width) - 1))


_const = _c


def lanes(value) -> int | None:
    """Lane count of a vector IR value, None for a scalar."""
    return value.type.count if isinstance(value.type, ir.VectorType) else None


def like(ty: ir.Type, n: int | None) -> ir.Type:
    """``ty`` (a scalar IR type) or a vector of ``n`` of them."""
    return ty if n is None else ir.VectorType(ty, n)


def splat(builder: ir.IRBuilder, value, n: int | None):
    """A scalar IR value broadcast to ``n`` lanes (unchanged when ``n`` is None or it already is
    a vector)."""
    if n is None or isinstance(value.type, ir.VectorType):
        return value
    vty = ir.VectorType(value.type, n)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, n), [0] * n))


def _emit(builder: ir.IRBuilder, mode: int, x, m, emin, sub, max_bits, over_pos, over_neg,
          inf_bits, minpos_bits, negzero, rnd=None, nbits=None):
    """IR of ``kernels_f32.round_bits``: ``x`` (float32, scalar or vector) rounded by ``mode``
    to the format of the nine parameters (``quantize._f32_params``). Stochastic rounding takes
    the high random word ``rnd`` and ``nbits``."""
    b = builder
    n = lanes(x)
    ti, t1 = like(_I32, n), like(ir.IntType(1), n)
    m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits, negzero = (
        splat(b, v, n) for v in (m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                                 minpos_bits, negzero))

    def _c(v: int) -> ir.Constant:  # noqa: F811 - the lane-shaped constant
        return _const(v, ti)

    xb = b.bitcast(x, ti)
    sign = b.and_(xb, _c(0x80000000))
    a = b.and_(xb, _c(0x7FFFFFFF))
    e = b.lshr(a, _c(23))
    e_is0 = b.icmp_unsigned("==", e, _c(0))
    e1 = b.select(e_is0, _c(1), e)
    ex = b.sub(e1, _c(127))
    sig = b.or_(b.and_(a, _c(0x7FFFFF)), b.select(e_is0, _c(0), _c(0x800000)))
    base = b.sub(_c(23), m)
    below = b.sub(emin, ex)  # > 0 when x lies under the smallest normal binade
    pos_below = b.select(b.icmp_signed(">", below, _c(0)), below, _c(0))
    d_sub = b.add(base, pos_below)
    d_flush = b.select(b.icmp_signed(">=", ex, emin), base, b.add(_c(23), below))
    d = b.select(b.icmp_signed("!=", sub, _c(0)), d_sub, d_flush)
    big = b.icmp_signed(">=", d, _c(25))
    dd = b.select(big, _c(25), d)
    one_dd = b.shl(_c(1), dd)
    mask = b.sub(one_dd, _c(1))
    kept = b.lshr(sig, dd)
    rem = b.and_(sig, mask)
    half = b.lshr(one_dd, _c(1))
    odd = b.and_(kept, _c(1))
    nonzero_rem = b.icmp_unsigned("!=", rem, _c(0))
    positive = b.icmp_unsigned("==", sign, _c(0))
    if mode == NEAREST_EVEN:
        r = b.and_(b.add(b.add(sig, b.sub(half, _c(1))), odd), b.not_(mask))
        up = _const(0, t1)
    else:
        if mode == NEAREST_AWAY:
            up = b.icmp_unsigned(">=", rem, half)
        elif mode == TOWARD_ZERO:
            up = _const(0, t1)
        elif mode == UP:
            up = b.and_(nonzero_rem, positive)
        elif mode == DOWN:
            up = b.and_(nonzero_rem, b.not_(positive))
        elif mode == TO_ODD:
            up = b.and_(nonzero_rem, b.icmp_unsigned("==", odd, _c(0)))
        elif mode == STOCHASTIC:
            up = _stochastic_up(b, rem, d, rnd, nbits)
        else:
            raise ValueError(mode)
        r = b.shl(b.add(kept, b.zext(up, ti)), dd)
    out = b.add(b.shl(b.sub(e1, _c(1)), _c(23)), r)
    out = b.select(b.icmp_unsigned("==", r, _c(0)), _c(0), out)
    out = b.select(big, b.select(up, minpos_bits, _c(0)), out)
    over = b.select(positive, over_pos, over_neg)
    return _finish(b, out, a, sign, over, max_bits, inf_bits, negzero)


def _finish(b: ir.IRBuilder, out, a, sign, over, max_bits, inf_bits, negzero):
    """The float32 result of a rounder from the magnitude bits ``out`` it rounded ``a`` (the
    input's ``|x|`` bits) to: ``over`` beyond ``max_bits``, a quieted NaN or ``inf_bits`` for
    NaN and infinite input, then the sign (kept on zero only where the format has ``-0``)."""
    ti = out.type

    def c(v: int) -> ir.Constant:
        return _const(v, ti)

    out = b.select(b.icmp_unsigned(">", out, max_bits), over, out)
    special = b.select(b.icmp_unsigned(">", a, c(0x7F800000)), b.or_(a, c(0x400000)), inf_bits)
    out = b.select(b.icmp_unsigned(">=", a, c(0x7F800000)), special, out)
    keep_sign = b.or_(b.icmp_unsigned("!=", out, c(0)), b.icmp_unsigned("!=", negzero, c(0)))
    out = b.or_(out, b.select(keep_sign, sign, c(0)))
    return b.bitcast(out, like(ir.FloatType(), lanes(out)))


def magic_round_abs(builder: ir.IRBuilder, a, sh, magic, cap=None):
    """Bits of ``|x|`` (i32 ``a``, scalar or vector) rounded to nearest even at ``23 - sh``
    mantissa bits by one float addition: with ``e`` the binary exponent of ``|x|``,
    ``C = 2^(e + sh)`` has a unit in the last place equal to the format's quantum at ``e``, so
    ``(|x| + C) - C`` is ``|x|`` rounded by the host (a carry into the next binade stays inside
    ``C``'s binade). ``C`` (as bits) is clamped below at ``magic`` (``2^(emin - m + 23)``: its
    unit is the subnormal quantum, so formats with subnormals only) and above at ``cap``
    (``2^(emax + 1 + sh)``, a finite float32: anything that large overflows anyway). ``cap=None``
    where no finite ``|x|`` reaches ``2^(127 - sh)``: an infinite or NaN ``x`` then makes ``C``
    wrap to a tiny negative number and comes out unchanged. Overflow and specials are the
    caller's."""
    b = builder
    ft = like(ir.FloatType(), lanes(a))
    big = b.bitcast(magic_constant(b, a, sh, magic, cap), ft)
    return b.bitcast(b.fsub(b.fadd(b.bitcast(a, ft), big), big), a.type)


def magic_constant(builder: ir.IRBuilder, a, sh, magic, cap=None):
    """Bits of the constant ``C`` of ``magic_round_abs`` for ``|x|`` bits ``a``: ``2^(e + sh)``
    clamped to ``[magic, cap]`` (``cap=None``: no upper clamp). ``C * 2^-23`` is the format's
    quantum at ``|x|``."""
    b = builder
    ti = a.type
    cb = b.add(b.and_(a, _const(0x7F800000, ti)), b.shl(sh, _const(23, ti)))
    cb = b.select(b.icmp_unsigned("<", cb, magic), magic, cb)
    if cap is not None:
        cb = b.select(b.icmp_unsigned(">", cb, cap), cap, cb)
    return cb


def _magic_grid(b: ir.IRBuilder, m, emin, max_bits):
    """(``sh``, ``magic``, ``cap``) of ``magic_round_abs`` for a format with ``m`` mantissa bits,
    smallest normal exponent ``emin`` and largest value ``max_bits`` (i32 values or vectors)."""
    ti = m.type
    sh = b.sub(_const(23, ti), m)
    magic = b.shl(b.add(b.sub(emin, m), _const(23 + 127, ti)), _const(23, ti))
    cap = b.add(b.and_(max_bits, _const(0x7F800000, ti)),
                b.shl(b.add(sh, _const(1, ti)), _const(23, ti)))
    return sh, magic, cap


def _emit_ne_magic(builder: ir.IRBuilder, x, m, emin, sub, max_bits, over_pos, over_neg,
                   inf_bits, minpos_bits, negzero):
    """RNE as ``_emit`` computes it, in about half the instructions (``magic_round_abs``, for
    formats where ``magic_rne_ok``); overflow, specials and signs as ``_emit``. The parameter
    list is ``_emit``'s: ``sub`` is 1 here, and under RNE ``over_neg == over_pos`` and no
    ``minpos_bits`` special case arises."""
    b = builder
    n = lanes(x)
    ti = like(_I32, n)
    m, emin, max_bits, over_pos, inf_bits, negzero = (
        splat(b, v, n) for v in (m, emin, max_bits, over_pos, inf_bits, negzero))

    xb = b.bitcast(x, ti)
    a = b.and_(xb, _const(0x7FFFFFFF, ti))
    sign = b.xor(xb, a)
    out = magic_round_abs(b, a, *_magic_grid(b, m, emin, max_bits))
    return _finish(b, out, a, sign, over_pos, max_bits, inf_bits, negzero)


def _emit_directed_magic(builder: ir.IRBuilder, mode: int, x, m, emin, sub, max_bits, over_pos,
                         over_neg, inf_bits, minpos_bits, negzero):
    """The deterministic non-RNE modes as ``_emit`` computes them, in about half the
    instructions, for formats where ``magic_rne_ok``: ``t = (|x| + C) - C`` is ``|x|`` rounded to
    nearest on the format's grid (``magic_round_abs``), whose quantum is ``q = C * 2^-23``; the
    neighbours below and above ``|x|`` are ``lo = t - q`` (if ``t > |x|``) and ``hi = lo + q`` (if
    inexact), and the mode picks one: toward zero ``lo``; up and down by sign; nearest-away
    ``hi`` from half a quantum on; to-odd the odd one (``lo / q`` even iff ``lo / 2`` lies on the
    grid). Overflow, specials and signs as ``_emit``; ``sub`` is 1 and ``minpos_bits`` is ``q``
    at the bottom of the grid, so neither is read."""
    b = builder
    n = lanes(x)
    ti, tf = like(_I32, n), like(ir.FloatType(), n)
    m, emin, max_bits, over_pos, over_neg, inf_bits, negzero = (
        splat(b, v, n) for v in (m, emin, max_bits, over_pos, over_neg, inf_bits, negzero))

    def f(v: float) -> ir.Constant:
        return ir.Constant(tf, [v] * n) if n is not None else ir.Constant(tf, v)

    xb = b.bitcast(x, ti)
    a = b.and_(xb, _const(0x7FFFFFFF, ti))
    sign = b.xor(xb, a)
    positive = b.icmp_unsigned("==", sign, _const(0, ti))
    big = b.bitcast(magic_constant(b, a, *_magic_grid(b, m, emin, max_bits)), tf)
    ax = b.bitcast(a, tf)
    t = b.fsub(b.fadd(ax, big), big)
    q = b.fmul(big, f(2.0 ** -23))
    zero = f(0.0)
    lo = b.fsub(t, b.select(b.fcmp_ordered(">", t, ax), q, zero))
    inexact = b.fcmp_unordered("!=", lo, ax)
    hi = b.fadd(lo, b.select(inexact, q, zero))
    if mode == TOWARD_ZERO:
        r = lo
    elif mode == UP:
        r = b.select(positive, hi, lo)
    elif mode == DOWN:
        r = b.select(positive, lo, hi)
    elif mode == NEAREST_AWAY:
        r = b.select(b.fcmp_ordered(">=", b.fsub(ax, lo), b.fmul(q, f(0.5))), hi, lo)
    elif mode == TO_ODD:
        half = b.fmul(lo, f(0.5))
        even = b.fcmp_ordered("==", b.fsub(b.fadd(half, big), big), half)
        r = b.select(b.and_(inexact, even), hi, lo)
    else:
        raise ValueError(mode)
    over = b.select(positive, over_pos, over_neg)
    return _finish(b, b.bitcast(r, ti), a, sign, over, max_bits, inf_bits, negzero)


def _hash_hi(b: ir.IRBuilder, key, index):
    """High word of the counter-based random bits (``rng.hash32(key, index, 0)``) in i32."""
    i64 = ir.IntType(64)
    lo = b.trunc(index, _I32)
    hi = b.trunc(b.lshr(index, ir.Constant(i64, 32)), _I32)
    return finalise32(b, b.add(b.add(b.trunc(key, _I32), b.mul(lo, _c(WEYL))),
                               b.mul(hi, _c(WEYL_HI))))


def any_lane(b: ir.IRBuilder, mask):
    """i1: whether any lane of the i1 vector ``mask`` is set."""
    n = mask.type.count
    wide = b.bitcast(b.sext(mask, ir.VectorType(_I32, n)), ir.IntType(32 * n))
    return b.icmp_unsigned("!=", wide, ir.Constant(wide.type, 0))


def finalise32(b: ir.IRBuilder, z):
    """``rng.hash32``'s finaliser (``lowbias32``) of its Weyl sum ``z`` (i32, scalar or vector):
    the random word itself."""
    ty = z.type
    z = b.xor(z, b.lshr(z, _c(16, ty)))
    z = b.mul(z, _c(MUL1, ty))
    z = b.xor(z, b.lshr(z, _c(15, ty)))
    z = b.mul(z, _c(MUL2, ty))
    return b.xor(z, b.lshr(z, _c(16, ty)))


def _stochastic_up(b: ir.IRBuilder, rem, d, hi, nbits):
    """P3109 StochasticA with n random bits, as ``(rem >> (d-k)) + R_k >= 2^k`` with
    ``k = min(n, d)`` and ``R_k`` the top k random bits: the same decision as
    ``floor(rem / 2^d * 2^n) + R >= 2^n`` (when n > d the low n - d random bits cannot carry).
    Exact while ``k <= 32`` (``hi`` is the high random word); the caller redoes the rare elements
    with ``d > 32`` and ``n > 32`` in 64 bits."""
    k = b.select(b.icmp_signed("<", nbits, d), nbits, d)
    k = b.select(b.icmp_signed(">", k, _c(32)), _c(32), k)
    t = b.sub(d, k)
    far = b.icmp_signed(">=", t, _c(25))
    top = b.select(far, _c(0), b.lshr(rem, b.select(far, _c(0), t)))
    r = b.lshr(hi, b.sub(_c(32), k))  # the top k random bits
    mask_k = b.lshr(_c(0xFFFFFFFF), b.sub(_c(32), k))  # 2^k - 1 >= top
    return b.icmp_unsigned(">", r, b.sub(mask_k, top))  # top + r >= 2^k, without overflow


def _make_stochastic():
    @intrinsic
    def rounder(typingctx, x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                negzero, key, index, nbits):
        if x != types.float32 or key != types.uint64 or index != types.uint64:
            return None
        sig = types.float32(x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                            negzero, key, index, nbits)

        def codegen(context, builder, signature, args):
            ints = [builder.trunc(v, _I32) if v.type != _I32 else v for v in args[1:10]]
            nb = builder.trunc(args[12], _I32) if args[12].type != _I32 else args[12]
            hi = _hash_hi(builder, args[10], args[11])
            return _emit(builder, STOCHASTIC, args[0], *ints, rnd=hi, nbits=nb)

        return sig, codegen

    return rounder


def _make_rounder(emit):
    """A float32 rounding intrinsic over the nine format parameters; ``emit(builder, x, *ints)``
    writes its IR."""
    @intrinsic
    def rounder(typingctx, x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                negzero):
        if x != types.float32:
            return None
        sig = types.float32(x, m, emin, sub, max_bits, over_pos, over_neg, inf_bits, minpos_bits,
                            negzero)

        def codegen(context, builder, signature, args):
            ints = [builder.trunc(v, _I32) if v.type != _I32 else v for v in args[1:]]
            return emit(builder, args[0], *ints)

        return sig, codegen

    return rounder


def _make(mode: int):
    return _make_rounder(lambda builder, x, *ints: _emit(builder, mode, x, *ints))


#: One intrinsic per rounding mode, indexed by the mode's value (the last takes rnd, nbits).
ROUNDERS = tuple(_make(mode) for mode in (NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, UP, DOWN,
                                          TO_ODD)) + (_make_stochastic(),)

#: Pseudo rounding mode of the float32 kernels: NEAREST_EVEN by ``_emit_ne_magic``.
NEAREST_EVEN_MAGIC = 7


#: ``NEAREST_EVEN`` for formats where ``magic_rne_ok`` holds.
round_ne_magic = _make_rounder(_emit_ne_magic)


def magic_rne_ok(m: int, emax: int, subnormals: bool) -> bool:
    """Whether ``_emit_ne_magic`` applies: a format with subnormals whose largest constant
    ``2^(emax + 1 + 23 - m)`` is a finite float32."""
    return subnormals and emax + 1 + 23 - m <= 127
