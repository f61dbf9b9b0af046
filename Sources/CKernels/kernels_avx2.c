// The kernels for AVX2 + FMA (Haswell and later, AMD Zen): 8-wide vectors, 6 x 16 product tiles.
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define SL_SUFFIX avx2
#define SL_NAME "avx2"
#define VW 8
#define GEMM_MR 6
#define GEMM_NB 2
#include "kernels_body.h"
#pragma clang attribute pop
#endif
