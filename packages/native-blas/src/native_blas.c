/*
 * native_blas.c: a small N-API addon over OpenBLAS's cblas_sgemm, used by heads to run tfjs matMul
 * kernels natively on tensor memory (the wasm heap or cpu-backend Float32Arrays), zero-copy.
 *
 * All matrices are row-major float32 and addressed as (Float32Array, element offset). Every entry
 * point validates its arguments and the extent of every matrix it touches BEFORE it reads or writes
 * anything: out-of-range shapes, offsets or strides throw a RangeError, wrong argument types a
 * TypeError. An output range that overlaps an input range is also a RangeError (BLAS does not
 * allow aliasing).
 *
 * Exports:
 *   sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc[, offA, offB, offC])
 *   sgemmBatched(transA, transB, M, N, K, alpha, A, offA, strideA, B, offB, strideB,
 *                beta, C, offC, strideC, batch[, idxA, idxB])
 *       batch of contiguous matrices (lda = transA ? M : K, ldb = transB ? K : N, ldc = N).
 *       Batch i uses A at offA + a_i * strideA, where a_i = idxA[i] (Int32Array) or i when idxA is
 *       absent/null; likewise B. A stride of 0 broadcasts that operand. C of batch i is at
 *       offC + i * strideC. The loop runs in C, so attention-sized batches cost one N-API call.
 *   biasActivation(C, offC, rows, cols, bias, offBias, biasLen, activation, alpha)
 *       in-place epilogue C[r, c] = act(C[r, c] + bias[c or 0]); biasLen is 0 (bias null), 1 or cols;
 *       activation: 0 linear, 1 relu, 2 relu6, 3 leakyrelu(alpha), 4 sigmoid, 5 elu.
 *   smoothedXent(L, offL, Y, offY, W, offW, n, v, eps, G, offG, Loss, offLoss)
 *       label-smoothed softmax cross-entropy, per row i of logits L [n, v] with target Y[i] (Int32Array)
 *       and weight W[i]: Loss[i] = W[i] (lse - (1 - eps) L[i, y] - eps mean(L[i])) and
 *       G[i, j] = W[i] (softmax(L[i])_j - (1 - eps) [j == y] - eps / v); rows of weight 0 are zeros,
 *       rows with a non-finite logit are NaN. G and Loss must not overlap L, Y, W or each other.
 *       G null (offG ignored): the loss only, the same values, no gradient written (dev loss, ablations).
 *       Float exp polynomial (rel. error < 2e-7), row sums in double. The max and sum loops are vectorised
 *       by the compiler (AVX2 or SSE2 clone, chosen at load), the exponentials by hand, 8 at a time with
 *       AVX2 where the CPU has it (the same float operations lane by lane, every sum over a row in its
 *       scalar order, so the same bits as the scalar loop; scalarLoops(true) forces it, for the test).
 *   attentionForward(F, dims, offs) / attentionBackward(F, dims, offs)
 *       multi-head attention of one layer, every operand in ONE Float32Array F (the wasm heap, or a
 *       scratch array on cpu) at element offsets; dims = Int32Array [B, h, Tq, Tk, dh, ldq, ldk, ldv,
 *       biasStrideB, biasStrideQ, gateStrideB, hasBias, hasGate] and a float scale in offs[last].
 *       Q [B, Tq, ldq], K [B, Tk, ldk], V [B, Tk, ldv] (head hh at columns hh*dh..), bias (b, i, j) at
 *       b*biasStrideB + i*biasStrideQ + j, gate (b, hh) at b*gateStrideB + hh.
 *       forward offs (Float64Array): [Q, K, V, bias, gate, Out, P, Ctx, scale]:
 *         P[b,hh] = softmax(scale Q_bh K_bh^T + bias_b), Ctx = P V (ld h*dh), Out = Ctx * gate (ld h*dh).
 *       backward offs: [dOut, Q, K, V, P, Ctx, gate, dQ, dK, dV, dGate, scale]: dQ/dK/dV written with
 *         ldq/ldk/ldv (so a fused [q|k|v] input gets one fused gradient), dGate [B or 1, h] summed over
 *         rows (and over b when gateStrideB is 0).
 *       Extents are checked against F; outputs must not overlap inputs.
 *   layerNormForward(F, dims, offs, eps, rate, seed) / layerNormBackward(F, dims, offs)
 *       out = LN(x + drop(r)) * g + b over rows of width d (post-norm residual; r absent: LN(x)), all
 *       operands in one Float32Array F. dims = Int32Array [rows, d, hasR, hasDrop]. Dropout keeps an
 *       element with probability 1 - rate, scaled by 1 / (1 - rate), drawn from the same hash of (seed,
 *       element index) as src/backend/dropout.ts dropoutInto (so its masks are that kernel's masks).
 *       forward offs (Float64Array) [x, r, g, b, out, xhat, rstd, mask]; backward offs
 *       [dy, xhat, rstd, g, mask, dx, dr, dg, db]: dx = d/dx, dr = dx * mask, dg, db summed over rows.
 *   dropout(F, n, offs, rate, seed)
 *       y = x * mask over n elements of F, offs (Float64Array) [x, y, mask, 0]: dropout.ts dropoutInto's
 *       masks and values (y rounded from the double product, as the JS loop does), bit for bit.
 *   adamUpdate(F, n, offs, k)
 *       one Adam step over n elements in F: offs (Float64Array) [p, m, v, g, pOut, mOut, vOut], k
 *       (Float64Array) [beta1, 1 - beta1, beta2, 1 - beta2, c1, lr, c2, eps] (taken as float32):
 *       m' = m b1 + g (1 - b1), v' = v b2 + g^2 (1 - b2), p' = p - (m' / c1) lr / (sqrt(v' / c2) + eps),
 *       each operation rounded to float32 in train/adam.ts's order (no contraction), so the result is
 *       the tfjs ops' bit for bit.
 *   beamTopk(F, dims, offs)
 *       one beam-search step over the live rows' logits L [R, V], all operands in F: dims = Int32Array
 *       [R, V, G, W, N], offs (Float64Array) [L, score, rowOf, lse, vals, idx, 0]. lse[r] = log(sum(exp(
 *       L[r] - max L[r]))) as tfjs-wasm's Max, Sub, Exp, native Sum (E @ ones by cblas_sgemm over all R
 *       rows) and Log give it, bit for bit; then for each of G groups (a sentence) of W beams (score
 *       [G*W] float32, rowOf [G*W] int32: the beam's row of L, or -1 for none) the N best values
 *       (float)((float)((L - max) - lse) + score) into vals [G, N] with beam * V + token into idx [G, N]
 *       (int32), higher value first, lower index on a tie, beams with score -inf skipped, -inf / -1 padding.
 *       The exponentials run 8 at a time (AVX2 + FMA, glibc's __expf_fma bit for bit, test/check-vexpf.sh)
 *       where a check at the first call finds libm's expf bits; blocks of 16 logits whose largest value
 *       cannot pass the cut are skipped.
 *   cacheScores(F, dims, offs) / cacheContext(F, dims, offs) / cacheRows(F, dims, offs, src)
 *       a decoder step's self-attention over caches K, V [rowsCap, Tcap, h*dh] in F, written in place:
 *       dims [R, h, dh, ldqkv, t, rowsCap, Tcap]; cacheScores offs [qkv, K, V, scores, scale] writes each
 *       row's k and v at position t and gives scores [R, h, 1, t+1] = (q * scale) K^T per head;
 *       cacheContext offs [weights, V, out, 0] gives out [R, h, 1, dh] = weights V per head (the one-query
 *       sgemm calls of a batched matMul, or their FMA chains where a first-call check finds the same
 *       bits); cacheRows dims [rowsOut, rowsCap, rowStride, len]: in each cache at offs, row i = row
 *       src[i] (Int32Array), first len floats, in place.
 *   setThreads(n), getThreads(), config() -> { config, corename, numProcs, threads }
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- argument helpers -------------------------------------------------------------------- */

typedef struct {
  float *data;        /* first element of the typed array's view */
  int64_t len;        /* number of float elements in the view */
  uintptr_t base;     /* address of data, for overlap checks */
} f32view;

/* Returns false after throwing; callers then return NULL. */
static bool throw_range(napi_env env, const char *fn, const char *msg) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", fn, msg);
  napi_throw_range_error(env, "ERR_NATIVE_BLAS_RANGE", buf);
  return false;
}

static bool throw_type(napi_env env, const char *fn, const char *msg) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", fn, msg);
  napi_throw_type_error(env, "ERR_NATIVE_BLAS_TYPE", buf);
  return false;
}

static bool get_f32(napi_env env, const char *fn, napi_value v, const char *name, f32view *out) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Float32Array", name);
    return throw_type(env, fn, msg);
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float32_array) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Float32Array", name);
    return throw_type(env, fn, msg);
  }
  if (length > 0 && data == NULL) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s has no backing store (detached?)", name);
    return throw_range(env, fn, msg);
  }
  out->data = (float *)data;
  out->len = (int64_t)length;
  out->base = (uintptr_t)data;
  return true;
}

/* An optional Int32Array (undefined/null -> *present = false). */
static bool get_i32_opt(napi_env env, const char *fn, napi_value v, const char *name,
                        const int32_t **data, int64_t *len, bool *present) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) {
    *present = false;
    return true;
  }
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &ptr, NULL, NULL) != napi_ok ||
      type != napi_int32_array) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an Int32Array, null or undefined", name);
    return throw_type(env, fn, msg);
  }
  *data = (const int32_t *)ptr;
  *len = (int64_t)length;
  *present = true;
  return true;
}

/* The first n arguments of a call into `argv`; `usage` names them when fewer were given. */
static bool get_args(napi_env env, napi_callback_info info, const char *fn, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < n) return throw_type(env, fn, usage);
  return true;
}

/* A required Int32Array `dims` of at least `min` entries; `msg` when it is absent or shorter. */
static bool get_dims(napi_env env, const char *fn, napi_value v, int64_t min, const char *msg, const int32_t **out) {
  int64_t len = 0;
  bool present = false;
  if (!get_i32_opt(env, fn, v, "dims", out, &len, &present)) return false;
  if (!present || len < min) return throw_type(env, fn, msg);
  return true;
}

/* A non-negative integer number below 2^53, optionally capped. */
static bool get_count(napi_env env, const char *fn, napi_value v, const char *name, int64_t cap,
                      int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    return throw_type(env, fn, msg);
  }
  if (!(d >= 0) || d != floor(d) || d > 9007199254740991.0 || d > (double)cap) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in [0, %lld], got %g", name, (long long)cap, d);
    return throw_range(env, fn, msg);
  }
  *out = (int64_t)d;
  return true;
}

static bool get_count_opt(napi_env env, const char *fn, napi_value v, const char *name,
                          int64_t cap, int64_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) {
    *out = 0;
    return true;
  }
  return get_count(env, fn, v, name, cap, out);
}

static bool get_float(napi_env env, const char *fn, napi_value v, const char *name, float *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", name);
    return throw_type(env, fn, msg);
  }
  *out = (float)d;
  return true;
}

static bool get_flag(napi_env env, napi_value v) {
  napi_value b;
  bool r = false;
  if (napi_coerce_to_bool(env, v, &b) == napi_ok) napi_get_value_bool(env, b, &r);
  return r;
}

/*
 * Element span [first, end) touched by a rows x cols matrix with leading dimension ld that starts at
 * element off. Empty matrices touch nothing (first = end = off). Fails (throws) on overflow.
 */
static bool matrix_span(napi_env env, const char *fn, int64_t off, int64_t rows, int64_t cols,
                        int64_t ld, int64_t *end) {
  if (rows == 0 || cols == 0) {
    *end = off;
    return true;
  }
  int64_t t;
  if (__builtin_mul_overflow(rows - 1, ld, &t) || __builtin_add_overflow(t, cols, &t) ||
      __builtin_add_overflow(t, off, &t))
    return throw_range(env, fn, "matrix extent overflows");
  *end = t;
  return true;
}

