/**
 * Jest's node environment with the host realm's typed-array constructors. Jest runs each test file in its
 * own vm context, whose Float32Array is not the one native addons create, so onnxruntime-node's
 * `data instanceof Float32Array` checks fail on its own outputs ("A float32 tensor's data must be type of
 * Float32Array"). Test files that use onnxruntime-node select this environment with a
 * `@jest-environment ./src/test-utils/shared-typed-arrays-environment.mjs` docblock.
 */
import NodeEnvironmentModule from 'jest-environment-node';

const NodeEnvironment = NodeEnvironmentModule.TestEnvironment ?? NodeEnvironmentModule.default ?? NodeEnvironmentModule;

const SHARED = ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

export default class SharedTypedArraysEnvironment extends NodeEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}
