/**
 * The test translations behind a study's scores, kept with its committed results so every number can be
 * re-scored without the run folders: `<out>/hyps/<stage>.hyp` (one line per test sentence), the references
 * once (`hyps/test.ref`, or one `test-<digest>.ref` per distinct test set when seeds generate their own
 * synthetic data), and `hyps/index.json` naming each stage's hypothesis and reference file.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/schema.js';
import { corpusSpec, loadCorpora } from '../data/prepare.js';
import { readParallelCorpus } from '../data/corpus.js';
import { readJsonFile, readTextFile, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { DataError } from '../util/errors.js';
import { safeName } from './stage.js';

/** One stage's (or one importance step's) test translations and the references they are scored against. */
export interface TestOutput {
  hyps: string[];
  refs: string[];
}

export interface HypIndex {
  version: 1;
  /** file names inside the hyps folder */
  references: Array<{ file: string; sentences: number; sha256: string }>;
  stages: Array<{ id: string; seed: number | null; hyp: string; ref: string; sentences: number }>;
}

export const HYPS_DIR = 'hyps';
const INDEX = 'index.json';

/** Lines of a file written as `lines.join('\n') + '\n'` (an empty translation stays an empty line). */
export function readLines(path: string, what: string): string[] {
  const text = readTextFile(path, what);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

const linesText = (lines: readonly string[]) => lines.join('\n') + '\n';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The target side of a config's test split, as every stage scores it (the generated corpus for synthetic data). */
export function testReferences(cfg: ResolvedConfig): string[] {
  if (cfg.data.train === null) return loadCorpora(cfg.data, cfg.seed).test.map((p) => p.tgt);
  if (!cfg.data.test) return [];
  return readParallelCorpus(corpusSpec(cfg.data.test, cfg.data)).map((p) => p.tgt);
}

/** A config's test references, read once per distinct test set. */
export function referenceCache(): (cfg: ResolvedConfig) => string[] {
  const cache = new Map<string, string[]>();
  return (cfg) => {
    const key = JSON.stringify(
      cfg.data.train === null ? { data: cfg.data, seed: cfg.seed } : { test: cfg.data.test, src: cfg.data.srcLang, tgt: cfg.data.tgtLang },
    );
    if (!cache.has(key)) cache.set(key, testReferences(cfg));
    return cache.get(key)!;
  };
}

/** The file name a result row's translations get: `l0-enc_lambda=0.01_.hyp`, `importance-enc.step-04.hyp`. */
export function hypFileName(rowId: string): string {
  return `${safeName(rowId.replace(/#(?:.*\/)?([^/]*?)(?:\.json)?$/, '.$1'))}.hyp`;
}

/** Write every row's translations, the references once, and the index. Returns the index. */
export function writeHyps(outDir: string, outputs: ReadonlyMap<string, TestOutput & { seed: number | null }>): HypIndex {
  const dir = join(outDir, HYPS_DIR);
  const refFiles = new Map<string, { file: string; sentences: number; sha256: string; text: string }>();
  for (const o of outputs.values()) {
    const text = linesText(o.refs);
    const digest = sha256(text);
    if (!refFiles.has(digest)) refFiles.set(digest, { file: '', sentences: o.refs.length, sha256: digest, text });
  }
  for (const r of refFiles.values()) r.file = refFiles.size === 1 ? 'test.ref' : `test-${r.sha256.slice(0, 10)}.ref`;
  const index: HypIndex = {
    version: 1,
    references: [...refFiles.values()].map(({ file, sentences, sha256: d }) => ({ file, sentences, sha256: d })),
    stages: [],
  };
  const names = new Set<string>();
  for (const [id, o] of outputs) {
    const hyp = hypFileName(id);
    if (names.has(hyp)) throw new DataError(`${dir}: two result rows would share the file ${hyp} (${id})`);
    names.add(hyp);
    writeFileAtomic(join(dir, hyp), linesText(o.hyps));
    index.stages.push({ id, seed: o.seed, hyp, ref: refFiles.get(sha256(linesText(o.refs)))!.file, sentences: o.hyps.length });
  }
  for (const r of refFiles.values()) writeFileAtomic(join(dir, r.file), r.text);
  writeJsonAtomic(join(dir, INDEX), index);
  return index;
}

export function hasHyps(outDir: string): boolean {
  return existsSync(join(outDir, HYPS_DIR, INDEX));
}

/** Every row's translations and references from a hyps folder (written by writeHyps). */
export function readHyps(outDir: string): Map<string, TestOutput & { seed: number | null }> {
  const dir = join(outDir, HYPS_DIR);
  const index = readJsonFile<HypIndex>(join(dir, INDEX), 'hypotheses index');
  if (index.version !== 1 || !Array.isArray(index.stages) || !Array.isArray(index.references))
    throw new DataError(`${join(dir, INDEX)}: expected a version 1 hypotheses index (stages, references)`);
  const refs = new Map<string, string[]>();
  for (const r of index.references) {
    const lines = readLines(join(dir, r.file), 'references');
    if (sha256(linesText(lines)) !== r.sha256) throw new DataError(`${join(dir, r.file)}: its contents differ from the digest in ${INDEX}`);
    refs.set(r.file, lines);
  }
  const out = new Map<string, TestOutput & { seed: number | null }>();
  for (const s of index.stages) {
    const ref = refs.get(s.ref);
    if (!ref) throw new DataError(`${join(dir, INDEX)}: stage ${s.id} names references ${s.ref}, which the index does not list`);
    const hyps = readLines(join(dir, s.hyp), 'hypotheses');
    if (hyps.length !== ref.length) throw new DataError(`${join(dir, s.hyp)}: ${hyps.length} lines, but its references ${s.ref} have ${ref.length}`);
    out.set(s.id, { hyps, refs: ref, seed: s.seed });
  }
  return out;
}
