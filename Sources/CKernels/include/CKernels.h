// CKernels: SequenceLab's vector kernels in C, compiled once per instruction set and chosen at run time.
//
// Swift has no per-function target attributes, so a plain `swift build -c release` compiles Swift SIMD code for the
// baseline x86-64 (SSE2, no FMA: every fused multiply-add becomes a libm `fmaf` call). The hot vector loops of the
// library live here instead: each kernel body is written once (kernels_body.h, GCC/Clang vector extensions) and
// compiled three times with function-level target attributes (baseline SSE2; AVX2 + FMA; AVX-512), the way OpenBLAS
// and PyTorch dispatch. At load the widest set the CPU supports is selected (`__builtin_cpu_supports`); the
// environment variable SEQLAB_ISA=baseline|avx2|avx512 (or `sl_isa_select`) forces a narrower one, which is how
// the tests compare the three and how AVX2 speed is measured on an AVX-512 machine.
//
// Every exponent the exp kernels take is <= 0 (scores minus a running maximum, differences of cumulative
// log-gates): e^x = 2^n p(r), x = n ln2 + r, |r| <= ln2/2, Cephes' degree-5 minimax p (relative error ~1e-7),
// 2^n from exponent bits; x above 0 is clamped to 0, below -88 (and -inf, NaN) gives 0.
#ifndef SEQLAB_CKERNELS_H
#define SEQLAB_CKERNELS_H

#include <stddef.h>

/// The instruction set in use: "avx512", "avx2" or "baseline".
const char *sl_isa_name(void);
/// Selects an instruction set by name; returns 0, or -1 (selection unchanged) when the name is unknown or the CPU
/// lacks it. Not thread-safe against kernels running at the same time.
int sl_isa_select(const char *name);
/// Whether this CPU can run the named instruction set.
int sl_isa_supported(const char *name);

/// C[m, n] = alpha A B (accumulate 0) or C += alpha A B (accumulate 1), A(i, k) = a[i row_stride + k col_stride],
/// B row k = b + k ldb (n floats), C row i = c + i ldc. Register tiles, no packing (the attention block products).
void sl_small_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t row_stride,
                       ptrdiff_t col_stride, const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc);

/// p[j] = exp(p[j] - shift) for j < n; returns the sum of the new values (p[j] <= shift).
float sl_exp_shifted_sum_f32(float *p, ptrdiff_t n, float shift);
/// The largest of p[0..<n] (-infinity when n = 0).
float sl_maximum_f32(const float *p, ptrdiff_t n);
/// Softmax backward on one recomputed row: p[j] = exp(p[j] - log_z), dp[j] = p[j] (dp[j] - row_dot).
void sl_softmax_backward_row_f32(float *p, float *dp, ptrdiff_t n, float log_z, float row_dot);
/// out[j] = exp(a[j] - b[j]) (each difference <= 0).
void sl_exp_difference_f32(const float *a, const float *b, float *out, ptrdiff_t n);
/// e^x for one x <= 0 (the same polynomial, scalar).
float sl_exp_nonpositive_f32(float x);

/// One forward step of the selective scan over a block of W channels (Layers/Mamba/ScanSteps.swift), for n < N:
/// dA = scale e^(dt[w] aT[n, w]) - shift; next[n, w] = dA prev[n, w] + dtu[w] b[n]; y[w] += next[n, w] c[n];
/// dA kept in transitions[n, w] unless transitions is NULL. (e^x here: any x, clamped to [-87, 88], 0 below -87.)
void sl_scan_forward_rows_f32(ptrdiff_t N, ptrdiff_t W, const float *prev, float *next, float *transitions,
                              const float *aT, const float *dt, const float *dtu, const float *b, const float *c,
                              float *y, float scale, float shift);
/// One state index of the selective scan's reverse sweep over W channels: G = dy' cn + carry,
/// q = G x_prev (dA + shift), d_dt += q a, d_a += q dt, g_times_b += G bn, carry = dA G;
/// sums[0] = sum dy' x_cur, sums[1] = sum G dtu.
void sl_scan_reverse_index_f32(ptrdiff_t W, const float *dyg, const float *x_prev, const float *x_cur, const float *dA,
                               const float *a, const float *dt, const float *dtu, float *carry, float *d_dt, float *d_a,
                               float *g_times_b, float bn, float cn, float shift, float *sums);

