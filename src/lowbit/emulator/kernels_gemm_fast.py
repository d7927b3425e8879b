"""32-bit per-MAC arithmetic of the fast GEMM kernels (``kernels_gemm_micro`` builds the loops).

Used when every product is exact in float32 and the accumulator formats hold float32 values.
Each piece is IR on 32-bit lanes, scalar or vector (the type of its float32 input decides):

* ``add_odd_f32``: the float32 sum, its exact error (TwoSum), and a round-to-odd correction when
  the sum was inexact (24 >= m + 2 bits, so a following rounding to m bits is that of the exact
  sum);
* ``round_f16``: LLVM ``fptrunc`` to half and ``fpext`` back (``vcvtps2ph``: RNE, subnormals and
  overflow to inf);
* ``round_bits_f32``: integer RNE on the float32 bits, a magic-constant addition for the
  format's subnormals, and the overflow policy as a select;
* ``round_magic_ir``: RNE by one float addition of an exponent-scaled constant (about half the
  instructions of ``round_bits_f32``; formats whose constants stay finite in float32).
"""

from __future__ import annotations

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .llvm_round import _const, any_lane, lanes, like, magic_round_abs, splat

__all__ = ["add_odd_f32", "round_f16", "round_bits_f32", "step_ir", "round_ir",
           "LEAN_NO_CAP", "LEAN_NO_NAN", "SPEC_KINDS", "RZ_KINDS", "odd_sum_rz", "rz_mode",
           "MXCSR_RC", "restore_mode", "round_unchecked", "odd_sum", "intrinsic_fn", "F16C_IMM",
           "X86", "flags0", "midpoint_flags", "flags_any", "away_sum_rz",
           "rz_remainder"]

_I32 = ir.IntType(32)
#: The host is x86 (MXCSR, ``vcvtps2ph``): ``rz_mode`` and the directed kind-1 steps exist.
X86 = llvm_binding.get_process_triple().startswith(("x86_64", "i686", "i386"))
_F32 = ir.FloatType()


def _c(v: int, like_value=None) -> ir.Constant:
    """The i32 constant ``v``, splat to the lanes of ``like_value`` when that is a vector."""
    return _const(v, _int_type(like_value))


def _int_type(value) -> ir.Type:
    return like(_I32, None if value is None else lanes(value))


def _float_type(value) -> ir.Type:
    return like(_F32, None if value is None else lanes(value))


def _odd_sum(builder, acc, p):
    """float32 ``acc + p`` rounded to odd (IR): TwoSum, then, when the sum was inexact, its
    truncation toward zero (one unit less in magnitude if the error points inward: the bit
    pattern minus one) with the last bit set."""
    s = builder.fadd(acc, p)
    bp = builder.fsub(s, acc)
    err = builder.fadd(builder.fsub(acc, builder.fsub(s, bp)), builder.fsub(p, bp))
    ti = _int_type(s)
    sb = builder.bitcast(s, ti)
    zero = ir.Constant(s.type, None)
    inexact = builder.sext(builder.fcmp_ordered("one", err, zero), ti)
    inward = builder.ashr(builder.xor(builder.bitcast(err, ti), sb), _c(31, s))
    rz = builder.add(sb, builder.and_(inward, inexact))
    return builder.or_(rz, builder.and_(inexact, _c(1, s)))


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


def round_bits_ir(builder, x, sh, minnorm, maxbits, ovf, magic, subnormal_path=True):
    """IR of ``round_bits_f32`` (i32 parameters, float ``magic``). Without ``subnormal_path``
    for formats whose smallest normal is float32's (bf16, tf32): their subnormal grid is then
    float32's own bit pattern cut at ``sh``, which the integer rounding handles as it stands."""
    n = lanes(x)
    sh, minnorm, maxbits, ovf, magic = (splat(builder, v, n) for v in (sh, minnorm, maxbits, ovf,
                                                                      magic))
    ti, tf = _int_type(x), _float_type(x)
    b = builder.bitcast(x, ti)
    sign = builder.and_(b, _c(0x80000000, x))
    a = builder.and_(b, _c(0x7FFFFFFF, x))
    unit = builder.shl(_c(1, x), sh)
    half_m1 = builder.sub(builder.lshr(unit, _c(1, x)), _c(1, x))
    lsb = builder.and_(builder.lshr(a, sh), _c(1, x))
    r = builder.and_(builder.add(builder.add(a, half_m1), lsb), builder.not_(
        builder.sub(unit, _c(1, x))))
    if subnormal_path:
        ax = builder.bitcast(a, tf)
        sub = builder.bitcast(builder.fsub(builder.fadd(ax, magic), magic), ti)
        r = builder.select(builder.icmp_signed("<", a, minnorm), sub, r)
    r = builder.select(builder.icmp_unsigned(">", r, maxbits), ovf, r)
    r = builder.select(builder.icmp_signed(">", a, _c(0x7F800000, x)), _c(0x7FC00000, x), r)
    return builder.bitcast(builder.or_(r, sign), tf)


