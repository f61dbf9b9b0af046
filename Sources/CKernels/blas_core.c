// OpenBLAS core fix-up (CKernels.h, sl_blas_core_note). OpenBLAS's DYNAMIC_ARCH entry points are declared weak:
// with an OpenBLAS built for one core, or another BLAS, nothing is done.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"

extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static char note[256] = "OpenBLAS core: not inspected";

__attribute__((constructor)) static void sl_blas_core_fixup(void) {
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
