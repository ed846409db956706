/**
 * The opus-mt workflow end to end on the committed tiny fixture, through the built CLI as the README
 * prints it: `heads import marian` -> `heads prune` (L0 gates on all three attention types, a few steps on
 * the fixture's word-for-word corpus) -> `heads export --mask gates --format hf-marian`. The HF folder
 * has uniform shapes (every layer 4 heads' worth of rows) with the removed heads' q/k/v rows and out_proj
 * columns zero, and the float64 PyTorch reference (marian_reference.py), loading it by HF names, gives
 * the exported toolkit model's logits within 1e-4 and its greedy and beam translations. Skipped without
 * dist/ (npm run build) or without a python3 with torch.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MarianTokenizer } from '../data/tokenizer.js';
import { beamSearch, greedyDecode } from '../eval/decode.js';
import { loadModel } from '../io/load-model.js';
import { readSafetensors } from '../io/safetensors.js';
import { useTestBackend } from '../test-utils/backend.js';
import { FIXTURE, SENTENCES, batches, runReference, torchPython } from './marian.test-helpers.js';

const root = process.cwd();
const built = existsSync(join(root, 'dist', 'cli', 'main.js'));
const python = torchPython();
if (!built || !python)
  console.warn(
    `skipping the import -> prune -> export hf-marian test: ${!built ? 'no dist/ (npm run build)' : 'no python3 with torch (apt-get install python3-torch python3-sentencepiece)'}`,
  );

function heads(args: string[]): string {
  const r = spawnSync('node', [join(root, 'bin', 'heads.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`heads ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

(built && python ? describe : describe.skip)('import -> prune -> export --format hf-marian', () => {
  let dir: string;
  beforeAll(async () => {
    await useTestBackend();
    dir = mkdtempSync(join(tmpdir(), 'heads-hf-marian-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prunes an imported model with L0 gates and exports an HF folder the reference reproduces', async () => {
    const run = join(dir, 'opus-mt-tiny');
    heads(['import', 'marian', FIXTURE, '--out', run]);
    const data = ['train', 'valid', 'test'].map((s) => `--set=data.${s}=${join(FIXTURE, `${s}.tsv`)}`);
    const out = heads([
      'prune',
      '--from',
      run,
      '--lambda',
      '0.05',
      '--steps',
      '4',
      '--attention',
      'enc-self,dec-self,dec-enc',
      '--runs-dir',
      join(dir, 'runs'),
      ...data,
      '--set=train.workers=1',
      '--set=train.evalEverySteps=0',
      '--set=train.maxTokensPerBatch=300',
      '--set=train.peakLr=0.01',
      '--set=train.logEverySteps=2',
    ]);
    const maskLine = out.split('\n').find((l) => l.startsWith('mask: '))!;
    const pruneRun = join(maskLine.slice('mask: '.length), '..');
    const exp = join(dir, 'exported');
    heads(['export', pruneRun, '--mask', 'gates', '--format', 'hf-marian', '--out', exp]);
    const hf = join(exp, 'hf-marian');
    for (const f of ['config.json', 'generation_config.json', 'vocab.json', 'source.spm', 'target.spm', 'model.safetensors'])
      expect(existsSync(join(hf, f))).toBe(true);

    const loaded = loadModel(exp);
    const tok = loaded.tokenizer as MarianTokenizer;
    const kept = loaded.config.model.keptHeads!;
    const removed = (['enc-self', 'dec-self', 'dec-enc'] as const).reduce((n, s) => n + kept[s].reduce((a, l) => a + 4 - l.length, 0), 0);
    expect(removed).toBeGreaterThan(0);
    // uniform shapes; removed heads' rows (q/k/v) and columns (out_proj) zero, kept heads' not
    const st = readSafetensors(join(hf, 'model.safetensors')).tensors;
    const hfCfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(hfCfg.encoder_attention_heads).toBe(4);
    const d = 16;
    const dh = 4;
    const layerName = {
      'enc-self': (l: number) => `model.encoder.layers.${l}.self_attn`,
      'dec-self': (l: number) => `model.decoder.layers.${l}.self_attn`,
      'dec-enc': (l: number) => `model.decoder.layers.${l}.encoder_attn`,
    };
    for (const stack of ['enc-self', 'dec-self', 'dec-enc'] as const)
      kept[stack].forEach((ids, l) => {
        const q = st[`${layerName[stack](l)}.q_proj.weight`]!;
        const o = st[`${layerName[stack](l)}.out_proj.weight`]!;
        expect(q.shape).toEqual([d, d]);
        for (let h = 0; h < 4; h++) {
          const rowsZero = Array.from((q.data as Float32Array).subarray(h * dh * d, (h + 1) * dh * d)).every((x) => x === 0);
          let colsZero = true;
          for (let r = 0; r < d; r++) for (let c = h * dh; c < (h + 1) * dh; c++) if ((o.data as Float32Array)[r * d + c] !== 0) colsZero = false;
          expect(rowsZero).toBe(!ids.includes(h));
          expect(colsZero).toBe(!ids.includes(h));
        }
      });

    const b = batches(tok, SENTENCES, [
      'die katze sieht einen hund.',
      'ein kleines rotes haus',
      'die frau trinkt wasser!',
      'hund',
      'der alte mann',
      'das kind',
    ]);
    const ref = runReference(hf, { weights: 'safetensors', src: b.srcMarian, tgt_in: b.tgtMarian }, dir);
    const V = tok.marianVocab.length;
    const logits = tf.tidy(() =>
      loaded.model.forward(
        tf.tensor2d(b.srcToolkit.flat(), [SENTENCES.length, b.S], 'int32'),
        tf.tensor2d(b.tgtToolkit.flat(), [SENTENCES.length, b.T], 'int32'),
        { isTraining: false },
      ),
    );
    const ours = (await logits.data()) as Float32Array;
    logits.dispose();
    let worst = 0;
    for (let s = 0; s < SENTENCES.length; s++)
      for (let t = 0; t < b.tgtLens[s]!; t++)
        for (let m = 0; m < V; m++) worst = Math.max(worst, Math.abs(ours[(s * b.T + t) * (V + 1) + tok.fromMarian(m)]! - ref.logits[(s * b.T + t) * V + m]!));
    expect(worst).toBeLessThan(1e-4);
    const src = Int32Array.from(b.srcToolkit.flat());
    const toMarian = (rows: number[][]) => rows.map((r) => r.map((x) => tok.toMarian(x)));
    expect(toMarian(await greedyDecode(loaded.model, src, SENTENCES.length, b.S, { ...loaded.config.eval, beamSize: 1 }))).toEqual(ref.greedy);
    expect(toMarian(await beamSearch(loaded.model, src, SENTENCES.length, b.S, loaded.config.eval))).toEqual(ref.beam);
    loaded.model.dispose();
  }, 300_000);
});
