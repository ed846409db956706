/**
 * The experiment `finetune` stage: the parent's converged model, changed by the stage's `set` (sparse
 * attention patterns `model.attentionPatterns`, gradual magnitude pruning `train.magnitudePruning`,
 * quantization-aware training `train.quantAware`, mixture-of-experts FFNs `model.moe`) and optionally
 * narrowed by `ffnPrune`, then trained for `steps` steps from the parent's weights with a fresh optimizer.
 * This is how the sparsity-methods study gives every method the step budget head pruning gets.
 *
 * Initial weights (`initialWeights`): the parent's, with two changes where the architecture changed:
 *   - ffnPrune: the FFN units with the smallest L2 norm removed per layer (export/ffn-pruning.ts), so the
 *     config's `model.ffnWidths` is known before running: every layer keeps width - round(f * width);
 *   - model.moe on a parent without it: "upcycling" (Komatsuzaki et al. 2023): every expert starts as a
 *     copy of the parent's FFN of that layer, the router [d, E] from N(0, 0.02^2) (seeded by the config's
 *     seed), so the fine-tuned experts diverge only through the routing.
 * The parent must not have head gates (a gated parent would keep training its gates); fine-tune an L0
 * stage's export instead.
 */
import type { ResolvedConfig, ModelConfig } from '../config/schema.js';
import type { NamedArrays } from '../compress/magnitude-pruning.js';
import { planFfnPruning, pruneFfnUnits } from '../export/ffn-pruning.js';
import { moeOf } from '../model/transformer.js';
import { describePattern } from '../model/attention-patterns.js';
import { Rng, deriveSeed } from '../util/random.js';
import { ConfigError } from '../util/errors.js';
import type { StageInstance, StageSpec } from './spec.js';

export type FinetuneStageSpec = Extract<StageSpec, { kind: 'finetune' }>;

/** Standard deviation of an upcycled router's initial weights. */
export const UPCYCLE_ROUTER_STD = 0.02;

/** FFN widths per layer after removing `fraction` of every layer's units (the per-layer rule of planFfnPruning). */
export function ffnWidthsAfter(c: ModelConfig, fraction: number): { encoder: number[]; decoder: number[] } {
  const w = (stack: 'encoder' | 'decoder', l: number) => {
    const width = c.ffnWidths ? c.ffnWidths[stack][l]! : c.dFF;
    return width - Math.round(fraction * width);
  };
  return {
    encoder: Array.from({ length: c.encoderLayers }, (_, l) => w('encoder', l)),
    decoder: Array.from({ length: c.decoderLayers }, (_, l) => w('decoder', l)),
  };
}

/** The overrides a finetune stage puts on its parent's config before its own `set`. */
export function finetuneDefaults(inst: StageInstance, parent: ResolvedConfig, where: string): string[] {
  const st = inst.spec as FinetuneStageSpec;
  if (parent.gates.attention.length)
    throw new ConfigError([
      `${where}.from: a finetune stage starts from a model without head gates; its parent has gates on ${parent.gates.attention.join(', ')}`,
    ]);
  const out = [`name=${JSON.stringify(`${parent.name}-${inst.stage}`)}`, `train.maxSteps=${st.steps}`, 'train.earlyStopping=null', 'train.trainOnly=null'];
  if (st.ffnPrune !== undefined) out.push(`model.ffnWidths=${JSON.stringify(ffnWidthsAfter(parent.model, st.ffnPrune))}`);
  return out;
}

/** How the stage's starting weights were made from the parent's (stage.json `init`). */
export interface FinetuneInit {
  from: string;
  ffnPrune?: { fraction: number; widthsAfter: { encoder: number[]; decoder: number[] } };
  /** the MoE layers whose experts start as copies of the parent's FFN */
  upcycled?: { layers: string[]; experts: number; routerStd: number };
}