static bool ranges_overlap(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1) {
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

#define MAX_DIM ((int64_t)INT_MAX)
#define MAX_ELEMS ((int64_t)1 << 52)

/* C := beta * C for an M x N block with leading dimension ldc (used when K == 0). */
static void scale_block(float *c, int64_t m, int64_t n, int64_t ldc, float beta) {
  for (int64_t i = 0; i < m; i++) {
    float *row = c + i * ldc;
    if (beta == 0.0f) {
      memset(row, 0, (size_t)n * sizeof(float));
    } else {
      for (int64_t j = 0; j < n; j++) row[j] *= beta;
    }
  }
}

/* ---- sgemm ------------------------------------------------------------------------------- */

static napi_value Sgemm(napi_env env, napi_callback_info info) {
  static const char *fn = "sgemm";
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 13) {
    throw_type(env, fn, "expected (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc[, offA, offB, offC])");
    return NULL;
  }
  for (size_t i = argc; i < 16; i++) napi_get_undefined(env, &argv[i]);

  bool ta = get_flag(env, argv[0]), tb = get_flag(env, argv[1]);
  int64_t m, n, k, lda, ldb, ldc, offA, offB, offC;
  float alpha, beta;
  f32view A, B, C;
  if (!get_count(env, fn, argv[2], "M", MAX_DIM, &m) || !get_count(env, fn, argv[3], "N", MAX_DIM, &n) ||
      !get_count(env, fn, argv[4], "K", MAX_DIM, &k) || !get_float(env, fn, argv[5], "alpha", &alpha) ||
      !get_f32(env, fn, argv[6], "A", &A) || !get_count(env, fn, argv[7], "lda", MAX_DIM, &lda) ||
      !get_f32(env, fn, argv[8], "B", &B) || !get_count(env, fn, argv[9], "ldb", MAX_DIM, &ldb) ||
      !get_float(env, fn, argv[10], "beta", &beta) || !get_f32(env, fn, argv[11], "C", &C) ||
      !get_count(env, fn, argv[12], "ldc", MAX_DIM, &ldc) ||
      !get_count_opt(env, fn, argv[13], "offA", MAX_ELEMS, &offA) ||
      !get_count_opt(env, fn, argv[14], "offB", MAX_ELEMS, &offB) ||
      !get_count_opt(env, fn, argv[15], "offC", MAX_ELEMS, &offC))
    return NULL;

  /* stored shapes of the operands */
  int64_t aRows = ta ? k : m, aCols = ta ? m : k;
  int64_t bRows = tb ? n : k, bCols = tb ? k : n;
  if (lda < (aCols > 1 ? aCols : 1)) { throw_range(env, fn, "lda is smaller than the row length of A"); return NULL; }
  if (ldb < (bCols > 1 ? bCols : 1)) { throw_range(env, fn, "ldb is smaller than the row length of B"); return NULL; }
  if (ldc < (n > 1 ? n : 1)) { throw_range(env, fn, "ldc is smaller than N"); return NULL; }

  int64_t endA, endB, endC;
  bool needAB = m > 0 && n > 0 && k > 0;
  if (!matrix_span(env, fn, offA, needAB ? aRows : 0, aCols, lda, &endA) ||
      !matrix_span(env, fn, offB, needAB ? bRows : 0, bCols, ldb, &endB) ||
      !matrix_span(env, fn, offC, m, n, ldc, &endC))
    return NULL;
  if (endA > A.len || (needAB && offA >= A.len)) { throw_range(env, fn, "array too small for A (shape, lda, offA)"); return NULL; }
  if (endB > B.len || (needAB && offB >= B.len)) { throw_range(env, fn, "array too small for B (shape, ldb, offB)"); return NULL; }
  if (endC > C.len || (m > 0 && n > 0 && offC >= C.len)) { throw_range(env, fn, "array too small for C (shape, ldc, offC)"); return NULL; }
  if (m == 0 || n == 0) return NULL;

  uintptr_t c0 = C.base + (uintptr_t)offC * 4, c1 = C.base + (uintptr_t)endC * 4;
  if (needAB && (ranges_overlap(c0, c1, A.base + (uintptr_t)offA * 4, A.base + (uintptr_t)endA * 4) ||
                 ranges_overlap(c0, c1, B.base + (uintptr_t)offB * 4, B.base + (uintptr_t)endB * 4))) {
    throw_range(env, fn, "C overlaps A or B");
    return NULL;
  }

  if (k == 0) {
    scale_block(C.data + offC, m, n, ldc, beta);
    return NULL;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
              (int)n, (int)k, alpha, A.data + offA, (int)lda, B.data + offB, (int)ldb, beta,
              C.data + offC, (int)ldc);
  return NULL;
}

/* ---- batched sgemm ----------------------------------------------------------------------- */

/* Span of operand X over all batches: [off + minIdx*stride, off + maxIdx*stride + size). */
static bool batch_span(napi_env env, const char *fn, const char *name, int64_t off, int64_t stride,
                       int64_t size, int64_t batch, const int32_t *idx, int64_t idxLen, bool hasIdx,
                       int64_t arrLen, int64_t *first, int64_t *end) {
  char msg[128];
  int64_t lo = 0, hi = batch > 0 ? batch - 1 : 0;
  if (hasIdx) {
    if (idxLen < batch) {
      snprintf(msg, sizeof msg, "index array for %s is shorter than batch", name);
      return throw_range(env, fn, msg);
    }
    lo = INT64_MAX;
    hi = 0;
    for (int64_t i = 0; i < batch; i++) {
      if (idx[i] < 0) {
        snprintf(msg, sizeof msg, "index array for %s has a negative entry", name);
        return throw_range(env, fn, msg);
      }
      if (idx[i] < lo) lo = idx[i];
      if (idx[i] > hi) hi = idx[i];
    }
    if (batch == 0) lo = 0;
  }
  if (batch == 0 || size == 0) {
    *first = *end = off;
    return true;
  }
  int64_t f, e;
  if (__builtin_mul_overflow(lo, stride, &f) || __builtin_add_overflow(f, off, &f) ||
      __builtin_mul_overflow(hi, stride, &e) || __builtin_add_overflow(e, off, &e) ||
      __builtin_add_overflow(e, size, &e)) {
    snprintf(msg, sizeof msg, "extent of %s overflows", name);
    return throw_range(env, fn, msg);
  }
  if (e > arrLen) {
    snprintf(msg, sizeof msg, "array too small for %s (shape, offset, stride, batch)", name);
    return throw_range(env, fn, msg);
  }
  *first = f;
  *end = e;
  return true;
}

static napi_value SgemmBatched(napi_env env, napi_callback_info info) {
  static const char *fn = "sgemmBatched";
  size_t argc = 19;
  napi_value argv[19];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 17) {
    throw_type(env, fn, "expected (transA, transB, M, N, K, alpha, A, offA, strideA, B, offB, strideB, beta, C, offC, strideC, batch[, idxA, idxB])");
    return NULL;
  }
  for (size_t i = argc; i < 19; i++) napi_get_undefined(env, &argv[i]);

  bool ta = get_flag(env, argv[0]), tb = get_flag(env, argv[1]);
  int64_t m, n, k, offA, strideA, offB, strideB, offC, strideC, batch, idxALen = 0, idxBLen = 0;
  float alpha, beta;
  f32view A, B, C;
  const int32_t *idxA = NULL, *idxB = NULL;
  bool hasIdxA = false, hasIdxB = false;
  if (!get_count(env, fn, argv[2], "M", MAX_DIM, &m) || !get_count(env, fn, argv[3], "N", MAX_DIM, &n) ||
      !get_count(env, fn, argv[4], "K", MAX_DIM, &k) || !get_float(env, fn, argv[5], "alpha", &alpha) ||
      !get_f32(env, fn, argv[6], "A", &A) || !get_count(env, fn, argv[7], "offA", MAX_ELEMS, &offA) ||
      !get_count(env, fn, argv[8], "strideA", MAX_ELEMS, &strideA) ||
      !get_f32(env, fn, argv[9], "B", &B) || !get_count(env, fn, argv[10], "offB", MAX_ELEMS, &offB) ||
      !get_count(env, fn, argv[11], "strideB", MAX_ELEMS, &strideB) ||
      !get_float(env, fn, argv[12], "beta", &beta) || !get_f32(env, fn, argv[13], "C", &C) ||
      !get_count(env, fn, argv[14], "offC", MAX_ELEMS, &offC) ||
      !get_count(env, fn, argv[15], "strideC", MAX_ELEMS, &strideC) ||
      !get_count(env, fn, argv[16], "batch", MAX_DIM, &batch) ||
      !get_i32_opt(env, fn, argv[17], "idxA", &idxA, &idxALen, &hasIdxA) ||
      !get_i32_opt(env, fn, argv[18], "idxB", &idxB, &idxBLen, &hasIdxB))
    return NULL;

  int64_t sizeA, sizeB, sizeC;
  if (__builtin_mul_overflow(m, k, &sizeA) || __builtin_mul_overflow(k, n, &sizeB) ||
      __builtin_mul_overflow(m, n, &sizeC)) {
    throw_range(env, fn, "matrix size overflows");
    return NULL;
  }
  bool needAB = m > 0 && n > 0 && k > 0;
  if (!needAB) sizeA = sizeB = 0;
  if (batch > 1 && strideC < sizeC) {
    throw_range(env, fn, "strideC is smaller than M*N (output batches would overlap)");
    return NULL;
  }
  int64_t a0, a1, b0, b1, c0, c1;
  if (!batch_span(env, fn, "A", offA, strideA, sizeA, batch, idxA, idxALen, hasIdxA, A.len, &a0, &a1) ||
      !batch_span(env, fn, "B", offB, strideB, sizeB, batch, idxB, idxBLen, hasIdxB, B.len, &b0, &b1) ||
      !batch_span(env, fn, "C", offC, strideC, sizeC, batch, NULL, 0, false, C.len, &c0, &c1))
    return NULL;
  if (batch == 0 || sizeC == 0) return NULL;

  uintptr_t pc0 = C.base + (uintptr_t)c0 * 4, pc1 = C.base + (uintptr_t)c1 * 4;
  if (needAB && (ranges_overlap(pc0, pc1, A.base + (uintptr_t)a0 * 4, A.base + (uintptr_t)a1 * 4) ||
                 ranges_overlap(pc0, pc1, B.base + (uintptr_t)b0 * 4, B.base + (uintptr_t)b1 * 4))) {
    throw_range(env, fn, "C overlaps A or B");
    return NULL;
  }

  int lda = (int)(ta ? (m > 1 ? m : 1) : (k > 1 ? k : 1));
  int ldb = (int)(tb ? (k > 1 ? k : 1) : (n > 1 ? n : 1));
  int ldc = (int)(n > 1 ? n : 1);
  for (int64_t i = 0; i < batch; i++) {
    float *c = C.data + offC + i * strideC;
    if (k == 0) {
      scale_block(c, m, n, ldc, beta);
      continue;
    }
    int64_t ai = hasIdxA ? idxA[i] : i, bi = hasIdxB ? idxB[i] : i;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, alpha, A.data + offA + ai * strideA, lda, B.data + offB + bi * strideB,
                ldb, beta, c, ldc);
  }
  return NULL;
}

/* ---- epilogue ---------------------------------------------------------------------------- */

enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKYRELU = 3, ACT_SIGMOID = 4, ACT_ELU = 5 };

