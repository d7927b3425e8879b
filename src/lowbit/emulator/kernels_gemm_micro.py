"""Register-blocked float32 GEMM kernels: one compiled kernel per (inner step, outer step).

A step is ``(kind, twosum, mode)`` (its IR is in ``kernels_gemm_fast``):

* kind 0: binary32 accumulator, the host's float32 addition (RNE);
* kind 1: fp16 accumulator, ``fptrunc``/``fpext`` (RNE), or on x86 ``vcvtps2ph`` with the
  rounding immediate of ``mode`` (RNE, toward zero, up, down; blocks that run toward zero);
* kind 2: any fast-path format, RNE by integer bit operations (``round_bits_ir``);
* kind 4: the same by one exponent-scaled float addition (``round_magic_ir``; formats whose
  largest magic constant is a finite float32, i.e. all but the binary32-range ones); its
  ``mode`` field carries ``LEAN_*`` flags that drop selects the operands make unnecessary;
* kind 5: the integer rounding of kind 2 alone, for formats with float32's smallest normal
  (bf16, tf32), whose subnormals are float32's bit patterns cut short;
* kind 3: any fast-path format and deterministic mode ``mode`` by ``llvm_round._emit``;
* kind 6: the same modes by magic constants (``llvm_round._emit_directed_magic``) where they
  stay finite float32 values, as for kind 4;
* kind 7: stochastic rounding with ``mode`` random bits to a format of ``twosum`` mantissa
  bits (both fix shifts in the IR; ``kernels_gemm_sr``; x86 only): the block runs toward zero
  and rounds the truncated sum, its random bits drawn per lane from the Weyl sums the kernel
  writes for each block call; binary32 (23 bits) by ``kernels_gemm_sr.round_binary32``;
* kind 8: binary32 toward zero, up, down (the host's own addition, the block running in that
  mode), to odd (``odd_sum_rz``, toward zero) and nearest-away (``away_sum_rz``, toward
  zero); x86 only;
* kind 9: kind 3's modes for bf16 and tf32 (IEEE, float32's smallest normal), lazily: integer
  operations on the round-to-odd sum's pattern (``kernels_gemm_fast._directed_bits``), the
  block replayed with kind 3's step where a value passed the largest one or was not finite;
* kind 10: kind 6's modes and formats on x86, and RNE to kind 4's formats where products are
  short (``kernels_gemm_api.SHORT_PRODUCTS``): one magic addition in the host mode the block
  runs in (``kernels_gemm_magic``), overflow checked lazily.

``twosum=1`` rounds the float32 sum to odd first (needed unless the float32 sum provably cannot
mislead the following rounding: ``kernels_gemm_api``). ``exactness_plan`` picks how:

* on x86 hosts, for the kinds whose rounding does not depend on the host's rounding mode
  (1, 3, 5, 6), the block sets MXCSR to round toward zero and restores it on leaving: the
  float32 sum is then the truncation, and one subtraction and comparison tell whether it was
  exact (``kernels_gemm_fast.odd_sum_rz``), about 2x faster than the alternatives below;
* for the other round-to-nearest-even kinds (2, 4: their magic additions need the host to
  round to nearest), the fix runs speculatively: ``SPEC`` k-steps take the plain float32 sum
  while ``kernels_gemm_fast.midpoint_flags`` notes, row by row, every lane that lands where the
  sum could mislead, and each flagged row of the span is replayed exactly from its saved
  accumulators;
* kind-4 steps whose float32 sum can only mislead by losing a nonzero accumulator value
  entirely under a product on a midpoint (``LOST``: short products into a wide-range format,
  e.g. fp8 into e5m2; ``kernels_gemm_api._misleading``) keep the plain sums in the lazy loop
  and flag the lanes whose sum equals the product while the accumulator was not zero; a flag
  replays the block exactly, as an overflow does (``lost_flags``);
* otherwise TwoSum and a round-to-odd correction at every step.

The loops are written as LLVM IR (``block``): one loop over k keeps ``RB x VB`` vectors of
``LANES`` float32 accumulators in registers (one SSA value each, so the step's latency is hidden
by ``RB * VB`` independent chains; ``block_shape`` picks the shape per step), loads one strip of
``b`` per k and broadcasts one ``a`` value per row. LLVM auto-vectorising a scalar loop instead
had to load and store every accumulator at every step.

Caching: ``micro_block`` and ``micro_step`` are module-level intrinsics that generate a block's
and a step's IR from a literal int key (``_pack``), so each kernel's closure holds ints and
``SOURCE_DIGEST`` only, and numba caches it on disk keyed by them (the digest retires entries
when any emulator module changes, not only this file).

Order: element ``(i, j)`` accumulates k ascending, starting from ``c`` (or zero); chunking
restarts a zero partial every ``chunk`` products and folds it in with the outer step. Register
blocks are tiles only: every element sees the same arithmetic whatever the tiling or thread
count. Operands are padded by the caller (``pad``): ``a`` to a multiple of ``RB`` rows, ``b``
to a multiple of ``WIDTH`` columns; the padding is zero and its results are discarded.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import kernels_gemm_sr as sr
from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, TO_ODD, TOWARD_ZERO
from .kernels_gemm_fast import (MXCSR_RC, RZ_KINDS, SPEC_KINDS, X86, _f16_explicit,
                               away_sum_rz, flags0, flags_any,
                               intrinsic_fn, midpoint_flags, odd_sum, odd_sum_rz,
                               restore_mode, round_bits_ir, round_ir, round_unchecked, rz_mode,
                               step_ir)
from .kernels_gemm_magic import MAGIC_KIND, block_mode, round_lazy
from .kernels_gemm_sr import SR_KIND, weyl_start, wrap_steps
from .llvm_round import any_lane, lanes, splat
from .rng import WEYL
from .scratch import scratch

__all__ = ["micro_kernel", "block_shape", "exactness_plan", "overflow_plan", "pad", "LANES",
           "product_ir", "PRODUCT_F16", "PRODUCT_EMIT", "PRODUCT_BITS", "NO_PRODUCT",
           "FUSED_PRODUCT", "LOST", "make_step", "micro_block", "micro_step", "SOURCE_DIGEST"]

LANES = 8         # float32 lanes per vector (one AVX2 register; AVX-512 hosts split nothing)
#: Register blocks (rows, vectors per row): one broadcast of ``a`` per row and k, one strip of
#: ``b`` per vector; ``rows * vectors`` accumulator chains hide a step's latency. Steps of a few
#: instructions take 4 x 3; heavier ones 5 x 2, whose fewer live vectors leave registers for the
#: rounding's constants (measured: e4m3fn accumulators 8.7-9.2 against 5.7-6.1 GMAC/s).
LIGHT_SHAPE, HEAVY_SHAPE = (4, 3), (5, 2)
#: Stochastic steps (about 35 instructions per vector, a dozen constants): 2 x 2 (measured
#: against 3 x 2, 4 x 1, 2 x 3 and 4 x 2 on one thread: within the noise, fewest spills).
SR_SHAPE = (2, 2)
#: The step kind of binary32 in a directed mode by the host's own rounding.
HOST_KIND = 8
SPEC = 4          # k-steps per speculative span (see ``_make_block``)
#: The ``twosum`` field of kind-4 steps whose float32 sum can mislead the rounding only by
#: losing a nonzero accumulator value entirely under a product on a midpoint
#: (``kernels_gemm_api._misleading``): such a sum equals the product, and the lazy loop flags
#: those lanes (``lost_flags``; ``exactness_plan`` "lost").
LOST = 2
#: ``prod`` of blocks whose products are exact (``product_ir``).
NO_PRODUCT = (0, 0)
#: Product rounding kinds: fp16 by ``vcvtps2ph`` (explicit rounding immediate on x86, else
#: ``fptrunc``: RNE only), any float32-kernel format and deterministic mode by
#: ``llvm_round._emit``, and RNE to formats with float32's smallest normal (bf16, tf32) by
#: kind 5's integer rounding (``round_bits_ir`` on kind 5's parameters). The last two are
#: integer operations: right whatever mode the block runs in.
PRODUCT_F16, PRODUCT_EMIT, PRODUCT_BITS = 1, 3, 5
#: ``prod`` of blocks whose products float32 cannot hold (binary32 operands: up to 48 bits)
#: and whose step is kind 0 (binary32, RNE): ``llvm.fma`` rounds ``acc + a * b`` once from the
#: exact value, which is the step itself.
FUSED_PRODUCT = (7, 0)

_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, LANES)

#: Cached on disk: numba keys a closure's cache entry by its pickled cells, which are ints (the
#: steps' keys, the block shape) and ``SOURCE_DIGEST``; the IR is generated by the intrinsics
#: ``micro_block`` and ``micro_step`` from the literal keys.
_jit_closure = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)


def _source_digest() -> str:
    """sha256 of this package's sources: numba invalidates a cache entry when the kernel's own
    file changes, but the micro kernels' IR comes from several modules."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


