/** Type declarations for the heads OpenBLAS addon (see src/native_blas.c for the full contract). */
export interface NativeBlas {
  /** Row-major C := alpha * op(A) * op(B) + beta * C on Float32Arrays at element offsets. Throws RangeError when out of bounds. */
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
    offA?: number, offB?: number, offC?: number,
  ): void;
  /** Batch of contiguous matrices; batch i reads A at offA + (idxA?.[i] ?? i) * strideA (stride 0 broadcasts), writes C at offC + i * strideC. */
  sgemmBatched(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, offA: number, strideA: number, B: Float32Array, offB: number, strideB: number,
    beta: number, C: Float32Array, offC: number, strideC: number, batch: number,
    idxA?: Int32Array | null, idxB?: Int32Array | null,
  ): void;
  /** In place: C[r, c] = act(C[r, c] + bias); biasLen 0, 1 or cols; act 0 linear, 1 relu, 2 relu6, 3 leakyrelu, 4 sigmoid, 5 elu. */
  biasActivation(
    C: Float32Array, offC: number, rows: number, cols: number, bias: Float32Array | null, offBias: number,
    biasLen: number, activation: number, alpha?: number,
  ): void;
  /**
   * Label-smoothed softmax cross-entropy per row of L [n, v] with targets Y (Int32Array) and weights W:
   * Loss[i] = W[i] (lse - (1 - eps) L[i, y] - eps mean L[i]), G[i, j] = W[i] (softmax_j - q_j); G null: the loss
   * only (offG ignored). Throws RangeError when out of bounds or aliased.
   */
  smoothedXent(
    L: Float32Array, offL: number, Y: Int32Array, offY: number, W: Float32Array, offW: number, n: number, v: number, eps: number,
    G: Float32Array | null, offG: number, Loss: Float32Array, offLoss: number,
  ): void;
  /** smoothedXent's exponentials and dropout's masks by their scalar loops (true) or 8 at a time with AVX2 (false, the default; the same bits). Returns the previous setting. */
  scalarLoops(on: boolean): boolean;
  /**
   * One layer's multi-head attention on one array F (all operands at element offsets; see src/native_blas.c):
   * dims [B, h, Tq, Tk, dh, ldq, ldk, ldv, biasStrideB, biasStrideQ, gateStrideB, hasBias, hasGate];
   * forward offs [Q, K, V, bias, gate, Out, P, Ctx, scale], backward offs [dOut, Q, K, V, P, Ctx, gate, dQ, dK, dV, dGate, scale].
   */
  attentionForward(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  attentionBackward(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /**
   * out = LN(x + drop(r)) g + b over rows (see src/native_blas.c): dims [rows, d, hasR, hasDrop]; forward offs
   * [x, r, g, b, out, xhat, rstd, mask, 0], backward offs [dy, xhat, rstd, g, mask, dx, dr, dg, db, 0].
   */
  layerNormForward(F: Float32Array, dims: Int32Array, offs: Float64Array, eps: number, rate: number, seed: number): void;
  layerNormBackward(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** y = x * mask over n elements of F (offs [x, y, mask, 0]) with src/backend/dropout.ts's hash masks, bit for bit. */
  dropout(F: Float32Array, n: number, offs: Float64Array, rate: number, seed: number): void;
  /** One Adam step over n elements of F: offs [p, m, v, g, pOut, mOut, vOut, 0], k [b1, 1-b1, b2, 1-b2, c1, lr, c2, eps] (float32 values). */
  adamUpdate(F: Float32Array, n: number, offs: Float64Array, k: Float64Array): void;
  /**
   * One beam-search step on one array F: dims [R, V, G, W, N], offs [logits, score, rowOf, lse, vals, idx, 0]:
   * lse of each of R rows of logits [R, V] as tfjs-wasm's log-softmax ops give it, and the N best
   * (float)((float)(logits - max - lse) + score) per group of W beams with beam * V + token (int32), tf.topk's order.
   */
  beamTopk(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /**
   * Decoder self-attention over caches K, V [rowsCap, Tcap, h*dh] in F: dims [R, h, dh, ldqkv, t, rowsCap, Tcap],
   * offs [qkv, K, V, scores, scale]: writes each row's k and v (columns h*dh.. and 2*h*dh.. of qkv) at position t
   * and computes scores [R, h, 1, t+1] = (q * scale) K^T per head (one cblas_sgemm per row and head).
   */
  cacheScores(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** context [R, h, 1, dh] = weights [R, h, 1, T] @ V per head: dims [R, h, dh, 0, T - 1, rowsCap, Tcap], offs [weights, V, out, 0]. */
  cacheContext(F: Float32Array, dims: Int32Array, offs: Float64Array): void;
  /** In place, in every cache at offs: row i = row src[i] (first len floats): dims [rowsOut, rowsCap, rowStride, len]. */
  cacheRows(F: Float32Array, dims: Int32Array, offs: Float64Array, src: Int32Array): void;
  /** Sets OpenBLAS's thread count; returns the count now in effect. */
  setThreads(n: number): number;
  getThreads(): number;
  config(): { config: string; corename: string; numProcs: number; threads: number };
}
export declare const blas: NativeBlas | null;
export declare const loadError: Error | null;
