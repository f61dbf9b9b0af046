// The kernels for any CPU of the architecture (x86-64: SSE2; elsewhere: the compiler's default vectors).
#define SL_SUFFIX baseline
#define SL_NAME "baseline"
#define VW 4
#define GEMM_MR 4
#define GEMM_NB 2
#include "kernels_body.h"
