// OpenBLAS: CBLAS plus the LAPACK routines it bundles (declared here: Debian ships OpenBLAS without LAPACKE).
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

// LAPACK (Fortran calling convention: every argument by pointer, column-major).
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info);
void zheev_(const char *jobz, const char *uplo, const int *n, void *a, const int *lda, double *w,
            void *work, const int *lwork, double *rwork, int *info);
void zheevd_(const char *jobz, const char *uplo, const int *n, void *a, const int *lda, double *w,
             void *work, const int *lwork, double *rwork, const int *lrwork, int *iwork, const int *liwork, int *info);
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda, int *info);
void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info);
