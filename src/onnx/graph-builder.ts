/**
 * A small builder for ONNX graphs over the protobuf classes of `onnx-proto` (the ONNX 1.10 .proto compiled
 * by protobufjs): named values, initializers (raw little-endian payloads), nodes with typed attributes,
 * graph inputs and outputs with symbolic dimensions, and the model with opset imports and metadata. It knows
 * nothing about Transformers (transformer-graphs.ts does).
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX IR version 8 (ONNX 1.10): opsets up to 17 and beyond are allowed by ONNX Runtime at this IR. */
export const ONNX_IR_VERSION = 8;
/** The default-domain opset the graphs use (LayerNormalization needs 17). */
export const ONNX_OPSET = 17;

export type ElemType = 'float32' | 'int32' | 'int64' | 'int8' | 'uint8';

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** A dimension: a size, or a symbolic name (`batch`, `src_len`). */
export type Dim = number | string;

type Attr = number | number[] | string | { floats: number[] } | { float: number };

/** Little-endian bytes of a typed array (ONNX `raw_data` is little endian; so is every platform Node runs on here). */
function rawBytes(data: Float32Array | Int32Array | Int8Array | Uint8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** An unused value name `${hint}_${n}` (claimed by the node, input or initializer that defines it). */
  fresh(hint: string): string {
    let n: string;
    do n = `${hint}_${this.counter++}`;
    while (this.names.has(n));
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`onnx graph ${this.name}: value ${name} defined twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), type, dims));
    return name;
  }

  /** Declare `value` (already computed) as the graph output `name` (an Identity when the names differ). */
  output(name: string, value: string, type: ElemType, dims: readonly Dim[]): void {
    if (value !== name) this.node('Identity', [value], {}, name);
    this.outputs.push(valueInfo(name, type, dims));
  }

  initializer(name: string, type: ElemType, dims: readonly number[], data: Float32Array | Int32Array | Int8Array | Uint8Array | BigInt64Array): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`onnx initializer ${name}: ${data.length} values for shape [${dims.join(', ')}]`);
    this.initializers.push(onnx.TensorProto.create({ name: this.claim(name), dataType: ELEM[type], dims: [...dims], rawData: rawBytes(data) }));
    return name;
  }

  /** A constant initializer with a fresh name. */
  constant(hint: string, type: ElemType, dims: readonly number[], values: readonly number[] | Float32Array | Int32Array): string {
    const n = this.fresh(hint);
    const data =
      type === 'int64' ? BigInt64Array.from(Array.from(values, (v) => BigInt(v))) : type === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
    return this.initializer(n, type, dims, data);
  }

  /** Add a node; returns its output names (fresh ones unless given). */
  node(op: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, ...outputs: string[]): string[] {
    const outs = outputs.length ? outputs : [this.fresh(op.toLowerCase())];
    for (const o of outs) this.claim(o);
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        name: `${op}_${this.nodes.length}`,
        input: [...inputs],
        output: outs,
        attribute: Object.entries(attrs).map(([name, v]) => attribute(name, v)),
      }),
    );
    return outs;
  }

  /** A node with one output. */
  op(op: string, inputs: readonly string[], attrs: Record<string, Attr> = {}): string {
    return this.node(op, inputs, attrs)[0]!;
  }

  /** A node with `n` fresh outputs. */
  multi(op: string, inputs: readonly string[], n: number, attrs: Record<string, Attr> = {}): string[] {
    return this.node(op, inputs, attrs, ...Array.from({ length: n }, () => this.fresh(op.toLowerCase())));
  }

  /** The serialized model (opset ONNX_OPSET, IR ONNX_IR_VERSION) with string metadata. */
  toBytes(metadata: Record<string, string>, docString: string): Uint8Array {
    const graph = onnx.GraphProto.create({ name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs });
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: ONNX_OPSET })],
      producerName: 'heads',
      producerVersion: '1',
      docString,
      graph,
      metadataProps: Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: ELEM[type],
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        }),
      }),
    }),
  });
}

function attribute(name: string, v: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return onnx.AttributeProto.create({ name, type: T.INT, i: v });
  if (typeof v === 'string') return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  if ('floats' in v) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: v.floats });
  return onnx.AttributeProto.create({ name, type: T.FLOAT, f: v.float });
}

/** Read the metadata (`metadata_props`) and the input/output names of a serialized model. */
export function readModelInfo(bytes: Uint8Array): {
  metadata: Record<string, string>;
  inputs: string[];
  outputs: string[];
  opset: number;
  irVersion: number;
  /** every node's op type and inputs */
  nodes: Array<{ op: string; inputs: string[] }>;
  /** initializers: name, element type, dims */
  initializers: Array<{ name: string; type: ElemType | 'other'; dims: number[] }>;
} {
  const m = onnx.ModelProto.decode(bytes);
  const metadata: Record<string, string> = {};
  for (const e of m.metadataProps) metadata[e.key ?? ''] = e.value ?? '';
  const opset = Number(m.opsetImport.find((o) => (o.domain ?? '') === '')?.version ?? 0);
  const typeOf = (t: number): ElemType | 'other' => (Object.entries(ELEM).find(([, v]) => v === t)?.[0] as ElemType | undefined) ?? 'other';
  return {
    metadata,
    inputs: (m.graph?.input ?? []).map((i) => i.name ?? ''),
    outputs: (m.graph?.output ?? []).map((o) => o.name ?? ''),
    opset,
    irVersion: Number(m.irVersion),
    nodes: (m.graph?.node ?? []).map((n) => ({ op: n.opType ?? '', inputs: n.input ?? [] })),
    initializers: (m.graph?.initializer ?? []).map((t) => ({ name: t.name ?? '', type: typeOf(t.dataType ?? 0), dims: (t.dims ?? []).map(Number) })),
  };
}