static napi_value BiasActivation(napi_env env, napi_callback_info info) {
  static const char *fn = "biasActivation";
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 8) {
    throw_type(env, fn, "expected (C, offC, rows, cols, bias, offBias, biasLen, activation[, alpha])");
    return NULL;
  }
  for (size_t i = argc; i < 9; i++) napi_get_undefined(env, &argv[i]);
  f32view C, Bias = {NULL, 0, 0};
  int64_t offC, rows, cols, offBias, biasLen, act;
  float alpha = 0.2f;
  if (!get_f32(env, fn, argv[0], "C", &C) || !get_count(env, fn, argv[1], "offC", MAX_ELEMS, &offC) ||
      !get_count(env, fn, argv[2], "rows", MAX_ELEMS, &rows) ||
      !get_count(env, fn, argv[3], "cols", MAX_DIM, &cols) ||
      !get_count(env, fn, argv[5], "offBias", MAX_ELEMS, &offBias) ||
      !get_count(env, fn, argv[6], "biasLen", MAX_DIM, &biasLen) ||
      !get_count(env, fn, argv[7], "activation", ACT_ELU, &act))
    return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[8], &t);
  if (t != napi_undefined && !get_float(env, fn, argv[8], "alpha", &alpha)) return NULL;
  if (biasLen != 0 && biasLen != 1 && biasLen != cols) {
    throw_range(env, fn, "biasLen must be 0, 1 or cols");
    return NULL;
  }
  if (biasLen > 0) {
    if (!get_f32(env, fn, argv[4], "bias", &Bias)) return NULL;
    if (offBias + biasLen > Bias.len) {
      throw_range(env, fn, "array too small for bias");
      return NULL;
    }
  }
  int64_t total, end;
  if (__builtin_mul_overflow(rows, cols, &total) || __builtin_add_overflow(total, offC, &end) ||
      end > C.len) {
    throw_range(env, fn, "array too small for C (rows, cols, offC)");
    return NULL;
  }
  if (total == 0) return NULL;

  float *c = C.data + offC;
  const float *bias = biasLen > 0 ? Bias.data + offBias : NULL;
  for (int64_t r = 0; r < rows; r++) {
    float *row = c + r * cols;
    if (biasLen == 1) {
      const float b0 = bias[0];
      for (int64_t j = 0; j < cols; j++) row[j] += b0;
    } else if (biasLen == cols) {
      for (int64_t j = 0; j < cols; j++) row[j] += bias[j];
    }
    switch (act) {
      case ACT_RELU:
        for (int64_t j = 0; j < cols; j++) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
        break;
      case ACT_RELU6:
        for (int64_t j = 0; j < cols; j++) {
          float v = row[j] > 0.0f ? row[j] : 0.0f;
          row[j] = v < 6.0f ? v : 6.0f;
        }
        break;
      case ACT_LEAKYRELU:
        for (int64_t j = 0; j < cols; j++) row[j] = row[j] < 0.0f ? alpha * row[j] : row[j];
        break;
      case ACT_SIGMOID:
        for (int64_t j = 0; j < cols; j++) row[j] = 1.0f / (1.0f + expf(-row[j]));
        break;
      case ACT_ELU:
        for (int64_t j = 0; j < cols; j++) row[j] = row[j] < 0.0f ? expm1f(row[j]) : row[j];
        break;
      default:
        break;
    }
  }
  return NULL;
}

/* ---- label-smoothed softmax cross-entropy ------------------------------------------------ */

/* e^x for x <= 0 (x >= -87.3; below, 0): x = k ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r,
 * 2^k by exponent bits. Branch-free so that the row loops vectorise. */
static inline float exp_nonpos(float x) {
  x = x < -87.0f ? -87.0f : x;
  /* round to nearest for t <= 0 by truncation of t - 0.5 (cvttps2dq vectorises on SSE2) */
  const float k = (float)(int32_t)(x * 1.44269504088896341f - 0.5f);
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union { int32_t i; float f; } u;
  u.i = ((int32_t)k + 127) << 23;
  return p * u.f;
}

/* The loss kernel's exponentials and dropout's masks 8 at a time with AVX2 where the CPU has it (x86-64
   with GCC or clang; elsewhere the scalar loops, which give the same bits) */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_LOOPS 1

/* e[j] = exp_nonpos(row[j] - mx) for j < n, 8 at a time with AVX2: GCC does not vectorise exp_nonpos's
   loop (its float-to-int conversions), so this is the same float operations in the same order, lane by
   lane (no FMA, the clamp as a blend that keeps what the comparison keeps), hence the same bits; the
   sums over e stay with the caller, in their scalar order. Measured on [2000, 8000] logits: see
   src/backend/README.md. */
__attribute__((target("avx2"))) static void exp_nonpos_avx2(const float *row, float mx, float *e, int64_t n) {
  const __m256 vmx = _mm256_set1_ps(mx), lo = _mm256_set1_ps(-87.0f), l2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 half = _mm256_set1_ps(0.5f), c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 p0 = _mm256_set1_ps(1.0f / 720.0f), p1 = _mm256_set1_ps(1.0f / 120.0f), p2 = _mm256_set1_ps(1.0f / 24.0f);
  const __m256 p3 = _mm256_set1_ps(1.0f / 6.0f), one = _mm256_set1_ps(1.0f);
  const __m256i bias = _mm256_set1_epi32(127);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 x = _mm256_sub_ps(_mm256_loadu_ps(row + j), vmx);
    x = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    const __m256i ki = _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_mul_ps(x, l2e), half));
    const __m256 k = _mm256_cvtepi32_ps(ki);
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(k, c1)), _mm256_mul_ps(k, c2));
    __m256 p = _mm256_add_ps(_mm256_mul_ps(p0, r), p1);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), p2);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), p3);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), half);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), one);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), one);
    const __m256 f = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ki, bias), 23));
    _mm256_storeu_ps(e + j, _mm256_mul_ps(p, f));
  }
  for (; j < n; j++) e[j] = exp_nonpos(row[j] - mx);
}
#endif

/* 0: the scalar loops everywhere (scalarLoops(true), for the tests that compare the two paths: the loss
   kernel's exponentials, dropout's masks) */
static int wide_loops = 1;

#ifdef HAVE_AVX2_LOOPS
/* 1 where the AVX2 loops run: the CPU has AVX2 and scalarLoops has not switched them off */
static int avx2_loops(void) { return wide_loops && __builtin_cpu_supports("avx2"); }
#endif

__attribute__((target_clones("avx2", "default")))
static void xent_rows(const float *l, const int32_t *y, const float *w, int64_t n, int64_t v, float eps,
                      float *g, float *loss) {
  const float uniform = eps / (float)v;
#ifdef HAVE_AVX2_LOOPS
  const int wide = avx2_loops();
#endif
  for (int64_t i = 0; i < n; i++) {
    const float *row = l + i * v;
    float *gr = g + i * v;
    const float wi = w[i];
    if (wi == 0.0f) {
      if (g) memset(gr, 0, (size_t)v * sizeof(float));
      loss[i] = 0.0f;
      continue;
    }
    float mx = -INFINITY;
    int finite = 1;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < v; j++) mx = row[j] > mx ? row[j] : mx;
    double sum = 0;
    for (int64_t j0 = 0; j0 < v; j0 += 1024) {
      const int64_t j1 = j0 + 1024 < v ? j0 + 1024 : v;
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = j0; j < j1; j++) s += row[j];
      sum += s;
    }
    if (!isfinite(mx) || !isfinite(sum)) finite = 0;
    if (!finite) {
      if (g)
        for (int64_t j = 0; j < v; j++) gr[j] = NAN;
      loss[i] = NAN;
      continue;
    }
    double z = 0;
    float block[1024];
    for (int64_t j0 = 0; j0 < v; j0 += 1024) {
      const int64_t j1 = j0 + 1024 < v ? j0 + 1024 : v;
      float s = 0;
      /* the exponentials into the gradient row (or a block buffer: the loss only), then summed in j order */
      float *e = g ? gr + j0 : block;
#ifdef HAVE_AVX2_LOOPS
      if (wide) exp_nonpos_avx2(row + j0, mx, e, j1 - j0);
      else
#endif
        for (int64_t j = j0; j < j1; j++) e[j - j0] = exp_nonpos(row[j] - mx);
      for (int64_t j = 0; j < j1 - j0; j++) s += e[j];
      z += s;
    }
    const double lse = (double)mx + log(z);
    const int32_t t = y[i];
    const double ly = t >= 0 && t < v ? (double)row[t] : 0.0;
    loss[i] = (float)((double)wi * (lse - (1.0 - eps) * ly - (double)eps * (sum / (double)v)));
    if (!g) continue;
    const float scale = (float)((double)wi / z);
    const float off = wi * uniform;
    for (int64_t j = 0; j < v; j++) gr[j] = gr[j] * scale - off;
    if (t >= 0 && t < v) gr[t] -= wi * (1.0f - eps);
  }
}

static bool get_i32(napi_env env, const char *fn, napi_value v, const char *name, const int32_t **data,
                    int64_t *len, uintptr_t *base) {
  bool present = false;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an Int32Array", name);
    return throw_type(env, fn, msg);
  }
  if (!get_i32_opt(env, fn, v, name, data, len, &present)) return false;
  *base = (uintptr_t)*data;
  return true;
}

static napi_value SmoothedXent(napi_env env, napi_callback_info info) {
  static const char *fn = "smoothedXent";
  size_t argc = 13;
  napi_value argv[13];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 13) {
    throw_type(env, fn, "expected (L, offL, Y, offY, W, offW, n, v, eps, G, offG, Loss, offLoss)");
    return NULL;
  }
  f32view L, W, G, Loss;
  const int32_t *Y = NULL;
  int64_t lenY = 0;
  uintptr_t baseY = 0;
  int64_t offL, offY, offW, n, v, offG, offLoss;
  float eps;
  if (!get_f32(env, fn, argv[0], "L", &L) || !get_count(env, fn, argv[1], "offL", MAX_ELEMS, &offL) ||
      !get_i32(env, fn, argv[2], "Y", &Y, &lenY, &baseY) || !get_count(env, fn, argv[3], "offY", MAX_ELEMS, &offY) ||
      !get_f32(env, fn, argv[4], "W", &W) || !get_count(env, fn, argv[5], "offW", MAX_ELEMS, &offW) ||
      !get_count(env, fn, argv[6], "n", MAX_DIM, &n) || !get_count(env, fn, argv[7], "v", MAX_DIM, &v) ||
      !get_float(env, fn, argv[8], "eps", &eps))
    return NULL;
  /* G null: the loss only (no gradient written) */
  napi_valuetype gt;
  napi_typeof(env, argv[9], &gt);
  const bool hasG = !(gt == napi_null || gt == napi_undefined);
  memset(&G, 0, sizeof G);
  offG = 0;
  if ((hasG && (!get_f32(env, fn, argv[9], "G", &G) || !get_count(env, fn, argv[10], "offG", MAX_ELEMS, &offG))) ||
      !get_f32(env, fn, argv[11], "Loss", &Loss) || !get_count(env, fn, argv[12], "offLoss", MAX_ELEMS, &offLoss))
    return NULL;
  int64_t nv;
  if (__builtin_mul_overflow(n, v, &nv) || offL + nv > L.len || (hasG && offG + nv > G.len)) {
    throw_range(env, fn, "array too small for L or G (n, v, offsets)");
    return NULL;
  }
  if (offY + n > lenY || offW + n > W.len || offLoss + n > Loss.len) {
    throw_range(env, fn, "array too small for Y, W or Loss (n, offsets)");
    return NULL;
  }
  if (nv == 0 && n == 0) return NULL;
  const uintptr_t g0 = hasG ? G.base + (uintptr_t)offG * 4 : 0, g1 = hasG ? g0 + (uintptr_t)nv * 4 : 0;
  const uintptr_t s0 = Loss.base + (uintptr_t)offLoss * 4, s1 = s0 + (uintptr_t)n * 4;
  const uintptr_t l0 = L.base + (uintptr_t)offL * 4, l1 = l0 + (uintptr_t)nv * 4;
  const uintptr_t y0 = baseY + (uintptr_t)offY * 4, y1 = y0 + (uintptr_t)n * 4;
  const uintptr_t w0 = W.base + (uintptr_t)offW * 4, w1 = w0 + (uintptr_t)n * 4;
  if (ranges_overlap(g0, g1, l0, l1) || ranges_overlap(g0, g1, y0, y1) || ranges_overlap(g0, g1, w0, w1) ||
      ranges_overlap(s0, s1, l0, l1) || ranges_overlap(s0, s1, y0, y1) || ranges_overlap(s0, s1, w0, w1) ||
      ranges_overlap(g0, g1, s0, s1)) {
    throw_range(env, fn, "G or Loss overlaps an input or each other");
    return NULL;
  }
  if (v == 0) {
    for (int64_t i = 0; i < n; i++) Loss.data[offLoss + i] = NAN;
    return NULL;
  }
  xent_rows(L.data + offL, Y + offY, W.data + offW, n, v, eps, hasG ? G.data + offG : NULL, Loss.data + offLoss);
  return NULL;
}

/* ---- multi-head attention, forward and backward ------------------------------------------ */

#include <stdlib.h>

enum { D_B, D_H, D_TQ, D_TK, D_DH, D_LDQ, D_LDK, D_LDV, D_BSB, D_BSQ, D_GSB, D_HASBIAS, D_HASGATE, D_N };

typedef struct {
  int64_t B, h, Tq, Tk, dh, ldq, ldk, ldv, bsb, bsq, gsb, hasBias, hasGate;
} attn_dims;

