/**
 * LRP relevance (rule 'lrp', lrp.ts) of every head at every target position from one forward pass per
 * batch and one linear pass per gated layer, instead of one backward pass per target position.
 *
 * Why it is the same number: R_h(b,t) = sum_p xi[b,h,p] * d logit_t / d xi[b,h,p] at xi = 1 is the
 * derivative of logit_t along the direction "all of head h's mask", i.e. a forward-mode derivative
 * (JVP) of the network whose backward lrp.ts takes. Under rule 'lrp' that network has the softmax
 * attention weights and LayerNorm's 1/sigma frozen, and ReLU's derivative is its 0/1 mask at the forward
 * values, so the derivative is a LINEAR map of the head's gated context: through W_O, the residuals,
 * LayerNorm as (dx - mean dx) * (1/sigma) * g, the value path of every later attention (weights
 * constant), the ReLU masks of the feed-forward blocks, and for the top-1 logit the output embedding row.
 * One such linear pass with the batch replicated once per head of a layer (replica k: head k's gated
 * context injected at its layer) gives d logit_t for all positions t at once. Tested equal to the
 * per-step backward passes.
 */
import * as tf from '@tensorflow/tfjs';
import type { Transformer } from '../model/transformer.js';
import { type AttentionParams, gateForContext, mergeHeads, splitHeads } from '../model/attention.js';
import { type Activation, ForwardContext, activate, causalBias, linear, paddingBias } from '../model/layers.js';
import type { GateTensors } from '../model/transformer.js';
import { type MaskedLayer, gatesWithTokenMasks } from './importance.js';
import type { PerHead } from '../config/head-layout.js';

interface NormRec {
  inv: tf.Tensor;
  g: tf.Tensor;
}
interface AttnRec {
  kind: 'attn';
  p: AttentionParams;
  weights: tf.Tensor;
  gated: tf.Tensor;
  gate: tf.Tensor | null;
  fromMemory: boolean;
}
/** d act / dz at z (a linearisation's diagonal): ReLU's 0/1 mask, swish' = s(1 + z(1 - s)), gelu' = Phi(z) + z phi(z). */
function activationDerivative(z: tf.Tensor, kind: Activation = 'relu'): tf.Tensor {
  return tf.tidy(() => {
    if (kind === 'swish') {
      const s = tf.sigmoid(z);
      return s.mul(z.mul(tf.sub(1, s)).add(1));
    }
    if (kind === 'gelu')
      return tf
        .erf(z.mul(Math.SQRT1_2))
        .add(1)
        .mul(0.5)
        .add(z.mul(tf.exp(z.square().mul(-0.5))).mul(1 / Math.sqrt(2 * Math.PI)));
    return z.greater(0).cast('float32');
  });
}

interface FfnRec {
  kind: 'ffn';
  w1: tf.Tensor;
  w2: tf.Tensor;
  mask: tf.Tensor;
}
type Sublayer = (AttnRec | FfnRec) & { norm: NormRec; stack: 'enc' | 'dec'; layer: number };

interface Tape {
  enc: Sublayer[];
  dec: Sublayer[];
  encNorm: NormRec | null;
  decNorm: NormRec | null;
  logits: tf.Tensor2D;
}