#: Flags a kind-4 step carries in its ``mode`` field (see ``round_magic_ir``).
LEAN_NO_CAP, LEAN_NO_NAN = 1, 2


def round_magic_ir(builder, x, sh, maxbits, ovf, magic, cap, clamp_cap=True, nan_select=True):
    """RNE of float32 ``x`` to ``23 - sh`` mantissa bits by one float addition
    (``llvm_round.magic_round_abs``, clamped at ``magic`` and ``cap``); about half the
    instructions of ``round_bits_ir``, with overflow, NaN and sign as there.

    ``clamp_cap=False`` where no finite ``|x|`` reaches ``2^(127 - sh)``; ``nan_select=False``
    where ``ovf`` is NaN (a NaN ``x`` then takes the overflow select)."""
    n = lanes(x)
    sh, maxbits, ovf, magic, cap = (splat(builder, v, n) for v in (sh, maxbits, ovf, magic, cap))
    ti, tf = _int_type(x), _float_type(x)
    b = builder.bitcast(x, ti)
    a = builder.and_(b, _c(0x7FFFFFFF, x))
    sign = builder.xor(b, a)
    r = magic_round_abs(builder, a, sh, magic, cap if clamp_cap else None)
    r = builder.select(builder.icmp_signed(">", r, maxbits), ovf, r)
    if nan_select:
        r = builder.select(builder.icmp_signed(">", a, _c(0x7F800000, x)), _c(0x7FC00000, x), r)
    return builder.bitcast(builder.or_(r, sign), tf)


def odd_sum_rz(builder, acc, p):
    """float32 ``acc + p`` rounded to odd (IR), for code that runs with the host's rounding
    mode set toward zero (``rz_mode``): ``s = RZ(acc + p)`` is the truncation itself, and it
    was inexact iff ``RZ(s - acc) != p``. (When ``|acc| >= |p|``, ``s - acc`` is exact by
    Sterbenz's lemma; otherwise an inexact ``s = acc + p - d``, with ``d`` of ``p``'s sign and
    smaller, gives ``|RZ(p - d)| < |p|``. Infinite or NaN sums compare unordered: left as they
    are.) Three float operations against TwoSum's six and its sign logic."""
    s = builder.fadd(acc, p)
    t = builder.fsub(s, acc)
    ti = _int_type(s)
    inexact = builder.zext(builder.fcmp_ordered("one", t, p), ti)
    return builder.bitcast(builder.or_(builder.bitcast(s, ti), inexact), s.type)


def rz_remainder(builder, s, acc, p):
    """``(z, small, t)`` for the truncated sum ``s = RZ(acc + p)`` (IR; code running toward
    zero): with the terms ordered by magnitude, ``z = s - big`` is exact (Sterbenz), and
    ``t = RZ(small - z)`` truncates the exact remainder ``acc + p - s`` (same sign as ``s``;
    exact itself unless the terms have opposite signs and ``small`` lies far below
    ``ulp(s)``). NaN terms order as the largest magnitudes, which keeps the results NaN."""
    ti = _int_type(acc)
    mag = [builder.and_(builder.bitcast(v, ti), _c(0x7FFFFFFF, acc)) for v in (acc, p)]
    first = builder.icmp_unsigned(">=", mag[0], mag[1])
    big, small = builder.select(first, acc, p), builder.select(first, p, acc)
    z = builder.fsub(s, big)
    return z, small, builder.fsub(small, z)


