// The kernel bodies, written once and compiled per instruction set (included by kernels_baseline.c,
// kernels_avx2.c, kernels_avx512.c under a function-level target attribute). The including file defines:
//   SL_SUFFIX  the name suffix of this instruction set's functions (baseline, avx2, avx512)
//   VW         floats per native vector register (4 SSE2, 8 AVX2, 16 AVX-512)
//   GEMM_MR    rows per register tile of the small product; GEMM_NB vectors per row in the wide column panel
//              (accumulators GEMM_MR x GEMM_NB + GEMM_NB B vectors + one broadcast must fit the register file:
//              AVX-512 8 x 2 of 32 zmm, AVX2 6 x 2 of 16 ymm, SSE2 4 x 2 of 16 xmm).
// Products are written a * b + c under `fp contract(fast)`: one FMA where the target has it, multiply and add
// where it does not (never a libm fmaf call).
#include <math.h>
#include <string.h>
#include "sl_kernel_table.h"

#pragma clang fp contract(fast)

#define SL_CAT2(a, b) a##_##b
#define SL_CAT(a, b) SL_CAT2(a, b)
#define SL(name) SL_CAT(name, SL_SUFFIX)

typedef float SL(vec) __attribute__((vector_size(VW * 4)));
typedef float SL(uvec) __attribute__((vector_size(VW * 4), aligned(4)));
typedef int SL(ivec) __attribute__((vector_size(VW * 4)));
#define vec SL(vec)
#define uvec SL(uvec)
#define ivec SL(ivec)
#define INLINE static inline __attribute__((always_inline))

INLINE vec SL(load)(const float *p) { return *(const uvec *)p; }
INLINE void SL(store)(vec v, float *p) { *(uvec *)p = v; }
/// x in every lane. Written as a lane loop (one vbroadcastss, folded into the FMA's memory operand): `(vec){0} + x`
/// keeps a real add, since 0 + (-0) is +0, which costs a port-0/5 uop per broadcast in the product's inner loop.
INLINE vec SL(splat)(float x) {
    vec v;
    for (int i = 0; i < VW; i++) v[i] = x;
    return v;
}
/// The first n < VW floats of p, the other lanes `padding`.
INLINE vec SL(load_part)(const float *p, ptrdiff_t n, float padding) {
    float tmp[VW];
    for (int i = 0; i < VW; i++) tmp[i] = i < n ? p[i] : padding;
    return SL(load)(tmp);
}
INLINE void SL(store_part)(vec v, float *p, ptrdiff_t n) {
    float tmp[VW];
    SL(store)(v, tmp);
    for (ptrdiff_t i = 0; i < n; i++) p[i] = tmp[i];
}
INLINE float SL(sum)(vec v) {
    float tmp[VW], s = 0;
    SL(store)(v, tmp);
    for (int i = 0; i < VW; i++) s += tmp[i];
    return s;
}
INLINE float SL(hmax)(vec v) {
    float tmp[VW], m;
    SL(store)(v, tmp);
    m = tmp[0];
    for (int i = 1; i < VW; i++) m = tmp[i] > m ? tmp[i] : m;
    return m;
}
INLINE vec SL(vmax)(vec a, vec b) { return __builtin_elementwise_max(a, b); }

