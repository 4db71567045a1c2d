/* Fused CPU kernels of the batched UCI regressors (see uci_native.py, which compiles this file).

   K networks  Dropout -> Linear(D, H) -> ReLU -> Dropout -> Linear(H, 1), the dropout factor
   s = 1 / (1 - p) on the weights, exactly as uci_batched.py computes them with torch ops; here
   one network's whole step (forward, hand-written backward, Adam) runs while its parameters and
   activations sit in the L1 cache, instead of one pass over all K networks per torch op.

   Compiled per (REAL, DIN, HID), so the loops have constant trip counts. The hidden layer is
   held in GCC/Clang vector types of VL lanes, NV of them per row, padded with zero weights (a
   padded unit has pre-activation 0, so relu gives 0 and it adds nothing). The random numbers are
   not drawn here: the caller passes the shuffled row indices and the dropped positions (flat
   indices into (K, b, D) and (K, b, H); an index >= the size means "nothing", see
   uci_batched.drop_positions), so this path consumes the torch generator exactly like the torch
   path and trains the same networks up to rounding. */

#include <tgmath.h> /* sqrt of a float is sqrtf */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef REAL
#error "compile with -DREAL=float or -DREAL=double"
#endif
#if !defined(DIN) || !defined(HID)
#error "compile with -DDIN=<inputs> -DHID=<hidden units>"
#endif

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif

enum { D = DIN, H = HID, D1 = DIN + 1, VL = VBYTES / sizeof(REAL), NV = (HID + VL - 1) / VL };
enum { PREFETCH = 8 }; /* rows of a minibatch fetched ahead of their use */

typedef REAL vec __attribute__((vector_size(VBYTES)));
/* the integer of REAL's width, for lane masks (all ones or zero) */
#define float_INT int32_t
#define double_INT int64_t
#define INT_OF_(r) r##_INT
#define INT_OF(r) INT_OF_(r)
typedef INT_OF(REAL) ireal;
typedef ireal ivec __attribute__((vector_size(VBYTES)));

/* Keep-masks are bits, NW1 (inputs) and NW2 (hidden units) 64-bit words per row. */
enum { NW1 = (DIN + 63) / 64, NW2 = (HID + 63) / 64 };

/* Dropout masks from geometric gaps (the law of uci_batched.drop_positions).

   Network k has n = rows (D + H) mask entries: its rows' D input entries (row-major), then its
   rows' H hidden entries. The dropped ones are the partial sums of gaps
   gap = floor(min(L inv_log_q, n)) + 1, L = log(1 - U) drawn by the caller, so both backends
   turn the same uniforms into the same positions. A round covers networks ks[0..r): network
   ks[t] reads width[ks[t]] values of L (consecutive, in the order of ks), continues from
   last[ks[t]] (-1 at its first round) and clears the bits of its positions < n in keep1
   (K rows NW1 words) and keep2 (K rows NW2 words), which the caller sets to all ones first.
   Networks still short of n are written to short_ks, in order; returns their number. */
int64_t drops_from_gaps(int64_t r, const int64_t *restrict ks, const int64_t *restrict width,
                        const double *restrict inv_log_q, const double *restrict L,
                        int64_t *restrict last, int64_t rows, uint64_t *restrict keep1,
                        uint64_t *restrict keep2, int64_t *restrict short_ks) {
    const int64_t n_in = rows * D, n = rows * (D + H);
    int64_t n_short = 0;
    for (int64_t t = 0; t < r; ++t) {
        const int64_t k = ks[t], w = width[k];
        const double inv = inv_log_q[k];
        int64_t pos = last[k];
        for (int64_t c = 0; c < w && pos < n; ++c) {
            double e = L[c] * inv;
            if (e > (double)n) e = (double)n; /* gaps past the end are all alike: no overflow */
            pos += (int64_t)e + 1;
            if (pos < n_in) {
                const int64_t row = pos / D, col = pos - row * D; /* constant divisor */
                keep1[(k * rows + row) * NW1 + col / 64] &= ~(UINT64_C(1) << (col % 64));
            } else if (pos < n) {
                const int64_t q = pos - n_in, row = q / H, col = q - row * H;
                keep2[(k * rows + row) * NW2 + col / 64] &= ~(UINT64_C(1) << (col % 64));
            }
        }
        L += w;
        last[k] = pos;
        if (pos < n) short_ks[n_short++] = k;
    }
    return n_short;
}