static bool get_attn_dims(napi_env env, const char *fn, napi_value v, attn_dims *d) {
  const int32_t *p = NULL;
  int64_t len = 0;
  bool present = false;
  if (!get_i32_opt(env, fn, v, "dims", &p, &len, &present)) return false;
  if (!present || len < D_N) return throw_type(env, fn, "dims must be an Int32Array of 13");
  for (int i = 0; i < D_N; i++)
    if (p[i] < 0) return throw_range(env, fn, "dims must be non-negative");
  d->B = p[D_B]; d->h = p[D_H]; d->Tq = p[D_TQ]; d->Tk = p[D_TK]; d->dh = p[D_DH];
  d->ldq = p[D_LDQ]; d->ldk = p[D_LDK]; d->ldv = p[D_LDV];
  d->bsb = p[D_BSB]; d->bsq = p[D_BSQ]; d->gsb = p[D_GSB]; d->hasBias = p[D_HASBIAS]; d->hasGate = p[D_HASGATE];
  const int64_t hd = d->h * d->dh;
  if (d->ldq < hd || d->ldk < hd || d->ldv < hd) return throw_range(env, fn, "ldq, ldk, ldv must be at least h*dh");
  return true;
}

/* A Float64Array of at least min_len values: its data and length (len may be NULL), else a TypeError msg. */
static bool get_f64(napi_env env, const char *fn, napi_value v, size_t min_len, const char *msg, const double **data, size_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *ptr = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &ptr, NULL, NULL) != napi_ok || type != napi_float64_array ||
      length < min_len)
    return throw_type(env, fn, msg);
  *data = (const double *)ptr;
  if (len) *len = length;
  return true;
}

static bool get_offsets(napi_env env, const char *fn, napi_value v, int n, double *out) {
  const double *ptr = NULL;
  if (!get_f64(env, fn, v, (size_t)n, "offs must be a Float64Array of the documented length", &ptr, NULL)) return false;
  memcpy(out, ptr, (size_t)n * sizeof(double));
  for (int i = 0; i < n - 1; i++)
    if (!(out[i] >= 0) || out[i] != floor(out[i]) || out[i] > 9007199254740991.0)
      return throw_range(env, fn, "offsets must be non-negative integers");
  return true;
}

/* [off, off + extent) of a [rows, ld] operand whose rows use cols columns. */
typedef struct { int64_t lo, hi; } span;

static span rows_span(int64_t off, int64_t rows, int64_t ld, int64_t cols) {
  span s = {off, off};
  if (rows > 0 && cols > 0) s.hi = off + (rows - 1) * ld + cols;
  return s;
}

static bool spans_overlap(span a, span b) { return a.lo < b.hi && b.lo < a.hi && a.hi > a.lo && b.hi > b.lo; }

static bool check_spans(napi_env env, const char *fn, int64_t len, const span *in, int nin, const span *out, int nout) {
  for (int i = 0; i < nin; i++)
    if (in[i].hi > len) return throw_range(env, fn, "array too small for an input (dims, offsets)");
  for (int i = 0; i < nout; i++) {
    if (out[i].hi > len) return throw_range(env, fn, "array too small for an output (dims, offsets)");
    for (int j = 0; j < nin; j++)
      if (spans_overlap(out[i], in[j])) return throw_range(env, fn, "an output overlaps an input");
    for (int j = 0; j < i; j++)
      if (spans_overlap(out[i], out[j])) return throw_range(env, fn, "outputs overlap");
  }
  return true;
}

static napi_value AttentionForward(napi_env env, napi_callback_info info) {
  static const char *fn = "attentionForward";
  napi_value argv[3];
  f32view F;
  attn_dims d;
  double o[9];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) || !get_attn_dims(env, fn, argv[1], &d) || !get_offsets(env, fn, argv[2], 9, o))
    return NULL;
  const int64_t B = d.B, h = d.h, Tq = d.Tq, Tk = d.Tk, dh = d.dh, hd = h * dh;
  const int64_t oQ = (int64_t)o[0], oK = (int64_t)o[1], oV = (int64_t)o[2], oBias = (int64_t)o[3], oGate = (int64_t)o[4];
  const int64_t oOut = (int64_t)o[5], oP = (int64_t)o[6], oCtx = (int64_t)o[7];
  const float scale = (float)o[8];
  span in[5];
  int nin = 0;
  in[nin++] = rows_span(oQ, B * Tq, d.ldq, hd);
  in[nin++] = rows_span(oK, B * Tk, d.ldk, hd);
  in[nin++] = rows_span(oV, B * Tk, d.ldv, hd);
  if (d.hasBias) in[nin++] = (span){oBias, oBias + (B - 1) * d.bsb + (Tq - 1) * d.bsq + Tk};
  if (d.hasGate) in[nin++] = (span){oGate, oGate + (B - 1) * d.gsb + h};
  span out[3];
  int nout = 0;
  out[nout++] = rows_span(oOut, B * Tq, hd, hd);
  out[nout++] = (span){oP, oP + B * h * Tq * Tk};
  if (d.hasGate) out[nout++] = rows_span(oCtx, B * Tq, hd, hd);
  if (B == 0 || Tq == 0 || h == 0) return NULL;
  if (!check_spans(env, fn, F.len, in, nin, out, nout)) return NULL;
  float *f = F.data;
  float *ctxBase = d.hasGate ? f + oCtx : f + oOut;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t hh = 0; hh < h; hh++) {
      float *P = f + oP + ((b * h + hh) * Tq) * Tk;
      const float *Q = f + oQ + b * Tq * d.ldq + hh * dh;
      const float *K = f + oK + b * Tk * d.ldk + hh * dh;
      const float *V = f + oV + b * Tk * d.ldv + hh * dh;
      if (Tk > 0 && dh > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)dh, scale, Q, (int)d.ldq, K, (int)d.ldk, 0.0f, P, (int)Tk);
      else
        for (int64_t x = 0; x < Tq * Tk; x++) P[x] = 0.0f;
      for (int64_t i = 0; i < Tq; i++) {
        float *row = P + i * Tk;
        if (d.hasBias) {
          const float *br = f + oBias + b * d.bsb + i * d.bsq;
          for (int64_t j = 0; j < Tk; j++) row[j] += br[j];
        }
        float mx = -INFINITY;
        for (int64_t j = 0; j < Tk; j++) mx = row[j] > mx ? row[j] : mx;
        float z = 0.0f;
        for (int64_t j = 0; j < Tk; j++) {
          row[j] = expf(row[j] - mx);
          z += row[j];
        }
        const float inv = 1.0f / z;
        for (int64_t j = 0; j < Tk; j++) row[j] *= inv;
      }
      float *C = ctxBase + b * Tq * hd + hh * dh;
      if (Tk > 0 && dh > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)dh, (int)Tk, 1.0f, P, (int)Tk, V, (int)d.ldv, 0.0f, C, (int)hd);
      else
        for (int64_t i = 0; i < Tq; i++) for (int64_t x = 0; x < dh; x++) C[i * hd + x] = 0.0f;
      if (d.hasGate) {
        const float g = f[oGate + b * d.gsb + hh];
        float *O = f + oOut + b * Tq * hd + hh * dh;
        for (int64_t i = 0; i < Tq; i++)
          for (int64_t x = 0; x < dh; x++) O[i * hd + x] = C[i * hd + x] * g;
      }
    }
  }
  return NULL;
}

static napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  static const char *fn = "attentionBackward";
  napi_value argv[3];
  f32view F;
  attn_dims d;
  double o[12];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) || !get_attn_dims(env, fn, argv[1], &d) || !get_offsets(env, fn, argv[2], 12, o))
    return NULL;
  const int64_t B = d.B, h = d.h, Tq = d.Tq, Tk = d.Tk, dh = d.dh, hd = h * dh;
  const int64_t oDy = (int64_t)o[0], oQ = (int64_t)o[1], oK = (int64_t)o[2], oV = (int64_t)o[3], oP = (int64_t)o[4];
  const int64_t oCtx = (int64_t)o[5], oGate = (int64_t)o[6], oDq = (int64_t)o[7], oDk = (int64_t)o[8], oDv = (int64_t)o[9];
  const int64_t oDg = (int64_t)o[10];
  const float scale = (float)o[11];
  const int64_t gateRows = d.gsb > 0 ? B : 1;
  span in[7];
  int nin = 0;
  in[nin++] = rows_span(oDy, B * Tq, hd, hd);
  in[nin++] = rows_span(oQ, B * Tq, d.ldq, hd);
  in[nin++] = rows_span(oK, B * Tk, d.ldk, hd);
  in[nin++] = rows_span(oV, B * Tk, d.ldv, hd);
  in[nin++] = (span){oP, oP + B * h * Tq * Tk};
  if (d.hasGate) {
    in[nin++] = rows_span(oCtx, B * Tq, hd, hd);
    in[nin++] = (span){oGate, oGate + (B - 1) * d.gsb + h};
  }
  span out[4];
  int nout = 0;
  /* dQ/dK/dV may interleave in one fused buffer (same ld): check them against the inputs only */
  out[nout++] = rows_span(oDq, B * Tq, d.ldq, hd);
  out[nout++] = rows_span(oDk, B * Tk, d.ldk, hd);
  out[nout++] = rows_span(oDv, B * Tk, d.ldv, hd);
  if (d.hasGate) out[nout++] = (span){oDg, oDg + gateRows * h};
  if (B == 0 || h == 0) return NULL;
  for (int i = 0; i < nout; i++) {
    if (out[i].hi > F.len) {
      throw_range(env, fn, "array too small for an output (dims, offsets)");
      return NULL;
    }
    for (int j = 0; j < nin; j++)
      if (spans_overlap(out[i], in[j])) {
        throw_range(env, fn, "an output overlaps an input");
        return NULL;
      }
  }
  if (!check_spans(env, fn, F.len, in, nin, NULL, 0)) return NULL;
  float *f = F.data;
  float *dC = (float *)malloc((size_t)(Tq * dh + Tq * Tk + 1) * sizeof(float));
  if (dC == NULL) {
    napi_throw_error(env, "ERR_NATIVE_BLAS_NOMEM", "attentionBackward: out of memory");
    return NULL;
  }
  float *dS = dC + Tq * dh;
  if (d.hasGate)
    for (int64_t x = 0; x < gateRows * h; x++) f[oDg + x] = 0.0f;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t hh = 0; hh < h; hh++) {
      const float *P = f + oP + ((b * h + hh) * Tq) * Tk;
      const float *Q = f + oQ + b * Tq * d.ldq + hh * dh;
      const float *K = f + oK + b * Tk * d.ldk + hh * dh;
      const float *V = f + oV + b * Tk * d.ldv + hh * dh;
      const float *Dy = f + oDy + b * Tq * hd + hh * dh;
      float *dQ = f + oDq + b * Tq * d.ldq + hh * dh;
      float *dK = f + oDk + b * Tk * d.ldk + hh * dh;
      float *dV = f + oDv + b * Tk * d.ldv + hh * dh;
      /* dC = dOut * g; dGate += sum(dOut * Ctx) */
      const float g = d.hasGate ? f[oGate + b * d.gsb + hh] : 1.0f;
      double dg = 0;
      for (int64_t i = 0; i < Tq; i++) {
        const float *dyr = Dy + i * hd;
        for (int64_t x = 0; x < dh; x++) dC[i * dh + x] = dyr[x] * g;
        if (d.hasGate) {
          const float *cr = f + oCtx + b * Tq * hd + i * hd + hh * dh;
          float s = 0.0f;
          for (int64_t x = 0; x < dh; x++) s += dyr[x] * cr[x];
          dg += s;
        }
      }
      if (d.hasGate) f[oDg + (d.gsb > 0 ? b * h : 0) + hh] += (float)dg;
      if (Tk == 0 || dh == 0 || Tq == 0) {
        for (int64_t i = 0; i < Tq; i++) for (int64_t x = 0; x < dh; x++) dQ[i * d.ldq + x] = 0.0f;
        for (int64_t i = 0; i < Tk; i++) for (int64_t x = 0; x < dh; x++) { dK[i * d.ldk + x] = 0.0f; dV[i * d.ldv + x] = 0.0f; }
        continue;
      }
      /* dV = P^T dC */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)dh, (int)Tq, 1.0f, P, (int)Tk, dC, (int)dh, 0.0f, dV, (int)d.ldv);
      /* dP = dC V^T, then dS = P * (dP - rowsum(P * dP)) */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)dh, 1.0f, dC, (int)dh, V, (int)d.ldv, 0.0f, dS, (int)Tk);
      for (int64_t i = 0; i < Tq; i++) {
        float *r = dS + i * Tk;
        const float *pr = P + i * Tk;
        float dot = 0.0f;
        for (int64_t j = 0; j < Tk; j++) dot += pr[j] * r[j];
        for (int64_t j = 0; j < Tk; j++) r[j] = pr[j] * (r[j] - dot);
      }
      /* dQ = scale dS K, dK = scale dS^T Q */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)dh, (int)Tk, scale, dS, (int)Tk, K, (int)d.ldk, 0.0f, dQ, (int)d.ldq);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)dh, (int)Tq, scale, dS, (int)Tk, Q, (int)d.ldq, 0.0f, dK, (int)d.ldk);
    }
  }
  free(dC);
  return NULL;
}