/// 2^n p(r) for x = n ln2 + r (|x| <= 88): n = round(x log2 e) through the 1.5 * 2^23 trick (t's low bits hold n),
/// r = x - n ln2 with ln2 in two parts, Cephes' degree-5 minimax p, 2^n from exponent bits (n + 127 <= 0 gives 0).
INLINE vec SL(exp_core)(vec x) {
    const vec magic = SL(splat)(12582912.0f);
    vec t = x * 1.44269504f + magic;
    vec n = t - magic;
    vec r = n * -0.693359375f + x;
    r = n * 2.12194440e-4f + r;
    vec p = SL(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + (r + 1.0f);
    ivec bits = ((ivec)t + 127) << 23;
    return p * (vec)bits;
}

/// e^x for x <= 0 (see CKernels.h): clamped to [-88, 0]; NaN and -inf become -88, which gives 0.
INLINE vec SL(exp)(vec x) {
    return SL(exp_core)(__builtin_elementwise_min(__builtin_elementwise_max(x, SL(splat)(-88.0f)), SL(splat)(0.0f)));
}

/// e^x for any x (the scalar `vectorExp` of Tensors on vectors): clamped to [-87, 88]; exactly 0 below -87.
INLINE vec SL(exp_any)(vec x) {
    vec e = SL(exp_core)(__builtin_elementwise_min(__builtin_elementwise_max(x, SL(splat)(-87.0f)), SL(splat)(88.0f)));
    return (vec)((ivec)e & (x >= -87.0f));
}

// MARK: - Selective scan steps (Layers/Mamba/ScanSteps.swift)

/// One forward step over a block of W channels, for every state index n < N:
///   dA = scale exp(dt[w] aT[n, w]) - shift;  next[n, w] = dA prev[n, w] + dtu[w] b[n];  y[w] += next[n, w] c[n];
/// dA is stored in transitions[n, w] when transitions is not NULL.
static void SL(scan_forward_rows)(ptrdiff_t N, ptrdiff_t W, const float *prev, float *next, float *transitions,
                                  const float *aT, const float *dt, const float *dtu, const float *b, const float *c,
                                  float *y, float scale, float shift) {
    for (ptrdiff_t n = 0; n < N; n++) {
        const vec bn = SL(splat)(b[n]), cn = SL(splat)(c[n]);
        const float *a = aT + n * W, *p = prev + n * W;
        float *q = next + n * W, *stored = transitions ? transitions + n * W : NULL;
        ptrdiff_t w = 0;
        for (; w + VW <= W; w += VW) {
            vec dA = SL(exp_any)(SL(load)(dt + w) * SL(load)(a + w)) * scale - shift;
            vec x = dA * SL(load)(p + w) + SL(load)(dtu + w) * bn;
            if (stored) SL(store)(dA, stored + w);
            SL(store)(x, q + w);
            SL(store)(x * cn + SL(load)(y + w), y + w);
        }
        if (w < W) {
            ptrdiff_t k = W - w;
            vec dA = SL(exp_any)(SL(load_part)(dt + w, k, 0.0f) * SL(load_part)(a + w, k, 0.0f)) * scale - shift;
            vec x = dA * SL(load_part)(p + w, k, 0.0f) + SL(load_part)(dtu + w, k, 0.0f) * bn;
            if (stored) SL(store_part)(dA, stored + w, k);
            SL(store_part)(x, q + w, k);
            SL(store_part)(x * cn + SL(load_part)(y + w, k, 0.0f), y + w, k);
        }
    }
}

/// One state index of the reverse sweep over W channels (Layers/Mamba/SelectiveScanBackward.swift):
///   G = dy' cn + carry;  q = G x_{t-1} (dA + shift);  dDt += q a;  dA_T += q dt;  gTimesB += G bn;  carry = dA G;
/// sums[0] = sum_w dy' x_t, sums[1] = sum_w G dtu.
static void SL(scan_reverse_index)(ptrdiff_t W, const float *dyg, const float *x_prev, const float *x_cur,
                                   const float *dA, const float *a, const float *dt, const float *dtu, float *carry,
                                   float *d_dt, float *d_a, float *g_times_b, float bn, float cn, float shift,
                                   float *sums) {
    vec sum_c = SL(splat)(0.0f), sum_b = SL(splat)(0.0f);
    ptrdiff_t w = 0;
    for (; w + VW <= W; w += VW) {
        vec y = SL(load)(dyg + w), t = SL(load)(dA + w);
        vec G = y * cn + SL(load)(carry + w);
        vec q = G * SL(load)(x_prev + w) * (t + shift);
        SL(store)(q * SL(load)(a + w) + SL(load)(d_dt + w), d_dt + w);
        SL(store)(q * SL(load)(dt + w) + SL(load)(d_a + w), d_a + w);
        SL(store)(G * bn + SL(load)(g_times_b + w), g_times_b + w);
        SL(store)(t * G, carry + w);
        sum_c += y * SL(load)(x_cur + w);
        sum_b += G * SL(load)(dtu + w);
    }
    float dC = SL(sum)(sum_c), dB = SL(sum)(sum_b);
    for (; w < W; w++) {
        float G = dyg[w] * cn + carry[w];
        float q = G * x_prev[w] * (dA[w] + shift);
        d_dt[w] += q * a[w];
        d_a[w] += q * dt[w];
        g_times_b[w] += G * bn;
        carry[w] = dA[w] * G;
        dC += dyg[w] * x_cur[w];
        dB += G * dtu[w];
    }
    sums[0] = dC;
    sums[1] = dB;
}

// MARK: - S4's Cauchy sums (Layers/S4/CauchyKernel.swift; plain loops, vectorised by the compiler for this set)

/// g = 1/d and g' = 1/e for d = alpha - beta mu, e = alpha - beta conj(mu) (one division for both).
INLINE void SL(cauchy_terms)(float ar, float ai, float br, float bi, float mr, float mi, float *gr, float *gi, float *hr,
                             float *hi) {
    float dr = ar - (br * mr - bi * mi), di = ai - (br * mi + bi * mr);
    float er = ar - (br * mr + bi * mi), ei = ai - (bi * mr - br * mi);
    float dn = dr * dr + di * di, en = er * er + ei * ei;
    float inverse = 1.0f / (dn * en);
    float sd = en * inverse, se = dn * inverse;
    *gr = dr * sd;
    *gi = -di * sd;
    *hr = er * se;
    *hi = -ei * se;
}

/// Rows j = 0..7 of r (r + j stride, count nodes): the four Cauchy sums over all modes, zeroed first. c holds
/// per-mode rows [mu re, mu im, c00 re, c00 im, c01 re, c01 im, c10 re, c10 im, c11] of `modes` each; node k has
/// alpha = ar[k] + i ai[k], beta = br[k] + i bi[k]. Per mode: d = alpha - beta mu, e = alpha - beta conj(mu),
/// g = 1/d, g' = 1/e, and R_ij += c_ij g + conj(c_ij) g'.
static void SL(cauchy_sums)(const float *c, ptrdiff_t modes, const float *ar, const float *ai, const float *br,
                            const float *bi, ptrdiff_t count, float *r, ptrdiff_t stride) {
    float *r00r = r, *r00i = r + stride, *r01r = r + 2 * stride, *r01i = r + 3 * stride;
    float *r10r = r + 4 * stride, *r10i = r + 5 * stride, *r11r = r + 6 * stride, *r11i = r + 7 * stride;
    for (int row = 0; row < 8; row++) memset(r + row * stride, 0, (size_t)count * sizeof(float));
    for (ptrdiff_t n = 0; n < modes; n++) {
        const float mr = c[n], mi = c[modes + n];
        const float c00r = c[2 * modes + n], c00i = c[3 * modes + n], c01r = c[4 * modes + n], c01i = c[5 * modes + n];
        const float c10r = c[6 * modes + n], c10i = c[7 * modes + n], c11 = c[8 * modes + n];
#pragma clang loop vectorize(enable)
        for (ptrdiff_t k = 0; k < count; k++) {
            float gr, gi, hr, hi;
            SL(cauchy_terms)(ar[k], ai[k], br[k], bi[k], mr, mi, &gr, &gi, &hr, &hi);
            float sr = gr + hr, si = gi + hi, xr = gr - hr, xi = gi - hi;
            r00r[k] += c00r * sr - c00i * xi;
            r00i[k] += c00r * si + c00i * xr;
            r01r[k] += c01r * sr - c01i * xi;
            r01i[k] += c01r * si + c01i * xr;
            r10r[k] += c10r * sr - c10i * xi;
            r10i[k] += c10r * si + c10i * xr;
            r11r[k] += c11 * sr;
            r11i[k] += c11 * si;
        }
    }
}

/// Node k's contribution to the per-mode accumulators of the Cauchy sums' backward pass: acc rows
/// [gc00 re, gc00 im, gc01 re, gc01 im, gc10 re, gc10 im, Re gc11, gmu re, gmu im] of `modes` each, from the node
/// alpha = ar + i ai, beta = br + i bi and the sums' gradients g[j g_stride] (R00, R01, R10, R11 as re/im pairs):
///   gc_ij += conj(g) gR_ij + g' conj(gR_ij);  gmu += conj(beta g^2) G + beta g'^2 conj(G'),
///   G = sum_ij conj(c_ij) gR_ij, G' = sum_ij c_ij gR_ij.
static void SL(cauchy_adjoint)(const float *c, ptrdiff_t modes, float ar, float ai, float br, float bi, const float *g,
                               ptrdiff_t g_stride, float *acc) {
    const float g00r = g[0], g00i = g[g_stride], g01r = g[2 * g_stride], g01i = g[3 * g_stride];
    const float g10r = g[4 * g_stride], g10i = g[5 * g_stride], g11r = g[6 * g_stride], g11i = g[7 * g_stride];
    const float *mre = c, *mim = c + modes, *c00r = c + 2 * modes, *c00i = c + 3 * modes, *c01r = c + 4 * modes;
    const float *c01i = c + 5 * modes, *c10r = c + 6 * modes, *c10i = c + 7 * modes, *c11 = c + 8 * modes;
    float *a00r = acc, *a00i = acc + modes, *a01r = acc + 2 * modes, *a01i = acc + 3 * modes, *a10r = acc + 4 * modes;
    float *a10i = acc + 5 * modes, *a11 = acc + 6 * modes, *amr = acc + 7 * modes, *ami = acc + 8 * modes;
#pragma clang loop vectorize(enable)
    for (ptrdiff_t n = 0; n < modes; n++) {
        float gr, gi, hr, hi;
        SL(cauchy_terms)(ar, ai, br, bi, mre[n], mim[n], &gr, &gi, &hr, &hi);
        float sr = gr + hr, si = gi + hi, xr = gr - hr, xi = gi - hi;
        a00r[n] += g00r * sr + g00i * si;
        a00i[n] += g00i * xr - g00r * xi;
        a01r[n] += g01r * sr + g01i * si;
        a01i[n] += g01i * xr - g01r * xi;
        a10r[n] += g10r * sr + g10i * si;
        a10i[n] += g10i * xr - g10r * xi;
        a11[n] += g11r * sr + g11i * si;
        float p00r = c00r[n], p00i = c00i[n], p01r = c01r[n], p01i = c01i[n], p10r = c10r[n], p10i = c10i[n], p11 = c11[n];
        float uRe = p00r * g00r + p01r * g01r + p10r * g10r + p11 * g11r;
        float uIm = p00r * g00i + p01r * g01i + p10r * g10i + p11 * g11i;
        float vRe = p00i * g00i + p01i * g01i + p10i * g10i;
        float vIm = p00i * g00r + p01i * g01r + p10i * g10r;
        float bigGr = uRe + vRe, bigGi = uIm - vIm, bigHr = uRe - vRe, bigHi = uIm + vIm;
        float g2r = gr * gr - gi * gi, g2i = 2 * gr * gi, h2r = hr * hr - hi * hi, h2i = 2 * hr * hi;
        float bgr = br * g2r - bi * g2i, bgi = br * g2i + bi * g2r, bhr = br * h2r - bi * h2i, bhi = br * h2i + bi * h2r;
        amr[n] += (bgr * bigGr + bgi * bigGi) + (bhr * bigHr + bhi * bigHi);
        ami[n] += (bgr * bigGi - bgi * bigGr) + (bhi * bigHr - bhr * bigHi);
    }
}

// MARK: - Small product

/// Columns [0, NB VW) of C for rows [0, m): MR x NB tiles, then single rows.
#define SL_GEMM_PANEL(NAME, NB)                                                                                        \
    static void NAME(ptrdiff_t m, ptrdiff_t k, float alpha, const float *a, ptrdiff_t ra, ptrdiff_t ca,                \
                     const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc) {                         \
        const vec al = SL(splat)(alpha);                                                                               \
        ptrdiff_t i0 = 0;                                                                                              \
        for (; i0 + GEMM_MR <= m; i0 += GEMM_MR) {                                                                     \
            vec acc[GEMM_MR][NB];                                                                                      \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < GEMM_MR; i++)                                       \
                _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) acc[i][j] = SL(splat)(0.0f);           \
            const float *rows = a + i0 * ra;                                                                           \
            for (ptrdiff_t kk = 0; kk < k; kk++) {                                                                     \
                const float *br = b + kk * ldb, *ak = rows + kk * ca;                                                  \
                vec bv[NB];                                                                                            \
                _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) bv[j] = SL(load)(br + j * VW);         \
                _Pragma("clang loop unroll(full)") for (int i = 0; i < GEMM_MR; i++) {                                 \
                    const vec s = SL(splat)(ak[i * ra]);                                                               \
                    _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) acc[i][j] = s * bv[j] + acc[i][j]; \
                }                                                                                                      \
            }                                                                                                          \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < GEMM_MR; i++)                                       \
                _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) {                                      \
                float *cp = c + (i0 + i) * ldc + j * VW;                                                               \
                SL(store)(accumulate ? acc[i][j] * al + SL(load)(cp) : acc[i][j] * al, cp);                            \
            }                                                                                                          \
        }                                                                                                              \
        for (; i0 < m; i0++) {                                                                                         \
            vec acc[NB];                                                                                               \
            _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) acc[j] = SL(splat)(0.0f);                  \
            for (ptrdiff_t kk = 0; kk < k; kk++) {                                                                     \
                const vec s = SL(splat)(a[i0 * ra + kk * ca]);                                                         \
                _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++)                                        \
                    acc[j] = s * SL(load)(b + kk * ldb + j * VW) + acc[j];                                             \
            }                                                                                                          \
            _Pragma("clang loop unroll(full)") for (int j = 0; j < NB; j++) {                                          \
                float *cp = c + i0 * ldc + j * VW;                                                                     \
                SL(store)(accumulate ? acc[j] * al + SL(load)(cp) : acc[j] * al, cp);                                  \
            }                                                                                                          \
        }                                                                                                              \
    }