/** The eval forward of lrp.ts's relevanceForward, keeping what the linear pass needs. Inside a tidy. */
function recordForward(model: Transformer, src: tf.Tensor2D, tgtIn: tf.Tensor2D, gates: GateTensors | undefined): Tape {
  const c = model.config;
  const ctx = ForwardContext.eval();
  const p = (n: string) => model.params.get(n);
  const norm = (x: tf.Tensor, prefix: string): [tf.Tensor, NormRec] => {
    const { mean, variance } = tf.moments(x, -1, true);
    const inv = tf.rsqrt(variance.add(1e-5));
    const g = p(`${prefix}.g`);
    return [
      x
        .sub(mean)
        .mul(inv)
        .mul(g)
        .add(p(`${prefix}.b`)),
      { inv, g },
    ];
  };
  const attention = (
    ap: AttentionParams,
    xq: tf.Tensor,
    xkv: tf.Tensor,
    bias: tf.Tensor,
    gate: tf.Tensor | null,
    fromMemory: boolean,
  ): [tf.Tensor, AttnRec] => {
    const q = splitHeads(linear(xq, ap.wq, ap.bq), ap.nHeads, ap.dHead);
    const k = splitHeads(linear(xkv, ap.wk, ap.bk), ap.nHeads, ap.dHead);
    const v = splitHeads(linear(xkv, ap.wv, ap.bv), ap.nHeads, ap.dHead);
    const weights = tf.softmax(
      tf
        .matMul(q, k, false, true)
        .mul(1 / Math.sqrt(ap.dHead))
        .add(bias),
    );
    const context = tf.matMul(weights, v) as tf.Tensor4D;
    const gated = gate ? context.mul(gateForContext(gate, ap.nHeads)) : context;
    return [linear(mergeHeads(gated as tf.Tensor4D), ap.wo, ap.bo), { kind: 'attn', p: ap, weights, gated, gate, fromMemory }];
  };
  const ffn = (x: tf.Tensor, prefix: string): [tf.Tensor, FfnRec] => {
    const z = linear(x, p(`${prefix}.w1`), p(`${prefix}.b1`));
    // the activation's derivative at z: ReLU's 0/1 mask, or swish' / gelu' for imported models (model.activation)
    return [
      linear(activate(z, c.activation), p(`${prefix}.w2`), p(`${prefix}.b2`)),
      { kind: 'ffn', w1: p(`${prefix}.w1`), w2: p(`${prefix}.w2`), mask: activationDerivative(z, c.activation) },
    ];
  };
  const residual = (x: tf.Tensor, normName: string, f: (y: tf.Tensor) => [tf.Tensor, AttnRec | FfnRec]): [tf.Tensor, AttnRec | FfnRec, NormRec] => {
    if (c.norm === 'pre') {
      const [n, nr] = norm(x, normName);
      const [out, r] = f(n);
      return [x.add(out), r, nr];
    }
    const [out, r] = f(x);
    const [n, nr] = norm(x.add(out), normName);
    return [n, r, nr];
  };
  const gate = (stack: 'enc-self' | 'dec-self' | 'dec-enc', l: number) => gates?.[stack]?.[l] ?? null;
  const enc: Sublayer[] = [];
  const dec: Sublayer[] = [];
  const srcBias = paddingBias(src);
  let x: tf.Tensor = model.embed(src, 'src', ctx);
  for (let l = 0; l < c.encoderLayers; l++) {
    const ap = model.attentionParams(`enc.${l}.self`, model.shape['enc-self'][l]!);
    let r: AttnRec | FfnRec;
    let nr: NormRec;
    [x, r, nr] = residual(x, `enc.${l}.ln1`, (y) => attention(ap, y, y, srcBias, gate('enc-self', l), false));
    enc.push({ ...r, norm: nr, stack: 'enc', layer: l });
    [x, r, nr] = residual(x, `enc.${l}.ln2`, (y) => ffn(y, `enc.${l}.ffn`));
    enc.push({ ...r, norm: nr, stack: 'enc', layer: l });
  }
  let encNorm: NormRec | null = null;
  if (c.norm === 'pre' && c.encoderLayers > 0) [x, encNorm] = norm(x, 'enc.ln');
  const memory = x;
  const selfBias = causalBias(tgtIn.shape[1]).add(paddingBias(tgtIn));
  let y: tf.Tensor = model.embed(tgtIn, 'tgt', ctx);
  for (let l = 0; l < c.decoderLayers; l++) {
    const sp = model.attentionParams(`dec.${l}.self`, model.shape['dec-self'][l]!);
    const cp = model.attentionParams(`dec.${l}.cross`, model.shape['dec-enc'][l]!);
    let r: AttnRec | FfnRec;
    let nr: NormRec;
    [y, r, nr] = residual(y, `dec.${l}.ln1`, (h) => attention(sp, h, h, selfBias, gate('dec-self', l), false));
    dec.push({ ...r, norm: nr, stack: 'dec', layer: l });
    [y, r, nr] = residual(y, `dec.${l}.ln2`, (h) => attention(cp, h, memory, srcBias, gate('dec-enc', l), true));
    dec.push({ ...r, norm: nr, stack: 'dec', layer: l });
    [y, r, nr] = residual(y, `dec.${l}.ln3`, (h) => ffn(h, `dec.${l}.ffn`));
    dec.push({ ...r, norm: nr, stack: 'dec', layer: l });
  }
  let decNorm: NormRec | null = null;
  if (c.norm === 'pre') [y, decNorm] = norm(y, 'dec.ln');
  return { enc, dec, encNorm, decNorm, logits: model.logits(y) };
}

/**
 * d logit_{top1}(b, t) along each head of `layer`: [K, B, T] for its K heads. `top1` [B*T] ids.
 * Inside a tidy.
 */
