#!/usr/bin/env python3
"""The PyTorch peer of `heads bench train` (src/train/bench.ts): the same model, batch and step, timed the
same way, for each requested torch thread count. One JSON line per thread count on stdout, progress on
stderr.

The model follows src/model/*.ts: embedding shared by source, target and output (tied: logits = h E^T),
scaled by sqrt(d), plus sinusoidal positions, dropout; post-norm (LN(x + drop(f(x)))) or pre-norm residual
blocks; multi-head attention with biases, q scaled by 1/sqrt(dHead), additive -1e9 masks (source padding,
causal), each head's context multiplied by a Hard Concrete gate sample (one noise draw per head per batch,
beta 0.33, stretch (-0.1, 1.1), clipped) before W_O; FFN relu(x W1 + b1) with dropout, W2 + b2.
Loss: label-smoothed cross-entropy (eps 0.1, q = (1 - eps) onehot + eps / V) summed over non-pad target
tokens; global-norm gradient clipping at 1; Adam(0.9, 0.98, 1e-9). Batch: `--sentences` sentences of
`--length` random ids plus </s> on both sides (no padding), as the bench's synthetic pairs.

Usage: /usr/bin/python3 scripts/bench_train_torch.py [--threads 1 2] [--steps 3] [--warmup 1]
         [--sentences 80] [--length 24] [--norm post|pre] [--gates|--no-gates] [--d-model 256 ...]
Needs Debian's python3-torch with OpenBLAS (libopenblas0-openmp or -pthread); the pyenv `python3` on
PATH here cannot import it, so use /usr/bin/python3.
"""
import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoidal(max_len, d):
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(0, d, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, i / d)
    t = torch.zeros(max_len, d, dtype=torch.float64)
    t[:, 0::2] = torch.sin(angle)
    t[:, 1::2] = torch.cos(angle[:, : d // 2])
    return t.float()


class HardConcreteGates(nn.Module):
    """log-alpha per head; training sample: u ~ U(eps, 1 - eps), s = sigmoid((ln u - ln(1-u) + la) / beta)."""

    def __init__(self, heads, beta=0.33, gamma=-0.1, zeta=1.1, eps=1e-6):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.empty(heads).uniform_(-0.5, 0.5))
        self.beta, self.gamma, self.zeta, self.eps = beta, gamma, zeta, eps

    def forward(self):
        u = torch.rand_like(self.log_alpha).clamp(self.eps, 1 - self.eps)
        s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + self.log_alpha) / self.beta)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0, 1)


class Attention(nn.Module):
    def __init__(self, d, h, gates):
        super().__init__()
        self.h, self.dh = h, d // h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.gates = HardConcreteGates(h) if gates else None

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.h, self.dh).transpose(1, 2)

    def forward(self, xq, xkv, bias):
        q = self.split(self.q(xq)) * (1 / math.sqrt(self.dh))
        k, v = self.split(self.k(xkv)), self.split(self.v(xkv))
        w = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
        ctx = w @ v  # [B, h, Tq, dh]
        if self.gates is not None:
            ctx = ctx * self.gates().view(1, self.h, 1, 1)
        B, _, T, _ = ctx.shape
        return self.o(ctx.transpose(1, 2).reshape(B, T, self.h * self.dh))


class FFN(nn.Module):
    def __init__(self, d, dff, p):
        super().__init__()
        self.w1, self.w2, self.p = nn.Linear(d, dff), nn.Linear(dff, d), p

    def forward(self, x):
        return self.w2(F.dropout(F.relu(self.w1(x)), self.p, self.training))


class Block(nn.Module):
    """Residual sub-layer: post-norm LN(x + drop(f(x))) or pre-norm x + drop(f(LN(x)))."""

    def __init__(self, d, f, p, post):
        super().__init__()
        self.f, self.ln, self.p, self.post = f, nn.LayerNorm(d, eps=1e-5), p, post

    def forward(self, x, *args):
        if self.post:
            return self.ln(x + F.dropout(self.f(x, *args), self.p, self.training))
        return x + F.dropout(self.f(self.ln(x), *args), self.p, self.training)


class SelfAttn(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x, bias):
        return self.a(x, x, bias)


class CrossAttn(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x, memory, bias):
        return self.a(x, memory, bias)


