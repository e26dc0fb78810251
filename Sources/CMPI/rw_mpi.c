#include "rw_mpi.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Open MPI's handles are pointers to its predefined objects; MPI_IN_PLACE is (void *)1 and MPI_ANY_SOURCE -1
   (Open MPI's mpi.h). Its MPI_Status starts with MPI_SOURCE and is 24 bytes; a larger buffer is passed. */
typedef void *handle_t;
enum { THREAD_FUNNELED = 1, ANY_SOURCE = -1, MAX_PIECE = 1 << 30 };
#define IN_PLACE ((void *)1)

typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*comm_int_fn)(handle_t, int *);
typedef int (*allreduce_fn)(const void *, void *, int, handle_t, handle_t, handle_t);
typedef int (*bcast_fn)(void *, int, handle_t, int, handle_t);
typedef int (*barrier_fn)(handle_t);
typedef int (*send_fn)(const void *, int, handle_t, int, int, handle_t);
typedef int (*recv_fn)(void *, int, handle_t, int, int, handle_t, void *);
typedef int (*abort_fn)(handle_t, int);
typedef int (*finalize_fn)(void);
typedef int (*version_fn)(char *, int *);

static void *library = NULL;
static char error_text[1024] = "";
static char loaded_path[512] = "";
static char version_text[256] = "";
static handle_t world, float_type, double_type, long_type, byte_type, sum_op, max_op;
static init_thread_fn p_init_thread;
static comm_int_fn p_rank, p_size;
static allreduce_fn p_allreduce;
static bcast_fn p_bcast;
static barrier_fn p_barrier;
static send_fn p_send;
static recv_fn p_recv;
static abort_fn p_abort;
static finalize_fn p_finalize;
static version_fn p_version;

static void *need(void *opened, const char *name, const char *path, int *missing) {
    void *symbol = dlsym(opened, name);
    if (!symbol && !*missing) {
        snprintf(error_text, sizeof error_text, "%s has no %s (Rankwise needs Open MPI's libmpi.so.40)", path, name);
        *missing = 1;
    }
    return symbol;
}

static int try_open(const char *path) {
    void *opened = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!opened) {
        const char *message = dlerror();
        snprintf(error_text, sizeof error_text, "%s", message ? message : "dlopen failed");
        return -1;
    }
    int missing = 0;
    world = need(opened, "ompi_mpi_comm_world", path, &missing);
    float_type = need(opened, "ompi_mpi_float", path, &missing);
    double_type = need(opened, "ompi_mpi_double", path, &missing);
    long_type = need(opened, "ompi_mpi_long", path, &missing);
    byte_type = need(opened, "ompi_mpi_byte", path, &missing);
    sum_op = need(opened, "ompi_mpi_op_sum", path, &missing);
    max_op = need(opened, "ompi_mpi_op_max", path, &missing);
    p_init_thread = (init_thread_fn)need(opened, "MPI_Init_thread", path, &missing);
    p_rank = (comm_int_fn)need(opened, "MPI_Comm_rank", path, &missing);
    p_size = (comm_int_fn)need(opened, "MPI_Comm_size", path, &missing);
    p_allreduce = (allreduce_fn)need(opened, "MPI_Allreduce", path, &missing);
    p_bcast = (bcast_fn)need(opened, "MPI_Bcast", path, &missing);
    p_barrier = (barrier_fn)need(opened, "MPI_Barrier", path, &missing);
    p_send = (send_fn)need(opened, "MPI_Send", path, &missing);
    p_recv = (recv_fn)need(opened, "MPI_Recv", path, &missing);
    p_abort = (abort_fn)need(opened, "MPI_Abort", path, &missing);
    p_finalize = (finalize_fn)need(opened, "MPI_Finalize", path, &missing);
    p_version = (version_fn)dlsym(opened, "MPI_Get_library_version");
    if (missing) {
        dlclose(opened);
        return -1;
    }
    library = opened;
    snprintf(loaded_path, sizeof loaded_path, "%s", path);
    error_text[0] = 0;
    return 0;
}

int rw_mpi_load(const char *path) {
    if (library) return 0;
    if (path) return try_open(path);
    const char *defaults[] = {"libmpi.so.40", "libmpi.so"};
    char first[1024] = "";
    for (unsigned i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (try_open(defaults[i]) == 0) return 0;
        if (!first[0]) snprintf(first, sizeof first, "%s", error_text);
    }
    snprintf(error_text, sizeof error_text, "%s", first);
    return -1;
}

const char *rw_mpi_error(void) { return error_text; }
const char *rw_mpi_path(void) { return loaded_path; }

const char *rw_mpi_version(void) {
    if (!library || !p_version || version_text[0]) return version_text;
    char text[8192];
    int length = 0;
    if (p_version(text, &length) != 0) return version_text;
    text[length < (int)sizeof text ? length : (int)sizeof text - 1] = 0;
    char *end = strpbrk(text, ",\n");
    if (end) *end = 0;
    snprintf(version_text, sizeof version_text, "%s", text);
    return version_text;
}

static int not_loaded(void) {
    snprintf(error_text, sizeof error_text, "the MPI library is not loaded");
    return -1;
}

int rw_mpi_init(int *rank, int *size) {
    if (!library) return not_loaded();
    int provided = 0;
    int code = p_init_thread(NULL, NULL, THREAD_FUNNELED, &provided);
    if (code != 0) return code;
    code = p_rank(world, rank);
    if (code != 0) return code;
    return p_size(world, size);
}

static int allreduce(void *data, long count, handle_t type, long width, handle_t op) {
    if (!library) return not_loaded();
    char *bytes = data;
    for (long start = 0; start < count; start += MAX_PIECE) {
        long piece = count - start < MAX_PIECE ? count - start : MAX_PIECE;
        int code = p_allreduce(IN_PLACE, bytes + start * width, (int)piece, type, op, world);
        if (code != 0) return code;
    }
    return 0;
}

int rw_mpi_allreduce_sum_float(float *data, long count) {
    return allreduce(data, count, float_type, sizeof(float), sum_op);
}

int rw_mpi_allreduce_sum_double(double *data, long count) {
    return allreduce(data, count, double_type, sizeof(double), sum_op);
}

int rw_mpi_allreduce_max_double(double *data, long count) {
    return allreduce(data, count, double_type, sizeof(double), max_op);
}

int rw_mpi_broadcast(void *data, long count, int root) {
    if (!library) return not_loaded();
    char *bytes = data;
    for (long start = 0; start < count; start += MAX_PIECE) {
        long piece = count - start < MAX_PIECE ? count - start : MAX_PIECE;
        int code = p_bcast(bytes + start, (int)piece, byte_type, root, world);
        if (code != 0) return code;
    }
    return 0;
}

int rw_mpi_barrier(void) { return library ? p_barrier(world) : not_loaded(); }

int rw_mpi_send_long(long value, int destination, int tag) {
    return library ? p_send(&value, 1, long_type, destination, tag, world) : not_loaded();
}

int rw_mpi_receive_long(long *value, int source, int tag, int *from) {
    if (!library) return not_loaded();
    int status[16] = {0};
    int code = p_recv(value, 1, long_type, source < 0 ? ANY_SOURCE : source, tag, world, status);
    if (from) *from = status[0];
    return code;
}

int rw_mpi_abort(int code) { return library ? p_abort(world, code) : not_loaded(); }
int rw_mpi_finalize(void) { return library ? p_finalize() : not_loaded(); }