function layerDerivative(model: Transformer, tape: Tape, layer: MaskedLayer, top1: tf.Tensor1D, B: number, T: number): tf.Tensor {
  // derivatives are [K, B, T, d]: replica k carries head k; the forward's constants ([B, ...]) broadcast over K
  const K = layer.heads;
  const dNorm = (dx: tf.Tensor, n: NormRec) => dx.sub(dx.mean(-1, true)).mul(n.inv).mul(n.g);
  const headMask = tf.eye(K).reshape([K, 1, K, 1, 1]);
  const sub = (s: Sublayer, dIn: tf.Tensor | null, dMem: tf.Tensor | null, isInjected: boolean): tf.Tensor | null => {
    if (s.kind === 'ffn') return dIn ? linear(linear(dIn, s.w1, null).mul(s.mask), s.w2, null) : null;
    const { nHeads: h, dHead: dh } = s.p;
    if (h === 0) return null;
    const dKv = s.fromMemory ? dMem : dIn;
    let dGated: tf.Tensor | null = null; // [K, B, h, Tq, dh]
    if (dKv) {
      // the replicas side by side in the value's columns: one product with the forward's weights [B, h, Tq, Tk]
      const [, , Tk] = dKv.shape as number[];
      const dv = linear(dKv, s.p.wv, null)
        .reshape([K, B, Tk!, h, dh])
        .transpose([1, 3, 2, 0, 4])
        .reshape([B, h, Tk!, K * dh]);
      const Tq = s.weights.shape[2]!;
      const dCtx = tf
        .matMul(s.weights as tf.Tensor4D, dv as tf.Tensor4D)
        .reshape([B, h, Tq, K, dh])
        .transpose([3, 0, 1, 2, 4]);
      dGated = s.gate ? dCtx.mul(gateForContext(s.gate, h)) : dCtx;
    }
    if (isInjected) {
      const inj = s.gated.expandDims(0).mul(headMask);
      dGated = dGated ? dGated.add(inj) : inj;
    }
    if (!dGated) return null;
    const [, , , Tq] = dGated.shape as number[];
    return linear(dGated.transpose([0, 1, 3, 2, 4]).reshape([K, B, Tq!, h * dh]), s.p.wo, null);
  };
  const run = (subs: Sublayer[], d0: tf.Tensor | null, dMem: tf.Tensor | null, inject: (s: Sublayer) => boolean): tf.Tensor | null => {
    let d = d0;
    for (const s of subs) {
      const isInjected = inject(s);
      // nothing flows in yet (or a layer without heads, which passes nothing on)
      if (!d && (!(isInjected || (s.kind === 'attn' && s.fromMemory && dMem)) || (s.kind === 'attn' && s.p.nHeads === 0))) continue;
      const prev = d;
      // a tidy per sublayer: the replicated attention weights go as soon as they are used
      const next = tf.tidy(() => {
        if (model.config.norm === 'pre') {
          const f = sub(s, prev ? dNorm(prev, s.norm) : null, dMem, isInjected);
          return prev && f ? prev.add(f) : (f ?? prev!.clone());
        }
        const f = sub(s, prev, dMem, isInjected);
        const sum = prev && f ? prev.add(f) : (f ?? prev!);
        return dNorm(sum, s.norm);
      });
      if (prev && prev !== d0) prev.dispose();
      d = next;
    }
    return d;
  };
  const isAt = (stack: 'enc' | 'dec', kind: 'self' | 'cross') => (s: Sublayer) =>
    s.stack === stack && s.layer === layer.layer && s.kind === 'attn' && (kind === 'cross') === s.fromMemory;
  let dMem: tf.Tensor | null = null;
  let dY: tf.Tensor | null;
  if (layer.stack === 'enc-self') {
    dMem = run(tape.enc, null, null, isAt('enc', 'self'));
    if (dMem && tape.encNorm) dMem = dNorm(dMem, tape.encNorm);
    dY = run(tape.dec, null, dMem, () => false);
  } else dY = run(tape.dec, null, null, isAt('dec', layer.stack === 'dec-self' ? 'self' : 'cross'));
  if (!dY) return tf.zeros([K, B, T]);
  // (dY is [K, B, T, d])
  if (tape.decNorm) dY = dNorm(dY, tape.decNorm);
  // the top-1 logit's row of the output layer
  const out = model.config.tieEmbeddings ? model.params.get('emb.shared') : model.params.get('out.proj').transpose();
  const rows = tf.gather(out, top1).reshape([1, B, T, model.config.dModel]);
  return dY.reshape([K, B, T, model.config.dModel]).mul(rows).sum(-1);
}

/**
 * R[b, t] per head of every layer of `layers`: [B, T, sum of heads] (the heads of layers in order), and
 * the top-1 ids [B*T], with the test-time multipliers `base`. Rule 'lrp' only.
 */
export function tangentRelevance(
  model: Transformer,
  src: tf.Tensor2D,
  tgtIn: tf.Tensor2D,
  base: PerHead,
  layers: readonly MaskedLayer[],
): { relevance: tf.Tensor3D; top1: tf.Tensor1D } {
  return tf.tidy(() => {
    const [B, T] = tgtIn.shape;
    const tape = recordForward(model, src, tgtIn, gatesWithTokenMasks(model, base, [], []));
    const top1 = tape.logits.argMax(1) as tf.Tensor1D;
    // a tidy per layer: its replicated intermediates go before the next layer's are made
    const parts = layers.map((m) => tf.tidy(() => layerDerivative(model, tape, m, top1, B, T).transpose([1, 2, 0])));
    return { relevance: tf.concat(parts, 2) as tf.Tensor3D, top1 };
  });
}
