/**
 * A decoding worker (worker_threads entry of decode-pool.ts): the main thread's backend and kernel fixes
 * with one OpenBLAS thread, the model rebuilt from the weights it was sent, and beamSearch (decode.ts)
 * on each batch it receives, one at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installBackendFixes } from '../backend/ops.js';
import { Transformer } from '../model/transformer.js';
import { ParamStore } from '../model/params.js';
import { disposeGates } from '../model/gate-tensors.js';
import { announceStart, serializeError } from '../util/worker-threads.js';
import { beamSearch } from './decode.js';
import { type DecodeReply, type DecodeRequest, type DecodeWorkerInit, gateTensorsOf } from './decode-pool.js';

const init = workerData as DecodeWorkerInit;
const port = parentPort;
if (port === null) throw new Error('eval/decode-worker: must run as a worker thread');
const post = (m: DecodeReply) => port.postMessage(m);

async function start(): Promise<Transformer> {
  tf.env().set('PROD', true);
  if (!(await tf.setBackend(init.backend))) throw new Error(`decoding worker: the ${init.backend} backend did not initialise`);
  await tf.ready();
  installBackendFixes(init.backend, init.fixes);
  const params = new ParamStore();
  for (const [name, { shape, data }] of Object.entries(init.params)) params.add(name, shape, data, false);
  return new Transformer(init.modelConfig, init.vocabSize, params);
}

const model = announceStart(start(), post);

let queue: Promise<void> = Promise.resolve();
port.on('message', (req: DecodeRequest) => {
  queue = queue.then(async () => {
    const m = await model;
    if (m === null) return;
    const gates = gateTensorsOf(req.gates);
    try {
      const hyps = await beamSearch(m, req.src, req.B, req.S, { ...req.options, ...(gates ? { gates } : {}) });
      post({ type: 'done', id: req.id, hyps });
    } catch (e) {
      post({ type: 'error', id: req.id, error: serializeError(e) });
    } finally {
      disposeGates(gates);
    }
  });
});