SOURCE_DIGEST = _source_digest()


def _vec_ptr(builder, data, offset):
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


def _fmuladd(module: ir.Module, fused: bool = False) -> ir.Function:
    """``llvm.fmuladd`` on float32 vectors: one FMA instruction where the host has one, else a
    multiply and an add (identical results where every product is exact in float32);
    ``fused``: ``llvm.fma``, always one rounding (a library call on hosts without FMA)."""
    name = "fma" if fused else "fmuladd"
    return intrinsic_fn(module, f"llvm.{name}.v{LANES}f32", _VEC, [_VEC] * 3)


def _plus_zero(builder, acc, p):
    """``acc + p`` in the host's (downward) mode, with the sign of an exact zero as lowbit's
    generic kernels give it: negative only when both terms are (IEEE gives -0 downward)."""
    s = builder.fadd(acc, p)
    ti = ir.VectorType(ir.IntType(32), LANES)
    sign = builder.and_(builder.and_(builder.bitcast(acc, ti), builder.bitcast(p, ti)),
                        ir.Constant(ti, [0x80000000] * LANES))
    zero = builder.fcmp_ordered("==", s, ir.Constant(s.type, None))
    return builder.select(zero, builder.bitcast(sign, s.type), s)


def product_ir(builder, prod: tuple[int, int], p, gp):
    """The exact float32 product ``p`` (a vector) rounded as ``prod`` = (kind, mode) says
    (``PRODUCT_*``; kind 0: unchanged), with the product format's parameters ``gp``
    (``quantize._f32_params``). All three ignore the host's rounding mode, so they hold
    in every block plan."""
    from .llvm_round import _emit
    kind, mode = prod
    if kind == 0:
        return p
    if kind == PRODUCT_F16:
        if X86:
            return _f16_explicit(builder, p, mode)
        assert mode == 0, "fp16 products round to nearest even off x86"
        h = builder.fptrunc(p, ir.VectorType(ir.HalfType(), LANES))
        return builder.fpext(h, p.type)
    if kind == PRODUCT_EMIT:
        return _emit(builder, mode, p, *gp)
    if kind == PRODUCT_BITS:
        return round_bits_ir(builder, p, gp[0], gp[1], gp[2], gp[3],
                             builder.bitcast(gp[4], ir.FloatType()), subnormal_path=False)
    raise ValueError(f"product rounding kind {kind}")


