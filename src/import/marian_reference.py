#!/usr/bin/env python3
"""An independent float64 PyTorch reference of Hugging Face's MarianMTModel: forward and generation.

Written from the facts of transformers' modeling_marian.py and its generation code (no code from either,
and none from the toolkit), for the import tests of issue 21. It loads a Marian folder by HF names
(model.safetensors, read by hand, or pytorch_model.bin through torch.load) and follows Marian's rules:
  - embeddings: shared table * sqrt(d_model) (scale_embedding) + sinusoidal positions from 0 with sin on
    features [0, d/2) and cos on [d/2, d) (MarianSinusoidalPositionalEmbedding), no embedding layer norm;
  - post-norm blocks LN(x + f(x)) (normalize_before false), no final layer norm on either stack;
  - attention: q = (x Wq^T + bq) * head_dim^-0.5, padded source keys masked (source pad = pad_token_id);
    the decoder input starts with decoder_start_token_id (= pad), which is NOT masked;
  - FFN fc2(act(fc1 x)) with activation_function (swish = x sigmoid(x), relu, gelu = erf form);
  - logits = h E^T + final_logits_bias (lm_head tied to the shared table);
  - generation: bad_words_ids (pad) get -inf; renormalize_logits re-applies log_softmax after that;
    greedy = argmax; beam search as transformers' BeamSearchScorer with early_stopping false: per step
    the best 2k of (beam score + log-prob), eos candidates ranked below k finish a hypothesis scored
    sum_logprobs / generated_len ** length_penalty (generated_len counts the eos), a sentence is done when
    k hypotheses exist and the best running beam cannot beat the worst; at max_length the running beams
    are finalised. max_length counts the decoder start token. forced_eos_token_id forces eos at the
    last position.
Usage: marian_reference.py FOLDER REQUEST.json -> JSON on stdout. REQUEST: {"weights": "safetensors"|"bin",
"src": [[marian ids incl. the final eos], ...], "tgt_in": [[start, ...], ...] (optional), "generate":
{"num_beams": k, "max_length": n} (optional; defaults from generation_config.json / config.json)}.
Reply: {"logits": [[B*T*V floats]], "shape": [B, T, V], "greedy": [[ids]], "beam": [[ids]]} (outputs
without the start token and the final eos).
"""
import json
import math
import struct
import sys

import torch

torch.set_default_dtype(torch.float64)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = bytearray(data[8 + n + b : 8 + n + e])
        t = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]) if raw else torch.zeros(0, dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float64)
    return out


def load_folder(folder, weights="safetensors"):
    with open(folder + "/config.json") as f:
        cfg = json.load(f)
    gen = {}
    try:
        with open(folder + "/generation_config.json") as f:
            gen = json.load(f)
    except FileNotFoundError:
        pass
    if weights == "safetensors":
        p = load_safetensors(folder + "/model.safetensors")
    else:
        p = {k: v.to(torch.float64) for k, v in torch.load(folder + "/pytorch_model.bin", map_location="cpu").items()}
    return cfg, gen, p


def positions(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d // 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(torch.tensor(10000.0), 2 * j / d)
    return torch.cat([torch.sin(angle), torch.cos(angle)], 1)


ACT = {
    "swish": lambda x: x * torch.sigmoid(x),
    "silu": lambda x: x * torch.sigmoid(x),
    "relu": torch.relu,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
}


class Marian:
    def __init__(self, cfg, p):
        self.cfg, self.p = cfg, p
        self.d = cfg["d_model"]
        self.act = ACT[cfg["activation_function"]]
        self.scale = math.sqrt(self.d) if cfg.get("scale_embedding", False) else 1.0
        self.pe = positions(cfg["max_position_embeddings"], self.d)
        self.E = p["model.shared.weight"]
        self.bias = p["final_logits_bias"].reshape(-1)
        self.pad = cfg["pad_token_id"]

    def lin(self, x, name):
        return x @ self.p[name + ".weight"].T + self.p[name + ".bias"]

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.d,), self.p[name + ".weight"], self.p[name + ".bias"], 1e-5)

    def attention(self, prefix, xq, xkv, mask, heads):
        B, Tq, _ = xq.shape
        dh = self.d // heads
        split = lambda t: t.reshape(B, t.shape[1], heads, dh).transpose(1, 2)
        q = split(self.lin(xq, prefix + ".q_proj") * dh**-0.5)
        k, v = split(self.lin(xkv, prefix + ".k_proj")), split(self.lin(xkv, prefix + ".v_proj"))
        scores = q @ k.transpose(2, 3)
        scores = scores.masked_fill(mask, float("-inf"))
        ctx = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, Tq, self.d)
        return self.lin(ctx, prefix + ".out_proj")

    def ffn(self, x, prefix):
        return self.lin(self.act(self.lin(x, prefix + ".fc1")), prefix + ".fc2")

    def encode(self, src):
        c = self.cfg
        mask = (src == self.pad)[:, None, None, :]
        x = self.E[src] * self.scale + self.pe[: src.shape[1]]
        for l in range(c["encoder_layers"]):
            pf = f"model.encoder.layers.{l}"
            x = self.ln(x + self.attention(pf + ".self_attn", x, x, mask, c["encoder_attention_heads"]), pf + ".self_attn_layer_norm")
            x = self.ln(x + self.ffn(x, pf), pf + ".final_layer_norm")
        return x, mask

    def decode(self, tgt_in, memory, src_mask):
        c = self.cfg
        T = tgt_in.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)[None, None]
        y = self.E[tgt_in] * self.scale + self.pe[:T]
        for l in range(c["decoder_layers"]):
            pf = f"model.decoder.layers.{l}"
            h = c["decoder_attention_heads"]
            y = self.ln(y + self.attention(pf + ".self_attn", y, y, causal, h), pf + ".self_attn_layer_norm")
            y = self.ln(y + self.attention(pf + ".encoder_attn", y, memory, src_mask, h), pf + ".encoder_attn_layer_norm")
            y = self.ln(y + self.ffn(y, pf), pf + ".final_layer_norm")
        return y @ self.E.T + self.bias

    def forward(self, src, tgt_in):
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)


