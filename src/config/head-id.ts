/**
 * How a head is named everywhere (files, CSV columns, plot labels): `enc-self.3.5` is head 5 of layer 3
 * of the encoder self-attention, both 0-based.
 */
export type AttentionType = 'enc-self' | 'dec-self' | 'dec-enc';
export const ATTENTION_TYPES: readonly AttentionType[] = ['enc-self', 'dec-self', 'dec-enc'];

export interface HeadId {
  readonly stack: AttentionType;
  readonly layer: number;
  readonly head: number;
}

export function headKey(h: HeadId): string {
  return `${h.stack}.${h.layer}.${h.head}`;
}

export function parseHeadKey(key: string): HeadId | undefined {
  const m = /^(enc-self|dec-self|dec-enc)\.(\d+)\.(\d+)$/.exec(key);
  if (!m) return undefined;
  return { stack: m[1] as AttentionType, layer: Number(m[2]), head: Number(m[3]) };
}

export function isAttentionType(s: string): s is AttentionType {
  return (ATTENTION_TYPES as readonly string[]).includes(s);
}
