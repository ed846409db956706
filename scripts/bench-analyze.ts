/**
 * Head-analysis speed, old and new side by side in ONE run, on one model and one dev set: single-head
 * ablation and LRP each both ways, the unchanged passes (attention statistics, Michel importance) once,
 * and the whole report's before/after. Ablation:
 *   old (bleu):  per head, the dev loss and greedy BLEU of the first --bleu-sentences with that head masked
 *                (what `heads analyze` did before --ablation existed; `--ablation bleu` still does the BLEU part)
 *   old (loss):  per head, the dev loss with that head masked, one head per forward pass
 *   new (loss):  the dev loss of many masked heads per forward pass (batched-ablation.ts; the default)
 * The old paths run on --sample heads spread over the attention types and are scaled to every head (their
 * cost per head is the same for every head: one pass over the same sentences); the new path runs on every
 * head. The losses of the sampled heads are compared between old and new. LRP: old = a backward pass
 * per target position on the whole batch (`legacy: true`), new = the default, a backward pass per position on
 * its prefix (the rows with a token there, the logits at that position only), and lrp-tangent.ts (`tangent:
 * true`, one linear pass per gated layer); relevances compared.
 *
 *   npm run bench:analyze                       # 6+3 layers x 8 heads (the study's shape), d_model 64, random
 *   options: --enc 6 --dec 3 --heads 8 --d-model 64 --d-ff 256 --vocab 2000 --sentences 100 --bleu-sentences 100
 *            --lrp-sentences 40 --max-tokens 4000 --sample 6 --masks 16 --reps 1 --backend auto --json <file>
 *   --reps N: every timed part N times, the fastest counted (old and new alike)
 *
 * The model is randomly initialised; its sentences are random ids with the word counts of the DDTP dev set
 * (../shared/data/ddtp/en-de/valid.*) when it exists, else 3-40. A random model rarely emits </s>, so its
 * greedy translations run to the length limit (1.5 x source + 10): the old BLEU path is timed at its
 * slow end; the old loss path is the like-for-like comparison of the batching alone.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendChoice } from '../src/backend/select.js';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { describeBackendFixes } from '../src/backend/ops.js';
import { loadConfig } from '../src/config/load.js';
import { ATTENTION_TYPES } from '../src/config/head-id.js';
import type { SentencePair } from '../src/data/corpus.js';
import type { EncodedPair } from '../src/data/batches.js';
import type { TextCodec } from '../src/eval/translate.js';
import { createTransformer } from '../src/model/transformer.js';
import { Rng } from '../src/util/random.js';
import { batchedAblationLosses } from '../src/analysis/batched-ablation.js';
import { devLoss, greedyBleu } from '../src/analysis/dev-metrics.js';
import { fillPerHead, headLayout, listHeads } from '../src/config/head-layout.js';
import { gateTensorsOf, withHeadsRemoved } from '../src/analysis/multipliers.js';
import { disposeGates } from '../src/model/gate-tensors.js';
import { collectAttentionStats } from '../src/analysis/attention-pass.js';
import { estimateMichelImportance } from '../src/analysis/importance.js';
import { estimateHeadRelevance } from '../src/analysis/lrp.js';

const { values: args } = parseArgs({
  options: {
    enc: { type: 'string', default: '6' },
    dec: { type: 'string', default: '3' },
    heads: { type: 'string', default: '8' },
    'd-model': { type: 'string', default: '64' },
    'd-ff': { type: 'string', default: '256' },
    vocab: { type: 'string', default: '2000' },
    sentences: { type: 'string', default: '100' },
    'bleu-sentences': { type: 'string', default: '100' },
    'lrp-sentences': { type: 'string', default: '40' },
    'max-tokens': { type: 'string', default: '4000' },
    sample: { type: 'string', default: '6' },
    reps: { type: 'string', default: '1' },
    masks: { type: 'string', default: '16' },
    backend: { type: 'string', default: 'auto' },
    json: { type: 'string' },
  },
});
const int = (name: keyof typeof args, min: number): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < min) {
    console.error(`bench:analyze: --${name}: expected an integer >= ${min}, found '${args[name]}'`);
    process.exit(2);
  }
  return v;
};
const shape = { enc: int('enc', 0), dec: int('dec', 1), heads: int('heads', 1), dModel: int('d-model', 1), dFF: int('d-ff', 1) };
const V = int('vocab', 5);
const nSentences = int('sentences', 1);
const nBleu = int('bleu-sentences', 0);
const nLrp = int('lrp-sentences', 0);
const maxTokens = int('max-tokens', 1);
const nSample = int('sample', 1);
const reps = int('reps', 1);
const masks = int('masks', 1);
if (shape.dModel % shape.heads) {
  console.error(`bench:analyze: --d-model: expected a multiple of --heads (${shape.heads}), found ${shape.dModel}`);
  process.exit(2);
}

const backend = await initBackendFromEnv(args.backend as BackendChoice);
tf.env().set('PROD', true);
console.log(describeBackendFixes(backend.name));
const cfg = loadConfig(null, [
  `model.encoderLayers=${shape.enc}`,
  `model.decoderLayers=${shape.dec}`,
  `model.heads=${shape.heads}`,
  `model.dModel=${shape.dModel}`,
  `model.dFF=${shape.dFF}`,
  'model.dropout=0',
]);
const model = createTransformer(cfg.model, V, new Rng(2));
const layout = headLayout(cfg.model);
const stacks = ATTENTION_TYPES.filter((s) => model.shape[s].length > 0);
const heads = listHeads(layout, stacks);
const base = fillPerHead(layout, () => 1);

// sentences: random ids 4..V-1 with the word counts of the DDTP dev set
const DEV = '../shared/data/ddtp/en-de/valid';
const wordCounts = (path: string) =>
  readFileSync(path, 'utf8')
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => Math.max(1, l.split(/\s+/).filter(Boolean).length));
const rng = new Rng(3);
const hasDev = existsSync(`${DEV}.en`) && existsSync(`${DEV}.de`);
const srcLens = hasDev ? wordCounts(`${DEV}.en`) : Array.from({ length: nSentences }, () => 3 + rng.int(38));
const tgtLens = hasDev ? wordCounts(`${DEV}.de`) : Array.from({ length: nSentences }, () => 3 + rng.int(38));
const cap = (n: number) => Math.min(n, cfg.model.maxPositions - 2);
const ids = (n: number) => Array.from({ length: cap(n) }, () => 4 + rng.int(V - 4));
const encoded: EncodedPair[] = Array.from({ length: nSentences }, (_, i) => ({
  src: ids(srcLens[i % srcLens.length]!),
  tgt: ids(tgtLens[i % tgtLens.length]!),
  index: i,
}));
const codec: TextCodec = { encode: (s) => s.split(' ').map(Number), decode: (x) => x.join(' ') };
const bleuPairs: SentencePair[] = encoded.slice(0, nBleu).map((p) => ({ src: p.src.join(' '), tgt: p.tgt.join(' ') }));

const loadBefore = loadavg();
const label = `random model, ${shape.enc}+${shape.dec} layers x ${shape.heads} heads (${heads.length} heads), d_model ${shape.dModel}, d_ff ${shape.dFF}, vocab ${V}; ${nSentences} sentences${hasDev ? ` with the word counts of ${DEV}` : ''}, ${maxTokens} tokens per batch`;
console.log(label);
const log = (m: string) => console.error(`${m} (load ${loadavg()[0]!.toFixed(1)})`);

/** wall and CPU seconds of `f` */
/** `f` run --reps times: the fastest run's wall and CPU seconds (its value; every run computes the same). */
async function timed<T>(name: string, f: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  let best: { value: T; seconds: number; cpuSeconds: number } | null = null;
  for (let rep = 0; rep < reps; rep++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const value = await f();
    const c = process.cpuUsage(c0);
    const r = { value, seconds: (performance.now() - t0) / 1000, cpuSeconds: (c.user + c.system) / 1e6 };
    log(`${name}${reps > 1 ? ` (run ${rep + 1} of ${reps})` : ''}: ${r.seconds.toFixed(1)} s, ${r.cpuSeconds.toFixed(1)} CPU s`);
    if (!best || r.seconds < best.seconds) best = r;
  }
  return best!;
}

