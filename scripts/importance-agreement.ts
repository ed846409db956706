/**
 * How differently the three forms of Michel importance rank the heads of a trained model: Spearman
 * correlations between the per-example, per-token and per-batch forms (src/analysis/importance.ts),
 * raw and layer-normalised, over all heads and per attention type, from ONE estimation pass (the three
 * forms come from the same gradients). The numbers in src/analysis/README.md were measured with it.
 *
 *   npx tsx scripts/importance-agreement.ts --model runs/X-train --sentences 300 [--max-tokens 3000 --max-tokens 500]
 *
 * The sentences are the first N of the model config's valid split (or --data, a Moses prefix or .tsv);
 * the loss is the model's training loss (train.labelSmoothing). Each --max-tokens is one pass with that
 * padded-token budget per batch: only the per-batch form depends on it.
 */
import { parseArgs } from 'node:util';
import { initBackendFromEnv } from '../src/cli/environment.js';
import { ATTENTION_TYPES, type AttentionType } from '../src/config/head-id.js';
import { readParallelCorpus } from '../src/data/corpus.js';
import { corpusSpec } from '../src/data/prepare.js';
import { encodeForModel } from '../src/analysis/analyze.js';
import { headLayout, listHeads } from '../src/config/head-layout.js';
import { testGateMultipliers } from '../src/analysis/multipliers.js';
import { type ImportanceForm, IMPORTANCE_NORMALIZATIONS, estimateMichelImportance, importanceScores } from '../src/analysis/importance.js';
import { spearman } from '../src/analysis/report.js';
import { loadModel } from '../src/io/load-model.js';
import { ConfigError } from '../src/util/errors.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    sentences: { type: 'string', default: '300' },
    'max-tokens': { type: 'string', multiple: true },
  },
});
const count = (flag: string, text: string) => {
  if (!/^[1-9]\d*$/.test(text)) throw new ConfigError([`--${flag}: expected an integer >= 1, got ${JSON.stringify(text)}`]);
  return Number(text);
};
try {
  if (!values.model) throw new ConfigError(['--model: expected a run or checkpoint folder']);
  const n = count('sentences', values.sentences!);
  const budgets = (values['max-tokens'] ?? []).map((t) => count('max-tokens', t));
  const backend = await initBackendFromEnv('auto');
  const { model, gates, tokenizer, config, checkpoint } = loadModel(values.model);
  const source = values.data ?? config.data.valid;
  if (!source) throw new ConfigError(['--data: not given, and the model config has no valid split']);
  const { encoded } = encodeForModel(tokenizer, readParallelCorpus(corpusSpec(source, config.data)).slice(0, n), config.model.maxPositions);
  const layout = headLayout(config.model);
  const heads = listHeads(layout, ATTENTION_TYPES);
  console.log(
    `${checkpoint.path} (step ${checkpoint.state.step}), backend ${backend.name}: ${encoded.length} sentences of ${source}, ${heads.length} heads, label smoothing ${config.train.labelSmoothing}`,
  );
  const pairsOf: Array<[ImportanceForm, ImportanceForm]> = [
    ['example', 'token'],
    ['example', 'batch'],
    ['token', 'batch'],
  ];
  for (const maxTokens of budgets.length ? budgets : [config.train.maxTokensPerBatch]) {
    const t0 = Date.now();
    const imp = await estimateMichelImportance(model, layout, encoded, testGateMultipliers(layout, gates), {
      stacks: ATTENTION_TYPES,
      maxTokensPerBatch: maxTokens,
      labelSmoothing: config.train.labelSmoothing,
    });
    console.log(
      `\n--max-tokens ${maxTokens}: ${imp.batches} batches (${(imp.sentences / imp.batches).toFixed(1)} sentences each on average), ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
    console.log(`  ${'normalize'.padEnd(9)} ${'heads'.padEnd(14)} ${pairsOf.map(([a, b]) => `${a}~${b}`.padStart(14)).join('')}`);
    for (const normalize of IMPORTANCE_NORMALIZATIONS) {
      const score = (form: ImportanceForm, stacks: readonly AttentionType[]) => {
        const s = importanceScores(imp, form, normalize);
        return heads.filter((h) => stacks.includes(h.stack)).map((h) => s[h.stack][h.layer]![h.position]!);
      };
      for (const [label, stacks] of [['all', ATTENTION_TYPES], ...ATTENTION_TYPES.map((s) => [s, [s]])] as Array<[string, readonly AttentionType[]]>) {
        const cells = pairsOf.map(([a, b]) => (spearman(score(a, stacks), score(b, stacks))?.toFixed(2) ?? '-').padStart(14));
        console.log(`  ${normalize.padEnd(9)} ${`${label} (${score('example', stacks).length})`.padEnd(14)} ${cells.join('')}`);
      }
    }
  }
  model.dispose();
  gates?.dispose();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  for (const p of e.problems) console.error(`error: ${p}`);
  process.exitCode = 2;
}