def _loop(builder, name: str, k_start, k_end, carried, body):
    """``do { k_next, carried = body(k, carried) } while (k_next < k_end)`` as IR (the caller
    guarantees ``k_start < k_end``); returns the values ``carried`` leaves the loop with. ``body``
    may add blocks of its own."""
    pre = builder.block
    loop = builder.append_basic_block(name)
    builder.branch(loop)
    builder.position_at_end(loop)
    k = builder.phi(_I64)
    k.add_incoming(k_start, pre)
    phis = []
    for x in carried:
        phi = builder.phi(x.type)
        phi.add_incoming(x, pre)
        phis.append(phi)
    k_next, new = body(k, phis)
    tail = builder.block
    k.add_incoming(k_next, tail)
    for phi, x in zip(phis, new):
        phi.add_incoming(x, tail)
    after = builder.append_basic_block(name + ".end")
    builder.cbranch(builder.icmp_signed("<", k_next, k_end), loop, after)
    builder.position_at_end(after)
    return new


def block_shape(step: tuple[int, int, int]) -> tuple[int, int]:
    """(rows, columns) of the register block of inner step ``step``: the columns a multiple of
    ``LANES``."""
    kind, twosum, _ = step
    if kind == SR_KIND:
        rb, vb = SR_SHAPE
    else:
        light = kind in (0, HOST_KIND) or (kind == 1 and not twosum)
        rb, vb = LIGHT_SHAPE if light else HEAVY_SHAPE
    return rb, vb * LANES


def overflow_plan(kind: int, twosum: int) -> str:
    """``"lazy"`` where a block's k-loop skips the per-step overflow and NaN selects of kinds 4,
    5, 7, 9 and 10 (``round_unchecked``, ``kernels_gemm_sr.finish_unchecked``,
    ``kernels_gemm_magic.round_lazy``) and tracks the largest rounded magnitude instead: if it
    ever passed the format's largest value, the block is run again with the full step from its
    starting accumulators (still in memory; kind 7's fail flag as it was). ``"eager"``
    otherwise. (An fp8 accumulator rounding up or down drifts by about half a quantum per step
    and overflows within a few hundred products of unit size; its blocks then all replay, at
    the full step's speed plus the lazy loop's. Short sums, e.g. chunks, keep the lazy speed.)"""
    if kind == 4 and twosum in (0, LOST) or kind == 5 and exactness_plan(kind, twosum) in (
            "rz", "plain"):
        return "lazy"
    if kind in (SR_KIND, 9, MAGIC_KIND):
        return "lazy"
    return "eager"


def exactness_plan(kind: int, twosum: int) -> str:
    """How a block makes each step round the exact sum rather than the float32 one: ``"plain"``
    (the float32 sum cannot mislead: no fix), ``"rz"`` (the block runs with the host rounding
    toward zero and ``odd_sum_rz`` rounds each sum to odd: x86 hosts, kinds whose rounding does
    not depend on the host's mode), ``"speculate"`` (the other round-to-nearest-even kinds),
    ``"twosum"`` (round to odd by TwoSum at every step), ``"lost"`` (kind 4 with ``LOST``: the
    plain sums, lanes that lose an accumulator flagged, lazily), ``"truncate"`` (stochastic
    rounding: toward zero, the truncated sum itself; ``kernels_gemm_sr``) or ``"host"``
    (binary32 in a directed mode, kind 10: the block runs in ``kernels_gemm_magic.block_mode``,
    and the host's sum is the step or kind 10's input; to odd with ``odd_sum_rz``)."""
    if kind == SR_KIND:
        return "truncate"
    if kind == 4 and twosum == LOST:
        return "lost"
    if kind in (HOST_KIND, MAGIC_KIND):
        return "host"
    if not twosum:
        return "plain"
    if kind in RZ_KINDS and X86:  # (kind 1 in a directed mode only exists on x86)
        return "rz"
    return "speculate" if kind in SPEC_KINDS else "twosum"


