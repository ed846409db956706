#!/usr/bin/env python3
"""Reference forward pass over a `heads export` safetensors folder, in plain numpy.

It reads `<folder>/config.json` and `<folder>/model.safetensors` (parsed by hand: 8-byte little-endian
header length, JSON header, raw little-endian float32) and computes teacher-forced logits exactly as the
documentation in README.md describes, with no code from the toolkit. Every line maps one-to-one onto
PyTorch: `linear(x, W, b)` is `torch.nn.functional.linear` (W is [out, in]), `layer_norm` is
`torch.nn.functional.layer_norm`. The toolkit's tests run it to check the exported files and their
documentation against the TypeScript model.

Usage: pytorch_reference.py FOLDER IDS.json  ->  prints {"shape": [B*T, V], "logits": [...]} as JSON
where IDS.json is {"src": [[ids...], ...], "tgt_in": [[1, ids...], ...]} (0 = padding).
"""
import json
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[base + begin : base + end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased variance, as torch
    return (x - mean) / np.sqrt(var + eps) * w + b


def sinusoids(n, d):
    pe = np.zeros((n, d))
    for i in range(0, d, 2):
        angle = np.arange(n) / 10000 ** (i / d)
        pe[:, i] = np.sin(angle)
        if i + 1 < d:
            pe[:, i + 1] = np.cos(angle)
    return pe


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def attention(p, prefix, xq, xkv, bias, head_dim):
    """Multi-head attention with however many heads this layer kept (q_proj rows / head_dim)."""
    q = linear(xq, p[prefix + ".q_proj.weight"], p[prefix + ".q_proj.bias"])  # [B, Tq, h*dh]
    k = linear(xkv, p[prefix + ".k_proj.weight"], p[prefix + ".k_proj.bias"])
    v = linear(xkv, p[prefix + ".v_proj.weight"], p[prefix + ".v_proj.bias"])
    B, Tq, hd = q.shape
    h = hd // head_dim
    if h == 0:  # every head pruned: the layer outputs out_proj's bias only
        return np.zeros(xq.shape) + p[prefix + ".out_proj.bias"]
    split = lambda t: t.reshape(t.shape[0], t.shape[1], h, head_dim).transpose(0, 2, 1, 3)  # [B, h, T, dh]
    q, k, v = split(q), split(k), split(v)
    w = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + bias)
    ctx = (w @ v).transpose(0, 2, 1, 3).reshape(B, Tq, h * head_dim)
    return linear(ctx, p[prefix + ".out_proj.weight"], p[prefix + ".out_proj.bias"])


def forward(cfg, p, src, tgt_in):
    d, dh, eps = cfg["d_model"], cfg["head_dim"], cfg["layer_norm_eps"]
    pre = cfg["norm"] == "pre"
    pe = sinusoids(cfg["max_position_embeddings"], d)
    tied = cfg["tie_word_embeddings"]
    emb_src = p["shared.weight"] if tied else p["encoder.embed_tokens.weight"]
    emb_tgt = p["shared.weight"] if tied else p["decoder.embed_tokens.weight"]
    ln = lambda x, name: layer_norm(x, p[name + ".weight"], p[name + ".bias"], eps)

    def block(x, norm, f):
        return x + f(ln(x, norm)) if pre else ln(x + f(x), norm)

    def ffn(x, prefix):
        return linear(np.maximum(linear(x, p[prefix + ".fc1.weight"], p[prefix + ".fc1.bias"]), 0), p[prefix + ".fc2.weight"], p[prefix + ".fc2.bias"])

    neg = -1e9
    src_bias = np.where(src == 0, neg, 0.0)[:, None, None, :]  # [B, 1, 1, S]
    T = tgt_in.shape[1]
    causal = np.triu(np.full((T, T), neg), 1)[None, None]
    tgt_bias = causal + np.where(tgt_in == 0, neg, 0.0)[:, None, None, :]

    x = emb_src[src] * cfg["embed_scale"] + pe[: src.shape[1]]
    for l in range(cfg["encoder_layers"]):
        pfx = f"encoder.layers.{l}"
        x = block(x, pfx + ".self_attn_layer_norm", lambda y: attention(p, pfx + ".self_attn", y, y, src_bias, dh))
        x = block(x, pfx + ".final_layer_norm", lambda y: ffn(y, pfx))
    memory = ln(x, "encoder.layer_norm") if pre and cfg["encoder_layers"] > 0 else x

    y = emb_tgt[tgt_in] * cfg["embed_scale"] + pe[:T]
    for l in range(cfg["decoder_layers"]):
        pfx = f"decoder.layers.{l}"
        y = block(y, pfx + ".self_attn_layer_norm", lambda z: attention(p, pfx + ".self_attn", z, z, tgt_bias, dh))
        y = block(y, pfx + ".encoder_attn_layer_norm", lambda z: attention(p, pfx + ".encoder_attn", z, memory, src_bias, dh))
        y = block(y, pfx + ".final_layer_norm", lambda z: ffn(z, pfx))
    if pre:
        y = ln(y, "decoder.layer_norm")
    out = p["shared.weight"] if tied else p["lm_head.weight"]
    return (y @ out.T).reshape(-1, out.shape[0])


def main():
    folder, ids_path = sys.argv[1], sys.argv[2]
    with open(folder + "/config.json") as f:
        cfg = json.load(f)
    p = load_safetensors(folder + "/model.safetensors")
    with open(ids_path) as f:
        ids = json.load(f)
    logits = forward(cfg, p, np.array(ids["src"]), np.array(ids["tgt_in"]))
    json.dump({"shape": list(logits.shape), "logits": logits.ravel().tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
