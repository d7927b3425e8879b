"""Round-to-nearest-even of large float32 arrays with streaming (non-temporal) stores.

A quantiser reads one float32 and writes one; the write of an ordinary store first fetches the
destination line into the cache (a read for ownership), so a copy moves 12 bytes per element
while only 8 are needed. Above ``STREAM_MIN`` elements (far beyond the caches, where the output
would be evicted before anyone reads it anyway) ``quantize_f32`` hands the magic-constant RNE to
``rne_magic_stream``: one IR loop per chunk that peels to a 32-byte-aligned output address, then
rounds 8 lanes at a time (``llvm_round._emit_ne_magic``, lane-generic) and writes them with
``!nontemporal`` aligned vector stores, then finishes the tail; a ``fence seq_cst`` at the end
drains the write-combining buffers before the chunk's results can be read by another thread.
Results are those of the ordinary loop, bit for bit (same emitter; tested).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .llvm_round import _emit_ne_magic

__all__ = ["rne_magic_stream", "STREAM_MIN", "STREAM_CHUNK"]

#: Smallest array (elements) written with streaming stores: 4 MiB of float32 output.
STREAM_MIN = 1 << 20
#: Elements per parallel work item of the streaming loop.
STREAM_CHUNK = 1 << 16

_LANES = 8
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, _LANES)


@intrinsic
def rne_magic_stream(typingctx, x, out, start, stop, m, emin, sub, max_bits, over_pos, over_neg,
                     inf_bits, minpos_bits, negzero):
    """``out[i] = RNE(x[i])`` for ``start <= i < stop`` (float32, flat, C-contiguous), the
    parameters as ``kernels_f32.quantize_f32``'s, with streaming stores."""
    f1 = types.Array(types.float32, 1, "C")
    if x != f1 or out != f1:
        return None
    sig = types.void(x, out, start, stop, m, emin, sub, max_bits, over_pos, over_neg, inf_bits,
                     minpos_bits, negzero)

    def codegen(context, builder, signature, args):
        xd = context.make_array(f1)(context, builder, args[0]).data
        od = context.make_array(f1)(context, builder, args[1]).data
        lo, hi = (context.cast(builder, v, t, types.int64)
                  for v, t in zip(args[2:4], signature.args[2:4]))
        params = [builder.trunc(v, _I32) if v.type != _I32 else v for v in args[4:]]

        def one(i):  # scalar element i
            v = builder.load(builder.gep(xd, [i]))
            builder.store(_emit_ne_magic(builder, v, *params), builder.gep(od, [i]))

        addr = builder.ptrtoint(builder.gep(od, [lo]), _I64)
        peel = builder.lshr(builder.and_(builder.sub(ir.Constant(_I64, 32), builder.and_(
            addr, ir.Constant(_I64, 31))), ir.Constant(_I64, 31)), ir.Constant(_I64, 2))
        n = builder.sub(hi, lo)
        peel = builder.select(builder.icmp_signed("<", peel, n), peel, n)
        with cgutils.for_range(builder, peel) as loop:
            one(builder.add(lo, loop.index))
        v0 = builder.add(lo, peel)
        nvec = builder.sdiv(builder.sub(hi, v0), ir.Constant(_I64, _LANES))
        nt = builder.module.add_metadata([ir.Constant(_I32, 1)])
        with cgutils.for_range(builder, nvec) as loop:
            i = builder.add(v0, builder.mul(loop.index, ir.Constant(_I64, _LANES)))
            src = builder.bitcast(builder.gep(xd, [i]), _VEC.as_pointer())
            dst = builder.bitcast(builder.gep(od, [i]), _VEC.as_pointer())
            r = _emit_ne_magic(builder, builder.load(src, align=4), *params)
            store = builder.store(r, dst, align=32)
            store.set_metadata("nontemporal", nt)
        t0 = builder.add(v0, builder.mul(nvec, ir.Constant(_I64, _LANES)))
        with cgutils.for_range(builder, builder.sub(hi, t0)) as loop:
            one(builder.add(t0, loop.index))
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen
