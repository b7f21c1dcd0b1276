/**
 * A minimal ONNX (protobuf) writer: just the messages and fields a small inference graph needs, with field
 * numbers from onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto, TypeProto, TensorShapeProto). Written by hand so the tests need no protobuf package.
 */

/** TensorProto.DataType values used here. */
export const FLOAT = 1;
export const INT64 = 7;

/** Protobuf output as a list of chunks, so that large tensors are never copied byte by byte. */
class Writer {
  readonly #parts: Uint8Array[] = [];
  #pending: number[] = [];
  length = 0;

  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#parts.push(Uint8Array.from(this.#pending));
    this.#pending = [];
  }

  #chunk(data: Uint8Array): void {
    this.#flush();
    this.#parts.push(data);
    this.length += data.length;
  }

  varint(value: number | bigint): this {
    // Negative int64 values are written as their 64-bit two's complement, as protobuf requires.
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.#pending.push(Number(v & 0x7fn) | 0x80);
      this.length++;
      v >>= 7n;
    }
    this.#pending.push(Number(v));
    this.length++;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }

  bytesField(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    this.#chunk(data);
    return this;
  }

  string(field: number, text: string): this {
    return this.bytesField(field, new TextEncoder().encode(text));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    this.tag(field, 2).varint(inner.length);
    for (const part of inner.parts()) this.#chunk(part);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    this.#chunk(new Uint8Array(new Float32Array([value]).buffer));
    return this;
  }

  parts(): Uint8Array[] {
    this.#flush();
    return this.#parts;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts()) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

export type Attribute =
  | { name: string; int: number }
  | { name: string; ints: number[] }
  | { name: string; float: number }
  | { name: string; tensor: Tensor };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Attribute[];
}

export interface Tensor {
  name: string;
  dims: number[];
  /** Float32Array for FLOAT, BigInt64Array for INT64. */
  data: Float32Array | BigInt64Array;
}

export interface ValueInfo {
  name: string;
  elemType: number;
  /** A number is a fixed size; a string names a symbolic dimension. */
  shape: (number | string)[];
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

function writeTensor(w: Writer, t: Tensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.data instanceof Float32Array ? FLOAT : INT64);
  w.string(8, t.name);
  w.bytesField(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

function writeAttribute(w: Writer, a: Attribute): void {
  w.string(1, a.name);
  if ('int' in a) w.int(3, a.int).int(20, 2);
  else if ('ints' in a) {
    for (const x of a.ints) w.int(8, x);
    w.int(20, 7);
  } else if ('float' in a) w.float(2, a.float).int(20, 1);
  else w.message(5, (t) => writeTensor(t, a.tensor)).int(20, 4);
}

/** Serialises a model with one graph (IR version 8, default-domain opset `opset`). */
export function encodeModel(graph: Graph, opset = 17): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'tracemark-test');
  w.message(7, (g) => {
    graph.nodes.forEach((node, i) => {
      g.message(1, (n) => {
        for (const x of node.inputs) n.string(1, x);
        for (const x of node.outputs) n.string(2, x);
        n.string(3, `${node.op}_${i}`);
        n.string(4, node.op);
        for (const a of node.attributes ?? []) n.message(5, (m) => writeAttribute(m, a));
      });
    });
    g.string(2, graph.name);
    for (const t of graph.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const v of graph.inputs) g.message(11, (m) => writeValueInfo(m, v));
    for (const v of graph.outputs) g.message(12, (m) => writeValueInfo(m, v));
  });
  w.message(8, (o) => o.string(1, '').int(2, opset));
  return w.bytes();
}
