#ifndef RW_MPI_H
#define RW_MPI_H

#ifdef __cplusplus
extern "C" {
#endif

/* MPI loaded at run time with dlopen, as the BLAS shim loads OpenBLAS: nothing at build time, nothing for a single
   process. The handles are Open MPI's (its predefined objects are exported symbols: ompi_mpi_comm_world, ...); a
   library without them is refused by name. Every call returns 0 or an MPI error code; messages come from
   rw_mpi_error(). Counts of any size: long buffers go in pieces of at most 2^30 elements. */

/** Loads `path`, or when NULL the defaults (libmpi.so.40, libmpi.so). 0 on success. Again after success: no-op. */
int rw_mpi_load(const char *path);
/** The last error message, or "". */
const char *rw_mpi_error(void);
/** The path given to dlopen. */
const char *rw_mpi_path(void);
/** MPI_Get_library_version's text (the first line), or "". */
const char *rw_mpi_version(void);
/** MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI), then the world's rank and size. */
int rw_mpi_init(int *rank, int *size);
/** In place: data[i] = the sum over ranks of data[i]. */
int rw_mpi_allreduce_sum_float(float *data, long count);
int rw_mpi_allreduce_sum_double(double *data, long count);
/** In place: data[i] = the largest over ranks. */
int rw_mpi_allreduce_max_double(double *data, long count);
/** Root's `count` bytes to every rank. */
int rw_mpi_broadcast(void *data, long count, int root);
int rw_mpi_barrier(void);
/** One long to `destination` with `tag`. */
int rw_mpi_send_long(long value, int destination, int tag);
/** One long with `tag` from `source` (-1: any rank); `from` receives the sender. */
int rw_mpi_receive_long(long *value, int source, int tag, int *from);
/** Ends every rank of the job with `code` (MPI_Abort on the world). */
int rw_mpi_abort(int code);
int rw_mpi_finalize(void);

#ifdef __cplusplus
}
#endif
#endif