// heads spread over the list (every attention type gets some)
const sample = Array.from(
  { length: Math.min(nSample, heads.length) },
  (_, i) => heads[Math.floor(((i + 0.5) * heads.length) / Math.min(nSample, heads.length))]!,
);
const scale = heads.length / sample.length;

const oldLoss = await timed(`old loss ablation, ${sample.length} heads`, async () => {
  const out: number[] = [];
  for (const h of sample) {
    const g = gateTensorsOf(withHeadsRemoved(base, [h]));
    out.push(await devLoss(model, encoded, g, maxTokens));
    disposeGates(g);
  }
  return out;
});
const oldBleu = await timed(`old BLEU ablation part (greedy, ${bleuPairs.length} sentences), ${sample.length} heads`, async () => {
  for (const h of sample) {
    const g = gateTensorsOf(withHeadsRemoved(base, [h]));
    await greedyBleu(model, codec, bleuPairs, g, cfg);
    disposeGates(g);
  }
});
const fresh = await timed(`new batched loss ablation, all ${heads.length} heads`, () =>
  batchedAblationLosses(model, encoded, base, heads, { maxTokensPerBatch: maxTokens, masksPerPass: masks }),
);
const maxRelDiff = Math.max(...sample.map((h, i) => Math.abs(fresh.value[heads.indexOf(h)]! - oldLoss.value[i]!) / oldLoss.value[i]!));

