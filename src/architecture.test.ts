/**
 * Two rules of the layout (../shared/STYLE.md section 1), checked on the source text of src/:
 * - no import cycles: the graph of relative imports between .ts files (type-only imports included,
 *   `export ... from` included) has no cycle, and neither has the graph of the folders of src/ (an edge
 *   a -> b when a file in src/a/ imports one in src/b/; the files at the top, such as index.ts, are
 *   the public API above every folder and stay out of it);
 * - nothing below the edges reads the environment or argv, exits the process or installs signal
 *   handlers. The edges are src/cli/ and a worker thread's entry point (its own process edge).
 * Tests (*.test.ts) and test helpers may set the environment of the processes they spawn.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(process.cwd(), 'src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** The relative module specifiers of `import ... from`, `export ... from` and bare `import '...'`. */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const re = /^\s*(?:import|export)\s+(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  return [...code.matchAll(re)].map((m) => m[1]!).filter((s) => s.startsWith('.'));
}

function resolveSpecifier(from: string, spec: string): string {
  const file = resolve(dirname(from), spec.replace(/\.js$/, '.ts'));
  return existsSync(file) ? file : join(resolve(dirname(from), spec), 'index.ts');
}

/** One cycle per strongly connected component with more than one file (or a file importing itself). */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const c: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      c.push(w);
    } while (w !== v);
    if (c.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(c);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  // print each component as one concrete cycle: a path from its first file back to itself inside it
  return components.map((c) => {
    const inside = new Set(c);
    const start = c[c.length - 1]!;
    const prev = new Map<string, string>();
    const queue = [start];
    while (queue.length) {
      const v = queue.shift()!;
      for (const w of graph.get(v) ?? []) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const path = [v];
          while (path[0] !== start) path.unshift(prev.get(path[0]!)!);
          return [...path, start];
        }
        if (!prev.has(w)) {
          prev.set(w, v);
          queue.push(w);
        }
      }
    }
    return c;
  });
}

describe('findCycles', () => {
  it('finds a cycle through three files and none in a diamond', () => {
    const [cycle, ...more] = findCycles(
      new Map([
        ['a', ['b']],
        ['b', ['c']],
        ['c', ['a']],
        ['d', ['a']],
      ]),
    );
    expect(more).toEqual([]);
    expect(cycle).toHaveLength(4);
    expect(cycle![0]).toBe(cycle![3]);
    expect(new Set(cycle)).toEqual(new Set(['a', 'b', 'c']));
    for (let i = 0; i < 3; i++) expect({ a: 'b', b: 'c', c: 'a' }[cycle![i] as 'a' | 'b' | 'c']).toBe(cycle![i + 1]);
    expect(
      findCycles(
        new Map([
          ['a', ['b', 'c']],
          ['b', ['d']],
          ['c', ['d']],
          ['d', []],
        ]),
      ),
    ).toEqual([]);
    expect(findCycles(new Map([['a', ['a']]]))).toEqual([['a', 'a']]);
  });
  it('reads the specifiers of multi-line, type-only, re-export and side-effect imports, not comments', () => {
    const src =
      "import {\n  a,\n  b,\n} from './x.js';\nimport type { T } from '../y.js';\nexport { z } from './z.js';\nimport './side.js';\nimport * as tf from '@tensorflow/tfjs';\n// import { no } from './comment.js';\n";
    expect(importSpecifiers(src)).toEqual(['./x.js', '../y.js', './z.js', './side.js']);
  });
});

/** Folder -> the other folders its files import, from (file, imported files) pairs relative to src/; top-level files are left out. */
export function folderGraph(imports: Array<[string, string[]]>): Map<string, string[]> {
  const folderOf = (f: string): string | null => {
    const parts = f.split(/[\\/]/);
    return parts.length > 1 && parts[0] !== '..' ? parts[0]! : null;
  };
  const out = new Map<string, Set<string>>();
  for (const [file, targets] of imports) {
    const a = folderOf(file);
    if (a === null) continue;
    const set = out.get(a) ?? new Set<string>();
    out.set(a, set);
    for (const t of targets) {
      const b = folderOf(t);
      if (b !== null && b !== a) set.add(b);
    }
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}

describe('folderGraph', () => {
  it('links folders by their files imports, without self-edges or the top-level files', () => {
    const g = folderGraph([
      ['train/trainer.ts', ['train/adam.ts', 'io/checkpoint.ts', 'util/fs.ts']],
      ['export/export-model.ts', ['io/checkpoint.ts', 'train/trainer.ts']],
      ['io/checkpoint.ts', ['util/fs.ts']],
      ['index.ts', ['train/trainer.ts', 'export/export-model.ts']],
    ]);
    expect(g).toEqual(
      new Map([
        ['train', ['io', 'util']],
        ['export', ['io', 'train']],
        ['io', ['util']],
      ]),
    );
    expect(findCycles(g)).toEqual([]);
    const cyclic = folderGraph([
      ['train/checkpoint.ts', ['export/quantize.ts']],
      ['export/export-model.ts', ['train/load-model.ts']],
    ]);
    expect(findCycles(cyclic).map((c) => c.join(' -> '))).toEqual([expect.stringMatching(/^(train -> export -> train|export -> train -> export)$/)]);
  });
});

describe('the source tree', () => {
  const files = sourceFiles(SRC);

  it('has no import cycles', () => {
    const graph = new Map(files.map((f) => [f, importSpecifiers(readFileSync(f, 'utf8')).map((s) => resolveSpecifier(f, s))]));
    expect(graph.size).toBeGreaterThan(50);
    const cycles = findCycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(' -> '));
    expect(cycles).toEqual([]);
  });

  it('has no import cycles between its folders', () => {
    const graph = folderGraph(
      files.map((f) => [relative(SRC, f), importSpecifiers(readFileSync(f, 'utf8')).map((s) => relative(SRC, resolveSpecifier(f, s)))]),
    );
    expect(graph.size).toBeGreaterThan(10);
    expect(findCycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  // the edges: the CLI, and a worker thread's entry point
  const EDGES = [/^cli\//, /^train\/workers\/worker\.ts$/];
  const PROCESS_STATE =
    /\bprocess\s*(?:\.\s*(?:env|argv|exit)\b|\[\s*['"](?:env|argv|exit)['"]\s*\]|\.\s*(?:on|once|addListener|prependListener)\s*\(\s*['"]SIG)/;

  it('reads the environment and argv, exits and handles signals only at the edges', () => {
    const found: string[] = [];
    for (const f of files) {
      const rel = relative(SRC, f).split('\\').join('/');
      if (EDGES.some((e) => e.test(rel))) continue;
      readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (PROCESS_STATE.test(line.replace(/\/\/.*$/, ''))) found.push(`${rel}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
  it('the pattern catches each form it forbids', () => {
    for (const line of [
      "process.env['X']",
      'process.argv.slice(2)',
      'process.exit(130)',
      "process.on('SIGINT', f)",
      'process.once("SIGTERM", f)',
      "process['env'].X",
    ])
      expect(PROCESS_STATE.test(line)).toBe(true);
    for (const line of ['process.exitCode = 2', 'process.pid', "process.on('exit', f)", 'process.execPath']) expect(PROCESS_STATE.test(line)).toBe(false);
  });
});
