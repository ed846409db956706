/** Shared by the Marian import tests: the committed fixture, a python3 with torch, the reference, batches. */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MarianTokenizer } from '../data/tokenizer.js';
import { writeCheckpoint } from '../io/checkpoint.js';
import { RunFolder } from '../util/run-folder.js';
import { marianToToolkit, readMarianFolder, writeImportedRun } from './marian.js';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE = join(here, 'fixtures', 'tiny-marian');
const REFERENCE = join(here, 'marian_reference.py');

/** A python3 that imports torch and sentencepiece (pyenv shims may hide Debian's), or null. */
export function torchPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) if (spawnSync(py, ['-c', 'import torch, sentencepiece'], { stdio: 'ignore' }).status === 0) return py;
  return null;
}

export const SENTENCES = [
  'the cat sees a dog.',
  'a small red house and a big tree',
  'the woman drinks water!',
  'dog',
  'the old man likes green bread?',
  'Xylophone ＡＢＣ the child',
];

/** Import the fixture (or `from`, a folder of the same layout) through the library; returns the run folder. */
export function importFixture(dir: string, weights: 'safetensors' | 'bin', from = FIXTURE, tag = ''): string {
  const src = join(dir, `hf-${weights}${tag}`);
  mkdirSync(src, { recursive: true });
  for (const f of [
    'config.json',
    'generation_config.json',
    'vocab.json',
    'source.spm',
    'target.spm',
    weights === 'bin' ? 'pytorch_model.bin' : 'model.safetensors',
  ])
    copyFileSync(join(from, f), join(src, f));
  const m = readMarianFolder(src);
  const converted = marianToToolkit(m);
  const runPath = join(dir, `run-${weights}${tag}`);
  mkdirSync(runPath);
  const run = RunFolder.open(runPath);
  run.writeJson('config.json', converted.config);
  writeImportedRun(m, converted, run, (path, config, params) => {
    writeCheckpoint(path, { step: 0, dataPosition: { epoch: 0, batch: 0 }, adamStep: 0, config, extra: {} }, params, {}, 1);
  });
  return runPath;
}

export interface Reference {
  shape: number[];
  logits: number[];
  greedy: number[][];
  beam: number[][];
}

/** The fixture with every tensor in half precision (model.safetensors F16 by hand, pytorch_model.bin by torch.save), in `out`. */
export function halfPrecisionFixture(out: string): void {
  mkdirSync(out, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'vocab.json', 'source.spm', 'target.spm']) copyFileSync(join(FIXTURE, f), join(out, f));
  const script = `import json, struct, sys, torch
sd = {k: v.half() for k, v in torch.load(sys.argv[1] + "/pytorch_model.bin").items()}
torch.save(sd, sys.argv[2] + "/pytorch_model.bin")
header, blobs, off = {}, [], 0
for k, v in sd.items():
    b = v.contiguous().numpy().tobytes()
    header[k] = {"dtype": "F16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[2] + "/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))`;
  execFileSync(torchPython()!, ['-c', script, FIXTURE, out]);
}

export function runReference(folder: string, req: unknown, dir: string): Reference {
  const path = join(dir, `req-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(req));
  return JSON.parse(execFileSync(torchPython()!, [REFERENCE, folder, path], { encoding: 'utf8', maxBuffer: 1 << 28 })) as Reference;
}

/** Toolkit and Marian batches of the same sentences: src (+ </s>, padded), decoder input (<s>/start + target ids). */
export function batches(tok: MarianTokenizer, sentences: readonly string[], targets: readonly string[]) {
  const srcM = sentences.map((s) => [...tok.marianIds(s), 0]);
  const tgtM = targets.map((s) => [tok.marianPad, ...tok.marianIds(s, 'target')]);
  const S = Math.max(...srcM.map((r) => r.length));
  const T = Math.max(...tgtM.map((r) => r.length));
  const pad = (rows: number[][], n: number, v: number) => rows.map((r) => [...r, ...Array<number>(n - r.length).fill(v)]);
  const srcMarian = pad(srcM, S, tok.marianPad);
  const tgtMarian = pad(tgtM, T, tok.marianPad);
  const srcToolkit = pad(
    srcM.map((r) => r.map((m) => tok.fromMarian(m))),
    S,
    0,
  );
  const tgtToolkit = pad(
    tgtM.map((r) => r.map((m) => tok.fromMarian(m))),
    T,
    0,
  );
  return { srcMarian, tgtMarian, srcToolkit, tgtToolkit, S, T, tgtLens: tgtM.map((r) => r.length) };
}

/** torch.save of a state dict holding an object whose __reduce__ runs `touch <argv[2]>` */
export const EVIL_SCRIPT = `import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"model.shared.weight": torch.zeros(2, 2), "x": Evil()}, sys.argv[1])`;