const stats = await timed('attention statistics', () =>
  collectAttentionStats(model, layout, encoded, base, { stacks, maxTokensPerBatch: maxTokens, rare: null, syntax: null }),
);
const imp = await timed('importance', () =>
  estimateMichelImportance(model, layout, encoded, base, { stacks, maxTokensPerBatch: maxTokens, labelSmoothing: cfg.train.labelSmoothing }),
);
const lrpOptions = { stacks, rule: 'lrp' as const, maxTokensPerBatch: maxTokens };
const lrpOld = await timed(`old LRP (a backward pass per target position), ${nLrp} sentences`, () =>
  estimateHeadRelevance(model, layout, encoded.slice(0, nLrp), base, { ...lrpOptions, legacy: true }),
);
const lrp = await timed(`new LRP (the default: a backward pass per target position on its prefix), ${nLrp} sentences`, () =>
  estimateHeadRelevance(model, layout, encoded.slice(0, nLrp), base, lrpOptions),
);
const lrpTangent = await timed(`tangent LRP (a forward pass per batch, a linear pass per layer; tangent: true), ${nLrp} sentences`, () =>
  estimateHeadRelevance(model, layout, encoded.slice(0, nLrp), base, { ...lrpOptions, tangent: true }),
);
const relevanceDiff = (a: typeof lrp, b: typeof lrp) =>
  Math.max(...stacks.map((st) => Math.max(...a.value.relevance[st].flat().map((v, i) => Math.abs(v - b.value.relevance[st].flat()[i]!)))));
const lrpDiff = relevanceDiff(lrp, lrpOld);
const tangentDiff = relevanceDiff(lrpTangent, lrpOld);
const loadAfter = loadavg();

type Pick = 'seconds' | 'cpuSeconds';
const rest = (k: Pick) => stats[k] + imp[k];
const oldBleuTotal = (k: Pick) => (oldLoss[k] + oldBleu[k]) * scale;
const oldLossTotal = (k: Pick) => oldLoss[k] * scale;
const row = (name: string, f: (k: Pick) => number, ref: (k: Pick) => number) =>
  `| ${name} | ${f('seconds').toFixed(1)} | ${(ref('seconds') / f('seconds')).toFixed(2)}x | ${f('cpuSeconds').toFixed(1)} | ${(ref('cpuSeconds') / f('cpuSeconds')).toFixed(2)}x |`;
console.log(
  `load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${loadAfter.map((x) => x.toFixed(2)).join(' ')} after; old paths timed on ${sample.length} heads and scaled x${scale.toFixed(1)} to ${heads.length}`,
);
console.log(
  `largest relative difference of a sampled head's ablation loss, old vs new: ${maxRelDiff.toExponential(2)}; largest difference of an LRP relevance (shares of 1 per layer), old vs new: ${lrpDiff.toExponential(2)}, old vs tangent: ${tangentDiff.toExponential(2)}`,
);
const newAbl = (k: Pick) => fresh[k];
console.log('| what | wall s | new is faster by | CPU s | new is faster by (CPU) |');
console.log('|---|---|---|---|---|');
console.log(row('ablation: old, loss + greedy BLEU per head', oldBleuTotal, oldBleuTotal));
console.log(row('ablation: old, loss per head', oldLossTotal, oldLossTotal));
console.log(row('ablation: new, batched loss (default)', newAbl, oldBleuTotal));
console.log(
  row(
    `LRP: old, ${nLrp} sentences`,
    (k) => lrpOld[k],
    (k) => lrpOld[k],
  ),
);
console.log(
  row(
    `LRP: new, ${nLrp} sentences`,
    (k) => lrp[k],
    (k) => lrpOld[k],
  ),
);
console.log(
  row(
    `LRP: tangent (one linear pass per layer), ${nLrp} sentences`,
    (k) => lrpTangent[k],
    (k) => lrpOld[k],
  ),
);
console.log(row('attention statistics + importance, unchanged', rest, rest));
const oldReport = (k: Pick) => rest(k) + oldBleuTotal(k) + lrpOld[k];
console.log(row('whole report: old (BLEU ablation, old LRP)', oldReport, oldReport));
console.log(row('whole report: new (loss ablation, new LRP)', (k) => rest(k) + newAbl(k) + lrp[k], oldReport));
console.log(row('whole report: new with --ablation bleu', (k) => rest(k) + newAbl(k) + oldBleu[k] * scale + lrp[k], oldReport));
console.log(
  `batching alone (new loss vs old loss per head): ${(oldLossTotal('seconds') / newAbl('seconds')).toFixed(2)}x wall, ${(oldLossTotal('cpuSeconds') / newAbl('cpuSeconds')).toFixed(2)}x CPU`,
);
if (args.json)
  writeFileSync(
    args.json,
    JSON.stringify(
      {
        label,
        loadBefore,
        loadAfter,
        sample: sample.map((h) => h.key),
        scale,
        maxRelDiff,
        oldLoss: { seconds: oldLoss.seconds, cpuSeconds: oldLoss.cpuSeconds },
        oldBleu: { seconds: oldBleu.seconds, cpuSeconds: oldBleu.cpuSeconds },
        fresh: { seconds: fresh.seconds, cpuSeconds: fresh.cpuSeconds },
        stats: { seconds: stats.seconds, cpuSeconds: stats.cpuSeconds },
        importance: { seconds: imp.seconds, cpuSeconds: imp.cpuSeconds },
        lrp: { seconds: lrp.seconds, cpuSeconds: lrp.cpuSeconds },
        lrpOld: { seconds: lrpOld.seconds, cpuSeconds: lrpOld.cpuSeconds },
        lrpDiff,
      },
      null,
      2,
    ),
  );
model.dispose();
