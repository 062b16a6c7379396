"""The PyTorch peer of flowzoo's `--flow nsf` on the 2-D toy sets (issue 15, item 6).

zuko's NSF with passes=2 is a rational-quadratic spline coupling flow: the same
size as flowzoo's zoo default, 4 couplings whose conditioners are MLPs 2x128
(ReLU), K = 8 bins on [-5, 5] (zuko's default bound), identity tails, the order
flipped between transforms, a standard normal base; its log_prob applies the
spline to the data (z = g(x)), as flowzoo's spline layers do by default since
session 18 (SplineDirection::DataToNoise). The data are drawn fresh
each step by the definitions of flowzoo's src/data/toy2d.rs (not the same
random numbers); Adam 1e-3, batch 256; test NLL (nats) on 20,000 fresh points;
ms per training step is the wall time of the steps divided by their number.

Run:  python benches/nsf_zuko.py [--data checkerboard,moons,pinwheel,8gaussians]
                                 [--steps 1500] [--seed 0] [--threads 2]
Needs: torch, numpy, zuko (python3 -m venv /tmp/torchenv &&
/tmp/torchenv/bin/pip install torch numpy zuko).
"""
import argparse
import math
import time

import numpy as np
import torch
import zuko

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="checkerboard,moons,pinwheel,8gaussians")
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)


def toy(name, n, rng):
    """n points of the toy set `name`, as src/data/toy2d.rs defines them."""
    if name == "moons":
        t = math.pi * rng.random(n)
        upper = rng.random(n) < 0.5
        x = np.where(upper, np.cos(t), 1 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        return np.stack([x, y], 1) + 0.05 * rng.standard_normal((n, 2))
    if name == "8gaussians":
        k = rng.integers(0, 8, n)
        c = 4 * np.stack([np.cos(k * math.pi / 4), np.sin(k * math.pi / 4)], 1)
        return (c + 0.5 * rng.standard_normal((n, 2))) / math.sqrt(2)
    if name == "checkerboard":
        cells = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        pick = np.array(cells)[rng.integers(0, 8, n)]
        return -4 + 2 * (pick + rng.random((n, 2)))
    if name == "pinwheel":
        k = rng.integers(0, 5, n)
        r = 1 + 0.3 * rng.standard_normal(n)
        s = 0.1 * rng.standard_normal(n)
        th = 2 * math.pi * k / 5 + 0.25 * np.exp(r)
        return 2 * np.stack(
            [r * np.cos(th) + s * np.sin(th), -r * np.sin(th) + s * np.cos(th)], 1
        )
    raise ValueError(name)


for name in args.data.split(","):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    flow = zuko.flows.NSF(
        features=2, bins=8, transforms=4, hidden_features=(128, 128), passes=2
    )
    params = sum(p.numel() for p in flow.parameters())
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(args.steps):
        x = torch.tensor(toy(name, 256, rng), dtype=torch.float32)
        loss = -flow().log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        test = torch.tensor(toy(name, 20000, np.random.default_rng(10**6 + args.seed)), dtype=torch.float32)
        nll = -flow().log_prob(test).mean().item()
    print(
        f"{name} zuko NSF: test NLL {nll:.4f} nats, {1000 * seconds / args.steps:.2f} ms/step, "
        f"{params} parameters (torch {torch.__version__}, zuko {zuko.__version__})",
        flush=True,
    )
