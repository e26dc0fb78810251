#ifndef RW_BLAS_H
#define RW_BLAS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Loads a BLAS library with dlopen. `path` may be NULL to try the defaults
/// (libopenblas.so.0, libopenblas.so, libblis.so.4, libblis.so). Returns 0 on success; on failure
/// a message is available from rw_blas_error(). Calling it again after success is a no-op.
int rw_blas_load(const char *path);
/// 1 when a library is loaded.
int rw_blas_loaded(void);
/// Last error message, or an empty string.
const char *rw_blas_error(void);
/// Path (as given to dlopen) of the loaded library.
const char *rw_blas_path(void);
/// "openblas", "blis" or "unknown".
const char *rw_blas_vendor(void);
/// OpenBLAS core name (openblas_get_corename) or the vendor name when not available.
const char *rw_blas_corename(void);
/// OpenBLAS build configuration string, or "".
const char *rw_blas_config(void);
/// Number of threads the library uses (-1 if unknown).
int rw_blas_get_threads(void);
/// Sets the number of threads when the library supports it.
void rw_blas_set_threads(int n);

/// C = alpha * op(A) * op(B) + beta * C, row-major. transA/transB: 0 = no, 1 = transpose.
void rw_sgemm(int transA, int transB, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#ifdef __cplusplus
}
#endif
#endif