def next_log_probs(m, gen, src, prefix, max_length):
    """Processed scores of the next token for each row of `prefix` (no cache: the full prefix each step)."""
    memory, mask = m.encode(src)
    logits = m.decode(prefix, memory, mask)[:, -1]
    lp = torch.log_softmax(logits, -1)
    for bad in gen["bad_words_ids"]:
        if len(bad) == 1:
            lp[:, bad[0]] = float("-inf")
    if gen.get("forced_eos_token_id") is not None and prefix.shape[1] == max_length - 1:
        eos = gen["forced_eos_token_id"]
        keep = lp[:, eos].clone()
        lp[:] = float("-inf")
        lp[:, eos] = keep
    if gen.get("renormalize_logits"):
        lp = torch.log_softmax(lp, -1)
    return lp


def greedy(m, gen, src, max_length):
    eos = gen["eos_token_id"]
    out = torch.full((src.shape[0], 1), gen["decoder_start_token_id"], dtype=torch.long)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    while out.shape[1] < max_length and not done.all():
        nxt = next_log_probs(m, gen, src, out, max_length).argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, m.pad), nxt)
        out = torch.cat([out, nxt[:, None]], 1)
        done |= nxt == eos
    return [strip(r.tolist(), eos, m.pad) for r in out]


def strip(ids, eos, pad):
    ids = ids[1:]
    if eos in ids:
        ids = ids[: ids.index(eos)]
    return [i for i in ids if i != pad]


def beam(m, gen, src_all, max_length, k, length_penalty):
    eos, start = gen["eos_token_id"], gen["decoder_start_token_id"]
    results = []
    for b in range(src_all.shape[0]):
        src = src_all[b : b + 1].repeat(k, 1)
        seqs = torch.full((k, 1), start, dtype=torch.long)
        scores = torch.full((k,), -1e9)
        scores[0] = 0.0
        hyps = []  # (normalised score, tokens)
        done = False
        while seqs.shape[1] < max_length:
            cur_len = seqs.shape[1]
            lp = next_log_probs(m, gen, src, seqs, max_length)
            V = lp.shape[1]
            total = (lp + scores[:, None]).reshape(-1)
            top_scores, top_idx = torch.topk(total, 2 * k)
            new_seqs, new_scores = [], []
            for rank, (s, idx) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
                row, tok = idx // V, idx % V
                if tok == eos:
                    if rank >= k:
                        continue
                    gen_len = cur_len  # tokens generated so far + the eos, without the start token
                    add_hyp(hyps, k, s / gen_len**length_penalty, seqs[row, 1:].tolist())
                else:
                    new_seqs.append(seqs[row].tolist() + [tok])
                    new_scores.append(s)
                if len(new_seqs) == k:
                    break
            seqs = torch.tensor(new_seqs, dtype=torch.long)
            scores = torch.tensor(new_scores)
            if len(hyps) >= k:
                best_running = scores.max().item() / (seqs.shape[1] - 1) ** length_penalty
                if min(h[0] for h in hyps) >= best_running:
                    done = True
                    break
        if not done:
            for row in range(k):
                add_hyp(hyps, k, scores[row].item() / (seqs.shape[1] - 1) ** length_penalty, seqs[row, 1:].tolist())
        best = max(hyps, key=lambda h: h[0])
        results.append([t for t in best[1] if t != m.pad])
    return results


def add_hyp(hyps, k, score, tokens):
    if len(hyps) < k or score > min(h[0] for h in hyps):
        hyps.append((score, tokens))
        if len(hyps) > k:
            hyps.remove(min(hyps, key=lambda h: h[0]))


def main():
    folder, req_path = sys.argv[1], sys.argv[2]
    with open(req_path) as f:
        req = json.load(f)
    cfg, gen_file, p = load_folder(folder, req.get("weights", "safetensors"))
    m = Marian(cfg, p)
    gen = {key: gen_file.get(key, cfg.get(key)) for key in ("bad_words_ids", "eos_token_id", "decoder_start_token_id", "forced_eos_token_id", "max_length", "num_beams", "length_penalty", "renormalize_logits")}
    gen["bad_words_ids"] = gen["bad_words_ids"] or []
    g = req.get("generate", {})
    max_length = g.get("max_length", gen["max_length"] or 20)
    k = g.get("num_beams", gen["num_beams"] or 1)
    lp = g.get("length_penalty", gen["length_penalty"] if gen["length_penalty"] is not None else 1.0)
    src = torch.tensor(req["src"], dtype=torch.long)
    out = {}
    with torch.no_grad():
        if "tgt_in" in req:
            logits = m.forward(src, torch.tensor(req["tgt_in"], dtype=torch.long))
            out["shape"] = list(logits.shape)
            out["logits"] = logits.reshape(-1).tolist()
        out["greedy"] = greedy(m, gen, src, max_length)
        out["beam"] = beam(m, gen, src, max_length, k, lp) if k > 1 else out["greedy"]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
