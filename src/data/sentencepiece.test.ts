/**
 * The TypeScript SentencePiece (sentencepiece.ts) against python3-sentencepiece on the committed Marian
 * fixture's source and target models: the same pieces for generated strings that exercise the nmt_nfkc
 * charsmap (full-width letters, ligatures, circled digits, combining marks, odd spaces), unknown
 * characters and whitespace rules; decodePieces inverts encodePieces on normalized text. Skipped with a
 * message when no python3 imports sentencepiece (apt-get install python3-sentencepiece).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { SentencePiece, parseSentencePieceModel } from './sentencepiece.js';
import { Rng } from '../util/random.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'import', 'fixtures', 'tiny-marian');
const python = ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import sentencepiece'], { stdio: 'ignore' }).status === 0) ?? null;
if (!python) console.warn('skipping the SentencePiece cross-check: no python3 with sentencepiece (apt-get install python3-sentencepiece)');

const ALPHABET = [
  ...'the cat sees a dog house tree grün der die das ÄÖÜ é ß ＡＢＣ ﬁ ① ..!?,;  \t\u3000\u00a0xyzqj',
  '\u2581',
  '\u0301',
  '😀',
  'ｶ',
  '\u200b',
  '\ufeff',
];

function sentences(n: number): string[] {
  const rng = new Rng(21);
  const out = ['', ' ', 'the cat sees a dog.', '  The  Cat ist  grün!  ', 'xyz ＡＢＣ é', 'der hund trinkt wasser'];
  for (let i = 0; i < n; i++)
    out.push(Array.from({ length: 1 + Math.floor(rng.next() * 30) }, () => ALPHABET[Math.floor(rng.next() * ALPHABET.length)]).join(''));
  return out;
}

describe('SentencePiece (TypeScript) vs python3-sentencepiece', () => {
  (python ? it : it.skip)('the same pieces and ids on 306 strings, both fixture models; decode inverts encode', () => {
    const texts = sentences(300);
    const dir = mkdtempSync(join(tmpdir(), 'heads-spm-'));
    try {
      writeFileSync(join(dir, 'in.json'), JSON.stringify(texts));
      const script = `import json, sys, sentencepiece as spm
texts = json.load(open(sys.argv[1], encoding="utf-8"))
out = {}
for side in ("source", "target"):
    sp = spm.SentencePieceProcessor(model_file=sys.argv[2] + "/" + side + ".spm")
    out[side] = {"pieces": [sp.encode(t, out_type=str) for t in texts], "ids": [sp.encode(t) for t in texts], "decoded": [sp.decode(sp.encode(t, out_type=str)) for t in texts]}
json.dump(out, sys.stdout, ensure_ascii=False)`;
      const ref = JSON.parse(execFileSync(python!, ['-c', script, join(dir, 'in.json'), FIXTURE], { encoding: 'utf8' })) as Record<
        string,
        { pieces: string[][]; ids: number[][]; decoded: string[] }
      >;
      for (const side of ['source', 'target']) {
        const sp = SentencePiece.fromBytes(readFileSync(join(FIXTURE, `${side}.spm`)));
        const r = ref[side]!;
        expect(texts.map((t) => sp.encodePieces(t))).toEqual(r.pieces);
        expect(texts.map((t) => sp.encodeIds(t))).toEqual(r.ids);
        // ordinary pieces decode as sentencepiece does (unknown pieces render as ' ⁇ ' there: skipped here)
        texts.forEach((t, i) => {
          const ids = r.ids[i]!;
          if (!ids.includes(0)) expect(sp.decodePieces(sp.encodePieces(t))).toBe(r.decoded[i]);
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the model header: unigram, nmt_nfkc charsmap, dummy prefix; refuses a file that is not a model', () => {
    const m = parseSentencePieceModel(readFileSync(join(FIXTURE, 'source.spm')));
    expect(m.modelType).toBe(1);
    expect(m.charsmap!.length).toBeGreaterThan(1000);
    expect(m.addDummyPrefix).toBe(true);
    expect(m.pieces[0]).toEqual({ piece: '<unk>', score: 0, type: 'unknown' });
    expect(() => SentencePiece.fromBytes(new TextEncoder().encode('{"not": "a model"}'))).toThrow();
  });
});