static inline int bit(const uint64_t *restrict bits, int c) { return (bits[c / 64] >> (c % 64)) & 1; }

/* Lanes q VL .. q VL + VL - 1 of a row's bits as a lane mask (all ones where kept); VL divides
   64, so the lanes lie in one word. */
static inline ivec keep_lanes(const uint64_t *restrict bits, int q) {
    const int first = q * VL;
    const uint64_t w = (bits[first / 64] >> (first % 64)) & ((UINT64_C(1) << VL) - 1);
    ivec lane;
    for (int l = 0; l < VL; ++l) lane[l] = l;
    return -((((ivec){0} + (ireal)w) >> lane) & 1);
}

/* relu(a) where kept, else 0 */
static inline vec relu_keep(vec a, ivec keep) { return (vec)((ivec)a & (a > (vec){0}) & keep); }

/* 1 where a > 0, else 0 */
static inline vec step(vec a) { return (vec)((ivec)((vec){0} + (REAL)1) & (a > (vec){0})); }

typedef REAL v16 __attribute__((vector_size(16)));

/* sum of the lanes: the 16-byte parts added as vectors, then their few lanes */
static inline REAL hsum(vec v) {
    v16 part[VBYTES / 16];
    memcpy(part, &v, sizeof v);
    v16 a = part[0];
    for (int i = 1; i < VBYTES / 16; ++i) a += part[i];
    REAL s = 0;
    for (int l = 0; l < (int)(16 / sizeof(REAL)); ++l) s += a[l];
    return s;
}

/* Hidden pre-activations of one row, acc = (s x m1) W1 + b1 with Wp = [W1; b1] padded; the
   dropped and scaled inputs s x m1 are also written to xm unless it is NULL. */
static inline void preact(vec acc[NV], const vec *restrict Wp, const REAL *restrict x, REAL s,
                          const uint64_t *restrict keep1, REAL *restrict xm) {
    for (int q = 0; q < NV; ++q) acc[q] = Wp[D * NV + q];
    for (int j = 0; j < D; ++j) {
        const REAL xj = x[j] * s * (REAL)bit(keep1, j);
        if (xm) xm[j] = xj;
        for (int q = 0; q < NV; ++q) acc[q] += xj * Wp[j * NV + q];
    }
}

/* Unpadded (rows, H) -> padded (rows, NV) vectors. */
static void pack(vec *restrict dst, const REAL *restrict src, int rows) {
    memset(dst, 0, sizeof(vec) * rows * NV);
    for (int r = 0; r < rows; ++r) memcpy((REAL *)(dst + r * NV), src + r * H, sizeof(REAL) * H);
}

/* torch.optim.Adam on n entries: m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2,
   p -= step_size m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - beta1^t),
   bc2_sqrt = sqrt(1 - beta2^t). */
static void adam(REAL *restrict p, REAL *restrict m, REAL *restrict v, const REAL *restrict g,
                 int n, REAL beta1, REAL beta2, REAL step_size, REAL bc2_sqrt, REAL eps) {
    const REAL w = (REAL)1 - beta1, w2 = (REAL)1 - beta2;
    for (int i = 0; i < n; ++i) {
        const REAL mi = m[i] + w * (g[i] - m[i]);
        const REAL vi = v[i] * beta2 + g[i] * g[i] * w2;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
    }
}

/* Size in bytes of the workspace one thread of train_step needs for batches of up to b rows
   (a multiple of 64, so the threads' parts stay aligned). */
