#include "rw_kernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

static inline float fast_exp(float x) {
    x = fminf(fmaxf(x, -87.3f), 88.7f);
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}

static inline float fast_erf(float x) {
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.061405429f;
    y = y * t - 1.453152027f;
    y = y * t + 1.421413741f;
    y = y * t - 0.284496736f;
    y = y * t + 0.254829592f;
    y = y * t;
    float r = 1.0f - y * fast_exp(-ax * ax);
    return x < 0 ? -r : r;
}

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT2PI 0.39894228040143268f

CLONES void rw_gelu_forward(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + fast_erf(v * INV_SQRT2));
    }
}

CLONES void rw_gelu_backward(const float *restrict x, const float *restrict dy, float *dx, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + fast_erf(v * INV_SQRT2));
        float pdf = INV_SQRT2PI * fast_exp(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

CLONES float rw_exp_shift_sum(const float *x, float *y, long n, float shift) {
    for (long i = 0; i < n; i++) y[i] = fast_exp(x[i] - shift);
    /* 16 partial sums so that the reduction vectorises without -ffast-math */
    float acc[16] = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += y[i + k];
    float s = 0;
    for (; i < n; i++) s += y[i];
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

CLONES void rw_exp(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = fast_exp(x[i]);
}

int rw_kernels_avx512(void) {
#if defined(__x86_64__) && defined(__clang__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* Reductions with 16 partial results so that they vectorise without -ffast-math. */
static inline float hsum16(const float *acc) {
    float s = 0;
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

CLONES void rw_softmax_rows(float *x, long rows, long d, const float *mask) {
    for (long r = 0; r < rows; r++) {
        float *row = x + r * d;
        float mx = -INFINITY;
        if (mask) {
            for (long j = 0; j < d; j++)
                if (mask[j] != 0 && row[j] > mx) mx = row[j];
        } else {
            float acc[16];
            for (int k = 0; k < 16; k++) acc[k] = -INFINITY;
            long j = 0;
            for (; j + 16 <= d; j += 16)
                for (int k = 0; k < 16; k++) acc[k] = fmaxf(acc[k], row[j + k]);
            for (; j < d; j++) mx = fmaxf(mx, row[j]);
            for (int k = 0; k < 16; k++) mx = fmaxf(mx, acc[k]);
        }
        if (mx == -INFINITY) { /* every key masked: uniform, as a finite additive mask gives */
            for (long j = 0; j < d; j++) row[j] = 1.0f / (float)d;
            continue;
        }
        float acc[16] = {0};
        long j = 0;
        if (mask) {
            for (j = 0; j < d; j++) row[j] = mask[j] != 0 ? fast_exp(row[j] - mx) : 0.0f;
        } else {
            for (j = 0; j < d; j++) row[j] = fast_exp(row[j] - mx);
        }
        for (j = 0; j + 16 <= d; j += 16)
            for (int k = 0; k < 16; k++) acc[k] += row[j + k];
        float s = hsum16(acc);
        for (; j < d; j++) s += row[j];
        float inv = 1.0f / s;
        for (j = 0; j < d; j++) row[j] *= inv;
    }
}

CLONES void rw_softmax_backward_rows(const float *p, const float *dp, float *dx, long rows, long d) {
    for (long r = 0; r < rows; r++) {
        const float *pr = p + r * d, *gr = dp + r * d;
        float *out = dx + r * d;
        float acc[16] = {0};
        long j = 0;
        for (; j + 16 <= d; j += 16)
            for (int k = 0; k < 16; k++) acc[k] += pr[j + k] * gr[j + k];
        float dot = hsum16(acc);
        for (; j < d; j++) dot += pr[j] * gr[j];
        for (j = 0; j < d; j++) out[j] = pr[j] * (gr[j] - dot);
    }
}

CLONES void rw_layernorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *mean,
                                 float *rstd, long n, long d, float eps) {
    for (long i = 0; i < n; i++) {
        const float *row = x + i * d;
        float *out = y + i * d;
        float acc[16] = {0};
        long j = 0;
        for (; j + 16 <= d; j += 16)
            for (int k = 0; k < 16; k++) acc[k] += row[j + k];
        float s = hsum16(acc);
        for (; j < d; j++) s += row[j];
        float mu = s / (float)d;
        float acc2[16] = {0};
        for (j = 0; j + 16 <= d; j += 16)
            for (int k = 0; k < 16; k++) { float c = row[j + k] - mu; acc2[k] += c * c; }
        float v = hsum16(acc2);
        for (; j < d; j++) { float c = row[j] - mu; v += c * c; }
        float rs = 1.0f / sqrtf(v / (float)d + eps);
        for (j = 0; j < d; j++) out[j] = (row[j] - mu) * rs * gamma[j] + beta[j];
        mean[i] = mu;
        rstd[i] = rs;
    }
}

CLONES void rw_layernorm_backward(const float *dy, const float *x, const float *gamma, const float *mean,
                                  const float *rstd, float *dx, long n, long d, int accumulate) {
    for (long i = 0; i < n; i++) {
        const float *g = dy + i * d, *xr = x + i * d;
        float *out = dx + i * d;
        float mu = mean[i], rs = rstd[i];
        float a1[16] = {0}, a2[16] = {0};
        long j = 0;
        for (; j + 16 <= d; j += 16)
            for (int k = 0; k < 16; k++) {
                float gg = g[j + k] * gamma[j + k];
                a1[k] += gg;
                a2[k] += gg * (xr[j + k] - mu) * rs;
            }
        float sumG = hsum16(a1), sumGX = hsum16(a2);
        for (; j < d; j++) {
            float gg = g[j] * gamma[j];
            sumG += gg;
            sumGX += gg * (xr[j] - mu) * rs;
        }
        float invD = 1.0f / (float)d;
        if (accumulate) {
            for (j = 0; j < d; j++) {
                float xh = (xr[j] - mu) * rs;
                out[j] += rs * (g[j] * gamma[j] - invD * sumG - xh * invD * sumGX);
            }
        } else {
            for (j = 0; j < d; j++) {
                float xh = (xr[j] - mu) * rs;
                out[j] = rs * (g[j] * gamma[j] - invD * sumG - xh * invD * sumGX);
            }
        }
    }
}

CLONES void rw_layernorm_param_grads(const float *dy, const float *x, const float *mean, const float *rstd,
                                     float *dgamma, float *dbeta, long n, long d) {
    for (long i = 0; i < n; i++) {
        const float *g = dy + i * d, *xr = x + i * d;
        float mu = mean[i], rs = rstd[i];
        if (dgamma)
            for (long j = 0; j < d; j++) dgamma[j] += g[j] * (xr[j] - mu) * rs;
        if (dbeta)
            for (long j = 0; j < d; j++) dbeta[j] += g[j];
    }
}

/* ---- Quantised matrix-vector products (ggml block layouts) ---- */

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F;
    uint32_t mantissa = h & 0x3FF;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {
            /* subnormal: normalise */
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400) == 0) {
                mantissa <<= 1;
                exponent--;
            }
            mantissa &= 0x3FF;
            bits = sign | (exponent << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Each kernel keeps 16 (or 32) independent lanes per row, so the compiler vectorises the block loop without
   reassociating a sum; the lanes are added once per row. */
CLONES void rw_q4_1_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols) {
    long blocks = cols / 32;
    for (long r = 0; r < rows; r++) {
        const unsigned char *row = w + r * blocks * 20;
        float lanes[16] = {0};
        for (long b = 0; b < blocks; b++) {
            const unsigned char *block = row + b * 20;
            uint16_t scale_bits;
            uint16_t minimum_bits;
            memcpy(&scale_bits, block, 2);
            memcpy(&minimum_bits, block + 2, 2);
            float d = half_to_float(scale_bits);
            float m = half_to_float(minimum_bits);
            const unsigned char *q = block + 4;
            const float *xb = x + b * 32;
            for (int j = 0; j < 16; j++) {
                float low = (float)(q[j] & 15) * d + m;
                float high = (float)(q[j] >> 4) * d + m;
                lanes[j] += low * xb[j] + high * xb[j + 16];
            }
        }
        float total = 0;
        for (int j = 0; j < 16; j++) total += lanes[j];
        y[r] = total;
    }
}

CLONES void rw_q4_0_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols) {
    long blocks = cols / 32;
    for (long r = 0; r < rows; r++) {
        const unsigned char *row = w + r * blocks * 18;
        float lanes[16] = {0};
        for (long b = 0; b < blocks; b++) {
            const unsigned char *block = row + b * 18;
            uint16_t dh;
            memcpy(&dh, block, 2);
            float d = half_to_float(dh);
            const unsigned char *q = block + 2;
            const float *xb = x + b * 32;
            for (int j = 0; j < 16; j++) {
                float low = (float)((int)(q[j] & 15) - 8) * d;
                float high = (float)((int)(q[j] >> 4) - 8) * d;
                lanes[j] += low * xb[j] + high * xb[j + 16];
            }
        }
        float total = 0;
        for (int j = 0; j < 16; j++) total += lanes[j];
        y[r] = total;
    }
}

CLONES void rw_q8_0_matvec(const unsigned char *w, const float *x, float *y, long rows, long cols) {
    long blocks = cols / 32;
    for (long r = 0; r < rows; r++) {
        const unsigned char *row = w + r * blocks * 34;
        float lanes[32] = {0};
        for (long b = 0; b < blocks; b++) {
            const unsigned char *block = row + b * 34;
            uint16_t dh;
            memcpy(&dh, block, 2);
            float d = half_to_float(dh);
            const signed char *q = (const signed char *)(block + 2);
            const float *xb = x + b * 32;
            for (int j = 0; j < 32; j++) lanes[j] += (float)q[j] * d * xb[j];
        }
        float total = 0;
        for (int j = 0; j < 32; j++) total += lanes[j];
        y[r] = total;
    }
}

CLONES void rw_cross_entropy_rows(float *logits, long rows, long vocab, const int *targets, const float *scales,
                                  float *losses) {
    for (long r = 0; r < rows; r++) {
        float *row = logits + r * vocab;
        float acc[16];
        for (int k = 0; k < 16; k++) acc[k] = -INFINITY;
        long j = 0;
        for (; j + 16 <= vocab; j += 16)
            for (int k = 0; k < 16; k++) acc[k] = fmaxf(acc[k], row[j + k]);
        float mx = -INFINITY;
        for (; j < vocab; j++) mx = fmaxf(mx, row[j]);
        for (int k = 0; k < 16; k++) mx = fmaxf(mx, acc[k]);
        float target_logit = row[targets[r]];
        float sums[16] = {0};
        for (j = 0; j < vocab; j++) row[j] = fast_exp(row[j] - mx);
        for (j = 0; j + 16 <= vocab; j += 16)
            for (int k = 0; k < 16; k++) sums[k] += row[j + k];
        float sum = hsum16(sums);
        for (; j < vocab; j++) sum += row[j];
        losses[r] = mx + logf(sum) - target_logit;
        float scale = scales[r] / sum;
        for (j = 0; j < vocab; j++) row[j] *= scale;
        row[targets[r]] -= scales[r];
    }
}

/* SplitMix64's (i + 1)-th output for a generator seeded with `seed`: its state after i + 1 steps, mixed. */
static inline uint64_t splitmix64_draw(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

CLONES void rw_dropout_apply(const float *x, float *dropped, const uint64_t *bits, long first, long end, float scale) {
    for (long i = first; i < end; i++) dropped[i] = (bits[i >> 6] >> (i & 63)) & 1 ? x[i] * scale : 0.0f;
}

CLONES void rw_dropout_add_masked(const float *g, float *dx, const uint64_t *bits, long first, long end, float scale) {
    for (long i = first; i < end; i++) dx[i] += (bits[i >> 6] >> (i & 63)) & 1 ? g[i] * scale : 0.0f;
}

CLONES void rw_swiglu_forward(const float *gate, const float *up, float *y, long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        float sigmoid = 1.0f / (1.0f + fast_exp(-g));
        y[i] = g * sigmoid * up[i];
    }
}

CLONES void rw_swiglu_backward(const float *dy, const float *gate, const float *up, float *dgate, float *dup,
                               long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        float upstream = dy[i];
        float sigmoid = 1.0f / (1.0f + fast_exp(-g));
        dup[i] = upstream * g * sigmoid;
        dgate[i] = upstream * up[i] * sigmoid * (1.0f + g * (1.0f - sigmoid));
    }
}

CLONES void rw_dropout_draw_rows(const float *x, float *dropped, uint64_t *bits, long first_row, long end_row,
                                 long width, const uint64_t *row_seeds, uint32_t threshold, float scale) {
    long first = first_row * width;
    long end = end_row * width;
    for (long word = first >> 6; word < (end + 63) >> 6; word++) bits[word] = 0;
    for (long row = first_row; row < end_row; row++) {
        uint64_t seed = row_seeds[row];
        long base = row * width;
        for (long j = 0; j < width; j++) {
            int kept = (uint32_t)(splitmix64_draw(seed, (uint64_t)j) >> 40) >= threshold;
            long i = base + j;
            bits[i >> 6] |= (uint64_t)kept << (i & 63);
            dropped[i] = kept ? x[i] * scale : 0.0f;
        }
    }
}