/* ---- layer norm with residual and dropout ------------------------------------------------ */

/* dropout.ts dropoutInto's mask: one 32-bit hash per pair of elements, 16 bits each */
static inline float dropout_mask(uint32_t s, int64_t i, uint32_t threshold, float scale) {
  uint32_t h = (uint32_t)(i >> 1) * 0x9e3779b9u + s;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  const uint32_t bits = (i & 1) ? (h >> 16) : (h & 0xffffu);
  return bits < threshold ? scale : 0.0f;
}

static napi_value LayerNormForward(napi_env env, napi_callback_info info) {
  static const char *fn = "layerNormForward";
  static const char *dims_msg = "dims must be an Int32Array [rows, d, hasR, hasDrop]";
  napi_value argv[6];
  f32view F;
  const int32_t *dm = NULL;
  double o[9];
  double eps, rate, seedD;
  if (!get_args(env, info, fn, 6, argv, "expected (F, dims, offs, eps, rate, seed)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !get_dims(env, fn, argv[1], 4, dims_msg, &dm))
    return NULL;
  if (dm[0] < 0 || dm[1] < 0) {
    throw_type(env, fn, dims_msg);
    return NULL;
  }
  if (!get_offsets(env, fn, argv[2], 9, o)) return NULL; /* 8 offsets + a pad slot */
  if (napi_get_value_double(env, argv[3], &eps) != napi_ok || napi_get_value_double(env, argv[4], &rate) != napi_ok ||
      napi_get_value_double(env, argv[5], &seedD) != napi_ok) {
    throw_type(env, fn, "eps, rate and seed must be numbers");
    return NULL;
  }
  const int64_t rows = dm[0], d = dm[1];
  const bool hasR = dm[2] != 0, hasDrop = hasR && dm[3] != 0;
  if (!(rate >= 0 && rate < 1) || !(eps >= 0)) {
    throw_range(env, fn, "rate must be in [0, 1) and eps >= 0");
    return NULL;
  }
  const int64_t oX = (int64_t)o[0], oR = (int64_t)o[1], oG = (int64_t)o[2], oB = (int64_t)o[3];
  const int64_t oOut = (int64_t)o[4], oXh = (int64_t)o[5], oRs = (int64_t)o[6], oM = (int64_t)o[7];
  const int64_t n = rows * d;
  span in[4] = {{oX, oX + n}, {oG, oG + d}, {oB, oB + d}, {oR, oR + (hasR ? n : 0)}};
  span out[4] = {{oOut, oOut + n}, {oXh, oXh + n}, {oRs, oRs + rows}, {oM, oM + (hasDrop ? n : 0)}};
  if (n == 0) return NULL;
  if (!check_spans(env, fn, F.len, in, 4, out, 4)) return NULL;
  float *f = F.data;
  const double keep = 1.0 - rate;
  const float scale = (float)(1.0 / keep);
  /* dropoutInto: Math.round(keep * 65536) and (imul(seed | 0, 0x85ebca77) + 0x165667b1) | 0 */
  const uint32_t threshold = (uint32_t)floor(keep * 65536.0 + 0.5);
  const uint32_t s = (uint32_t)(int64_t)fmod(seedD, 4294967296.0) * 0x85ebca77u + 0x165667b1u;
  for (int64_t i = 0; i < rows; i++) {
    float *xh = f + oXh + i * d;
    const float *x = f + oX + i * d;
    double sum = 0;
    if (hasR) {
      const float *r = f + oR + i * d;
      if (hasDrop) {
        float *m = f + oM + i * d;
        for (int64_t j = 0; j < d; j++) {
          m[j] = dropout_mask(s, i * d + j, threshold, scale);
          xh[j] = x[j] + r[j] * m[j];
        }
      } else {
        for (int64_t j = 0; j < d; j++) xh[j] = x[j] + r[j];
      }
    } else {
      for (int64_t j = 0; j < d; j++) xh[j] = x[j];
    }
    for (int64_t j = 0; j < d; j++) sum += xh[j];
    const double mean = sum / (double)d;
    double var = 0;
    for (int64_t j = 0; j < d; j++) {
      const double c = (double)xh[j] - mean;
      var += c * c;
    }
    var /= (double)d;
    const float rs = (float)(1.0 / sqrt(var + eps));
    f[oRs + i] = rs;
    const float mf = (float)mean;
    const float *g = f + oG, *b = f + oB;
    float *y = f + oOut + i * d;
    for (int64_t j = 0; j < d; j++) {
      const float v = (xh[j] - mf) * rs;
      xh[j] = v;
      y[j] = v * g[j] + b[j];
    }
  }
  return NULL;
}

static napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  static const char *fn = "layerNormBackward";
  static const char *dims_msg = "dims must be an Int32Array [rows, d, hasR, hasDrop]";
  napi_value argv[3];
  f32view F;
  const int32_t *dm = NULL;
  double o[10];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !get_dims(env, fn, argv[1], 4, dims_msg, &dm))
    return NULL;
  if (dm[0] < 0 || dm[1] < 0) {
    throw_type(env, fn, dims_msg);
    return NULL;
  }
  if (!get_offsets(env, fn, argv[2], 10, o)) return NULL;
  const int64_t rows = dm[0], d = dm[1];
  const bool hasR = dm[2] != 0, hasDrop = hasR && dm[3] != 0;
  const int64_t oDy = (int64_t)o[0], oXh = (int64_t)o[1], oRs = (int64_t)o[2], oG = (int64_t)o[3], oM = (int64_t)o[4];
  const int64_t oDx = (int64_t)o[5], oDr = (int64_t)o[6], oDg = (int64_t)o[7], oDb = (int64_t)o[8];
  const int64_t n = rows * d;
  span in[5] = {{oDy, oDy + n}, {oXh, oXh + n}, {oRs, oRs + rows}, {oG, oG + d}, {oM, oM + (hasDrop ? n : 0)}};
  span out[4] = {{oDx, oDx + n}, {oDr, oDr + (hasR ? n : 0)}, {oDg, oDg + d}, {oDb, oDb + d}};
  if (d == 0) return NULL;
  if (!check_spans(env, fn, F.len, in, 5, out, 4)) return NULL;
  float *f = F.data;
  double *acc = (double *)calloc((size_t)(2 * d), sizeof(double));
  if (acc == NULL) {
    napi_throw_error(env, "ERR_NATIVE_BLAS_NOMEM", "layerNormBackward: out of memory");
    return NULL;
  }
  const float *g = f + oG;
  for (int64_t i = 0; i < rows; i++) {
    const float *dy = f + oDy + i * d, *xh = f + oXh + i * d;
    const float rs = f[oRs + i];
    double s1 = 0, s2 = 0;
    for (int64_t j = 0; j < d; j++) {
      const float dxh = dy[j] * g[j];
      s1 += dxh;
      s2 += (double)dxh * xh[j];
      acc[j] += (double)dy[j] * xh[j];
      acc[d + j] += dy[j];
    }
    const float m1 = (float)(s1 / (double)d), m2 = (float)(s2 / (double)d);
    float *dx = f + oDx + i * d;
    for (int64_t j = 0; j < d; j++) dx[j] = rs * (dy[j] * g[j] - m1 - xh[j] * m2);
    if (hasR) {
      float *dr = f + oDr + i * d;
      if (hasDrop) {
        const float *m = f + oM + i * d;
        for (int64_t j = 0; j < d; j++) dr[j] = dx[j] * m[j];
      } else {
        for (int64_t j = 0; j < d; j++) dr[j] = dx[j];
      }
    }
  }
  for (int64_t j = 0; j < d; j++) {
    f[oDg + j] = (float)acc[j];
    f[oDb + j] = (float)acc[d + j];
  }
  free(acc);
  return NULL;
}

#ifdef HAVE_AVX2_LOOPS
/* Dropout's loop 8 elements at a time with AVX2, for i from 0 while 8 remain: each pair's hash by the
   same 32-bit integer operations as dropout_mask, y in double as the scalar loop computes it (kept: x *
   scale, dropped: x * 0.0, each rounded to float), so the same bits. Returns the first i not done. */
__attribute__((target("avx2"))) static int64_t dropout_avx2(uint32_t s, const float *x, float *y, float *m, int64_t n, uint32_t threshold,
                                                             double scale, float fscale) {
  const __m256i golden = _mm256_set1_epi32((int)0x9e3779b9u), vs = _mm256_set1_epi32((int)s);
  const __m256i c1 = _mm256_set1_epi32((int)0x85ebca6bu), c2 = _mm256_set1_epi32((int)0xc2b2ae35u);
  const __m256i lanePair = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), low16 = _mm256_set1_epi32(0xffff);
  const __m256i thr = _mm256_set1_epi32((int)threshold);
  const __m256d vscale = _mm256_set1_pd(scale), vzero = _mm256_setzero_pd();
  const __m256 vfscale = _mm256_set1_ps(fscale), zeros = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    /* lane l is element i + l of pair (i + l) >> 1 = i / 2 + l / 2 (i is even) */
    const __m256i pair = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)(i >> 1)), lanePair);
    __m256i h = _mm256_add_epi32(_mm256_mullo_epi32(pair, golden), vs);
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    h = _mm256_mullo_epi32(h, c1);
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
    h = _mm256_mullo_epi32(h, c2);
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    /* even elements the low 16 bits, odd ones the high */
    const __m256i bits = _mm256_blend_epi32(_mm256_and_si256(h, low16), _mm256_srli_epi32(h, 16), 0xAA);
    /* bits < threshold (both below 2^17, so the signed comparison is the unsigned one) */
    const __m256 kept = _mm256_castsi256_ps(_mm256_cmpgt_epi32(thr, bits));
    _mm256_storeu_ps(m + i, _mm256_blendv_ps(zeros, vfscale, kept));
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256d xlo = _mm256_cvtps_pd(_mm256_castps256_ps128(xv)), xhi = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
    const __m256 yk = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_mul_pd(xhi, vscale)), _mm256_cvtpd_ps(_mm256_mul_pd(xlo, vscale)));
    const __m256 yd = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_mul_pd(xhi, vzero)), _mm256_cvtpd_ps(_mm256_mul_pd(xlo, vzero)));
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(yd, yk, kept));
  }
  return i;
}
#endif

static napi_value Dropout(napi_env env, napi_callback_info info) {
  static const char *fn = "dropout";
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) {
    throw_type(env, fn, "expected (F, n, offs, rate, seed)");
    return NULL;
  }
  f32view F;
  int64_t n;
  double o[4], rate, seedD;
  if (!get_f32(env, fn, argv[0], "F", &F) || !get_count(env, fn, argv[1], "n", MAX_ELEMS, &n) ||
      !get_offsets(env, fn, argv[2], 4, o))
    return NULL;
  if (napi_get_value_double(env, argv[3], &rate) != napi_ok || napi_get_value_double(env, argv[4], &seedD) != napi_ok) {
    throw_type(env, fn, "rate and seed must be numbers");
    return NULL;
  }
  if (!(rate >= 0 && rate < 1)) {
    throw_range(env, fn, "rate must be in [0, 1)");
    return NULL;
  }
  const int64_t oX = (int64_t)o[0], oY = (int64_t)o[1], oM = (int64_t)o[2];
  span in[1] = {{oX, oX + n}};
  span out[2] = {{oY, oY + n}, {oM, oM + n}};
  if (n == 0) return NULL;
  if (!check_spans(env, fn, F.len, in, 1, out, 2)) return NULL;
  const double keep = 1.0 - rate;
  const double scale = 1.0 / keep;
  const uint32_t threshold = (uint32_t)floor(keep * 65536.0 + 0.5);
  const uint32_t s = (uint32_t)(int64_t)fmod(seedD, 4294967296.0) * 0x85ebca77u + 0x165667b1u;
  const float *x = F.data + oX;
  float *y = F.data + oY, *m = F.data + oM;
  const float fscale = (float)scale;
  int64_t i0 = 0;
