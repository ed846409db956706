/**
 * `heads import marian` against an independent reference (issue 21): the committed tiny HF-layout Marian
 * checkpoint (fixtures/tiny-marian, made by fixtures/make_marian_fixture.py) is imported from
 * model.safetensors and from pytorch_model.bin, and marian_reference.py (float64 PyTorch, written from
 * modeling_marian.py's facts) must give the same logits (within 1e-4) and the same greedy and beam
 * translations. Needs a python3 with torch (Debian python3-torch): skipped with a message otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MarianTokenizer } from '../data/tokenizer.js';
import { beamSearch, greedyDecode } from '../eval/decode.js';
import { loadModel, type LoadedModel } from '../io/load-model.js';
import { useTestBackend } from '../test-utils/backend.js';
import { FIXTURE, SENTENCES, batches, halfPrecisionFixture, importFixture, runReference, torchPython } from './marian.test-helpers.js';

const python = torchPython();
if (!python) console.warn('skipping the Marian reference tests: no python3 with torch and sentencepiece (apt-get install python3-torch python3-sentencepiece)');

describe('heads import marian: the tiny HF checkpoint against the float64 PyTorch reference', () => {
  let dir: string;
  beforeAll(async () => {
    await useTestBackend();
    dir = mkdtempSync(join(tmpdir(), 'heads-marian-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const variants = [
    { weights: 'safetensors', half: false },
    { weights: 'bin', half: false },
    { weights: 'safetensors', half: true },
    { weights: 'bin', half: true },
  ] as const;
  for (const { weights, half } of variants) {
    (python ? it : it.skip)(
      `${weights}${half ? ' (float16)' : ''}: logits within 1e-4, identical greedy and beam translations`,
      async () => {
        // half precision: both sides read the same float16 values (the import widens them to float32, the reference to float64)
        const folder = half ? join(dir, 'hf-half') : FIXTURE;
        if (half && !existsSync(join(folder, 'model.safetensors'))) halfPrecisionFixture(folder);
        const loaded: LoadedModel = loadModel(importFixture(dir, weights, folder, half ? '-half' : ''));
        const tok = loaded.tokenizer as MarianTokenizer;
        expect(tok).toBeInstanceOf(MarianTokenizer);
        const b = batches(tok, SENTENCES, [
          'die katze sieht einen hund.',
          'ein kleines rotes haus',
          'die frau trinkt wasser!',
          'hund',
          'der alte mann',
          'das kind',
        ]);
        const ref = runReference(folder, { weights, src: b.srcMarian, tgt_in: b.tgtMarian }, dir);
        const V = tok.marianVocab.length;
        expect(ref.shape).toEqual([SENTENCES.length, b.T, V]);
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
        let compared = 0;
        for (let s = 0; s < SENTENCES.length; s++)
          for (let t = 0; t < b.tgtLens[s]!; t++)
            for (let m = 0; m < V; m++) {
              const a = ours[(s * b.T + t) * (V + 1) + tok.fromMarian(m)]!;
              const r = ref.logits[(s * b.T + t) * V + m]!;
              worst = Math.max(worst, Math.abs(a - r));
              compared++;
            }
        expect(compared).toBeGreaterThan(1000);
        expect(worst).toBeLessThan(1e-4);

        // generation with the imported config's defaults (num_beams 4, max_length 24 from generation_config.json);
        // the reference answered both in one call
        const gen = ref;
        const src = Int32Array.from(b.srcToolkit.flat());
        const o = { ...loaded.config.eval, gates: undefined };
        expect(o.beamSize).toBe(4);
        const toMarian = (rows: number[][]) => rows.map((r) => r.map((t) => tok.toMarian(t)));
        const greedy = await greedyDecode(loaded.model, src, SENTENCES.length, b.S, { ...o, beamSize: 1 });
        expect(toMarian(greedy)).toEqual(gen.greedy);
        const beam = await beamSearch(loaded.model, src, SENTENCES.length, b.S, o);
        expect(toMarian(beam)).toEqual(gen.beam);
        // the beam differs from greedy somewhere, so the comparison tests the beam rules
        expect(gen.beam).not.toEqual(gen.greedy);
        loaded.model.dispose();
      },
      60_000,
    );
  }
});