class FFNSub(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class Transformer(nn.Module):
    def __init__(self, vocab, d, h, enc, dec, dff, p, post, gates, max_len=512):
        super().__init__()
        self.d, self.p, self.post = d, p, post
        self.emb = nn.Parameter(torch.randn(vocab, d) * d ** -0.5)
        self.register_buffer('pos', sinusoidal(max_len, d))
        self.enc = nn.ModuleList()
        for _ in range(enc):
            self.enc.append(nn.ModuleList([Block(d, SelfAttn(Attention(d, h, gates)), p, post), Block(d, FFNSub(FFN(d, dff, p)), p, post)]))
        self.dec = nn.ModuleList()
        for _ in range(dec):
            self.dec.append(nn.ModuleList([
                Block(d, SelfAttn(Attention(d, h, gates)), p, post),
                Block(d, CrossAttn(Attention(d, h, gates)), p, post),
                Block(d, FFNSub(FFN(d, dff, p)), p, post),
            ]))
        self.enc_ln = None if post else nn.LayerNorm(d, eps=1e-5)
        self.dec_ln = None if post else nn.LayerNorm(d, eps=1e-5)

    def embed(self, ids):
        T = ids.shape[1]
        return F.dropout(F.embedding(ids, self.emb) * math.sqrt(self.d) + self.pos[:T], self.p, self.training)

    def forward(self, src, tgt_in):
        S, T = src.shape[1], tgt_in.shape[1]
        src_bias = (src == 0).float().mul(-1e9).view(src.shape[0], 1, 1, S)
        causal = torch.triu(torch.full((T, T), -1e9), diagonal=1).view(1, 1, T, T)
        self_bias = causal + (tgt_in == 0).float().mul(-1e9).view(tgt_in.shape[0], 1, 1, T)
        x = self.embed(src)
        for sa, ff in self.enc:
            x = ff(sa(x, src_bias))
        memory = self.enc_ln(x) if self.enc_ln is not None else x
        y = self.embed(tgt_in)
        for sa, ca, ff in self.dec:
            y = ff(ca(sa(y, self_bias), memory, src_bias))
        if self.dec_ln is not None:
            y = self.dec_ln(y)
        return y.reshape(-1, self.d) @ self.emb.t()


def forward_flops_per_token(d, dff, enc, dec, L, V):
    """The same analytic count as bench.ts forwardFlopsPerToken."""
    e = 8 * d * d + 4 * d * dff + 4 * L * d
    dd = 2 * (8 * d * d + 4 * L * d) + 4 * d * dff
    return enc * e + dec * dd + 2 * d * V


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--sentences', type=int, default=80)
    ap.add_argument('--length', type=int, default=24)
    ap.add_argument('--vocab', type=int, default=8000)
    ap.add_argument('--d-model', type=int, default=256)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--encoder-layers', type=int, default=3)
    ap.add_argument('--decoder-layers', type=int, default=3)
    ap.add_argument('--d-ff', type=int, default=1024)
    ap.add_argument('--dropout', type=float, default=0.1)
    ap.add_argument('--norm', choices=['post', 'pre'], default='post')
    ap.add_argument('--gates', action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument('--lr', type=float, default=1e-4)
    a = ap.parse_args()

    torch.manual_seed(1)
    B, L = a.sentences, a.length + 1
    src = torch.randint(4, a.vocab, (B, L))
    src[:, -1] = 2  # </s>
    tgt = torch.randint(4, a.vocab, (B, L))
    tgt_in = torch.cat([torch.full((B, 1), 1), tgt[:, :-1]], dim=1)  # <s> + target
    tgt[:, -1] = 2
    flops = 3 * forward_flops_per_token(a.d_model, a.d_ff, a.encoder_layers, a.decoder_layers, L, a.vocab)
    for threads in a.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(2)
        model = Transformer(a.vocab, a.d_model, a.heads, a.encoder_layers, a.decoder_layers, a.d_ff, a.dropout, a.norm == 'post', a.gates)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-9)
        times, cpus, losses = [], [], []
        for s in range(a.warmup + a.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            logits = model(src, tgt_in)
            y = tgt.reshape(-1)
            loss = F.cross_entropy(logits, y, ignore_index=0, label_smoothing=0.1, reduction='sum')
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ms = (time.perf_counter() - t0) * 1000
            cpu = time.process_time() - c0
            print(f'torch {threads}T: {"warm-up" if s < a.warmup else "step"} {s + 1}: {ms:.0f} ms, {B * L / ms * 1000:.0f} tok/s, loss/token {loss.item() / (B * L):.3f}', file=sys.stderr)
            if s >= a.warmup:
                times.append(ms)
                cpus.append(cpu)
                losses.append(loss.item() / (B * L))
        times.sort()
        cpus.sort()
        med = times[len(times) // 2]
        tps = B * L / med * 1000
        print(json.dumps({
            'engine': f'torch {torch.__version__}', 'threads': threads, 'tokensPerStep': B * L, 'stepMsMedian': med,
            'trainTokensPerSec': tps, 'achievedGflops': tps * flops / 1e9, 'cpuSecondsPerStep': cpus[len(cpus) // 2],
            'flopsPerTargetToken': flops, 'norm': a.norm, 'gates': a.gates, 'maxRssMB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }), flush=True)
        del model, opt


if __name__ == '__main__':
    main()
