// Run-time choice of the instruction set (CKernels.h) and the public entry points, which call through the
// selected table.
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "CKernels.h"
#include "sl_kernel_table.h"

static _Atomic(const sl_kernel_table *) active_table;

static const sl_kernel_table *table_named(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "baseline") == 0) return &kernel_table_baseline;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0) return &kernel_table_avx2;
    if (strcmp(name, "avx512") == 0) return &kernel_table_avx512;
#endif
    return NULL;
}

int sl_isa_supported(const char *name) {
    if (!table_named(name)) return 0;
    if (strcmp(name, "baseline") == 0) return 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx2") == 0) return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

/// The widest supported set, or SEQLAB_ISA when it names a supported one.
static const sl_kernel_table *initial_table(void) {
    const char *forced = getenv("SEQLAB_ISA");
    if (forced && *forced) {
        if (sl_isa_supported(forced)) return table_named(forced);
        fprintf(stderr, "warning: SEQLAB_ISA=%s is %s; using the widest supported set\n", forced,
                table_named(forced) ? "not supported by this CPU" : "not one of baseline, avx2, avx512");
    }
    if (sl_isa_supported("avx512")) return table_named("avx512");
    if (sl_isa_supported("avx2")) return table_named("avx2");
    return &kernel_table_baseline;
}

static inline const sl_kernel_table *table(void) {
    const sl_kernel_table *t = atomic_load_explicit(&active_table, memory_order_acquire);
    if (__builtin_expect(t == NULL, 0)) {
        t = initial_table();
        atomic_store_explicit(&active_table, t, memory_order_release);
    }
    return t;
}

const char *sl_isa_name(void) { return table()->name; }

int sl_isa_select(const char *name) {
    if (!sl_isa_supported(name)) return -1;
    atomic_store_explicit(&active_table, table_named(name), memory_order_release);
    return 0;
}

void sl_small_gemm_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t row_stride,
                       ptrdiff_t col_stride, const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc) {
    table()->small_gemm(m, n, k, alpha, a, row_stride, col_stride, b, ldb, accumulate, c, ldc);
}

float sl_exp_shifted_sum_f32(float *p, ptrdiff_t n, float shift) { return table()->exp_shifted_sum(p, n, shift); }

float sl_maximum_f32(const float *p, ptrdiff_t n) { return table()->maximum(p, n); }

void sl_softmax_backward_row_f32(float *p, float *dp, ptrdiff_t n, float log_z, float row_dot) {
    table()->softmax_backward_row(p, dp, n, log_z, row_dot);
}

void sl_exp_difference_f32(const float *a, const float *b, float *out, ptrdiff_t n) {
    table()->exp_difference(a, b, out, n);
}

void sl_scan_forward_rows_f32(ptrdiff_t N, ptrdiff_t W, const float *prev, float *next, float *transitions,
                              const float *aT, const float *dt, const float *dtu, const float *b, const float *c,
                              float *y, float scale, float shift) {
    table()->scan_forward_rows(N, W, prev, next, transitions, aT, dt, dtu, b, c, y, scale, shift);
}

void sl_scan_reverse_index_f32(ptrdiff_t W, const float *dyg, const float *x_prev, const float *x_cur, const float *dA,
                               const float *a, const float *dt, const float *dtu, float *carry, float *d_dt, float *d_a,
                               float *g_times_b, float bn, float cn, float shift, float *sums) {
    table()->scan_reverse_index(W, dyg, x_prev, x_cur, dA, a, dt, dtu, carry, d_dt, d_a, g_times_b, bn, cn, shift, sums);
}

void sl_cauchy_sums_f32(const float *c, ptrdiff_t modes, const float *ar, const float *ai, const float *br,
                        const float *bi, ptrdiff_t count, float *r, ptrdiff_t stride) {
    table()->cauchy_sums(c, modes, ar, ai, br, bi, count, r, stride);
}

void sl_cauchy_adjoint_f32(const float *c, ptrdiff_t modes, float ar, float ai, float br, float bi, const float *g,
                           ptrdiff_t g_stride, float *acc) {
    table()->cauchy_adjoint(c, modes, ar, ai, br, bi, g, g_stride, acc);
}

float sl_exp_nonpositive_f32(float x) {
    float p = x;
    kernel_table_baseline.exp_shifted_sum(&p, 1, 0.0f);
    return p;
}

double sl_fma_peak_gflops(long iterations) {
    const sl_kernel_table *t = table();
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile double keep = t->fma_peak(iterations);
    (void)keep;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);
    return 2.0 * 8.0 * t->lanes * (double)iterations / seconds / 1e9;
}

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
unsigned sl_subnormals_flush(void) {
    unsigned state = _mm_getcsr();
    _mm_setcsr(state | 0x8040);  /* FTZ (bit 15) | DAZ (bit 6) */
    return state;
}
void sl_subnormals_restore(unsigned state) { _mm_setcsr(state); }
#else
unsigned sl_subnormals_flush(void) { return 0; }
void sl_subnormals_restore(unsigned state) { (void)state; }
#endif