SL_GEMM_PANEL(SL(gemm_wide), GEMM_NB)
SL_GEMM_PANEL(SL(gemm_narrow), 1)

static void SL(small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t ra, ptrdiff_t ca,
                           const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc) {
    ptrdiff_t c0 = 0;
    for (; c0 + GEMM_NB * VW <= n; c0 += GEMM_NB * VW)
        SL(gemm_wide)(m, k, alpha, a, ra, ca, b + c0, ldb, accumulate, c + c0, ldc);
    for (; c0 + VW <= n; c0 += VW) SL(gemm_narrow)(m, k, alpha, a, ra, ca, b + c0, ldb, accumulate, c + c0, ldc);
    if (c0 < n) {  // scalar tail columns
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = c0; j < n; j++) {
                float s = 0;
                for (ptrdiff_t kk = 0; kk < k; kk++) s += a[i * ra + kk * ca] * b[kk * ldb + j];
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + alpha * s : alpha * s;
            }
    }
}

// MARK: - Row primitives

static float SL(exp_shifted_sum)(float *p, ptrdiff_t n, float shift) {
    const vec s = SL(splat)(shift);
    vec acc = SL(splat)(0.0f), acc2 = SL(splat)(0.0f);
    ptrdiff_t j = 0;
    for (; j + 2 * VW <= n; j += 2 * VW) {
        vec e0 = SL(exp)(SL(load)(p + j) - s), e1 = SL(exp)(SL(load)(p + j + VW) - s);
        SL(store)(e0, p + j);
        SL(store)(e1, p + j + VW);
        acc += e0;
        acc2 += e1;
    }
    for (; j + VW <= n; j += VW) {
        vec e = SL(exp)(SL(load)(p + j) - s);
        SL(store)(e, p + j);
        acc += e;
    }
    if (j < n) {
        vec e = SL(exp)(SL(load_part)(p + j, n - j, -INFINITY) - s);
        SL(store_part)(e, p + j, n - j);
        acc += e;
    }
    return SL(sum)(acc + acc2);
}

