/**
 * The model's weights: a named collection of tf.Variables (`enc.0.self.wq`, `dec.1.ffn.w1`, ...), built
 * from a seeded Rng so the same seed gives the same initial weights on every backend. Names are the
 * checkpoint keys; `groupOf(name)` maps a name to the parameter group that `train.trainOnly` selects.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/random.js';

export type ParamGroup = 'encoder' | 'decoder' | 'embeddings' | 'gates';

export function groupOf(name: string): ParamGroup {
  if (name.startsWith('enc.')) return 'encoder';
  if (name.startsWith('dec.') || name.startsWith('out.')) return 'decoder';
  if (name.startsWith('gate.')) return 'gates';
  return 'embeddings';
}

/** tfjs variable names must be unique per process; a per-process counter keeps two models apart. */
let storeCounter = 0;

export class ParamStore {
  private readonly prefix = `m${storeCounter++}`;
  readonly vars = new Map<string, tf.Variable>();

  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`no parameter named ${name}`);
    return v;
  }

  has(name: string): boolean {
    return this.vars.has(name);
  }

  add(name: string, shape: number[], values: Float32Array, trainable = true): tf.Variable {
    if (this.vars.has(name)) throw new Error(`parameter ${name} defined twice`);
    // tidy frees the initial tensor; the variable keeps its own reference to the data
    const v = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), trainable, `${this.prefix}/${name}`));
    this.vars.set(name, v);
    return v;
  }

  /** Xavier/Glorot-uniform matrix [fanIn, fanOut]. */
  addLinear(name: string, fanIn: number, fanOut: number, rng: Rng): tf.Variable {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const a = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * limit;
    return this.add(name, [fanIn, fanOut], a);
  }

  addConstant(name: string, shape: number[], value: number): tf.Variable {
    const n = shape.reduce((a, b) => a * b, 1);
    return this.add(name, shape, new Float32Array(n).fill(value));
  }

  addNormal(name: string, shape: number[], std: number, rng: Rng): tf.Variable {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
    return this.add(name, shape, a);
  }

  names(): string[] {
    return [...this.vars.keys()];
  }

  count(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /** Copy all values out (for checkpoints and worker broadcast). */
  async toArrays(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, v] of this.vars) out[name] = { shape: v.shape.slice(), data: (await v.data()) as Float32Array };
    return out;
  }

  /** Assign values by name; every name must exist with the same shape (checked by the caller's loader). */
  assign(name: string, shape: readonly number[], data: Float32Array): void {
    const v = this.get(name);
    tf.tidy(() => v.assign(tf.tensor(data, shape as number[], 'float32')));
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}