def away_sum_rz(builder, acc, p):
    """float32 ``acc + p`` rounded to nearest, ties away from zero (IR, float32 vectors), for
    code that runs toward zero (``rz_mode``). ``s = RZ(acc + p)`` is the truncation; with the
    terms ordered by magnitude, ``t = RZ(small - (s - big))`` is the truncation of the exact
    remainder ``e = acc + p - s`` (``rz_remainder``; same sign as ``s``), so
    ``|2t| >= ulp(s)`` iff ``|e| >= ulp(s) / 2`` (a power of two): then ``s`` moves one unit
    away from zero (the bit pattern plus one; from float32's largest value that is infinity).
    ``ulp(s)`` is ``next(|s|) - |s|``, capped at 2^104 (the top binade's unit, where ``next`` is
    infinity). NaN and infinite sums compare unordered and stay as they are."""
    ti = _int_type(acc)
    tf = acc.type
    n = lanes(acc)
    fabs = intrinsic_fn(builder.module, f"llvm.fabs.v{n}f32", tf, [tf])
    fmin = intrinsic_fn(builder.module, f"llvm.minnum.v{n}f32", tf, [tf, tf])
    s = builder.fadd(acc, p)
    t = rz_remainder(builder, s, acc, p)[2]
    mag = builder.and_(builder.bitcast(s, ti), _c(0x7FFFFFFF, acc))
    ulp = builder.fsub(builder.bitcast(builder.add(mag, _c(1, acc)), tf), builder.bitcast(mag, tf))
    ulp = builder.call(fmin, [ulp, ir.Constant(tf, [2.0 ** 104] * n)])
    away = builder.fcmp_ordered("oge", builder.call(fabs, [builder.fadd(t, t)]), ulp)
    return builder.bitcast(builder.add(builder.bitcast(s, ti), builder.zext(away, ti)), tf)


#: Step kinds whose rounding is independent of the host's rounding mode, so that a whole block
#: may run toward zero for ``odd_sum_rz``: fp16 through an explicit-RNE ``vcvtps2ph``, the
#: integer roundings (3, 5), and the directed magic rounder (6), whose neighbour ``lo`` comes
#: out the same whether the magic addition rounds to nearest or truncates. Kinds 2 and 4 rely
#: on a rounding-to-nearest addition.
RZ_KINDS = (1, 3, 5, 6, 9)


def intrinsic_fn(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    """The declaration of LLVM intrinsic ``name`` in ``module`` (added on first use)."""
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(ret, args), name)


#: MXCSR rounding-control bits of the modes a block may run in (``kernels_float`` numbering:
#: toward zero, up, down).
MXCSR_RC = {2: 0x6000, 3: 0x4000, 4: 0x2000}


def rz_mode(builder, rc: int = 0x6000):
    """Set the host's rounding mode toward zero (x86 MXCSR), or to the mode of rounding-control
    bits ``rc`` (``MXCSR_RC``); returns the slot holding the old control word for
    ``restore_mode``."""
    from numba.core import cgutils
    i8p = ir.IntType(8).as_pointer()
    saved, mode = cgutils.alloca_once(builder, _I32), cgutils.alloca_once(builder, _I32)
    st = intrinsic_fn(builder.module, "llvm.x86.sse.stmxcsr", ir.VoidType(), [i8p])
    ld = intrinsic_fn(builder.module, "llvm.x86.sse.ldmxcsr", ir.VoidType(), [i8p])
    builder.call(st, [builder.bitcast(saved, i8p)])
    builder.store(builder.or_(builder.and_(builder.load(saved), _c(~0x6000)), _c(rc)), mode)
    builder.call(ld, [builder.bitcast(mode, i8p)])
    return saved


def restore_mode(builder, saved) -> None:
    i8p = ir.IntType(8).as_pointer()
    ld = intrinsic_fn(builder.module, "llvm.x86.sse.ldmxcsr", ir.VoidType(), [i8p])
    builder.call(ld, [builder.bitcast(saved, i8p)])


#: ``vcvtps2ph`` rounding immediates of the modes kind 1 takes (``kernels_float`` numbering:
#: nearest-even, toward zero, up, down).
F16C_IMM = {0: 0, 2: 3, 3: 2, 4: 1}


def _f16_explicit(builder, s, mode: int):
    """float32 -> half -> float32 rounding by ``mode`` (``F16C_IMM``) whatever the host's
    rounding mode (``vcvtps2ph`` with an explicit rounding immediate; LLVM's ``fptrunc`` follows
    MXCSR). Vectors of 8 lanes (the kernels' blocks)."""
    i16x8 = ir.VectorType(ir.IntType(16), 8)
    fn = intrinsic_fn(builder.module, "llvm.x86.vcvtps2ph.256", i16x8, [s.type, _I32])
    h = builder.call(fn, [s, _c(F16C_IMM[mode])])
    return builder.fpext(builder.bitcast(h, ir.VectorType(ir.HalfType(), 8)), s.type)


