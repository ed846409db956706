/**
 * A training worker (worker_threads entry): its own tfjs backend (wasm or cpu, with the kernel fixes and
 * one OpenBLAS thread), a replica of the model and gates loaded from shared memory, and a share of every
 * step's micro-batches. Per step:
 *
 *   1. forward + backward of its micro-batches (train/workers/micro-batch.ts), gradients summed into its
 *      shared slot;                                                                    -- barrier --
 *   2. sum all slots (and the main thread's gate-penalty gradient) over its shard of the parameters,
 *      squared norm of that shard;                                                     -- barrier --
 *   3. global norm, clip scale, Adam on its shard of params/m/v in shared memory;      -- barrier --
 *   4. load the updated parameters into its own variables, reply with the losses.
 *
 * The update is computed once per element and every replica loads the same result, so the replicas
 * cannot drift apart. Runs as compiled JS (dist/) or as TypeScript through tsx (src/, tests).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes } from '../../backend/ops.js';
import { Transformer, initParams } from '../../model/transformer.js';
import { HeadGates } from '../../gates/head-gates.js';
import { Rng } from '../../util/random.js';
import { setLossImplementation } from '../objective.js';
import { microBatchGradients } from './micro-batch.js';
import { quantAwareWeights } from '../quant-aware.js';
import { type StepRequest, type WorkerInit, type WorkerReply, serializeError } from './protocol.js';
import { type SharedViews, PeerAbortError, abortPeers, adamRange, barrier, reduceRange, shardOf, viewsOf } from './shared-state.js';
import { assignFrom, readInto } from './tensor-io.js';
import { announceStart } from '../../util/worker-threads.js';
import { type RoutingCounts, addRoutingCounts } from '../../model/moe.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('train/workers/worker: must run as a worker thread');

interface Replica {
  model: Transformer;
  gates: HeadGates | null;
  /** variable of each layout entry, in layout order */
  vars: tf.Variable[];
  varList: tf.Variable[];
  varNameToParam: Map<string, string>;
  s: SharedViews;
}

function post(m: WorkerReply): void {
  port!.postMessage(m);
}

async function start(): Promise<Replica> {
  tf.env().set('PROD', true);
  if (init.backend === 'wasm') {
    if (!(await tf.setBackend('wasm'))) throw new Error('worker: the wasm backend did not initialise');
  } else {
    await tf.setBackend(init.backend);
  }
  await tf.ready();
  installBackendFixes(init.backend, { nativeBlas: init.nativeBlas, blasThreads: 1, ...init.kernels });
  setLossImplementation(init.kernels.fusedLoss ? 'fused' : 'ops');
  const model = new Transformer(init.modelConfig, init.vocabSize, initParams(init.modelConfig, init.vocabSize, new Rng(0)));
  const gates = init.gates ? new HeadGates(init.gates.config, init.gates.shape, 0) : null;
  const vars = init.layout.entries.map((e) => {
    const v = model.params.has(e.name) ? model.params.get(e.name) : gates?.variables.get(e.name);
    if (v === undefined) throw new Error(`worker: no variable for parameter ${e.name}`);
    if (v.size !== e.size) throw new Error(`worker: ${e.name} has ${v.size} elements, the layout says ${e.size}`);
    return v;
  });
  const s = viewsOf(init.buffers);
  vars.forEach((v, k) => assignFrom(v, s.params, init.layout.entries[k]!.offset));
  const varList = vars.filter((_, k) => init.layout.entries[k]!.trainable);
  const varNameToParam = new Map(vars.map((v, k) => [v.name, init.layout.entries[k]!.name]));
  return { model, gates, vars, varList, varNameToParam, s };
}

function load(r: Replica, which: 'all' | 'trainable'): void {
  init.layout.entries.forEach((e, k) => {
    if (which === 'all' || e.trainable) assignFrom(r.vars[k]!, r.s.params, e.offset);
  });
}

async function step(r: Replica, req: StepRequest): Promise<WorkerReply> {
  const { layout, workers, index: w } = init;
  const s = r.s;
  const t0 = performance.now();
  if (req.reload) load(r, req.reload);
  const slotBase = w * layout.size;
  const ces: Array<[number, number]> = [];
  let ceSum = 0;
  let moe: { aux: number; routing: RoutingCounts } | undefined;
  const ctx = {
    model: r.model,
    gates: r.gates,
    varList: r.varList,
    varNameToParam: r.varNameToParam,
    seed: init.seed,
    labelSmoothing: init.labelSmoothing,
    step: req.step,
    stepTgtTokens: req.stepTgtTokens,
    chunkRows: Infinity,
    weightView: quantAwareWeights(init.quantAware),
    faultNonFinite: init.faultNonFinite,
  };
  for (let j = 0; j < req.jobs.length; j++) {
    const job = req.jobs[j]!;
    const res = await microBatchGradients({ ...ctx, chunkRows: job.chunkRows }, job.batch, job.index);
    try {
      layout.entries.forEach((e, k) => {
        if (!e.trainable) return;
        const g = res.grads.get(e.name);
        if (g !== undefined) {
          readInto(g, s.slots, slotBase + e.offset, j === 0 ? 'set' : 'add');
          s.got[k] = 1;
        } else if (j === 0) s.slots.fill(0, slotBase + e.offset, slotBase + e.offset + e.size);
      });
    } finally {
      tf.dispose([...res.grads.values()]);
    }
    ces.push([job.index, res.ce]);
    ceSum += res.ce;
    if (res.routing) moe = { aux: (moe?.aux ?? 0) + (res.aux ?? 0), routing: addRoutingCounts(moe?.routing ?? {}, res.routing) };
  }
  if (req.jobs.length === 0) s.slots.fill(0, slotBase, slotBase + layout.size);
  s.ce[w] = ceSum;
  const t1 = performance.now();
  barrier(s.control, workers);
  const [lo, hi] = shardOf(layout.size, w, workers);
  s.sq[w] = reduceRange(s, layout, workers, lo, hi, req.withExtra);
  const t2 = performance.now();
  barrier(s.control, workers);
  let sq = 0;
  let ce = 0;
  for (let i = 0; i < workers; i++) {
    sq += s.sq[i]!;
    ce += s.ce[i]!;
  }
  const gradNorm = Math.sqrt(sq);
  const applied = Number.isFinite(gradNorm) && Number.isFinite(ce);
  if (applied) {
    const clipScale = req.clipNorm > 0 && gradNorm > req.clipNorm ? req.clipNorm / (gradNorm + 1e-6) : 1;
    adamRange(s, layout, s.got, lo, hi, { ...init.adam, t: req.adamStep, lr: req.lr, gateScale: req.gateScale, clipScale, isMasked: req.isMasked });
  }
  const t3 = performance.now();
  barrier(s.control, workers);
  if (applied) load(r, 'trainable');
  const t4 = performance.now();
  return { type: 'step-done', ces, gradNorm, applied, ms: { compute: t1 - t0, reduce: t2 - t1, update: t3 - t2, load: t4 - t3 }, ...(moe ? { moe } : {}) };
}

const replica = announceStart(start(), post);

let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: StepRequest | { type: 'exit' }) => {
  if (msg.type === 'exit') {
    port.close();
    return;
  }
  queue = queue.then(async () => {
    const r = await replica;
    if (r === null) return;
    try {
      post(await step(r, msg));
    } catch (e) {
      abortPeers(r.s.control);
      post({ type: 'step-error', error: serializeError(e), peer: e instanceof PeerAbortError });
    }
  });
});