static float SL(maximum)(const float *p, ptrdiff_t n) {
    vec m = SL(splat)(-INFINITY), m2 = m;
    ptrdiff_t j = 0;
    for (; j + 2 * VW <= n; j += 2 * VW) {
        m = SL(vmax)(m, SL(load)(p + j));
        m2 = SL(vmax)(m2, SL(load)(p + j + VW));
    }
    for (; j + VW <= n; j += VW) m = SL(vmax)(m, SL(load)(p + j));
    if (j < n) m = SL(vmax)(m, SL(load_part)(p + j, n - j, -INFINITY));
    return SL(hmax)(SL(vmax)(m, m2));
}

static void SL(softmax_backward_row)(float *p, float *dp, ptrdiff_t n, float log_z, float row_dot) {
    const vec z = SL(splat)(log_z), d = SL(splat)(row_dot);
    ptrdiff_t j = 0;
    for (; j + VW <= n; j += VW) {
        vec e = SL(exp)(SL(load)(p + j) - z);
        SL(store)(e, p + j);
        SL(store)(e * (SL(load)(dp + j) - d), dp + j);
    }
    if (j < n) {
        vec e = SL(exp)(SL(load_part)(p + j, n - j, -INFINITY) - z);
        SL(store_part)(e, p + j, n - j);
        SL(store_part)(e * (SL(load_part)(dp + j, n - j, 0.0f) - d), dp + j, n - j);
    }
}

