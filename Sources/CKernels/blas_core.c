// OpenBLAS core fix-up (CKernels.h, sl_blas_core_note). OpenBLAS's DYNAMIC_ARCH entry points are declared weak:
// with an OpenBLAS built for one core, or another BLAS, nothing is done.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"

extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern void openblas_read_env(void) __attribute__((weak));
extern int blas_thread_init(void) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));

static char note[256] = "OpenBLAS core: not inspected";
static char idle_note[256] = "OpenBLAS idle wait: not inspected";

/// log2 of the cycles an idle OpenBLAS worker spins (sched_yield) before it sleeps. OpenBLAS's default, 2^28 cycles
/// (about 0.1 s), keeps a worker spinning on a core after every threaded BLAS call, which then competes with
/// SequenceLab's own threads (attention, scans, chunked forms) on the same cores. 4 is OpenBLAS's minimum (sleep at
/// once). Measured side by side (lra, fwd+bwd, 2 threads, medians of 3 alternations, 2^28 / 2^16 / 2^4): attention
/// 125 / 89 / 87 ms, DeltaNet 88 / 70 / 67, DeltaProduct 148 / 136 / 116, Mamba 118 / 94 / 94, GLA 155 / 134 / 129.
#define SL_BLAS_IDLE_SPIN_LOG2 4

/// Restarts OpenBLAS's thread pool with a short idle spin, unless the user set OPENBLAS_THREAD_TIMEOUT or
/// SEQLAB_BLAS_IDLE=keep.
static void sl_blas_idle_fixup(void) {
    const char *user = getenv("OPENBLAS_THREAD_TIMEOUT"), *policy = getenv("SEQLAB_BLAS_IDLE");
    if (user && *user) {
        snprintf(idle_note, sizeof idle_note, "OpenBLAS idle wait: OPENBLAS_THREAD_TIMEOUT=%s (set by the user)", user);
        return;
    }
    if ((policy && strcmp(policy, "keep") == 0) || !openblas_read_env || !blas_thread_init || !blas_thread_shutdown_) {
        snprintf(idle_note, sizeof idle_note, "OpenBLAS idle wait: OpenBLAS's default");
        return;
    }
    char value[8];
    snprintf(value, sizeof value, "%d", SL_BLAS_IDLE_SPIN_LOG2);
    setenv("OPENBLAS_THREAD_TIMEOUT", value, 1);
    openblas_read_env();
    blas_thread_shutdown_();
    blas_thread_init();
    unsetenv("OPENBLAS_THREAD_TIMEOUT");
    openblas_read_env();  // the restarted pool keeps its timeout; the environment is the user's again
    snprintf(idle_note, sizeof idle_note,
             "OpenBLAS idle wait: workers spin 2^%d cycles before sleeping (OpenBLAS's default 2^28 holds a core "
             "after every threaded call; SEQLAB_BLAS_IDLE=keep or OPENBLAS_THREAD_TIMEOUT overrides)",
             SL_BLAS_IDLE_SPIN_LOG2);
}

static void sl_blas_core_fixup(void);

__attribute__((constructor)) static void sl_blas_fixups(void) {
    sl_blas_core_fixup();
    sl_blas_idle_fixup();
}

static void sl_blas_core_fixup(void) {
    if (!openblas_get_corename) {
        snprintf(note, sizeof note, "BLAS: not OpenBLAS with run-time core selection; left as it is");
        return;
    }
    const char *found = openblas_get_corename();
    char before[64];
    snprintf(before, sizeof before, "%s", found ? found : "?");
    const char *user = getenv("OPENBLAS_CORETYPE"), *policy = getenv("SEQLAB_BLAS_CORE");
    if (user && *user) {
        snprintf(note, sizeof note, "OpenBLAS core: %s (OPENBLAS_CORETYPE=%s)", before, user);
        return;
    }
    if (strcasecmp(before, "Prescott") != 0 || (policy && strcmp(policy, "keep") == 0) || !gotoblas_dynamic_init ||
        !gotoblas_dynamic_quit) {
        snprintf(note, sizeof note, "OpenBLAS core: %s (chosen by OpenBLAS)", before);
        return;
    }
    const char *better = sl_isa_supported("avx512") ? "SkylakeX" : sl_isa_supported("avx2") ? "Haswell" : NULL;
    if (!better) {
        snprintf(note, sizeof note, "OpenBLAS core: %s (chosen by OpenBLAS)", before);
        return;
    }
    // OpenBLAS reads OPENBLAS_CORETYPE when it initialises its core table; set it for the re-initialisation only.
    setenv("OPENBLAS_CORETYPE", better, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    snprintf(note, sizeof note,
             "OpenBLAS core: %s (OpenBLAS did not recognise this CPU and fell back to %s; SequenceLab selected %s "
             "for its vector units; SEQLAB_BLAS_CORE=keep leaves OpenBLAS's choice)",
             openblas_get_corename(), before, better);
}

const char *sl_blas_core_note(void) { return note; }

const char *sl_blas_idle_note(void) { return idle_note; }
