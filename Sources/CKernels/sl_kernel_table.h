// The per-instruction-set function table (internal to CKernels): one table per compiled instruction set
// (kernels_body.h), one selected at load (dispatch.c).
#ifndef SEQLAB_KERNEL_TABLE_H
#define SEQLAB_KERNEL_TABLE_H
#include <stddef.h>

typedef struct {
    const char *name;
    int lanes;
    void (*small_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t ra, ptrdiff_t ca,
                       const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc);
    float (*exp_shifted_sum)(float *p, ptrdiff_t n, float shift);
    float (*maximum)(const float *p, ptrdiff_t n);
    void (*softmax_backward_row)(float *p, float *dp, ptrdiff_t n, float log_z, float row_dot);
    void (*exp_difference)(const float *a, const float *b, float *out, ptrdiff_t n);
    double (*fma_peak)(long iterations);
    void (*scan_forward_rows)(ptrdiff_t N, ptrdiff_t W, const float *prev, float *next, float *transitions,
                              const float *aT, const float *dt, const float *dtu, const float *b, const float *c,
                              float *y, float scale, float shift);
    void (*scan_reverse_index)(ptrdiff_t W, const float *dyg, const float *x_prev, const float *x_cur, const float *dA,
                               const float *a, const float *dt, const float *dtu, float *carry, float *d_dt,
                               float *d_a, float *g_times_b, float bn, float cn, float shift, float *sums);
    void (*cauchy_sums)(const float *c, ptrdiff_t modes, const float *ar, const float *ai, const float *br,
                        const float *bi, ptrdiff_t count, float *r, ptrdiff_t stride);
    void (*cauchy_adjoint)(const float *c, ptrdiff_t modes, float ar, float ai, float br, float bi, const float *g,
                           ptrdiff_t g_stride, float *acc);
} sl_kernel_table;

extern const sl_kernel_table kernel_table_baseline;
#if defined(__x86_64__)
extern const sl_kernel_table kernel_table_avx2;
extern const sl_kernel_table kernel_table_avx512;
#endif

#endif