#ifdef HAVE_AVX2_LOOPS
  if (avx2_loops()) i0 = dropout_avx2(s, x, y, m, n, threshold, scale, fscale);
#endif
  for (int64_t i = i0; i < n; i++) {
    const bool kept = dropout_mask(s, i, threshold, 1.0f) != 0.0f;
    m[i] = kept ? fscale : 0.0f;
    y[i] = kept ? (float)((double)x[i] * scale) : (float)((double)x[i] * 0.0);
  }
  return NULL;
}

/* ---- a vectorised expf, glibc's bit for bit ------------------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_VEXPF 1
/* vexpf: begin (test/check-vexpf.sh compiles this block alone and compares it with expf on all 2^32 floats) */
/* glibc 2.27+ expf (sysdeps/ieee754/flt-32/e_expf.c, its FMA ifunc variant __expf_fma) on 8 floats
   with AVX2 + FMA: the same double operations in the same order, each FMA where __expf_fma has one
   (objdump of libm.so.6: kd = fma(InvLn2N, x, SHIFT), r = fma(InvLn2N, x, -kd), z = fma(r, C0, C1),
   y = fma(r, C2, 1), y = fma(z, r*r, y), y * s, rounded to float). Lanes with |x| >= ~88 or NaN
   (glibc's special-case branch: top12 & 0x7ff > 0x42a) are computed by expf itself. */
static const uint64_t vexpf_tab[32] = {
  0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
  0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
  0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
  0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
  0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
  0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
  0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
  0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};
#define VEXPF_N 32
static const double vexpf_invln2n = 0x1.71547652b82fep+0 * VEXPF_N;
static const double vexpf_shift = 0x1.8p+52;
static const double vexpf_c0 = 0x1.c6af84b912394p-5 / VEXPF_N / VEXPF_N / VEXPF_N;
static const double vexpf_c1 = 0x1.ebfce50fac4f3p-3 / VEXPF_N / VEXPF_N;
static const double vexpf_c2 = 0x1.62e42ff0c52d6p-1 / VEXPF_N;

__attribute__((target("avx2,fma"))) static inline __m128 vexpf4_avx2(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d inv = _mm256_set1_pd(vexpf_invln2n), sh = _mm256_set1_pd(vexpf_shift);
  const __m256d kds = _mm256_fmadd_pd(inv, xd, sh);
  const __m256i ki = _mm256_castpd_si256(kds);
  const __m256d kd = _mm256_sub_pd(kds, sh);
  const __m256d r = _mm256_fmsub_pd(inv, xd, kd);
  const __m256i t0 = _mm256_i64gather_epi64((const long long *)vexpf_tab, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
  const __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(t0, _mm256_slli_epi64(ki, 47)));
  const __m256d z = _mm256_fmadd_pd(r, _mm256_set1_pd(vexpf_c0), _mm256_set1_pd(vexpf_c1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(r, _mm256_set1_pd(vexpf_c2), _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  y = _mm256_mul_pd(y, s);
  return _mm256_cvtpd_ps(y);
}

/* out[j] = expf(x[j] - m) for j < 8 (AVX2 + FMA) */
__attribute__((target("avx2,fma"))) static inline void vexpf8_sub_avx2(const float *x, float m, float *out) {
  const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x), _mm256_set1_ps(m));
  /* glibc's special cases: (bits >> 20) & 0x7ff > 0x42a */
  const __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(d), 20), _mm256_set1_epi32(0x7ff));
  const int special = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a))));
  const __m128 lo = vexpf4_avx2(_mm256_castps256_ps128(d)), hi = vexpf4_avx2(_mm256_extractf128_ps(d, 1));
  _mm_storeu_ps(out, lo);
  _mm_storeu_ps(out + 4, hi);
  if (special) {
    float dd[8];
    _mm256_storeu_ps(dd, d);
    for (int j = 0; j < 8; j++)
      if (special >> j & 1) out[j] = expf(dd[j]);
  }
}

/* vexpf: end */

/* 1 when vexpf8_sub_avx2 may replace expf here: the CPU has AVX2 and FMA (glibc then runs __expf_fma,
   the variant it copies) and, checked once at the first call, it gives this libm's expf bit for bit on
   every float32 in [-104, 0] with the last 9 mantissa bits 0 (2^21 values) and on the specials. On this
   machine (glibc 2.36) it was proven equal to expf on ALL 2^32 float32 inputs (an exhaustive C check). */
static int vexpf_state = -1;
static int vexpf_usable(void) {
  if (vexpf_state >= 0) return vexpf_state;
  vexpf_state = 0;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  float xs[8], ys[8];
  const float specials[8] = {0.0f, -0.0f, -INFINITY, NAN, -103.5f, -104.5f, -88.5f, -87.9f};
  vexpf8_sub_avx2(specials, 0.0f, ys);
  for (int j = 0; j < 8; j++) {
    const float e = expf(specials[j]);
    if (memcmp(&e, &ys[j], 4) != 0) return 0;
  }
  const uint32_t lo = 0x80000000u, hi = 0xc2d00000u; /* -0 .. -104 */
  for (uint32_t u0 = lo; u0 < hi; u0 += 8u << 9) {
    for (int j = 0; j < 8; j++) {
      const uint32_t u = u0 + ((uint32_t)j << 9);
      memcpy(&xs[j], &u, 4);
    }
    vexpf8_sub_avx2(xs, 0.0f, ys);
    for (int j = 0; j < 8; j++) {
      const float e = expf(xs[j]);
      if (memcmp(&e, &ys[j], 4) != 0) return 0;
    }
  }
  vexpf_state = 1;
  return 1;
}

/* max over 16 floats of x[j] - m, NaNs ignored (maxps returns its second operand when one is NaN) */
__attribute__((target("avx2,fma"))) static inline float beam_block_max_avx2(const float *x, float m) {
  const __m256 mm = _mm256_set1_ps(m);
  const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x), mm), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + 8), mm);
  __m256 a = _mm256_max_ps(d0, _mm256_max_ps(d1, _mm256_set1_ps(-INFINITY)));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_shuffle_ps(b, b, 1));
  return _mm_cvtss_f32(b);
}
#endif

/* The beam pass's blocks of values: BEAM_LANES (16) logits each. */
#define BEAM_LANES 16

/* e[v] = expf(x[v] - m) for v < n, and bmax[b] = the largest x[v] - m of block b (v in [16 b, 16 b + 16);
   NaNs ignored, -inf when there is none): the rounded x - m is what the beam pass's values start from,
   and they are monotone in it, so a block whose bmax gives no value above the cut has none. */
static void beam_exp_row(const float *x, float m, float *e, int64_t n, float *bmax) {
  int64_t v = 0;
#ifdef HAVE_VEXPF
  if (vexpf_usable()) {
    for (; v + 16 <= n; v += 16) {
      vexpf8_sub_avx2(x + v, m, e + v);
      vexpf8_sub_avx2(x + v + 8, m, e + v + 8);
      bmax[v / 16] = beam_block_max_avx2(x + v, m);
    }
  }
#endif
  for (; v < n; v += 16) {
    const int64_t end = v + 16 < n ? v + 16 : n;
    float bm = -INFINITY;
    for (int64_t j = v; j < end; j++) {
      const float d = x[j] - m;
      e[j] = expf(d);
      if (d > bm) bm = d;
    }
    bmax[v / 16] = bm;
  }
}

/* ---- beam search: log-softmax over the vocabulary and the 2k best continuations ------------- */

/* E = exp(x - max) of the last call's rows, grown on demand; one per thread (worker threads of one
   process decode side by side: eval/decode-pool.ts), kept until the thread ends. */
static _Thread_local float *beam_scratch = NULL;
static _Thread_local size_t beam_scratch_cap = 0;
static _Thread_local float *beam_ones = NULL;
static _Thread_local size_t beam_ones_cap = 0;

static bool beam_reserve(float **buf, size_t *cap, size_t n, float fill, bool filled) {
  if (n <= *cap) return true;
  size_t want = n > 2 * *cap ? n : 2 * *cap;
  float *p = (float *)malloc(want * sizeof(float));
  if (p == NULL) return false;
  free(*buf);
  *buf = p;
  *cap = want;
  if (filled)
    for (size_t i = 0; i < want; i++) p[i] = fill;
  return true;
}

enum { BD_R, BD_V, BD_G, BD_W, BD_N, BD_COUNT };

/* The first maximal value of x[0..n) as the sequential `if (x[v] > m) m = x[v]` from m = x[0] finds it
   (tfjs-wasm's Max); with SSE in 4 lanes of maxps (lane = x > lane ? x : lane: no arithmetic, and a
   maximum is the same in any order) except where the order shows: a leading NaN, or a zero maximum
   (+0 and -0 tie). */
#ifdef __SSE__
#include <xmmintrin.h>
#endif
static float beam_row_max(const float *x, int64_t n) {
  float m = x[0];
#ifdef __SSE__
  if (n >= 16 && m == m) {
    __m128 a = _mm_set1_ps(m), b = a, c = a, d = a;
    int64_t v = 0;
    for (; v + 16 <= n; v += 16) {
      a = _mm_max_ps(_mm_loadu_ps(x + v), a);
      b = _mm_max_ps(_mm_loadu_ps(x + v + 4), b);
      c = _mm_max_ps(_mm_loadu_ps(x + v + 8), c);
      d = _mm_max_ps(_mm_loadu_ps(x + v + 12), d);
    }
    float lane[16];
    _mm_storeu_ps(lane, a);
    _mm_storeu_ps(lane + 4, b);
    _mm_storeu_ps(lane + 8, c);
    _mm_storeu_ps(lane + 12, d);
    for (int j = 0; j < 16; j++)
      if (lane[j] > m) m = lane[j];
    for (; v < n; v++)
      if (x[v] > m) m = x[v];
    if (m != 0.0f) return m;
    m = x[0];
  }
#endif
  for (int64_t v = 1; v < n; v++)
    if (x[v] > m) m = x[v];
  return m;
}

