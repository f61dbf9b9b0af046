// The kernels for AVX-512 (F, VL, BW, DQ: Skylake-X and later, AMD Zen 4): 16-wide vectors, 8 x 32 product tiles.
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#define SL_SUFFIX avx512
#define SL_NAME "avx512"
#define VW 16
#define GEMM_MR 8
#define GEMM_NB 2
#include "kernels_body.h"
#pragma clang attribute pop
#endif