def lost_flags(builder, s, acc, p, flags):
    """Fold into a row's ``flags`` (i32 lanes) the lanes whose float32 sum ``s = acc + p`` lost
    a nonzero ``acc`` entirely (``s == p``)."""
    ti = ir.VectorType(ir.IntType(32), lanes(s))
    zero = ir.Constant(s.type, None)
    hit = builder.and_(builder.fcmp_ordered("==", s, p), builder.fcmp_ordered("!=", acc, zero))
    return builder.or_(flags, builder.sext(hit, ti))


def _make_block(kind: int, twosum: int, mode: int, RB: int, VB: int,  # noqa: N803
                prod: tuple[int, int] = NO_PRODUCT):
    """``block(acc, a, b, i0, j0, k0, k1, g, weyl)``: for k in [k0, k1) and r < RB,
    ``acc[r, :] = step(acc[r, :], a[i0 + r, k] * b[k, j0:j0 + WIDTH])`` with the accumulators in
    registers. ``acc`` float32 [RB, WIDTH], ``a`` float32 [M, K], ``b`` float32 [K, N], all
    C-contiguous; ``g`` the step's nine int64 parameters (then the product rounding's nine
    when ``prod`` has one); ``weyl`` uint32 [RB * WIDTH + 1]: a stochastic step's Weyl sums at
    k0 per lane, and its fail flag last (other kinds ignore it).

    ``prod`` = (kind, mode) rounds each exact float32 product first (``product_ir``); the sums
    then add the rounded products (no FMA). ``FUSED_PRODUCT`` (kind 0 steps only) takes each
    step as one ``llvm.fma`` of products float32 cannot hold.

    A step that needs the round-to-odd fix gets it as ``exactness_plan`` says: toward zero
    (the whole block runs with MXCSR set so, restored before the stores), speculatively
    (``SPEC`` k-steps at a time: ``kernels_gemm_fast.midpoint_flags``; each row of a span is
    redone exactly from its saved accumulators when any of its float32 sums may have misled the
    rounding), or by TwoSum. ``overflow_plan`` says whether the overflow checks run lazily.
    Kind 5 inner steps carry their shift in ``mode`` (0: read it from ``g``)."""
    plan = exactness_plan(kind, twosum)
    rz, speculate, truncate = plan == "rz", plan == "speculate", plan == "truncate"
    lost = plan == "lost"
    host = plan == "host"
    lazy = overflow_plan(kind, twosum) == "lazy"

    def block(typingctx, acc, a, b, i0, j0, k0, k1, g, weyl):
        f2 = types.Array(types.float32, 2, "C")
        u1 = types.Array(types.uint32, 1, "C")
        if (acc, a, b, weyl) != (f2, f2, f2, u1) or not isinstance(g, types.UniTuple):
            return None
        sig = types.void(acc, a, b, i0, j0, k0, k1, g, weyl)

        def codegen(context, builder, signature, args):
            acc_v, a_v, b_v, i0_v, j0_v, k0_v, k1_v, g_v, weyl_v = args
            arrays = [context.make_array(f2)(context, builder, v) for v in (acc_v, a_v, b_v)]
            acc_d, a_d, b_d = (x.data for x in arrays)
            weyl_d = context.make_array(u1)(context, builder, weyl_v).data
            lda = cgutils.unpack_tuple(builder, arrays[1].shape, 2)[1]
            ldb = cgutils.unpack_tuple(builder, arrays[2].shape, 2)[1]
            i0_, j0_, k0_, k1_ = (context.cast(builder, v, t, types.int64) for v, t in
                                  zip((i0_v, j0_v, k0_v, k1_v), signature.args[3:7]))
            gv = [builder.trunc(builder.extract_value(g_v, i), ir.IntType(32)) for i in range(9)]
            gp = [builder.trunc(builder.extract_value(g_v, i), ir.IntType(32))
                  for i in range(9, 18)] if prod[0] not in (0, FUSED_PRODUCT[0]) else None

            def mul(x, y):
                """A product of the block: exact, then rounded as ``prod`` says."""
                return product_ir(builder, prod, builder.fmul(x, y), gp)
            WIDTH = VB * LANES  # noqa: N806
            cells = [(r, v) for r in range(RB) for v in range(VB)]
            offsets = [ir.Constant(_I64, r * WIDTH + v * LANES) for r, v in cells]
            init = [builder.load(_vec_ptr(builder, acc_d, o), align=4) for o in offsets]
            a_rows = [builder.mul(builder.add(i0_, ir.Constant(_I64, r)), lda) for r in range(RB)]
            one = ir.Constant(_I64, 1)

            def operands(k):
                b_row = builder.add(builder.mul(k, ldb), j0_)
                strips = [builder.load(_vec_ptr(builder, b_d, builder.add(
                    b_row, ir.Constant(_I64, v * LANES))), align=4) for v in range(VB)]
                scal = [builder.load(builder.gep(a_d, [builder.add(a_rows[r], k)]))
                        for r in range(RB)]
                return [splat(builder, s, LANES) for s in scal], strips

            def sums(k, accs, rows):
                """The float32 sums of one k-step for ``rows``: rounded to odd where the plan
                asks (``round_ir`` then rounds them once)."""
                bcast, strips = operands(k)
                where = [(r, v) for r in rows for v in range(VB)]
                if rz or host and mode in (TO_ODD, NEAREST_EVEN):  # (no FMA: products stay live)
                    return [odd_sum_rz(builder, x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                if host and kind == HOST_KIND and mode == NEAREST_AWAY:
                    return [away_sum_rz(builder, x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                if host and mode == DOWN:  # an exact zero is -0 downward; lowbit's is +0
                    return [_plus_zero(builder, x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                if host:  # (``llvm.fmuladd`` gave round-to-nearest sums under a changed mode)
                    return [builder.fadd(x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                if twosum:  # TwoSum needs the product itself
                    return [odd_sum(builder, x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                if prod[0] and prod != FUSED_PRODUCT:
                    return [builder.fadd(x, mul(bcast[r], strips[v]))
                            for x, (r, v) in zip(accs, where)]
                # the product is exact (the same float32 sum), or the step is fused
                fma = _fmuladd(builder.module, prod == FUSED_PRODUCT)
                return [builder.call(fma, [bcast[r], strips[v], x])
                        for x, (r, v) in zip(accs, where)]

            def exact(k, accs, rows=range(RB)):
                if truncate:
                    return builder.add(k, one), stochastic(k, accs)
                return builder.add(k, one), [round_ir(builder, kind, mode, s, gv, rz)
                                             for s in sums(k, accs, rows)]

            def stochastic(k, accs, top=None):
                """One k-step of kind 7 (``kernels_gemm_sr``): truncated sums rounded with
                each lane's random bits (its Weyl sum at k0 plus ``WEYL`` per step). With
                ``top`` (the lazy plan's running maximum) the overflow selects are left out and
                the new maximum comes last."""
                if twosum == sr.BINARY32_BITS:
                    return binary32_stochastic(k, accs, top)
                gr = sr.grid(builder, gv, mode, LANES, twosum)

                def lanes_at(kk, weyl_base):
                    return [sr.decide(builder, builder.fadd(x, p), x, p, w, gr)
                            for x, p, w in sr_terms(kk, weyl_base, accs)]

                cells_ = lanes_at(k, weyl_d)
                ts = sr.resolve_all(builder, cells_, gr, fail_ptr, redo=lambda: lanes_at(
                    sr.opaque(builder, k), sr.opaque(builder, weyl_d)))
                if top is None:
                    return [sr.finish(builder, ln, t, gr, gv) for ln, t in zip(cells_, ts)]
                out = []
                for ln, t in zip(cells_, ts):
                    y, mag = sr.finish_unchecked(builder, ln, t, gr)
                    out.append(y)
                    top = builder.select(builder.icmp_unsigned(">", mag, top), mag, top)
                return out + [top]

            def sr_terms(kk, weyl_base, accs):
                """(accumulator, product, the lane's Weyl sums at step ``kk``) of every cell:
                the Weyl sums at k0 (``weyl_base``) plus ``WEYL`` per step."""
                bcast, strips = operands(kk)
                i32 = ir.IntType(32)
                step = splat(builder, builder.mul(builder.trunc(builder.sub(kk, k0_), i32),
                                                  ir.Constant(i32, WEYL)), LANES)
                out = []
                for x, (r, v), o in zip(accs, cells, offsets):
                    w0 = builder.load(builder.bitcast(
                        builder.gep(weyl_base, [o]), ir.VectorType(i32, LANES).as_pointer()),
                        align=4)
                    out.append((x, mul(bcast[r], strips[v]), builder.add(w0, step)))
                return out

            def binary32_stochastic(k, accs, top=None):
                """``stochastic`` for a binary32 accumulator (``kernels_gemm_sr.
                round_binary32``): no ambiguous lanes and no selects to leave out; with
                ``top`` the largest magnitude comes last, as the lazy plan expects."""
                ti = ir.VectorType(ir.IntType(32), LANES)
                out = []
                for x, p, w in sr_terms(k, weyl_d, accs):
                    y = sr.round_binary32(builder, builder.fadd(x, p), x, p, w, mode)
                    out.append(y)
                    if top is not None:
                        mag = builder.and_(builder.bitcast(y, ti),
                                           ir.Constant(ti, [0x7FFFFFFF] * LANES))
                        top = builder.select(builder.icmp_unsigned(">", mag, top), mag, top)
                return out if top is None else out + [top]

            def plain_sums(k, accs, flags):
                """The plain float32 sums of one k-step, and ``flags`` with the lanes that lost
                a nonzero accumulator (``lost_flags``)."""
                bcast, strips = operands(k)
                out = []
                for x, (r, v) in zip(accs, cells):
                    p = mul(bcast[r], strips[v])
                    out.append(builder.fadd(x, p))
                    flags = lost_flags(builder, out[-1], x, p, flags)
                return out, flags

            def unchecked(k, state):
                """One k-step without the overflow selects; ``state`` is the accumulators,
                the "lost" plan's flags, and the largest magnitude's bits so far."""
                if kind == SR_KIND:
                    return builder.add(k, one), stochastic(k, state[:-1], state[-1])
                new, top = [], state[-1]
                if lost:
                    sums_, flags = plain_sums(k, state[:-2], state[-2])
                else:
                    sums_ = sums(k, state[:-1], range(RB))
                for s in sums_:
                    if kind == MAGIC_KIND:
                        y, mag = round_lazy(builder, mode, s, gv)
                    else:
                        y, mag = round_unchecked(builder, kind, s, gv,
                                                 mode if kind == 9 else
                                                 (mode or None) if kind == 5 else None)
                    new.append(y)
                    top = builder.select(builder.icmp_unsigned(">", mag, top), mag, top)
                return builder.add(k, one), new + ([flags] if lost else []) + [top]

            def lazy_run(k_start, k_end):
                """The unchecked loop, and the exact one again if a magnitude passed the
                largest value (an overflow: rare, and the whole block is redone)."""
                ti = ir.VectorType(ir.IntType(32), LANES)
                zeros = ir.Constant(ti, [0] * LANES)
                state = _loop(builder, "lazy.k", k_start, k_end,
                              list(init) + [zeros] * (2 if lost else 1), unchecked)
                if kind == SR_KIND:
                    top = gv[3]
                elif kind in (9, MAGIC_KIND):
                    top = builder.shl(gv[3], ir.Constant(gv[3].type, 1))
                else:
                    top = gv[2] if kind == 4 else builder.shl(gv[2], ir.Constant(gv[2].type, 1))
                over = any_lane(builder, builder.icmp_unsigned(">", state[-1],
                                                               splat(builder, top, LANES)))
                if lost:  # (a lane that lost an accumulator also replays the block)
                    over = builder.or_(over, any_lane(builder, builder.icmp_unsigned(
                        "!=", state[-2], zeros)))
                fast_end = builder.block
                redo = builder.append_basic_block("lazy.redo")
                join = builder.append_basic_block("lazy.join")
                builder.cbranch(over, redo, join)
                builder.position_at_end(redo)
                if kind == SR_KIND:
                    builder.store(fail0, fail_ptr)
                again = _loop(builder, "lazy.exact", k_start, k_end, init, exact)
                redo_end = builder.block
                builder.branch(join)
                builder.position_at_end(join)
                out = []
                for x_fast, x_exact in zip(state[:len(cells)], again):
                    phi = builder.phi(_VEC)
                    phi.add_incoming(x_fast, fast_end)
                    phi.add_incoming(x_exact, redo_end)
                    out.append(phi)
                return out

            def fast(k, state):
                """One k-step on the plain float32 sums; ``state`` is the accumulators, one
                midpoint flag vector per row, and the span's smallest magnitude."""
                bcast, strips = operands(k)
                fma = _fmuladd(builder.module)
                accs, mids, low = state[:len(cells)], list(state[len(cells):-1]), state[-1]
                new = []
                for x, (r, v) in zip(accs, cells):
                    s = (builder.fadd(x, mul(bcast[r], strips[v])) if prod[0] else
                         builder.call(fma, [bcast[r], strips[v], x]))
                    mids[r], low = midpoint_flags(builder, s, [mids[r], low], gv, kind)
                    new.append(round_ir(builder, kind, mode, s, gv))
                return builder.add(k, one), new + mids + [low]

            def span(kb, accs):
                """SPEC k-steps from kb speculatively; each row whose lanes flag is redone
                exactly from the saved accumulators."""
                kend = builder.add(kb, ir.Constant(_I64, SPEC))
                kend = builder.select(builder.icmp_signed("<", kend, k1_), kend, k1_)
                for x, slot in zip(accs, saved):
                    builder.store(x, slot)
                mid0, low0 = flags0(builder)
                state = _loop(builder, "spec.fast", kb, kend, list(accs) + [mid0] * RB + [low0],
                              fast)
                out, low = [], state[-1]
                for r in range(RB):
                    row = slice(r * VB, (r + 1) * VB)
                    risky = flags_any(builder, [state[len(cells) + r], low], gv, kind)
                    fast_end = builder.block
                    redo = builder.append_basic_block("spec.redo")
                    join = builder.append_basic_block("spec.join")
                    builder.cbranch(risky, redo, join)
                    builder.position_at_end(redo)
                    again = _loop(builder, "spec.exact", kb, kend,
                                  [builder.load(slot) for slot in saved[row]],
                                  lambda k, xs, r=r: exact(k, xs, (r,)))
                    redo_end = builder.block
                    builder.branch(join)
                    builder.position_at_end(join)
                    for x_fast, x_exact in zip(state[row], again):
                        phi = builder.phi(_VEC)
                        phi.add_incoming(x_fast, fast_end)
                        phi.add_incoming(x_exact, redo_end)
                        out.append(phi)
                return kend, out

            if speculate:
                saved = [cgutils.alloca_once(builder, _VEC) for _ in cells]
            if truncate:  # kind 7's fail flag, and its value on entry
                fail_ptr = builder.gep(builder.bitcast(weyl_d, ir.IntType(32).as_pointer()),
                                       [ir.Constant(_I64, RB * WIDTH)])
                fail0 = builder.load(fail_ptr)
            if rz or truncate or host:
                host_mode = rz_mode(builder, MXCSR_RC[block_mode(mode) if host else TOWARD_ZERO])
            entry = builder.block
            work = builder.append_basic_block("block.work")
            done = builder.append_basic_block("block.done")
            builder.cbranch(builder.icmp_signed("<", k0_, k1_), work, done)
            builder.position_at_end(work)
            if lazy:
                final = lazy_run(k0_, k1_)
            else:
                final = _loop(builder, "block.k", k0_, k1_, init, span if speculate else exact)
            last = builder.block
            builder.branch(done)
            builder.position_at_end(done)
            outs = []
            for x0, x1 in zip(init, final):  # every phi first, then the stores
                out = builder.phi(_VEC)
                out.add_incoming(x0, entry)
                out.add_incoming(x1, last)
                outs.append(out)
            if rz or truncate or host:
                restore_mode(builder, host_mode)
            for out, o in zip(outs, offsets):
                builder.store(out, _vec_ptr(builder, acc_d, o), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return block


def _pack(values) -> int:
    """One int64 of small non-negative ints (a kernel's compile-time key, a literal in numba)."""
    key = 0
    for v in values:
        if not 0 <= v < 256:
            raise ValueError(f"kernel parameter {v} outside 0..255 in {tuple(values)}")
        key = key << 8 | v
    return key | 1 << 8 * len(values)  # (a leading 1 keeps the count)


def _unpack(key: int) -> tuple[int, ...]:
    out = []
    while key > 1:
        out.append(key & 255)
        key >>= 8
    return tuple(reversed(out))


@lru_cache(maxsize=None)
def _block_typer(key: int):
    """The typing function of ``block`` for the key ``_pack(step + prod)``."""
    kind, twosum, mode, pkind, pmode = _unpack(key)
    rb, width = block_shape((kind, twosum, mode))
    return _make_block(kind, twosum, mode, rb, width // LANES, (pkind, pmode))


@intrinsic(prefer_literal=True)
def micro_block(typingctx, key, acc, a, b, i0, j0, k0, k1, g, weyl):
    """``_make_block``'s block for the literal ``key`` (``_pack(step + prod)``): a module-level
    intrinsic, so that the kernels calling it cache on disk (their closures hold ints only)."""
    if not isinstance(key, types.IntegerLiteral):
        return None
    typed = _block_typer(key.literal_value)(typingctx, acc, a, b, i0, j0, k0, k1, g, weyl)
    if typed is None:
        return None
    sig, codegen = typed
    return types.void(key, *sig.args), lambda context, builder, _, args: codegen(
        context, builder, sig, args[1:])


@intrinsic(prefer_literal=True)
def micro_step(typingctx, key, acc, p, g):
    """The outer step ``step_ir`` of the literal ``key`` (``_pack((kind, twosum, mode))``):
    float32 ``acc``, ``p``; ``g`` nine int64 format parameters."""
    if (not isinstance(key, types.IntegerLiteral) or acc != types.float32
            or p != types.float32 or not isinstance(g, types.BaseTuple) or len(g) != 9):
        return None  # (g: literal ints too, where a caller's tuple is a constant)
    kind, twosum, mode = _unpack(key.literal_value)

    def codegen(context, builder, sig, args):
        gv = [builder.trunc(context.cast(builder, builder.extract_value(args[3], i), g[i],
                                         types.int64), ir.IntType(32)) for i in range(9)]
        return step_ir(builder, kind, twosum, mode, args[1], args[2], gv)

    return types.float32(key, acc, p, g), codegen


def make_step(kind: int, twosum: int, mode: int):
    """``step(acc, p, g) -> float32``: ``micro_step`` for constant (kind, twosum, mode), as
    the kernels' outer step runs it (tests call it on single values)."""
    key = _pack((kind, twosum, mode))

    @numba.njit(inline="always")
    def step(acc, p, g):
        return micro_step(key, acc, p, g)

    return step


@numba.njit(inline="always")
def _run_block(key, rb, width, stochastic, acc, a, b, i0, j0, k0, k1, g, weyl, sr, n):
    """``micro_block`` over [k0, k1); a stochastic step first writes each lane's Weyl sum at
    the call's first k, and splits the range where a lane's stream index would wrap its low
    word (``kernels_gemm_sr``). ``sr``: (key, global k of a's column 0, K)."""
    if not stochastic:
        micro_block(key, acc, a, b, i0, j0, k0, k1, g, weyl)
        return
    k = k0
    while k < k1:
        steps = k1 - k
        for r in range(rb):
            for t in range(width):
                index = ((i0 + r) * n + j0 + t) * sr[2] + sr[1] + k
                weyl[r * width + t] = weyl_start(sr[0], index)
                steps = min(steps, wrap_steps(index))
        micro_block(key, acc, a, b, i0, j0, k, k + steps, g, weyl)
        k += steps


def _make_kernel(key_in: int, key_out: int, RB: int, WIDTH: int, stochastic: bool):  # noqa: N803
    """The parallel kernel for block key ``key_in`` and outer step key ``key_out``. Its closure
    holds ints and the emulator's source digest only, which key its disk cache entry."""
    source = SOURCE_DIGEST

    @_jit_closure
    def kernel(a, b, c, out, has_c, g_in, g_out, chunk, sr, fails):
        """a float32 [Mp, K] (Mp a multiple of RB), b float32 [K, Np] (Np a multiple of WIDTH),
        c float64 [M, N] (if has_c); out float64 [M, N]; ``sr`` the stochastic step's (key,
        global k of a's column 0, K); ``fails[w]`` set where work item ``w`` could not decide
        a stochastic step exactly (its results are then not to be used)."""
        source  # noqa: B018 (referenced: the digest is a cell of this closure, so in its key)
        m, n = out.shape
        kk = a.shape[1]
        nrb = a.shape[0] // RB
        ncb = b.shape[1] // WIDTH
        step = kk if chunk <= 0 else chunk
        for wi in prange(nrb * ncb):
            i0 = (wi % nrb) * RB   # row blocks inner: one strip of b stays in cache
            j0 = (wi // nrb) * WIDTH
            rr = min(RB, m - i0)
            w = min(WIDTH, n - j0)
            weyl = np.zeros(RB * WIDTH + 1, np.uint32)
            acc = np.zeros((RB, WIDTH), np.float32)
            if has_c == 1:
                for r in range(rr):
                    for t in range(w):
                        acc[r, t] = np.float32(c[i0 + r, j0 + t])
            if chunk <= 0:
                _run_block(key_in, RB, WIDTH, stochastic, acc, a, b, i0, j0, 0, kk, g_in, weyl,
                           sr, n)
            else:
                part = np.zeros((RB, WIDTH), np.float32)
                for k0 in range(0, kk, step):
                    _run_block(key_in, RB, WIDTH, stochastic, part, a, b, i0, j0, k0,
                               min(kk, k0 + step), g_in, weyl, sr, n)
                    for r in range(RB):
                        for t in range(WIDTH):
                            acc[r, t] = micro_step(key_out, acc[r, t], part[r, t], g_out)
                            part[r, t] = np.float32(0.0)
            fails[wi] = weyl[RB * WIDTH]
            for r in range(rr):
                for t in range(w):
                    out[i0 + r, j0 + t] = np.float64(acc[r, t])

    return kernel


@lru_cache(maxsize=None)
def micro_kernel(step_in: tuple[int, int, int], step_out: tuple[int, int, int],
                 prod: tuple[int, int] = (0, 0)):
    """The kernel for inner and outer steps ``(kind, twosum, mode)`` (see the module
    docstring) and product rounding ``prod`` (``product_ir``; its parameters follow the inner
    step's in ``g_in``); operands padded by ``pad``. Compiled on its first call (about 2.5 s),
    then cached on disk like every other kernel (about 0.1 s to load in a new process)."""
    rb, width = block_shape(step_in)
    return _make_kernel(_pack(step_in + tuple(prod)), _pack(step_out), rb, width,
                        step_in[0] == SR_KIND)


#: ``sr`` argument of kernels without a stochastic step.
NO_SR = (0, 0, 0)


def work_items(a32: np.ndarray, b32: np.ndarray, step_in) -> int:
    """The number of register blocks (the kernel's ``fails`` length) for padded operands."""
    rb, width = block_shape(step_in)
    return (a32.shape[0] // rb) * (b32.shape[1] // width)


def pad(a: np.ndarray, b: np.ndarray, rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 copies of ``a`` with rows and ``b`` with columns zero-padded to a register block
    of ``rows x width`` (one pass each: the conversion writes into the padded buffer), in this
    thread's scratch buffers (valid until the next ``pad``)."""
    m, k = a.shape
    n = b.shape[1]
    a32 = scratch("micro.a", (-(-m // rows) * rows, k), np.float32)
    b32 = scratch("micro.b", (k, -(-n // width) * width), np.float32)
    a32[:m] = a
    a32[m:] = 0.0
    b32[:, :n] = b
    b32[:, n:] = 0.0
    return a32, b32
