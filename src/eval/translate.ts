/**
 * Translate raw sentences: BPE-encode, sort by length, decode in batches of `batchSentences` (greedy or
 * beam), detokenise, and return the outputs in the input order. Reports progress (sentences/s). With
 * `isStopRequested`, it yields to the event loop between batches (so signal handlers run) and throws
 * TranslationStopped when a stop was requested. With `pool`, batches decode side by side in its worker
 * threads (decode-pool.ts), with the same outputs.
 */
import type { EvalConfig } from '../config/schema.js';
import type { GateTensors, Transformer } from '../model/transformer.js';
import { type Decoder, EOS_ID, beamSearch } from './decode.js';
import type { DecodePool } from './decode-pool.js';

export interface TextCodec {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

export interface TranslateStats {
  sentences: number;
  elapsedMs: number;
  sentencesPerSec: number;
  outputTokens: number;
}

/** Thrown by translateSentences when `isStopRequested` answers true between batches. */
export class TranslationStopped extends Error {
  constructor(
    readonly done: number,
    readonly total: number,
  ) {
    super(`translation stopped on request after ${done} of ${total} sentences`);
  }
}

export async function translateSentences(
  model: Transformer,
  codec: TextCodec,
  sentences: readonly string[],
  o: EvalConfig & {
    gates?: GateTensors;
    onProgress?: (done: number, total: number, elapsedMs: number) => void;
    isStopRequested?: () => boolean;
    decoder?: Decoder;
    /** decode batches side by side in these worker threads (decode-pool.ts; the same outputs) */
    pool?: DecodePool;
  },
): Promise<{ outputs: string[]; stats: TranslateStats }> {
  const t0 = performance.now();
  const maxSrc = model.config.maxPositions - 1;
  const encoded = sentences.map((s) => [...codec.encode(s).slice(0, maxSrc - 1), EOS_ID]);
  const order = encoded.map((_, i) => i).sort((a, b) => encoded[a]!.length - encoded[b]!.length);
  const outputs: string[] = new Array(sentences.length).fill('');
  let outputTokens = 0;
  let done = 0;
  const options = {
    beamSize: o.beamSize,
    lengthPenalty: o.lengthPenalty,
    maxLenA: o.maxLenA,
    maxLenB: o.maxLenB,
    gates: o.gates,
    ...(o.decoder ? { decoder: o.decoder } : {}),
    ...(o.beamRules ? { beamRules: o.beamRules } : {}),
  };
  // with a pool, up to pool.size batches decode at once; their outputs land in place as each ends
  const inFlight = new Set<Promise<void>>();
  const width = o.pool ? o.pool.size : 1;
  let failure: unknown = null;
  for (let start = 0; start < order.length;) {
    if (o.isStopRequested) {
      // decoding awaits only microtasks: without this the signal handler would wait for the whole set
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (o.isStopRequested()) {
        await Promise.allSettled(inFlight);
        throw new TranslationStopped(done, order.length);
      }
    }
    // sorted by length, so the last sentence taken is the longest: stop before B x S passes the cap
    let end = start + 1;
    while (end < order.length && end - start < o.batchSentences && (end - start + 1) * encoded[order[end]!]!.length <= o.maxTokensPerBatch) end++;
    const idx = order.slice(start, end);
    start = end;
    const B = idx.length;
    const S = Math.max(...idx.map((i) => encoded[i]!.length));
    const src = new Int32Array(B * S);
    idx.forEach((i, b) => src.set(encoded[i]!, b * S));
    const job = (o.pool ? o.pool.beamSearch(src, B, S, options) : beamSearch(model, src, B, S, options)).then(
      (hyps) => {
        idx.forEach((i, b) => {
          outputs[i] = codec.decode(hyps[b]!);
          outputTokens += hyps[b]!.length;
        });
        done += B;
        o.onProgress?.(done, order.length, performance.now() - t0);
      },
      (e: unknown) => {
        failure ??= e;
      },
    );
    const tracked: Promise<void> = job.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= width) await Promise.race(inFlight);
    if (failure !== null) break;
  }
  await Promise.allSettled(inFlight);
  if (failure !== null) throw failure;
  const elapsedMs = performance.now() - t0;
  return { outputs, stats: { sentences: sentences.length, elapsedMs, sentencesPerSec: (sentences.length / elapsedMs) * 1000, outputTokens } };
}
