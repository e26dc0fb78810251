#include "rw_blas.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);
typedef char *(*corename_fn)(void);
typedef int (*get_threads_fn)(void);
typedef void (*set_threads_fn)(int);

static void *handle = NULL;
static sgemm_fn p_sgemm = NULL;
static sgemv_fn p_sgemv = NULL;
static corename_fn p_corename = NULL;
static corename_fn p_config = NULL;
static get_threads_fn p_get_threads = NULL;
static set_threads_fn p_set_threads = NULL;
static char err[1024] = "";
static char loaded_path[512] = "";
static const char *vendor = "unknown";

static int try_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, sizeof err, "%s", e ? e : "dlopen failed");
        return -1;
    }
    sgemm_fn s = (sgemm_fn)dlsym(h, "cblas_sgemm");
    if (!s) {
        snprintf(err, sizeof err, "%s has no cblas_sgemm", path);
        dlclose(h);
        return -1;
    }
    handle = h;
    p_sgemm = s;
    p_sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
    p_corename = (corename_fn)dlsym(h, "openblas_get_corename");
    p_config = (corename_fn)dlsym(h, "openblas_get_config");
    p_get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    p_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    if (p_corename) {
        vendor = "openblas";
    } else if (dlsym(h, "bli_info_get_version_str")) {
        vendor = "blis";
        p_get_threads = (get_threads_fn)dlsym(h, "bli_thread_get_num_threads");
        p_set_threads = (set_threads_fn)dlsym(h, "bli_thread_set_num_threads");
    }
    snprintf(loaded_path, sizeof loaded_path, "%s", path);
    err[0] = 0;
    return 0;
}

int rw_blas_load(const char *path) {
    if (handle) return 0;
    if (path && path[0]) return try_open(path);
    const char *defaults[] = {"libopenblas.so.0", "libopenblas.so", "libblis.so.4", "libblis.so",
                              "libopenblas.dylib", "libblis.dylib"};
    char first[1024] = "";
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (try_open(defaults[i]) == 0) return 0;
        if (!first[0]) snprintf(first, sizeof first, "%s", err);
    }
    snprintf(err, sizeof err,
             "no BLAS library found (tried libopenblas.so.0 and libblis.so.4: %s); "
             "install one with `apt-get install libopenblas-dev` or set RANKWISE_BLAS=/path/to/lib.so",
             first);
    return -1;
}

int rw_blas_loaded(void) { return handle != NULL; }
const char *rw_blas_error(void) { return err; }
const char *rw_blas_path(void) { return loaded_path; }
const char *rw_blas_vendor(void) { return vendor; }
const char *rw_blas_corename(void) { return p_corename ? p_corename() : vendor; }
const char *rw_blas_config(void) { return p_config ? p_config() : ""; }
int rw_blas_get_threads(void) { return p_get_threads ? p_get_threads() : -1; }
void rw_blas_set_threads(int n) { if (p_set_threads) p_set_threads(n); }

/* Products this small (a decoded token through a LoRA factor: 1 x 576 x 8) run here on the calling thread: handing
   them to OpenBLAS wakes its threads for a few thousand multiply-adds, and a token's 420 such products spent more
   time in futex and sched_yield than in arithmetic. */
enum { SMALL_PRODUCT = 16384 };

static void small_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        float *row = c + (long)i * ldc;
        for (int j = 0; j < n; j++) row[j] = beta == 0 ? 0 : beta * row[j];
        for (int p = 0; p < k; p++) {
            const float scaled = alpha * (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]);
            if (transB) {
                for (int j = 0; j < n; j++) row[j] += scaled * b[(long)j * ldb + p];
            } else {
                const float *brow = b + (long)p * ldb;
                for (int j = 0; j < n; j++) row[j] += scaled * brow[j];
            }
        }
    }
}

void rw_sgemm(int transA, int transB, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if ((long)m * n * k <= SMALL_PRODUCT) {
        small_sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* One row or one column of C is a matrix-vector product: sgemm would pack the whole matrix for it (a
       single token through a 49,152 x 576 output projection), sgemv streams it once. */
    if (p_sgemv && m == 1) {
        /* c[0, :] = alpha * op(A)[0, :] . op(B) + beta * c: op(B) is B^T (B is n x k) or B (k x n). */
        p_sgemv(RowMajor, transB ? NoTrans : Trans, transB ? n : k, transB ? k : n, alpha, b, ldb, a,
                transA ? lda : 1, beta, c, 1);
        return;
    }
    if (p_sgemv && n == 1) {
        /* c[:, 0] = alpha * op(A) . op(B)[:, 0] + beta * c: op(A) is A (m x k) or A^T (A is k x m). */
        p_sgemv(RowMajor, transA ? Trans : NoTrans, transA ? k : m, transA ? m : k, alpha, a, lda, b,
                transB ? 1 : ldb, beta, c, ldc);
        return;
    }
    p_sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, a, lda,
            b, ldb, beta, c, ldc);
}
