#ifndef RW_KERNELS_H
#define RW_KERNELS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element-wise kernels in C so that clang vectorises them, with per-CPU clones (AVX-512, AVX2,
   baseline) chosen at load time. exp is a polynomial with ~2 ulp error on [-87, 88]; erf is
   Abramowitz & Stegun 7.1.26 (abs error < 5e-7 in float). */

/** y[i] = gelu(x[i]) = 0.5 x (1 + erf(x / sqrt 2)) */
void rw_gelu_forward(const float *x, float *y, long n);
/** dx[i] = dy[i] * gelu'(x[i]) */
void rw_gelu_backward(const float *x, const float *dy, float *dx, long n);
/** y[i] = exp(x[i] - shift); returns the sum of y (used by softmax). */
float rw_exp_shift_sum(const float *x, float *y, long n, float shift);
/** y[i] = exp(x[i]) */
void rw_exp(const float *x, float *y, long n);
/** Cross-entropy of `rows` logit rows of width `vocab` against `targets` (each in 0..<vocab): writes each row's
    loss (log-sum-exp minus the target's logit) to `losses` and replaces the row by its gradient
    scales[r] * (softmax - onehot(target)). */
void rw_cross_entropy_rows(float *logits, long rows, long vocab, const int *targets, const float *scales,
                           float *losses);
/** Softmax in place over `rows` rows of width d; `mask` (nullable) is shared by all rows: 0 drops a column. */
void rw_softmax_rows(float *x, long rows, long d, const float *mask);
/** dx = p * (dp - sum(dp * p)) per row; dx may alias dp. */
void rw_softmax_backward_rows(const float *p, const float *dp, float *dx, long rows, long d);
void rw_layernorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *mean,
                          float *rstd, long n, long d, float eps);
/** Input gradient of layer norm, written or (accumulate != 0) added to dx. */
void rw_layernorm_backward(const float *dy, const float *x, const float *gamma, const float *mean,
                           const float *rstd, float *dx, long n, long d, int accumulate);
/** dgamma += sum dy * xhat, dbeta += sum dy (either may be NULL). */
void rw_layernorm_param_grads(const float *dy, const float *x, const float *mean, const float *rstd,
                              float *dgamma, float *dbeta, long n, long d);
/** y[r] = W[r, :] . x for `rows` rows of a ggml Q4_1 / Q4_0 / Q8_0 matrix of `cols` columns (whole blocks of 32),
    stored row after row as ggml writes it: the weights stay quantised, each block dequantised inside the dot. */
void rw_q4_1_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols);
void rw_q4_0_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols);
void rw_q8_0_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols);
/** Dropout of rows [first_row, end_row) of x (rows of `width`): element (r, j) is kept when the top 24 bits of the
   (j + 1)-th output of SplitMix64 seeded with row_seeds[r] are at least `threshold`. Writes the kept bits (element
   r * width + j; this range's words are cleared first, so ranges must start on a 64-element boundary) and
   dropped = kept ? x * scale : 0. */
void rw_dropout_draw_rows(const float *x, float *dropped, uint64_t *bits, long first_row, long end_row, long width,
                          const uint64_t *row_seeds, uint32_t threshold, float scale);
/** dropped[i] = bit i ? x[i] * scale : 0 for i in [first, end). */
void rw_dropout_apply(const float *x, float *dropped, const uint64_t *bits, long first, long end, float scale);
/** dx[i] += bit i ? g[i] * scale : 0 for i in [first, end). */
void rw_dropout_add_masked(const float *g, float *dx, const uint64_t *bits, long first, long end, float scale);
/** y[i] = silu(gate[i]) * up[i] (y may be gate). */
void rw_swiglu_forward(const float *gate, const float *up, float *y, long n);
/** dup[i] = dy[i] * silu(gate[i]); dgate[i] = dy[i] * up[i] * silu'(gate[i]) (dgate may be dy). */
void rw_swiglu_backward(const float *dy, const float *gate, const float *up, float *dgate, float *dup, long n);
/** 1 when an AVX-512 clone is in use (for `rankwise doctor`). */
int rw_kernels_avx512(void);

#ifdef __cplusplus
}
#endif
#endif