static napi_value BeamTopk(napi_env env, napi_callback_info info) {
  static const char *fn = "beamTopk";
  napi_value argv[3];
  f32view F;
  const int32_t *dp = NULL;
  double o[7];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !get_dims(env, fn, argv[1], BD_COUNT, "dims must be an Int32Array of 5", &dp))
    return NULL;
  if (!get_offsets(env, fn, argv[2], 7, o)) return NULL;
  for (int i = 0; i < BD_COUNT; i++)
    if (dp[i] < 0) {
      throw_range(env, fn, "dims must be non-negative");
      return NULL;
    }
  const int64_t R = dp[BD_R], V = dp[BD_V], G = dp[BD_G], W = dp[BD_W], N = dp[BD_N];
  const int64_t oL = (int64_t)o[0], oS = (int64_t)o[1], oRow = (int64_t)o[2], oLse = (int64_t)o[3], oVal = (int64_t)o[4],
                oIdx = (int64_t)o[5];
  if ((R > 0 && V == 0) || (G > 0 && (W == 0 || N == 0)) || (W > 0 && V > 0 && W > INT32_MAX / V)) {
    throw_range(env, fn, "empty rows, beams or candidates (or beam * V overflows int32)");
    return NULL;
  }
  span in[3] = {{oL, oL + R * V}, {oS, oS + G * W}, {oRow, oRow + G * W}};
  span out[3] = {{oLse, oLse + R}, {oVal, oVal + G * N}, {oIdx, oIdx + G * N}};
  if (!check_spans(env, fn, F.len, in, 3, out, 3)) return NULL;
  float *f = F.data;
  const float *L = f + oL;
  const float *score = f + oS;
  const int32_t *rowOf = (const int32_t *)(f + oRow);
  for (int64_t i = 0; i < G * W; i++)
    if (rowOf[i] < -1 || rowOf[i] >= R) {
      throw_range(env, fn, "a beam's row is outside [-1, R)");
      return NULL;
    }
  float *lse = f + oLse, *vals = f + oVal;
  int32_t *idx = (int32_t *)(f + oIdx);
  float *mx = NULL, *bmax = NULL;
  const int64_t NB = (V + BEAM_LANES - 1) / BEAM_LANES; /* blocks per row */
  if (R > 0) {
    if (!beam_reserve(&beam_scratch, &beam_scratch_cap, (size_t)(R * V + R + R * NB), 0.0f, false) ||
        !beam_reserve(&beam_ones, &beam_ones_cap, (size_t)V, 1.0f, true)) {
      throw_range(env, fn, "out of memory for the scratch rows");
      return NULL;
    }
    float *E = beam_scratch;
    mx = beam_scratch + R * V;
    bmax = mx + R;
    /* tf.logSoftmax's ops as the wasm backend runs them: Max, Sub, Exp (glibc expf = tfjs-wasm's Exp;
       8 at a time by vexpf8_sub_avx2 where it is glibc's expf bit for bit),
       Sum (the native Sum: E [R, V] @ ones [V, 1], the same sgemm call), Log */
    for (int64_t r = 0; r < R; r++) {
      const float *x = L + r * V;
      const float m = beam_row_max(x, V);
      mx[r] = m;
      float *e = E + r * V;
      beam_exp_row(x, m, e, V, bmax + r * NB);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, 1, (int)V, 1.0f, E, (int)V, beam_ones, 1, 0.0f, lse, 1);
    for (int64_t r = 0; r < R; r++) lse[r] = logf(lse[r]);
  }
  /* fast-decode.ts topCandidates per group of W beams: value (float)((float)((x - max) - lse) + score),
     the N best in tf.topk's order (higher value first, lower beam * V + token on a tie) */
  for (int64_t g = 0; g < G; g++) {
    float *gv = vals + g * N;
    int32_t *gi = idx + g * N;
    for (int64_t j = 0; j < N; j++) {
      gv[j] = -INFINITY;
      gi[j] = -1;
    }
    for (int64_t beam = 0; beam < W; beam++) {
      const float s = score[g * W + beam];
      const int32_t r = rowOf[g * W + beam];
      if (s == -INFINITY || r < 0) continue;
      const float c = lse[r], m = mx[r];
      const float *x = L + (int64_t)r * V;
      const float *bm = bmax + (int64_t)r * NB;
      float min = gv[N - 1];
      float ys[BEAM_LANES];
      for (int64_t v0 = 0; v0 < V; v0 += BEAM_LANES) {
        /* a block's values (vectorised, the same float ops per value), then the sequential pass only
           over blocks with a value above the current cut */
        const int64_t nb = V - v0 < BEAM_LANES ? V - v0 : BEAM_LANES;
        /* the block's largest value is (bmax - lse) + score (values are monotone in x - max): none above the cut, skip */
        if (!(((bm[v0 / BEAM_LANES] - c) + s) > min)) continue;
        int above = 0;
        if (nb == BEAM_LANES) {
          for (int j = 0; j < BEAM_LANES; j++) {
            ys[j] = ((x[v0 + j] - m) - c) + s;
            above |= ys[j] > min;
          }
        } else {
          for (int64_t j = 0; j < nb; j++) {
            ys[j] = ((x[v0 + j] - m) - c) + s;
            above |= ys[j] > min;
          }
        }
        if (!above) continue;
        for (int64_t jj = 0; jj < nb; jj++) {
          const int64_t v = v0 + jj;
          const float y = ys[jj];
          if (!(y > min)) continue;
          int64_t j = N - 1;
          while (j > 0 && y > gv[j - 1]) {
            gv[j] = gv[j - 1];
            gi[j] = gi[j - 1];
            j--;
          }
          gv[j] = y;
          gi[j] = (int32_t)(beam * V + v);
          min = gv[N - 1];
        }
      }
    }
  }
  return NULL;
}

/* ---- decoder self-attention over preallocated key/value caches -------------------------------- */

/* The one-query products of decoding attention (M = 1) as plain FMA chains: c[j] = sum_k a[k] b[j, k]
   (NT: scores) or c[n] = sum_k a[k] b[k, n] (NN: context), each output one fused multiply-add chain from
   0 with k in order. That is what OpenBLAS 0.3.21 (SkylakeX) computes for these shapes at dh 8 and 16 (NT)
   and 16 and 32 (NN), found by comparing on random data (not at NT dh 32 / 64 or NN dh 8), without its
   per-call overhead (0.23 us per 1 x 30 x 16 call). Used only where a check at the first call per dh
   and direction finds cblas_sgemm's bits (ldb = dh, as the batched matMul calls it) for every length
   1..SMALL_MAX_T on two sets of random operands; else, and for longer rows, cblas_sgemm. */
#define SMALL_MAX_T 512
#define SMALL_MAX_DH 256
#ifdef HAVE_VEXPF
__attribute__((target("avx2,fma"))) static void row_nt_fma(const float *a, const float *b, int64_t ldb, int64_t n, int64_t K, float *c) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float *b0 = b + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
    __m128 c0 = _mm_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    for (int64_t k = 0; k < K; k++) {
      const __m128 ak = _mm_set_ss(a[k]);
      c0 = _mm_fmadd_ss(ak, _mm_set_ss(b0[k]), c0);
      c1 = _mm_fmadd_ss(ak, _mm_set_ss(b1[k]), c1);
      c2 = _mm_fmadd_ss(ak, _mm_set_ss(b2[k]), c2);
      c3 = _mm_fmadd_ss(ak, _mm_set_ss(b3[k]), c3);
    }
    c[j] = _mm_cvtss_f32(c0);
    c[j + 1] = _mm_cvtss_f32(c1);
    c[j + 2] = _mm_cvtss_f32(c2);
    c[j + 3] = _mm_cvtss_f32(c3);
  }
  for (; j < n; j++) {
    const float *bj = b + j * ldb;
    __m128 cj = _mm_setzero_ps();
    for (int64_t k = 0; k < K; k++) cj = _mm_fmadd_ss(_mm_set_ss(a[k]), _mm_set_ss(bj[k]), cj);
    c[j] = _mm_cvtss_f32(cj);
  }
}

__attribute__((target("avx2,fma"))) static void row_nn_fma(const float *a, const float *b, int64_t ldb, int64_t N, int64_t K, float *c) {
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0;
    for (int64_t k = 0; k < K; k++) {
      const __m256 ak = _mm256_set1_ps(a[k]);
      c0 = _mm256_fmadd_ps(ak, _mm256_loadu_ps(b + k * ldb + n), c0);
      c1 = _mm256_fmadd_ps(ak, _mm256_loadu_ps(b + k * ldb + n + 8), c1);
    }
    _mm256_storeu_ps(c + n, c0);
    _mm256_storeu_ps(c + n + 8, c1);
  }
  for (; n < N; n++) {
    __m128 cn = _mm_setzero_ps();
    for (int64_t k = 0; k < K; k++) cn = _mm_fmadd_ss(_mm_set_ss(a[k]), _mm_set_ss(b[k * ldb + n]), cn);
    c[n] = _mm_cvtss_f32(cn);
  }
}

static int8_t small_state[2][SMALL_MAX_DH + 1]; /* [nt][dh]: 0 unchecked, 1 the chains match, -1 not */

static int small_ok(int nt, int64_t dh) {
  if (dh <= 0 || dh > SMALL_MAX_DH) return 0;
  int8_t *st = &small_state[nt][dh];
  if (*st) return *st > 0;
  *st = -1;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  const int64_t T = SMALL_MAX_T, na = nt ? dh : T, nb = T * dh, nc = nt ? T : dh;
  float *buf = (float *)malloc((size_t)(na + nb + 2 * nc) * sizeof(float));
  if (buf == NULL) return 0;
  float *a = buf, *b = a + na, *want = b + nb, *got = want + nc;
  uint32_t x = 12345u + (uint32_t)dh;
  int ok = 1;
  for (int trial = 0; trial < 2 && ok; trial++) {
    for (int64_t i = 0; i < na + nb; i++) {
      x = x * 1664525u + 1013904223u;
      const float u = (float)(x >> 8) / 16777216.0f; /* [0, 1) */
      /* trial 0: all in [-2, 2); trial 1: a like softmax weights or scaled queries, b like keys / values */
      buf[i] = trial == 0 || i >= na ? 4.0f * u - 2.0f : (nt ? u - 0.5f : u / (float)T);
    }
    for (int64_t t = 1; t <= T && ok; t++) {
      if (nt) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, (int)t, (int)dh, 1.0f, a, (int)dh, b, (int)dh, 0.0f, want, (int)t);
        row_nt_fma(a, b, dh, t, dh, got);
        ok = memcmp(want, got, (size_t)t * sizeof(float)) == 0;
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, (int)dh, (int)t, 1.0f, a, (int)t, b, (int)dh, 0.0f, want, (int)dh);
        row_nn_fma(a, b, dh, dh, t, got);
        ok = memcmp(want, got, (size_t)dh * sizeof(float)) == 0;
      }
    }
  }
  free(buf);
  *st = ok ? 1 : -1;
  return ok;
}
#endif

/* scores c [n] of one query a [K] against rows of b (ld ldb): the FMA chains where checked, else sgemm */
static void one_query_nt(const float *a, const float *b, int64_t ldb, int64_t n, int64_t K, float *c) {
#ifdef HAVE_VEXPF
  if (n <= SMALL_MAX_T && small_ok(1, K)) {
    row_nt_fma(a, b, ldb, n, K, c);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, (int)n, (int)K, 1.0f, a, (int)K, b, (int)ldb, 0.0f, c, (int)n);
}

/* context c [N] of weights a [K] over rows of b (ld ldb): the FMA chains where checked, else sgemm */
static void one_query_nn(const float *a, const float *b, int64_t ldb, int64_t N, int64_t K, float *c) {
#ifdef HAVE_VEXPF
  if (K <= SMALL_MAX_T && small_ok(0, N)) {
    row_nn_fma(a, b, ldb, N, K, c);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, (int)N, (int)K, 1.0f, a, (int)K, b, (int)ldb, 0.0f, c, (int)N);
}

/* The caches of one layer: K and V [rowsCap, Tcap, h*dh] (row r's position p at r*rowStride + p*h*dh,
   head hh at columns hh*dh..), positions 0..t-1 written by earlier steps. */
enum { KC_R, KC_H, KC_DH, KC_LDQKV, KC_T, KC_ROWSCAP, KC_TCAP, KC_COUNT };

/* per thread, as beam_scratch */
static _Thread_local float *kv_scratch = NULL;
static _Thread_local size_t kv_scratch_cap = 0;

static bool kv_dims(napi_env env, const char *fn, napi_value v, int64_t *d) {
  const int32_t *p = NULL;
  if (!get_dims(env, fn, v, KC_COUNT, "dims must be an Int32Array of 7", &p)) return false;
  for (int i = 0; i < KC_COUNT; i++) {
    if (p[i] < 0) return throw_range(env, fn, "dims must be non-negative");
    d[i] = p[i];
  }
  if (d[KC_R] > d[KC_ROWSCAP] || d[KC_T] >= d[KC_TCAP] || d[KC_H] == 0 || d[KC_DH] == 0)
    return throw_range(env, fn, "rows above the capacity, a position outside the cache, or no heads");
  return true;
}

/*
 * cacheScores(F, dims, offs): dims [R, h, dh, ldqkv, t, rowsCap, Tcap], offs [qkv, K, V, scores, scale].
 * Row r of qkv [R, ldqkv] holds [q | k | v] (each h*dh wide): its k and v are written to position t of
 * the caches K and V (in place), then scores [R, h, 1, t+1] = (q * scale) K[r, 0..t]^T per head, with
 * the cblas_sgemm call (M 1, N t+1, K dh, B transposed) that the batched matMul of q [R, h, 1, dh] and
 * k [R, h, t+1, dh] makes per head, on the cache's rows (ldb h*dh instead of dh: the same numbers).
 */
