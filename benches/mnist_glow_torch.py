"""The PyTorch twin of flowzoo's MNIST Glow (issue 13, item 4): the same
layers, parameter count, data protocol and training loop as

    flowzoo train --data mnist --data-dir DIR --flow glow \
        --layers K --hidden H --batch 64 --eval-every 500 --minutes M

trained for the same wall-clock minutes, then scored on the 10,000 test
images in bits/dim of the discrete data.

The model, data -> latent (flowzoo's src/flows/architectures.rs, GlowConfig
with L levels, K steps, H hidden channels, 1 residual block, LU 1x1
convolution, learned split priors, sigmoid scales):

  logit(alpha + (1 - 2 alpha) x), alpha = 0.05, on the 784 pixels x in [0,1];
  reshape [1, 28, 28];
  level l < L: squeeze (pixel_unshuffle: channel 4c + 2i + j, as flowzoo's
    Squeeze); K x (ActNorm, InvConv1x1 (LU), channel affine coupling: the
    first C/2 channels condition the rest, s = softplus(-(raw + 2)) so that
    z2 = (x2 - t) exp(-s)); every level but the last: split, the first C/2
    channels go on, the other C/2 are scored by a learned Gaussian whose
    (mu, log sigma) = ConvResNet(C/2 -> H -> C, 0 blocks)(the kept half);
  the last level flattens; standard normal on what remains.

  ConvResNet(n_in -> H -> n_out, blocks): h = conv3x3(x); per block
  h = h + conv3x3(relu(conv3x3(relu(h)))); out = conv3x3(relu(h)),
  zero-initialised; every conv 3x3, padding 1, with bias; Glorot-uniform.

Data, as flowzoo's `--data mnist`: the four IDX files (plain or .gz); the
last 5,000 training images validate, the first 55,000 train; each batch of
B images is drawn without replacement within an epoch and dequantised
(v + u)/256 with fresh noise; validation every --eval-every steps on one
fixed noise draw, the best parameters kept; the reported figure is the test
set's bits/dim with one noise draw, every Jacobian counted:
bits/dim = (NLL of x + 784 ln 256) / (784 ln 2).

ActNorm is initialised from the first 512 training images (dequantised),
as flowzoo's INIT_POINTS. Adam, lr 1e-3 (flowzoo's default), no schedule.
The clock starts after the data is read and the model initialised, as
flowzoo's training loop does, and includes the validation checks.

The figures of 2026-12-05 in docs/benchmarks/images.md came from this
script's first version (commit ac90b07), which differed from flowzoo in
three ways fixed since: no soft clamp on the log-scales (flowzoo bends
|s| > 10 smoothly to at most 12, soft_clamp below), the last partial
batch of each epoch dropped, and the clock read after each step's update
rather than before it.

Run (from the PyTorch venv, see benches/compare_mnist.sh):
  python benches/mnist_glow_torch.py --data-dir ../shared/data/mnist
      [--levels 2] [--steps-per-level 4] [--hidden 32] [--blocks 1]
      [--batch 64] [--eval-every 500] [--minutes 30] [--threads 2] [--seed 0]
Prints one JSON line per check and a final JSON line.
"""
import argparse
import copy
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--data-dir", required=True)
p.add_argument("--levels", type=int, default=2)
p.add_argument("--steps-per-level", type=int, default=4)
p.add_argument("--hidden", type=int, default=32)
p.add_argument("--blocks", type=int, default=1)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--eval-every", type=int, default=500)
p.add_argument("--minutes", type=float, default=30.0)
p.add_argument("--max-steps", type=int, default=10**9)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
ALPHA = 0.05
VALIDATION = 5000
INIT_POINTS = 512