/** The parent's parameters made to fit the stage's model (see the module header). */
export function initialWeights(
  parentParams: NamedArrays,
  parent: ModelConfig,
  config: ResolvedConfig,
  fromPath: string,
): { params: NamedArrays; init: FinetuneInit } {
  let params = parentParams;
  const init: FinetuneInit = { from: fromPath };
  if (config.model.ffnWidths && JSON.stringify(config.model.ffnWidths) !== JSON.stringify(parent.ffnWidths)) {
    const fraction =
      1 -
      config.model.ffnWidths.encoder.concat(config.model.ffnWidths.decoder).reduce((a, b) => a + b, 0) /
        ((parent.encoderLayers + parent.decoderLayers) * parent.dFF);
    const plans = planFfnPruning(params, parent, { fraction: Math.round(fraction * 1e6) / 1e6, scope: 'per-layer' });
    const pruned = pruneFfnUnits(params, parent, plans);
    if (JSON.stringify(pruned.config.ffnWidths) !== JSON.stringify(config.model.ffnWidths))
      throw new ConfigError([
        `${fromPath}: FFN pruning gave widths ${JSON.stringify(pruned.config.ffnWidths)}, the stage's config has ${JSON.stringify(config.model.ffnWidths)}`,
      ]);
    params = pruned.params;
    init.ffnPrune = { fraction, widthsAfter: { encoder: [...config.model.ffnWidths.encoder], decoder: [...config.model.ffnWidths.decoder] } };
  }
  const layers: string[] = [];
  for (const stack of ['encoder', 'decoder'] as const) {
    const moe = moeOf(config.model, stack);
    if (!moe || moeOf(parent, stack)) continue;
    const n = stack === 'encoder' ? config.model.encoderLayers : config.model.decoderLayers;
    const rng = new Rng(deriveSeed(config.seed, `upcycle-${stack}`));
    params = { ...params };
    for (let l = 0; l < n; l++) {
      const prefix = `${stack === 'encoder' ? 'enc' : 'dec'}.${l}`;
      for (let e = 0; e < moe.experts; e++)
        for (const w of ['w1', 'b1', 'w2', 'b2']) {
          const a = params[`${prefix}.ffn.${w}`];
          if (!a) throw new ConfigError([`${fromPath}: no ${prefix}.ffn.${w} to upcycle the experts from`]);
          params[`${prefix}.moe.e${e}.${w}`] = { shape: a.shape.slice(), data: Float32Array.from(a.data) };
        }
      const router = new Float32Array(config.model.dModel * moe.experts);
      for (let i = 0; i < router.length; i++) router[i] = UPCYCLE_ROUTER_STD * rng.normal();
      params[`${prefix}.moe.router.w`] = { shape: [config.model.dModel, moe.experts], data: router };
      for (const w of ['w1', 'b1', 'w2', 'b2']) delete params[`${prefix}.ffn.${w}`];
      layers.push(prefix);
    }
  }
  if (layers.length) init.upcycled = { layers, experts: config.model.moe!.experts, routerStd: UPCYCLE_ROUTER_STD };
  return { params, init };
}

/**
 * What a finetune stage changed, for the methods table: `local(8)+sliding(8)`, `moe-top1x4`,
 * `magnitude-0.5-gradual`, `ffn-0.5-tuned`, `qat`, joined by `+`; `tuned` when nothing (the control:
 * the same steps of training with nothing made sparse).
 */
export function finetuneLabel(st: FinetuneStageSpec, c: ResolvedConfig): string {
  const parts: string[] = [];
  const p = c.model.attentionPatterns;
  if (p)
    parts.push(
      [p['enc-self'], p['dec-self']]
        .filter((x) => x)
        .map((x) => describePattern(x ?? null))
        .join('+'),
    );
  if (c.model.moe) parts.push(`moe-top${c.model.moe.topK}x${c.model.moe.experts}`);
  if (c.train.magnitudePruning) parts.push(`magnitude-${c.train.magnitudePruning.sparsity}-gradual`);
  if (st.ffnPrune !== undefined) parts.push(`ffn-${st.ffnPrune}-tuned`);
  if (c.train.quantAware) parts.push('qat');
  return parts.join('+') || 'tuned';
}

/** Mean of each `moe.*` share over the run's logged training windows (metrics.jsonl): load per expert, dropped claims. */
export function trainingRouting(metrics: ReadonlyArray<Record<string, unknown>>): Record<string, number> | null {
  const sums: Record<string, { s: number; n: number }> = {};
  for (const m of metrics)
    for (const [k, v] of Object.entries(m))
      if (k.startsWith('moe.') && k !== 'moe.aux' && typeof v === 'number') {
        const x = (sums[k] ??= { s: 0, n: 0 });
        x.s += v;
        x.n++;
      }
  const keys = Object.keys(sums);
  if (!keys.length) return null;
  return Object.fromEntries(keys.map((k) => [k, Number((sums[k]!.s / sums[k]!.n).toFixed(4))]));
}