static void SL(exp_difference)(const float *a, const float *b, float *out, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + VW <= n; j += VW) SL(store)(SL(exp)(SL(load)(a + j) - SL(load)(b + j)), out + j);
    if (j < n) SL(store_part)(SL(exp)(SL(load_part)(a + j, n - j, 0.0f) - SL(load_part)(b + j, n - j, 0.0f)), out + j, n - j);
}

/// 8 independent chains of VW-wide FMAs per round (enough to cover the FMA latency on two ports), in registers.
static double SL(fma_peak)(long iterations) {
    vec x[8], y = SL(splat)(0.999999f), z = SL(splat)(1e-7f);
    for (int i = 0; i < 8; i++) x[i] = SL(splat)((float)i);
    for (long it = 0; it < iterations; it++) {
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 8; i++) x[i] = x[i] * y + z;
    }
    float s = 0;
    for (int i = 0; i < 8; i++) s += SL(sum)(x[i]);
    return (double)s;  // the caller times the call; the value only keeps the loop alive
}

const sl_kernel_table SL(kernel_table) = {
    .name = SL_NAME,
    .lanes = VW,
    .small_gemm = SL(small_gemm),
    .exp_shifted_sum = SL(exp_shifted_sum),
    .maximum = SL(maximum),
    .softmax_backward_row = SL(softmax_backward_row),
    .exp_difference = SL(exp_difference),
    .fma_peak = SL(fma_peak),
    .scan_forward_rows = SL(scan_forward_rows),
    .scan_reverse_index = SL(scan_reverse_index),
    .cauchy_sums = SL(cauchy_sums),
    .cauchy_adjoint = SL(cauchy_adjoint),
};
