// Process-wide allocator settings for tensor workloads (CKernels.h, sl_malloc_tuning_note), applied at load so that
// every program using SequenceLab gets them (the command line, tests, and packages that depend on it).
//
// Every op allocates its output and every tape node its saved buffers: megabytes per op, freed a few ops later.
// glibc serves blocks above its mmap threshold with fresh mmap'd pages and returns freed heap tops to the kernel, so
// each large allocation pays page faults plus the kernel's page clearing on first touch (measured: about 30% of an
// S4D block's forward + backward at the `lra` shape). Raising both thresholds (1 GiB, no trimming) keeps freed memory
// in the process for reuse; the peak resident size stays what the workload needs. SEQLAB_MALLOC=system leaves
// glibc's defaults.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"
#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
#endif

static const char *note = "allocator: left as it is (not glibc)";

__attribute__((constructor)) static void sl_malloc_tuning(void) {
#if defined(__GLIBC__)
    const char *policy = getenv("SEQLAB_MALLOC");
    if (policy && strcmp(policy, "system") == 0) {
        note = "allocator: glibc defaults (SEQLAB_MALLOC=system)";
        return;
    }
    int ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) && mallopt(M_TRIM_THRESHOLD, INT_MAX);
    note = ok ? "allocator: glibc, freed memory kept for reuse (mmap threshold 1 GiB, no trimming; SEQLAB_MALLOC=system for the defaults)"
              : "allocator: glibc refused the thresholds; defaults in use";
#endif
}

const char *sl_malloc_tuning_note(void) { return note; }

long long sl_heap_in_use_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 m = mallinfo2();
    return (long long)(m.uordblks + m.hblkhd);
#else
    return -1;
#endif
}