def read_idx(name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(args.data_dir, candidate)
        if os.path.exists(path):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SystemExit(f"{name} (or {name}.gz) not found in {args.data_dir}")


train_all = read_idx("train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32)
test = torch.from_numpy(read_idx("t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32))
train = torch.from_numpy(train_all[:-VALIDATION].copy())
validation = torch.from_numpy(train_all[-VALIDATION:].copy())
DIM = 784


def dequantize(v, generator=None):
    return (v + torch.rand(v.shape, generator=generator)) / 256.0


def glorot_conv(cin, cout, k, zero=False):
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    with torch.no_grad():
        if zero:
            conv.weight.zero_()
        else:
            a = math.sqrt(6.0 / ((cin + cout) * k * k))
            conv.weight.uniform_(-a, a)
        conv.bias.zero_()
    return conv


class ConvResNet(nn.Module):
    def __init__(self, cin, hidden, cout, blocks):
        super().__init__()
        self.input = glorot_conv(cin, hidden, 3)
        self.blocks = nn.ModuleList(
            [nn.ModuleList([glorot_conv(hidden, hidden, 3), glorot_conv(hidden, hidden, 3)])
             for _ in range(blocks)])
        self.output = glorot_conv(hidden, cout, 3, zero=True)

    def forward(self, x):
        h = self.input(x)
        for a, b in self.blocks:
            h = h + b(F.relu(a(F.relu(h))))
        return self.output(F.relu(h))


class Coupling(nn.Module):
    """flowzoo's ImageCoupling, channel mask without flip, sigmoid scale."""

    def __init__(self, channels, hidden, blocks):
        super().__init__()
        self.split = channels // 2
        self.net = ConvResNet(self.split, hidden, 2 * (channels - self.split), blocks)

    def forward(self, x):
        x1, x2 = x[:, :self.split], x[:, self.split:]
        h = self.net(x1)
        n = h.shape[1] // 2
        s = soft_clamp(F.softplus(-(h[:, :n] + 2.0)))
        z2 = (x2 - h[:, n:]) * torch.exp(-s)
        return torch.cat([x1, z2], 1), -s.sum((1, 2, 3))


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))

    @torch.no_grad()
    def initialize(self, x):
        self.bias.copy_(x.mean((0, 2, 3)))
        self.log_scale.copy_(torch.log(x.std((0, 2, 3), unbiased=False)))

    def forward(self, x):
        c = x.shape[1]
        z = (x - self.bias.view(1, c, 1, 1)) * torch.exp(-self.log_scale).view(1, c, 1, 1)
        return z, (-x.shape[2] * x.shape[3] * self.log_scale.sum()).expand(x.shape[0])


class InvConv1x1LU(nn.Module):
    def __init__(self, c):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))
        P, L, U = torch.linalg.lu(q)
        s = torch.diagonal(U)
        self.register_buffer("perm", P.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("upper_mask", torch.triu(torch.ones(c, c), 1))
        self.register_buffer("eye", torch.eye(c))
        self.lower = nn.Parameter((L * torch.tril(torch.ones(c, c, dtype=torch.float64), -1)).float())
        self.upper = nn.Parameter((U * torch.triu(torch.ones(c, c, dtype=torch.float64), 1)).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def forward(self, x):  # data -> latent: W^{-1}
        c = x.shape[1]
        u = self.upper * self.upper_mask + self.eye * (self.sign_s * torch.exp(self.log_s)).view(1, c)
        l_inv_pt = torch.linalg.solve_triangular(
            self.lower * self.lower_mask + self.eye, self.perm.t().contiguous(), upper=False,
            unitriangular=True)
        w_inv = torch.linalg.solve_triangular(u, l_inv_pt, upper=True)
        z = F.conv2d(x, w_inv.view(c, c, 1, 1))
        return z, (-x.shape[2] * x.shape[3] * self.log_s.sum()).expand(x.shape[0])


def soft_clamp(s, knee=10.0, top=12.0):
    """flowzoo's flows::bound::soft_clamp: s where |s| <= 10, bent smoothly
    (C1) to at most 12 beyond, on the coupling's and the split prior's
    log-scales."""
    w = top - knee
    bent = torch.sign(s) * (knee + w * torch.tanh((s.abs() - knee) / w))
    return torch.where(s.abs() <= knee, s, bent)


def logit(x):
    p_ = x * (1 - 2 * ALPHA) + ALPHA
    w = torch.log(p_) - torch.log(1 - p_)
    ld = (-(torch.log(p_) + torch.log(1 - p_))).sum(1) + x.shape[1] * math.log(1 - 2 * ALPHA)
    return w, ld


def std_normal(z):
    return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def gaussian(z, mu, log_sigma):
    e = (z - mu) * torch.exp(-log_sigma)
    return (-0.5 * e * e - log_sigma - 0.5 * math.log(2 * math.pi)).sum((1, 2, 3))


class Glow(nn.Module):
    def __init__(self, levels, steps, hidden, blocks):
        super().__init__()
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        c = 1
        for level in range(levels):
            c *= 4
            layers = nn.ModuleList()
            for _ in range(steps):
                layers.extend([ActNorm(c), InvConv1x1LU(c), Coupling(c, hidden, blocks)])
            self.levels.append(layers)
            if level + 1 < levels:
                self.priors.append(ConvResNet(c // 2, hidden, c, 0))
                c //= 2

    def log_prob(self, x, initialize=False):
        B = x.shape[0]
        w, ld = logit(x)
        h = w.view(B, 1, 28, 28)
        lp = torch.zeros(B)
        for level, layers in enumerate(self.levels):
            h = F.pixel_unshuffle(h, 2)
            for layer in layers:
                if initialize and isinstance(layer, ActNorm):
                    layer.initialize(h)
                h, d = layer(h)
                ld = ld + d
            if level < len(self.priors):
                c = h.shape[1] // 2
                kept, out = h[:, :c], h[:, c:]
                hp = self.priors[level](kept)
                lp = lp + gaussian(out, hp[:, :c], soft_clamp(hp[:, c:]))
                h = kept
        return std_normal(h.reshape(B, -1)) + lp + ld


def bits_per_dim(model, v, seed):
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for i in range(0, v.shape[0], 500):
            x = dequantize(v[i:i + 500], generator)
            total += -model.log_prob(x).sum().item()
    nll = total / v.shape[0] + DIM * math.log(256.0)
    return nll / (DIM * math.log(2.0))


model = Glow(args.levels, args.steps_per_level, args.hidden, args.blocks)
with torch.no_grad():
    model.log_prob(dequantize(train[:INIT_POINTS]), initialize=True)
n_params = sum(q.numel() for q in model.parameters())
opt = torch.optim.Adam(model.parameters(), lr=args.lr)


def batches():
    while True:
        order = torch.from_numpy(rng.permutation(train.shape[0]))
        # As flowzoo's Batcher: the last, partial batch of an epoch too.
        for i in range(0, train.shape[0], args.batch):
            yield train[order[i:i + args.batch]]


with open("/proc/loadavg") as f:
    load_start = f.read().split()[0]
best = (math.inf, 0, None)
start = time.perf_counter()
step = 0
limit = args.minutes * 60.0
for v in batches():
    step += 1
    # As flowzoo's loop: the first step begun after the limit is the last.
    out_of_time = time.perf_counter() - start >= limit
    opt.zero_grad(set_to_none=True)
    loss = -model.log_prob(dequantize(v)).mean()
    loss.backward()
    opt.step()
    if step % args.eval_every == 0 or out_of_time or step >= args.max_steps:
        score = bits_per_dim(model, validation, args.seed + 1)
        if score < best[0]:
            best = (score, step, copy.deepcopy(model.state_dict()))
        print(json.dumps({"step": step, "loss": round(loss.item(), 4),
                          "validation_bpd": round(score, 4),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        if out_of_time or step >= args.max_steps:
            break
seconds = time.perf_counter() - start
model.load_state_dict(best[2])
test_bpd = bits_per_dim(model, test, args.seed + 2)
with open("/proc/loadavg") as f:
    load_end = f.read().split()[0]
print(json.dumps({
    "side": "torch", "model": "mnist-glow", "levels": args.levels,
    "steps_per_level": args.steps_per_level, "hidden": args.hidden, "blocks": args.blocks,
    "params": n_params, "batch": args.batch, "threads": torch.get_num_threads(),
    "steps": step, "train_seconds": round(seconds, 1),
    "ms_per_step": round(1e3 * seconds / step, 1), "best_step": best[1],
    "best_validation_bpd": round(best[0], 4), "test_bpd": round(test_bpd, 4),
    "load_start": load_start, "load_end": load_end, "torch": torch.__version__,
}), flush=True)