static napi_value CacheScores(napi_env env, napi_callback_info info) {
  static const char *fn = "cacheScores";
  napi_value argv[3];
  f32view F;
  int64_t d[KC_COUNT];
  double o[5];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !kv_dims(env, fn, argv[1], d) || !get_offsets(env, fn, argv[2], 5, o))
    return NULL;
  const int64_t R = d[KC_R], h = d[KC_H], dh = d[KC_DH], ld = d[KC_LDQKV], t = d[KC_T], hd = h * dh;
  const int64_t rowStride = d[KC_TCAP] * hd, T = t + 1;
  if (ld < 3 * hd) {
    throw_range(env, fn, "ldqkv must be at least 3*h*dh");
    return NULL;
  }
  const int64_t oQ = (int64_t)o[0], oK = (int64_t)o[1], oV = (int64_t)o[2], oS = (int64_t)o[3];
  span in[1] = {rows_span(oQ, R, ld, 3 * hd)};
  span out[3] = {{oK, oK + d[KC_ROWSCAP] * rowStride}, {oV, oV + d[KC_ROWSCAP] * rowStride}, {oS, oS + R * h * T}};
  if (!check_spans(env, fn, F.len, in, 1, out, 3)) return NULL;
  if (R == 0) return NULL;
  if (!beam_reserve(&kv_scratch, &kv_scratch_cap, (size_t)dh, 0.0f, false)) {
    throw_range(env, fn, "out of memory for the scratch row");
    return NULL;
  }
  const float scale = (float)o[4];
  float *f = F.data, *qs = kv_scratch;
  for (int64_t r = 0; r < R; r++) {
    const float *q = f + oQ + r * ld;
    memcpy(f + oK + r * rowStride + t * hd, q + hd, (size_t)hd * sizeof(float));
    memcpy(f + oV + r * rowStride + t * hd, q + 2 * hd, (size_t)hd * sizeof(float));
    for (int64_t hh = 0; hh < h; hh++) {
      for (int64_t j = 0; j < dh; j++) qs[j] = q[hh * dh + j] * scale;
      one_query_nt(qs, f + oK + r * rowStride + hh * dh, hd, T, dh, f + oS + (r * h + hh) * T);
    }
  }
  return NULL;
}

/*
 * cacheContext(F, dims, offs): dims [R, h, dh, 0, T - 1, rowsCap, Tcap], offs [weights, V, out, 0].
 * out [R, h, 1, dh] = weights [R, h, 1, T] @ V[r, 0..T-1] per head, with the cblas_sgemm call (M 1, N dh,
 * K T) that the batched matMul of weights and v [R, h, T, dh] makes per head (ldb h*dh instead of dh).
 */
static napi_value CacheContext(napi_env env, napi_callback_info info) {
  static const char *fn = "cacheContext";
  napi_value argv[3];
  f32view F;
  int64_t d[KC_COUNT];
  double o[4];
  if (!get_args(env, info, fn, 3, argv, "expected (F, dims, offs)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !kv_dims(env, fn, argv[1], d) || !get_offsets(env, fn, argv[2], 4, o))
    return NULL;
  const int64_t R = d[KC_R], h = d[KC_H], dh = d[KC_DH], T = d[KC_T] + 1, hd = h * dh;
  const int64_t rowStride = d[KC_TCAP] * hd;
  const int64_t oW = (int64_t)o[0], oV = (int64_t)o[1], oO = (int64_t)o[2];
  span in[2] = {{oW, oW + R * h * T}, {oV, oV + d[KC_ROWSCAP] * rowStride}};
  span out[1] = {{oO, oO + R * hd}};
  if (!check_spans(env, fn, F.len, in, 2, out, 1)) return NULL;
  float *f = F.data;
  for (int64_t r = 0; r < R; r++)
    for (int64_t hh = 0; hh < h; hh++)
      one_query_nn(f + oW + (r * h + hh) * T, f + oV + r * rowStride + hh * dh, hd, dh, T, f + oO + r * hd + hh * dh);
  return NULL;
}

/*
 * cacheRows(F, dims, offs, src): dims [rowsOut, rowsCap, rowStride, len], offs [cache 0, cache 1, ...]
 * (each [rowsCap, rowStride] floats), src Int32Array [rowsOut]: in every cache, row i becomes what row
 * src[i] held (its first len floats), in place; rows that keep their place are not copied, and a row
 * that is both read and overwritten is read from a copy taken first.
 */
static napi_value CacheRows(napi_env env, napi_callback_info info) {
  static const char *fn = "cacheRows";
  napi_value argv[4];
  f32view F;
  const int32_t *dp = NULL, *src = NULL;
  int64_t srcLen = 0;
  bool present = false;
  if (!get_args(env, info, fn, 4, argv, "expected (F, dims, offs, src)") || !get_f32(env, fn, argv[0], "F", &F) ||
      !get_dims(env, fn, argv[1], 4, "dims must be an Int32Array of 4", &dp) ||
      !get_i32_opt(env, fn, argv[3], "src", &src, &srcLen, &present))
    return NULL;
  for (int i = 0; i < 4; i++)
    if (dp[i] < 0) {
      throw_range(env, fn, "dims must be non-negative");
      return NULL;
    }
  const int64_t rowsOut = dp[0], rowsCap = dp[1], rowStride = dp[2], len = dp[3];
  if (!present || srcLen < rowsOut || rowsOut > rowsCap || len > rowStride) {
    throw_range(env, fn, "src shorter than rowsOut, rowsOut above rowsCap, or len above rowStride");
    return NULL;
  }
  for (int64_t i = 0; i < rowsOut; i++)
    if (src[i] < 0 || src[i] >= rowsCap) {
      throw_range(env, fn, "a source row is outside [0, rowsCap)");
      return NULL;
    }
  size_t nCaches = 0;
  const double *offs = NULL;
  if (!get_f64(env, fn, argv[2], 0, "offs must be a Float64Array", &offs, &nCaches)) return NULL;
  for (size_t c = 0; c < nCaches; c++) {
    const double oc = offs[c];
    if (!(oc >= 0) || oc != floor(oc) || oc + (double)rowsCap * (double)rowStride > (double)F.len) {
      throw_range(env, fn, "a cache lies outside F");
      return NULL;
    }
  }
  if (rowsOut == 0 || len == 0) return NULL;
  /* saved[j] = slot + 1 of row j's copy when row j is read by a moved row and overwritten itself */
  int32_t *saved = (int32_t *)calloc((size_t)rowsCap, sizeof(int32_t));
  if (saved == NULL) {
    throw_range(env, fn, "out of memory");
    return NULL;
  }
  int32_t nSaved = 0;
  for (int64_t i = 0; i < rowsOut; i++) {
    const int32_t j = src[i];
    if (j != i && j < rowsOut && src[j] != j && saved[j] == 0) saved[j] = ++nSaved;
  }
  if (nSaved > 0 && !beam_reserve(&kv_scratch, &kv_scratch_cap, (size_t)nSaved * (size_t)len, 0.0f, false)) {
    free(saved);
    throw_range(env, fn, "out of memory for the saved rows");
    return NULL;
  }
  for (size_t c = 0; c < nCaches; c++) {
    float *base = F.data + (int64_t)offs[c];
    for (int64_t j = 0; j < rowsCap; j++)
      if (saved[j]) memcpy(kv_scratch + (int64_t)(saved[j] - 1) * len, base + j * rowStride, (size_t)len * sizeof(float));
    for (int64_t i = 0; i < rowsOut; i++) {
      const int32_t j = src[i];
      if (j == i) continue;
      const float *from = saved[j] ? kv_scratch + (int64_t)(saved[j] - 1) * len : base + (int64_t)j * rowStride;
      memcpy(base + i * rowStride, from, (size_t)len * sizeof(float));
    }
  }
  free(saved);
  return NULL;
}

/* ---- Adam ---------------------------------------------------------------------------------- */

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
static void adam_rows(const float *p, const float *m, const float *v, const float *g, float *po, float *mo, float *vo,
                      int64_t n, const float *k) {
  const float b1 = k[0], omb1 = k[1], b2 = k[2], omb2 = k[3], c1 = k[4], lr = k[5], c2 = k[6], eps = k[7];
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float a = m[i] * b1;
    const float b = gi * omb1;
    const float mn = a + b;
    const float c = v[i] * b2;
    const float sq = gi * gi;
    const float d = sq * omb2;
    const float vn = c + d;
    const float mh = mn / c1;
    const float step = mh * lr;
    const float vh = vn / c2;
    const float den = sqrtf(vh) + eps;
    const float upd = step / den;
    po[i] = p[i] - upd;
    mo[i] = mn;
    vo[i] = vn;
  }
}
#pragma GCC pop_options

static napi_value AdamUpdate(napi_env env, napi_callback_info info) {
  static const char *fn = "adamUpdate";
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    throw_type(env, fn, "expected (F, n, offs, k)");
    return NULL;
  }
  f32view F;
  int64_t n;
  double o[8], kd[9];
  if (!get_f32(env, fn, argv[0], "F", &F) || !get_count(env, fn, argv[1], "n", MAX_ELEMS, &n) ||
      !get_offsets(env, fn, argv[2], 8, o))
    return NULL;
  const double *kp = NULL;
  if (!get_f64(env, fn, argv[3], 8, "k must be a Float64Array of 8", &kp, NULL)) return NULL;
  memcpy(kd, kp, 8 * sizeof(double));
  float k[8];
  for (int i = 0; i < 8; i++) k[i] = (float)kd[i];
  span in[4], out[3];
  for (int i = 0; i < 4; i++) in[i] = (span){(int64_t)o[i], (int64_t)o[i] + n};
  for (int i = 0; i < 3; i++) out[i] = (span){(int64_t)o[4 + i], (int64_t)o[4 + i] + n};
  if (n == 0) return NULL;
  if (!check_spans(env, fn, F.len, in, 4, out, 3)) return NULL;
  float *f = F.data;
  adam_rows(f + (int64_t)o[0], f + (int64_t)o[1], f + (int64_t)o[2], f + (int64_t)o[3], f + (int64_t)o[4], f + (int64_t)o[5],
            f + (int64_t)o[6], n, k);
  return NULL;
}

/* ---- threads and configuration ----------------------------------------------------------- */

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t n;
  if (argc < 1 || !get_count(env, "setThreads", argv[0], "n", 1024, &n)) {
    if (argc < 1) throw_type(env, "setThreads", "expected (n)");
    return NULL;
  }
  if (n < 1) {
    throw_range(env, "setThreads", "n must be at least 1");
    return NULL;
  }
  openblas_set_num_threads((int)n);
  napi_value r;
  napi_create_int32(env, openblas_get_num_threads(), &r);
  return r;
}

/* scalarLoops(on): smoothedXent's exponentials and dropout's masks by their scalar loops (true) or 8 at a
   time where AVX2 is (false, the default); the two give the same bits, which tests check. Returns the
   previous setting. */
static napi_value ScalarLoops(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool on = false;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    throw_type(env, "scalarLoops", "expected (on: boolean)");
    return NULL;
  }
  napi_value r;
  napi_get_boolean(env, !wide_loops, &r);
  wide_loops = !on;
  return r;
}

static napi_value GetThreads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_int32(env, openblas_get_num_threads(), &r);
  return r;
}

static napi_value Config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  napi_create_object(env, &obj);
  const char *cfg = openblas_get_config();
  const char *core = openblas_get_corename();
  napi_create_string_utf8(env, cfg ? cfg : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "config", v);
  napi_create_string_utf8(env, core ? core : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "corename", v);
  napi_create_int32(env, openblas_get_num_procs(), &v);
  napi_set_named_property(env, obj, "numProcs", v);
  napi_create_int32(env, openblas_get_num_threads(), &v);
  napi_set_named_property(env, obj, "threads", v);
  return obj;
}

/* ---- module ------------------------------------------------------------------------------ */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, Sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmBatched", NULL, SgemmBatched, NULL, NULL, NULL, napi_enumerable, NULL},
      {"biasActivation", NULL, BiasActivation, NULL, NULL, NULL, napi_enumerable, NULL},
      {"smoothedXent", NULL, SmoothedXent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionForward", NULL, AttentionForward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionBackward", NULL, AttentionBackward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormForward", NULL, LayerNormForward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormBackward", NULL, LayerNormBackward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropout", NULL, Dropout, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamUpdate", NULL, AdamUpdate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"beamTopk", NULL, BeamTopk, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cacheScores", NULL, CacheScores, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cacheContext", NULL, CacheContext, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cacheRows", NULL, CacheRows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"scalarLoops", NULL, ScalarLoops, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, GetThreads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"config", NULL, Config, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
