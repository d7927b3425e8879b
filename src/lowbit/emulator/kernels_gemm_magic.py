"""Step kind 10: the deterministic modes to small formats by one magic addition made in the
host's own rounding mode (x86; ``kernels_gemm_micro`` builds the loops). ``kernels_gemm_api``
gives it the non-RNE modes of kind 6's formats, and RNE where short products would make kind
4's speculation replay most spans.

Kind 6 (``llvm_round._emit_directed_magic``) rounds ``|x|`` to nearest with a magic constant and
then works out both neighbours and picks one: about 30 instructions per vector with its overflow,
NaN and sign selects. Here the register block runs with MXCSR in a mode that makes the magic
addition itself the rounding:

* the constant carries the sum's sign, ``Cs = +-2^(e + 23 - m)`` (``e`` the sum's binary
  exponent, at least the format's smallest normal one), so ``u = s + Cs`` adds magnitudes in
  ``[C, 2C)``, where one unit in the last place is the format's quantum ``q`` at ``s``; the host
  rounds that addition, and ``u - Cs`` (exact: Sterbenz) is ``s`` on the grid:
  toward zero under MXCSR toward zero, up under up (for a negative ``s`` rounding toward
  +infinity truncates the magnitude: still up), down under down;
* to odd: toward zero, then the unit of ``u``'s last place set when ``u - Cs != s`` (``s``
  itself rounded to odd at float32 by ``odd_sum_rz``: rounding to odd twice is rounding once);
* nearest-away: toward zero after adding half a quantum with ``s``'s sign (``|x| >= g - q/2``
  iff ``|RZ32(x)| >= g - q/2`` for the float32 midpoint ``g - q/2``, so the plain truncated sum
  does);
* nearest-even: as nearest-away from ``s`` rounded to odd at float32, but where ``s`` is a
  midpoint (``t - q/2 == s``, exact comparisons; a midpoint rounded to odd at 24 bits stays one
  only if the exact sum was one) the unit of ``u``'s last place is cleared: the even neighbour;
* the sign of a zero result is put back from ``s`` (downward the exact cancellation ``x - x``
  gives -0, so the downward block's sums come from ``_plus_zero`` and the result's sign is
  ``s``'s alone).

Every step composes with the block's own float32 sum: rounding in one direction twice, on nested
grids, is rounding once (the format's grid lies on float32's: ``m <= 22``, ``emin >= -126``).

``round_full`` is the whole step: the constant's exponent also clamped at ``2^(emax + 1)`` (so
that it stays a finite float32: kind 6's formats are those where ``2^(emax + 1 + 23 - m)`` is),
then ``llvm_round._finish``'s overflow, special-value and sign selects, as every generic kernel
applies them. ``round_lazy`` leaves those out, as kinds 4, 5, 7 and 9 do: each step returns
``|s|``'s bits doubled, the block keeps their maximum, and reruns with ``round_full`` when that
passed the largest value's (``|s| <= max`` keeps the rounded value at most ``max`` in every mode
here, as ``max`` lies on the grid; NaN and infinite sums land above it).
"""

from __future__ import annotations

from llvmlite import ir

from .kernels_float import DOWN, NEAREST_AWAY, NEAREST_EVEN, TO_ODD, TOWARD_ZERO, UP
from .llvm_round import _const, _finish, _magic_grid, lanes, like, magic_constant, splat

__all__ = ["MAGIC_KIND", "MAGIC_MODES", "block_mode", "round_lazy", "round_full"]

#: The step kind (``kernels_gemm_micro``).
MAGIC_KIND = 10
#: The modes kind 10 takes.
MAGIC_MODES = (NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, UP, DOWN, TO_ODD)

_I32 = ir.IntType(32)
_SIGN, _MAG = 0x80000000, 0x7FFFFFFF


def block_mode(mode: int) -> int:
    """The host rounding mode (``kernels_float`` numbering) a kind-10 block runs in."""
    return mode if mode in (UP, DOWN) else TOWARD_ZERO


def round_lazy(builder: ir.IRBuilder, mode: int, s, g):
    """(``s`` rounded by ``mode`` to the format of parameters ``g`` (``quantize._f32_params``:
    ``g[0]`` its mantissa bits, ``g[1]`` its smallest normal exponent), ``|s|``'s bits doubled),
    for a float32 sum ``s`` (vector) made under ``block_mode(mode)``: see the module docstring.
    Right wherever ``|s|`` is at most the format's largest value."""
    r, bits, sign = _grid(builder, mode, s, g, False)
    n = lanes(s)
    return builder.bitcast(builder.or_(r, sign), like(ir.FloatType(), n)), builder.shl(
        bits, _const(1, like(_I32, n)))


def round_full(builder: ir.IRBuilder, mode: int, s, g):
    """``round_lazy``'s rounding with the overflow, NaN and infinity selects of the generic
    kernels (``llvm_round._finish``): right for every float32 sum ``s`` made under
    ``block_mode(mode)``."""
    b = builder
    n = lanes(s)
    r, bits, sign = _grid(b, mode, s, g, True)
    max_bits, over_pos, over_neg, inf_bits, negzero = (splat(b, v, n) for v in g[3:7] + g[8:9])
    ti = like(_I32, n)
    a = b.and_(bits, _const(_MAG, ti))
    over = b.select(b.icmp_unsigned("==", sign, _const(0, ti)), over_pos, over_neg)
    return _finish(b, b.and_(r, _const(_MAG, ti)), a, sign, over, max_bits, inf_bits, negzero)


def _grid(builder: ir.IRBuilder, mode: int, s, g, capped: bool):
    """(the bits of ``s`` on the grid with the sign of a zero result unsettled, ``s``'s bits,
    its sign bit); ``capped``: the constant's exponent clamped at the format's largest binade
    plus one, so that it stays finite for any ``s``."""
    b = builder
    n = lanes(s)
    ti, tf = like(_I32, n), like(ir.FloatType(), n)

    def c(v: int):
        return _const(v, ti)

    sh, magic, cap = _magic_grid(b, *(splat(b, v, n) for v in (g[0], g[1], g[3])))
    bits = b.bitcast(s, ti)
    sign = b.and_(bits, c(_SIGN))
    # C = 2^(e + 23 - m) clamped to the subnormal quantum's constant (and to the cap), as kind
    # 4's and 6's magic roundings take it (the exponent field of ``bits`` is ``|s|``'s)
    big = magic_constant(b, bits, sh, magic, cap if capped else None)
    big = b.bitcast(b.or_(big, sign), tf)   # Cs
    if mode not in MAGIC_MODES:
        raise ValueError(f"kind 10 takes no mode {mode}")
    nearest = mode in (NEAREST_AWAY, NEAREST_EVEN)
    if nearest:  # half a quantum first, with s's sign: exact, or truncated across a binade
        half = b.fmul(big, ir.Constant(tf, [2.0 ** -24] * n))
        v = b.fadd(s, half)
    else:
        v = s
    u = b.fadd(v, big)
    t = b.fsub(u, big)
    if mode == TO_ODD:
        sticky = b.zext(b.fcmp_ordered("one", t, s), ti)
        t = b.fsub(b.bitcast(b.or_(b.bitcast(u, ti), sticky), tf), big)
    elif mode == NEAREST_EVEN:
        tie = b.zext(b.fcmp_ordered("oeq", b.fsub(t, half), s), ti)
        t = b.fsub(b.bitcast(b.and_(b.bitcast(u, ti), b.not_(tie)), tf), big)
    r = b.bitcast(t, ti)
    if mode == DOWN:  # x - x is -0 downward
        r = b.and_(r, c(_MAG))
    return r, bits, sign