int64_t train_workspace(int64_t b) {
    const int64_t n = (int64_t)sizeof(vec) * (b * NV + 2 * D1 * NV + 2 * NV) +
                      (int64_t)sizeof(REAL) * b * D;
    return (n + 63) / 64 * 64;
}

/* Whether this library runs its loops over networks on several threads. */
int64_t has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* One optimisation step of all K networks on a minibatch of b rows each.

   X (K N, D) and y (K N) hold every network's rows; rows (K, b) are flat row indices (network
   k reads rows k N + perm). w1 (K, D + 1, H) is [W1; b1], w2 (K, H), b2 (K); m and v are their
   Adam moments. Per network the loss is mean_b (f(x_b) - y_b)^2 + reg (|W1|^2 + |W2|^2) with
   two_reg = 2 reg. keep1 and keep2 are the masks (drops_from_gaps with rows = b); work
   (threads x train_workspace(b) bytes, aligned to 64) is scratch. Networks are independent,
   so they are split between `threads` threads (with OpenMP). */
void train_step(int64_t K, int64_t b, const REAL *restrict X, const REAL *restrict y,
                const int64_t *restrict rows, const uint64_t *restrict keep1,
                const uint64_t *restrict keep2, REAL *restrict w1,
                REAL *restrict w2, REAL *restrict b2, REAL *restrict m1, REAL *restrict v1,
                REAL *restrict m2, REAL *restrict v2, REAL *restrict mb, REAL *restrict vb,
                const REAL *restrict scale, const REAL *restrict two_reg, double beta1,
                double beta2, double step_size, double bc2_sqrt, double eps, char *restrict work,
                int64_t threads) {
    const REAL two_over_b = (REAL)2 / (REAL)b;
    const int64_t per_thread = train_workspace(b);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t k = 0; k < K; ++k) {
#ifdef _OPENMP
        char *mine = work + per_thread * omp_get_thread_num();
#else
        char *mine = work;
#endif
        vec *restrict GA = (vec *)mine;        /* (b, NV): dL/da per row */
        vec *restrict Wp = GA + b * NV;        /* (D + 1, NV): [W1; b1], padded */
        vec *restrict G1 = Wp + D1 * NV;       /* (D + 1, NV): gradient of [W1; b1] */
        vec *restrict wp = G1 + D1 * NV;       /* (NV): w2, padded */
        vec *restrict G2 = wp + NV;            /* (NV): gradient of w2 */
        REAL *restrict XM = (REAL *)(G2 + NV); /* (b, D): s x m1, dropped and scaled inputs */
        const REAL s = scale[k], r2 = two_reg[k];
        REAL *restrict W = w1 + k * D1 * H;
        REAL *restrict w = w2 + k * H;
        const int64_t *restrict rk = rows + k * b;
        pack(Wp, W, D1);
        pack(wp, w, 1);
        vec g2[NV] = {0};
        REAL gb = 0;
        for (int64_t i = 0; i < b; ++i) {
            /* the rows are random picks from N: fetch them ahead, or a large data set (naval:
               150 MB for 240 networks) waits on memory for most of the step */
            if (i + PREFETCH < b) {
                const char *ahead = (const char *)(X + rk[i + PREFETCH] * D);
                for (size_t q = 0; q < sizeof(REAL) * D; q += 64) __builtin_prefetch(ahead + q);
                __builtin_prefetch(y + rk[i + PREFETCH]);
            }
            /* forward: a = (s x m1) W1 + b1, h = relu(a) m2, out = s h . w2 + b2 */
            const REAL *restrict x = X + rk[i] * D;
            const uint64_t *restrict k1 = keep1 + (k * b + i) * NW1;
            REAL *restrict xm = XM + i * D;
            vec acc[NV];
            preact(acc, Wp, x, s, k1, xm);
            const uint64_t *restrict k2 = keep2 + (k * b + i) * NW2;
            vec ov = {0};
            for (int q = 0; q < NV; ++q) {
                acc[q] = relu_keep(acc[q], keep_lanes(k2, q));
                ov += acc[q] * wp[q];
            }
            /* backward: dL/dout = 2 / b (out - y), dL/dw2 += dL/dout h,
               dL/da = dL/dout s w2 1[h > 0] (h > 0 iff a > 0 and the unit is kept) */
            const REAL g = two_over_b * (hsum(ov) * s + b2[k] - y[rk[i]]);
            gb += g;
            for (int q = 0; q < NV; ++q) {
                g2[q] += g * acc[q];
                GA[i * NV + q] = (g * s) * wp[q] * step(acc[q]);
            }
        }
        /* [dL/dW1; dL/db1] = [(s x m1)^T; 1^T] dL/da, one row of it at a time in registers */
        for (int j = 0; j < D1; ++j) {
            vec acc[NV] = {0};
            for (int64_t i = 0; i < b; ++i) {
                const REAL xj = j < D ? XM[i * D + j] : (REAL)1;
                for (int q = 0; q < NV; ++q) acc[q] += xj * GA[i * NV + q];
            }
            for (int q = 0; q < NV; ++q) G1[j * NV + q] = acc[q];
        }
        for (int q = 0; q < NV; ++q) G2[q] = g2[q];
        /* weight decay, then Adam on the unpadded entries */
        REAL grad[D1 * H], gw[H];
        for (int j = 0; j < D1; ++j) {
            const REAL *restrict gj = (const REAL *)(G1 + j * NV);
            const REAL rj = j < D ? r2 : (REAL)0;
            for (int h = 0; h < H; ++h) grad[j * H + h] = gj[h] + rj * W[j * H + h];
        }
        for (int h = 0; h < H; ++h) gw[h] = ((const REAL *)G2)[h] * s + r2 * w[h];
        adam(W, m1 + k * D1 * H, v1 + k * D1 * H, grad, D1 * H, (REAL)beta1, (REAL)beta2,
             (REAL)step_size, (REAL)bc2_sqrt, (REAL)eps);
        adam(w, m2 + k * H, v2 + k * H, gw, H, (REAL)beta1, (REAL)beta2, (REAL)step_size,
             (REAL)bc2_sqrt, (REAL)eps);
        adam(b2 + k, mb + k, vb + k, &gb, 1, (REAL)beta1, (REAL)beta2, (REAL)step_size,
             (REAL)bc2_sqrt, (REAL)eps);
    }
}