def round_unchecked(builder, kind: int, x, g, sh: int | None = None):
    """Kind 4's or 5's rounding without its overflow and NaN selects (and kind 4's upper
    clamp): (the rounded float32, a magnitude's bits). Right wherever that magnitude stays at
    most the format's largest value; anything else (an overflow, an infinite or NaN input, a
    magic constant past float32's range) gives a magnitude above it, so one unsigned maximum
    over the second result tells whether every step was right (``kernels_gemm_micro``'s lazy
    plan). Kind 4 returns the result's magnitude bits (compare with ``g[2]``); kind 5 the
    input's, doubled (compare with ``2 * g[2]``: a superset, as rounding is monotonic).
    ``sh``: kind 5's shift (``23 - m``) as a constant, else ``g[0]``."""
    n = lanes(x)
    ti, tf = _int_type(x), _float_type(x)
    b = builder.bitcast(x, ti)
    if kind == 4:
        a = builder.and_(b, _c(0x7FFFFFFF, x))
        r = magic_round_abs(builder, a, splat(builder, g[0], n), splat(builder, g[4], n), None)
        return builder.bitcast(builder.or_(r, builder.xor(b, a)), tf), r
    if kind == 9:
        return _directed_bits(builder, sh, x, g)
    if kind != 5:
        raise ValueError(f"kind {kind} has no unchecked rounding")
    # round_bits_ir's integer RNE on the signed pattern: no carry reaches the sign bit below
    # NaN's patterns (which may wrap, and are caught by the input's magnitude)
    shift = splat(builder, g[0], n) if sh is None else _c(sh, x)
    unit = builder.shl(_c(1, x), shift)
    lsb = builder.and_(builder.lshr(b, shift), _c(1, x))
    r = builder.add(builder.add(b, builder.sub(builder.lshr(unit, _c(1, x)), _c(1, x))), lsb)
    r = builder.and_(r, builder.not_(builder.sub(unit, _c(1, x))))
    return builder.bitcast(r, tf), builder.shl(b, _c(1, x))


def _directed_bits(builder, mode: int, x, g):
    """Kind 9's lazy step: the deterministic non-RNE mode ``mode`` to a format whose grid is
    float32's bit patterns cut at ``23 - m`` bits (``g[0] = m``; bf16, tf32: smallest normal
    2^-126, IEEE, infinities), by integer operations on the signed pattern of the round-to-odd
    sum ``x``: the magnitude truncated, plus one unit where the mode rounds away (a carry may
    reach infinity's pattern, as the mode's overflow wants). (the float32, the input's bits
    doubled): NaN and infinite inputs, and anything past the largest value, show up there
    (compare with ``2 * g[3]``), and the block reruns with ``_emit``."""
    from .kernels_float import DOWN, NEAREST_AWAY, TO_ODD, TOWARD_ZERO, UP
    n = lanes(x)
    ti, tf = _int_type(x), _float_type(x)
    b = builder.bitcast(x, ti)
    unit = builder.shl(_c(1, x), builder.sub(_c(23, x), splat(builder, g[0], n)))
    mask = builder.sub(unit, _c(1, x))
    kept = builder.and_(b, builder.not_(mask))
    inexact = builder.icmp_unsigned("!=", builder.and_(b, mask), _c(0, x))
    zero = _c(0, x)
    if mode == TOWARD_ZERO:
        r = kept
    elif mode in (UP, DOWN):
        negative = builder.icmp_signed("<", b, zero)
        away = builder.and_(inexact, negative if mode == DOWN else builder.not_(negative))
        r = builder.add(kept, builder.select(away, unit, zero))
    elif mode == TO_ODD:
        r = builder.or_(kept, builder.select(inexact, unit, zero))
    elif mode == NEAREST_AWAY:
        r = builder.and_(builder.add(b, builder.lshr(unit, _c(1, x))), builder.not_(mask))
    else:
        raise ValueError(f"kind 9 takes no mode {mode}")
    return builder.bitcast(r, tf), builder.shl(b, _c(1, x))


def odd_sum(builder, acc, p):
    """float32 ``acc + p`` rounded to odd by TwoSum (IR, float32 type)."""
    return builder.bitcast(_odd_sum(builder, acc, p), acc.type)


def step_ir(builder, kind: int, twosum: int, mode: int, acc, p, g):
    """IR of one accumulation step ``round(acc + p)`` (see ``kernels_gemm_micro``); ``g`` the
    list of nine i32 format parameters. Scalars or vectors of float32."""
    s = builder.bitcast(_odd_sum(builder, acc, p), acc.type) if twosum else builder.fadd(acc, p)
    return round_ir(builder, kind, mode, s, g)


