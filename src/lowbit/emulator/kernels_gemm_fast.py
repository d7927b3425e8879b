"""32-bit per-MAC arithmetic of the fast GEMM kernels (``kernels_gemm_tile`` builds the loops).

Used when every product is exact in float32 and the accumulator formats hold float32 values.
Each piece is an LLVM intrinsic on 32-bit lanes:

* ``add_odd_f32``: the float32 sum, its exact error (TwoSum), and a round-to-odd correction when
  the sum was inexact (24 >= m + 2 bits, so a following rounding to m bits is that of the exact
  sum);
* ``round_f16``: LLVM ``fptrunc`` to half and ``fpext`` back (``vcvtps2ph``: RNE, subnormals and
  overflow to inf);
* ``round_bits_f32``: integer RNE on the float32 bits, a magic-constant addition for the
  format's subnormals, and the overflow policy as a select.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["add_odd_f32", "round_f16", "round_bits_f32", "make_step", "step_ir"]

_I32 = ir.IntType(32)
_F32 = ir.FloatType()


def _c(v: int) -> ir.Constant:
    return ir.Constant(_I32, v & 0xFFFFFFFF)


def _odd_sum(builder, acc, p):
    """float32 ``acc + p`` rounded to odd (IR): TwoSum, then, when the sum was inexact, its
    truncation toward zero (one unit less in magnitude if the error points inward: the bit
    pattern minus one) with the last bit set."""
    s = builder.fadd(acc, p)
    bp = builder.fsub(s, acc)
    err = builder.fadd(builder.fsub(acc, builder.fsub(s, bp)), builder.fsub(p, bp))
    sb = builder.bitcast(s, _I32)
    inexact = builder.sext(builder.fcmp_ordered("one", err, ir.Constant(_F32, 0.0)), _I32)
    inward = builder.ashr(builder.xor(builder.bitcast(err, _I32), sb), _c(31))
    rz = builder.add(sb, builder.and_(inward, inexact))
    return builder.or_(rz, builder.and_(inexact, _c(1)))


@intrinsic
def add_odd_f32(typingctx, acc, p):
    """``acc + p`` (float32) rounded to odd at 24 bits."""
    if acc != types.float32 or p != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(_odd_sum(builder, args[0], args[1]), _F32)

    return types.float32(types.float32, types.float32), codegen


@intrinsic
def round_f16(typingctx, x):
    """float32 -> half (RNE) -> float32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        h = builder.fptrunc(args[0], ir.HalfType())
        return builder.fpext(h, _F32)

    return types.float32(types.float32), codegen


@intrinsic
def round_bits_f32(typingctx, x, sh, minnorm, maxbits, ovf, magic):
    """RNE of float32 ``x`` to a format with ``23 - sh`` mantissa bits: ``minnorm`` the bits of
    its smallest normal, ``maxbits`` of its largest value, ``ovf`` the bits an overflow becomes,
    ``magic`` = 2^(emin - m + 23) for its subnormals."""
    i32 = types.int32
    if (x, sh, minnorm, maxbits, ovf, magic) != (types.float32, i32, i32, i32, i32, types.float32):
        return None

    def codegen(context, builder, sig, args):
        return round_bits_ir(builder, *args)

    return types.float32(types.float32, i32, i32, i32, i32, types.float32), codegen


def round_bits_ir(builder, x, sh, minnorm, maxbits, ovf, magic):
    """IR of ``round_bits_f32`` (i32 parameters, float ``magic``)."""
    b = builder.bitcast(x, _I32)
    sign = builder.and_(b, _c(0x80000000))
    a = builder.and_(b, _c(0x7FFFFFFF))
    unit = builder.shl(_c(1), sh)
    half_m1 = builder.sub(builder.lshr(unit, _c(1)), _c(1))
    lsb = builder.and_(builder.lshr(a, sh), _c(1))
    r = builder.and_(builder.add(builder.add(a, half_m1), lsb), builder.not_(
        builder.sub(unit, _c(1))))
    ax = builder.bitcast(a, _F32)
    sub = builder.bitcast(builder.fsub(builder.fadd(ax, magic), magic), _I32)
    r = builder.select(builder.icmp_unsigned("<", a, minnorm), sub, r)
    r = builder.select(builder.icmp_unsigned(">", r, maxbits), ovf, r)
    r = builder.select(builder.icmp_unsigned(">", a, _c(0x7F800000)), _c(0x7FC00000), r)
    return builder.bitcast(builder.or_(r, sign), _F32)


def step_ir(builder, kind: int, twosum: int, mode: int, acc, p, g):
    """IR of one accumulation step ``round(acc + p)`` (see ``kernels_gemm_tile``); ``g`` the
    list of nine i32 format parameters."""
    from .llvm_round import _emit
    s = builder.bitcast(_odd_sum(builder, acc, p), _F32) if twosum else builder.fadd(acc, p)
    if kind == 0:
        return s
    if kind == 1:
        return builder.fpext(builder.fptrunc(s, ir.HalfType()), _F32)
    if kind == 2:
        return round_bits_ir(builder, s, g[0], g[1], g[2], g[3], builder.bitcast(g[4], _F32))
    return _emit(builder, mode, s, *g)


def make_step(kind: int, twosum: int, mode: int):
    """``step(acc, p, g) -> float32`` as one intrinsic for constant (kind, twosum, mode); ``g`` a
    tuple of nine int64 format parameters."""
    @intrinsic
    def step(typingctx, acc, p, g):
        if acc != types.float32 or p != types.float32 or not isinstance(g, types.UniTuple):
            return None

        def codegen(context, builder, sig, args):
            gv = [builder.trunc(builder.extract_value(args[2], i), _I32) for i in range(9)]
            return step_ir(builder, kind, twosum, mode, args[0], args[1], gv)

        return types.float32(acc, p, g), codegen

    return step