/* S MC dropout passes of all K networks over their M rows: out (K, S, M).

   X (K, M, D); w1 (K, D + 1, H) is [s W1; b1] and w2 (K, H) is s w2 (the factor applied);
   keep1 and keep2 are the masks (drops_from_gaps with rows = S M, row t M + i for pass t);
   networks are split between `threads` threads (with OpenMP). */
void mc_passes(int64_t K, int64_t M, int64_t S, const REAL *restrict X,
               const uint64_t *restrict keep1, const uint64_t *restrict keep2,
               const REAL *restrict w1, const REAL *restrict w2, const REAL *restrict b2,
               REAL *restrict out, int64_t threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t k = 0; k < K; ++k) {
        vec Wp[D1 * NV], wp[NV];
        pack(Wp, w1 + k * D1 * H, D1);
        pack(wp, w2 + k * H, 1);
        for (int64_t t = 0; t < S; ++t) {
            for (int64_t i = 0; i < M; ++i) {
                const int64_t row = (k * S + t) * M + i;
                const REAL *restrict x = X + (k * M + i) * D;
                const uint64_t *restrict k1 = keep1 + row * NW1;
                const uint64_t *restrict k2 = keep2 + row * NW2;
                vec acc[NV];
                preact(acc, Wp, x, 1, k1, NULL);
                vec ov = {0};
                for (int q = 0; q < NV; ++q) ov += relu_keep(acc[q], keep_lanes(k2, q)) * wp[q];
                out[row] = hsum(ov) + b2[k];
            }
        }
    }
}