/// S4's four Cauchy sums over `modes` modes for `count` nodes into rows r + j stride, j < 8 (zeroed first):
/// c = per-mode rows [mu re, mu im, c00 re/im, c01 re/im, c10 re/im, c11]; node k: alpha = ar[k] + i ai[k],
/// beta = br[k] + i bi[k]; R_ij += c_ij / (alpha - beta mu) + conj(c_ij) / (alpha - beta conj(mu)).
void sl_cauchy_sums_f32(const float *c, ptrdiff_t modes, const float *ar, const float *ai, const float *br,
                        const float *bi, ptrdiff_t count, float *r, ptrdiff_t stride);
/// One node's contribution to the Cauchy sums' backward accumulators (9 rows of `modes`: gc00, gc01, gc10 re/im,
/// Re gc11, gmu re/im), node alpha = ar + i ai, beta = br + i bi; the 8 sums' gradients at the node are
/// g[j g_stride], j < 8.
void sl_cauchy_adjoint_f32(const float *c, ptrdiff_t modes, float ar, float ai, float br, float bi, const float *g,
                           ptrdiff_t g_stride, float *acc);

/// Peak single-core Float32 fused multiply-add rate of the selected instruction set, GFLOP/s: `iterations` rounds of
/// independent vector FMA chains held in registers (the machine limit the benchmarks quote fractions of).
double sl_fma_peak_gflops(long iterations);

/// OpenBLAS core fix-up. OpenBLAS builds with DYNAMIC_ARCH pick their kernels by CPU model; a model newer than the
/// library (Debian's 0.3.21 on Emerald Rapids, model 207) falls back to the SSE3 "Prescott" kernels, ~6x slower.
/// At load, when OPENBLAS_CORETYPE is unset, SEQLAB_BLAS_CORE is not "keep", OpenBLAS reports Prescott and the CPU
/// has AVX-512 (SkylakeX kernels) or AVX2 + FMA (Haswell kernels), the better core is selected through OpenBLAS's
/// own OPENBLAS_CORETYPE mechanism. Returns a one-line account of what was found and done.
const char *sl_blas_core_note(void);

/// OpenBLAS idle-wait fix-up. An idle OpenBLAS worker spins (sched_yield) for 2^28 cycles, about 0.1 s, after every
/// threaded BLAS call before it sleeps; on a machine with as many threads as cores that spinning worker takes a core
/// from SequenceLab's own threaded kernels that follow the call. At load, unless OPENBLAS_THREAD_TIMEOUT is set or
/// SEQLAB_BLAS_IDLE is "keep", OpenBLAS's thread pool is restarted with its shortest spin (2^4 cycles: idle
/// workers sleep at once) through its own OPENBLAS_THREAD_TIMEOUT mechanism. Returns a one-line account.
const char *sl_blas_idle_note(void);

/// Subnormal floats flushed to zero on the calling thread (x86 MXCSR flush-to-zero and denormals-are-zero) until
/// `sl_subnormals_restore` puts back the returned state; a no-op returning 0 elsewhere. A product with a subnormal
/// operand takes ~100 cycles on x86; forgetting attention's backward makes many (dS = P (dP - rowsum) with P near
/// e^-87), and values below 1.2e-38 carry nothing a Float32 sum can keep.
unsigned sl_subnormals_flush(void);
void sl_subnormals_restore(unsigned state);

/// Allocator tuning applied at load (malloc_tuning.c): glibc's mmap threshold raised to 1 GiB and trimming off, so
/// the megabyte-sized buffers that every op allocates and frees are reused instead of page-faulted in afresh;
/// SEQLAB_MALLOC=system leaves glibc's defaults. Returns a one-line account.
const char *sl_malloc_tuning_note(void);

/// Bytes the allocator has handed out and not yet had back, over every arena (glibc >= 2.33: mallinfo2's uordblks +
/// hblkhd); -1 where the allocator cannot say. Exact and cheap: what the tape keeps is measured with it.
long long sl_heap_in_use_bytes(void);

#endif