def round_ir(builder, kind: int, mode: int, s, g, rz: bool = False):
    """IR of the rounding of a float32 sum ``s`` by step kind ``kind`` (0: none)."""
    from .llvm_round import _emit, _emit_directed_magic
    if kind == 0:
        return s
    if kind == 1:
        if rz:
            return _f16_explicit(builder, s, mode)
        assert mode == 0, "kind 1 rounds to nearest even unless the block runs toward zero"
        return builder.fpext(builder.fptrunc(s, like(ir.HalfType(), lanes(s))), s.type)
    if kind == 2:
        return round_bits_ir(builder, s, g[0], g[1], g[2], g[3], builder.bitcast(g[4], _F32))
    if kind == 5:
        return round_bits_ir(builder, s, g[0], g[1], g[2], g[3], builder.bitcast(g[4], _F32),
                             subnormal_path=False)
    if kind == 4:  # ``mode`` holds LEAN_* flags here (the mode itself is RNE)
        return round_magic_ir(builder, s, g[0], g[2], g[3], g[4], g[5],
                              clamp_cap=not mode & LEAN_NO_CAP, nan_select=not mode & LEAN_NO_NAN)
    if kind == 6:
        return _emit_directed_magic(builder, mode, s, *g)
    if kind == 8:  # the host rounded the sum already (``kernels_gemm_micro``'s "host" plan)
        return s
    if kind == 10:  # (the block runs in ``kernels_gemm_magic.block_mode``)
        from .kernels_gemm_magic import round_full
        return round_full(builder, mode, s, g)
    return _emit(builder, mode, s, *g)  # kinds 3 and 9 (9's full step, for its replays)


#: Step kinds (all round to nearest even) whose round-to-odd fix may run speculatively.
SPEC_KINDS = (1, 2, 4, 5)

_EXP = 0x7F800000


def _mid_params(builder, kind: int, g, n: int):
    """(mask, pattern, exponent bits of the smallest normal) of the format a step rounds to, as
    ``n``-lane i32 vectors: a float32 ``s`` in the format's normal range lies on one of its
    midpoints iff ``bits(s) & mask == pattern``."""
    if kind == 1:  # fp16: 13 bits below the quantum, smallest normal 2^-14
        sh, emin = _const(13, _I32), _const(113 << 23, _I32)
    else:
        sh, emin = g[0], builder.and_(g[1], _const(_EXP, _I32))
    one = _const(1, _I32)
    mask = builder.sub(builder.shl(one, sh), one)
    pattern = builder.shl(one, builder.sub(sh, one))
    return tuple(splat(builder, v, n) for v in (mask, pattern, emin))


def flags0(builder, n: int = 8) -> list:
    """Initial (midpoint flags, smallest magnitude's bits minus one) of a speculative span."""
    ty = ir.VectorType(_I32, n)
    return [ir.Constant(ty, [0] * n), ir.Constant(ty, [0xFFFFFFFF] * n)]


def midpoint_flags(builder, s, flags, g, kind: int):
    """Fold the float32 sum ``s`` (a vector) into a span's ``flags``: its lanes that lie on a
    midpoint of the format's grid, and the bits of the smallest nonzero ``|s|`` (minus one).

    A float32 sum ``s = RNE32(x)`` rounds to nearest even in the format exactly as ``x`` does
    unless ``s`` is one of the format's midpoints (the rounding's only discontinuities: any other
    midpoint between ``x`` and ``s`` would be a float32 value nearer to ``x``). Normal-range
    midpoints are caught by their bit pattern (the overflow threshold included), the format's
    subnormal range by magnitude: any nonzero ``|s|`` below the smallest normal flags the
    span (``flags_any``); formats whose smallest normal is float32's (kind 5) need only the
    pattern."""
    n = lanes(s)
    mask, pattern, _ = _mid_params(builder, kind, g, n)
    ti = ir.VectorType(_I32, n)
    bits = builder.bitcast(s, ti)
    hit = builder.sext(builder.icmp_unsigned("==", builder.and_(bits, mask), pattern), ti)
    mid = builder.or_(flags[0], hit)
    if kind == 5:
        return [mid, flags[1]]
    a1 = builder.sub(builder.and_(bits, _const(0x7FFFFFFF, ti)), _const(1, ti))  # 0 wraps
    low = builder.select(builder.icmp_unsigned("<", a1, flags[1]), a1, flags[1])
    return [mid, low]


def flags_any(builder, flags, g, kind: int):
    """i1: whether a span's ``flags`` ask for its exact replay."""
    n = lanes(flags[0])
    _, _, emin = _mid_params(builder, kind, g, n)
    ti = ir.VectorType(_I32, n)
    tiny = builder.icmp_unsigned("<", flags[1], builder.sub(emin, _const(1, ti)))
    hit = builder.or_(builder.icmp_unsigned("!=", flags[0], _const(0, ti)), tiny)
    return any_lane(builder, hit)
