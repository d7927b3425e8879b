/* The instruction-level ceiling of an fp16 accumulator rounded after every MAC on an AVX2 + F16C
 * core (benchmarks/README.md). Each loop keeps 4 x 3 vectors of 8 float32 accumulators in
 * registers, broadcasts 4 values of a and loads 3 vectors of b per k (lowbit's register block),
 * with operands in L1: no memory traffic, no threads, no bookkeeping. What a real GEMM kernel adds
 * only slows it down, so each figure is an upper bound for that loop.
 *
 *   fma          acc = fma(a, b, acc): binary32 accumulation (exact fp16 products)
 *   fma+cvt      round(fma(a, b, acc)) by vcvtps2ph / vcvtph2ps: the fastest fp16 loop, but not
 *                bit-exact (the float32 sum is rounded twice)
 *   rz-plan      lowbit's exact step: the block runs toward zero, the sum is made round-to-odd
 *                (subtraction, comparison, or), then vcvtps2ph with an explicit RNE immediate
 *   spec-full    the speculative alternative: fma, then flags for fp16 midpoints and for sums
 *                in fp16's subnormal range (a span with a flag is replayed), then the cvt pair
 *   magic        round by one exponent-scaled constant (3 integer and 2 float operations)
 *                instead of the cvt pair: not exact either (no double-rounding check)
 *
 * Build and run (one core):  cc -O3 -mavx2 -mfma -mf16c benchmarks/fp16_ceiling.c -o /tmp/ceil
 *                            /tmp/ceil
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define CELLS 12
#define STEPS 256
#define REPS 20000

static float A[STEPS * 4] __attribute__((aligned(32)));
static float B[STEPS * 24] __attribute__((aligned(32)));

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static inline __m256 half_round(__m256 s) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

#define RUN(name, ...)                                                                     \
    do {                                                                                   \
        __m256 acc[CELLS];                                                                 \
        for (int i = 0; i < CELLS; i++) acc[i] = _mm256_setzero_ps();                      \
        double t = seconds();                                                              \
        for (int rep = 0; rep < REPS; rep++)                                               \
            for (int k = 0; k < STEPS; k++) {                                              \
                __m256 bv[3], av[4];                                                       \
                for (int v = 0; v < 3; v++) bv[v] = _mm256_load_ps(B + k * 24 + v * 8);    \
                for (int r = 0; r < 4; r++) av[r] = _mm256_broadcast_ss(A + k * 4 + r);    \
                for (int i = 0; i < CELLS; i++) {                                          \
                    __m256 x = acc[i], a = av[i / 3], b = bv[i % 3];                       \
                    __VA_ARGS__;                                                               \
                    acc[i] = x;                                                            \
                }                                                                          \
            }                                                                              \
        t = seconds() - t;                                                                 \
        for (int i = 0; i < CELLS; i++) sink += _mm256_cvtss_f32(acc[i]);                  \
        double macs = (double)REPS * STEPS * CELLS * 8;                                    \
        if (base == 0) base = macs / t;                                                    \
        printf("%-10s %6.2f GMAC/s per core  %5.2f ns per 8 MACs  %5.2fx fma\n", name,     \
               macs / t / 1e9, t / (macs / 8) * 1e9, macs / t / base);                     \
    } while (0)

int main(void) {
    for (int i = 0; i < STEPS * 4; i++) A[i] = (float)((i * 37 % 101) - 50) / 64.0f;
    for (int i = 0; i < STEPS * 24; i++) B[i] = (float)((i * 53 % 97) - 48) / 32.0f;
    const __m256i one = _mm256_set1_epi32(1), abs = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256i mask13 = _mm256_set1_epi32(0x1FFF), mid = _mm256_set1_epi32(0x1000);
    const __m256i expo = _mm256_set1_epi32(0x7F800000), emin = _mm256_set1_epi32((127 - 14) << 23);
    const __m256i magic = _mm256_set1_epi32((13 << 23) + 0x400000);
    __m256i flag = _mm256_setzero_si256(), low = _mm256_set1_epi32(-1);
    double base = 0;
    float sink = 0;

    RUN("fma", x = _mm256_fmadd_ps(a, b, x));
    RUN("fma+cvt", x = half_round(_mm256_fmadd_ps(a, b, x)));
    unsigned csr = _mm_getcsr();
    _mm_setcsr((csr & ~0x6000u) | 0x6000u); /* toward zero */
    RUN("rz-plan", {
        __m256 p = _mm256_mul_ps(a, b), s = _mm256_add_ps(x, p);
        __m256 inexact = _mm256_cmp_ps(_mm256_sub_ps(s, x), p, _CMP_NEQ_OQ);
        __m256i odd = _mm256_and_si256(_mm256_castps_si256(inexact), one);
        x = half_round(_mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(s), odd)));
    });
    _mm_setcsr(csr);
    RUN("spec-full", {
        __m256 s = _mm256_fmadd_ps(a, b, x);
        __m256i sb = _mm256_castps_si256(s);
        flag = _mm256_or_si256(flag, _mm256_cmpeq_epi32(_mm256_and_si256(sb, mask13), mid));
        low = _mm256_min_epu32(low, _mm256_sub_epi32(_mm256_and_si256(sb, abs), one));
        x = half_round(s);
    });
    RUN("magic", {
        __m256 s = _mm256_fmadd_ps(a, b, x);
        __m256i e = _mm256_max_epi32(_mm256_and_si256(_mm256_castps_si256(s), expo), emin);
        __m256 m = _mm256_castsi256_ps(_mm256_add_epi32(e, magic));
        x = _mm256_sub_ps(_mm256_add_ps(s, m), m);
    });
    /* (keeps the results live) */
    printf("(%g %d %d)\n", sink, _mm256_movemask_epi8(flag), _mm256_movemask_epi8(low));
    return 0;
}
