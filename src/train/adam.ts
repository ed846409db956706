/**
 * Adam (Kingma & Ba 2015) with bias correction, written out so its state (step, first and second moments)
 * is plain named tensors that checkpoints save and a resumed run restores exactly. Gradients are applied
 * to the variables whose names are given; the rest stay frozen. Where the backend registers `HeadsAdam`
 * (wasm with the OpenBLAS addon, backend/adam-kernel.ts) each parameter's step is that one kernel, with
 * the same float32 operations in the same order as the ops below (the same bits, tested).
 */
import * as tf from '@tensorflow/tfjs';
import { adamStep, hasAdamKernel } from '../backend/adam-kernel.js';

export interface AdamSettings {
  beta1: number;
  beta2: number;
  eps: number;
}

export class Adam {
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(readonly settings: AdamSettings) {}

  private slot(map: Map<string, tf.Variable>, name: string, like: tf.Tensor): tf.Variable {
    let s = map.get(name);
    if (!s) {
      s = tf.variable(tf.zerosLike(like), false);
      map.set(name, s);
    }
    return s;
  }

  /** One update with learning rate `lr`: params[name] -= lr * mhat / (sqrt(vhat) + eps). */
  apply(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number, lrScale: (name: string) => number = () => 1): void {
    this.step++;
    const { beta1, beta2, eps } = this.settings;
    const c1 = 1 - Math.pow(beta1, this.step);
    const c2 = 1 - Math.pow(beta2, this.step);
    const native = hasAdamKernel();
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const p = params.get(name);
        if (!p) throw new Error(`gradient for unknown parameter ${name}`);
        const m = this.slot(this.m, name, p);
        const v = this.slot(this.v, name, p);
        if (native && p.dtype === 'float32' && g.dtype === 'float32') {
          const [pn, mn, vn] = adamStep(p, m, v, g, { beta1, beta2, c1, c2, lr: lr * lrScale(name), eps });
          m.assign(mn);
          v.assign(vn);
          p.assign(pn);
          continue;
        }
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        p.assign(
          p.sub(
            m
              .div(c1)
              .mul(lr * lrScale(name))
              .div(v.div(c2).sqrt().add(eps)),
          ),
        );
      }
    });
  }

  /** State for checkpoints: `m.<name>` and `v.<name>` arrays plus the step. */
  async state(): Promise<{ step: number; tensors: Record<string, { shape: number[]; data: Float32Array }> }> {
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [prefix, map] of [
      ['m', this.m],
      ['v', this.v],
    ] as const)
      for (const [name, t] of map) tensors[`${prefix}.${name}`] = { shape: t.shape.slice(), data: (await t.data()) as Float32Array };
    return { step: this.step, tensors };
  }

  load(step: number, tensors: Record<string, { shape: number[]; data: Float32Array }>): void {
    this.dispose();
    this.step = step;
    for (const [key, { shape, data }] of Object.entries(tensors)) {
      const dot = key.indexOf('.');
      const map = key.slice(0, dot) === 'm' ? this.m : this.v;
      map.set(key.slice(dot + 1), tf.variable(tf.tensor(data, shape, 'float32'), false));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global l2 norm of gradients and the clipped copies (clipNorm 0 = no clipping). */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, clipNorm: number): { grads: Map<string, tf.Tensor>; norm: number } {
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => g.square().sum())));
  const norm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  if (clipNorm <= 0 || norm <= clipNorm || !Number.isFinite(norm)) return { grads, norm };
  const scale = clipNorm / (norm + 1e-6);
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) {
    out.set(
      k,
      tf.tidy(() => g.mul(scale)),
    );
    g.dispose();
  }
  return { grads: out, norm };
}
