"""PyTorch baseline: tensors with a leading trajectory axis, hand-written gradients (no
autograd), float64, inference mode. Intra-op threads: `torch.set_num_threads(os.cpu_count())` and 1 are both
timed on one checkpoint chunk during warm-up and the faster is used for the run (recorded
in the output as `threads`).

Variants (`--variant`), fastest kept as the default:
- `chunk` (default): label noise drawn once per checkpoint chunk, `torch.randn(record_every,
  N, n)`, then one in-place update per step (`mul_`, `add_`, `addcmul_`, `addcdiv_`, `out=`).
- `step`: `torch.randn(..., out=buf)` every step; on T1 SGD (2000 steps) the same speed as
  `chunk` within the noise (2.69e7 vs 2.58e7 trajectory-steps/s).
- `compile`: the per-step function wrapped in `torch.compile` (inductor C++ backend). It
  works here but compiled for about 25 s and ran T1 SGD (N = 4096, 2000 steps) at 3.25e7
  trajectory-steps/s against 3.31e7 for `chunk`: Python still dispatches every step. It is
  tried only when asked.
"""

import os
import time

import numpy as np
import torch

import common


class Optim:
    """SGD, heavy ball and Adam (PyTorch conventions), in place over a list of tensors."""

    def __init__(self, spec, params):
        self.kind = spec["kind"]
        self.spec = spec
        self.t = 0
        if self.kind == "heavy_ball":
            self.buf = [torch.zeros_like(p) for p in params]
        elif self.kind == "adam":
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
            self.tmp = [torch.empty_like(p) for p in params]

    def step(self, params, grads):
        s = self.spec
        lr = s["lr"]
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                p.add_(g, alpha=-lr)
        elif self.kind == "heavy_ball":
            for p, g, b in zip(params, grads, self.buf):
                b.mul_(s["beta"]).add_(g)
                p.add_(b, alpha=-lr)
        else:
            self.t += 1
            b1, b2, eps = s["beta1"], s["beta2"], s["eps"]
            c1 = 1.0 - b1 ** self.t
            c2 = 1.0 - b2 ** self.t
            for p, g, m, v, tmp in zip(params, grads, self.m, self.v, self.tmp):
                m.mul_(b1).add_(g, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                torch.sqrt(v, out=tmp)
                tmp.mul_(1.0 / np.sqrt(c2)).add_(eps)
                p.addcdiv_(m, tmp, value=-lr / c1)


def make_runner(key, task, opt_spec, seed, variant, dtype):
    n_traj, every, sigma = task["trajectories"], task["record_every"], task["sigma"]
    start = torch.tensor(task["start"], dtype=dtype)
    n_samples = task["n_samples"]

    if key == "t1":
        def init():
            return [torch.full((n_traj,), float(start[0]), dtype=dtype),
                    torch.full((n_traj,), float(start[1]), dtype=dtype)]

        def grad(params, z):
            x, y = params
            sq = torch.sqrt(torch.addcmul(torch.ones_like(y), y, y))
            w = torch.mul(sq, x).sub_(z[:, 0], alpha=sigma)
            gy = torch.mul(w, x).mul_(y).div_(sq)
            return [w.mul_(sq), gy]

        def observe(params):
            x, y = params
            return torch.stack([0.5 * (1 + y * y) * x * x, y, x.abs()], 1).numpy()
    elif key == "t2":
        def init():
            return [torch.full((n_traj,), float(start[0]), dtype=dtype),
                    torch.full((n_traj,), float(start[1]), dtype=dtype)]

        def grad(params, z):
            a, b = params
            w = torch.mul(a, b).sub_(1.0).sub_(z[:, 0], alpha=sigma)
            return [torch.mul(w, b), w.mul_(a)]

        def observe(params):
            a, b = params
            r = a * b - 1
            return torch.stack([0.5 * r * r, torch.sqrt(a * a + b * b)], 1).numpy()
    elif key == "t3":
        Xn, yn = common.data_arrays(task)
        X = torch.tensor(Xn, dtype=dtype)
        XT = X.T.contiguous()
        y = torch.tensor(yn, dtype=dtype)
        n, p = X.shape
        teacher = torch.tensor(task["teacher"], dtype=dtype)

        def init():
            return [start[:p].repeat(n_traj, 1), start[p:].repeat(n_traj, 1)]

        def grad(params, z):
            u, v = params
            w = torch.mul(u, u).sub_(torch.mul(v, v))
            r = torch.matmul(w, XT).sub_(y).sub_(z, alpha=sigma)
            c = torch.matmul(r, X).mul_(2.0 / n)
            return [torch.mul(u, c), c.mul_(v).neg_()]

        def observe(params):
            u, v = params
            w = u * u - v * v
            r = w @ XT - y
            return torch.stack([0.5 * (r * r).mean(1), ((w - teacher) ** 2).sum(1),
                                w.abs().sum(1)], 1).numpy()
    elif key == "t4":
        Xn, yn = common.data_arrays(task)
        X = torch.tensor(Xn, dtype=dtype)
        XT = X.T.contiguous()
        y = torch.tensor(yn, dtype=dtype)
        n, p = X.shape
        m = task["width"]
        inv = 1.0 / np.sqrt(m)
        xsq = (X * X).sum(1)

        def init():
            return [start[:m].repeat(n_traj, 1), start[m:].reshape(m, p).repeat(n_traj, 1, 1)]

        def grad(params, z):
            a, W = params
            h = torch.tanh(torch.matmul(W, XT))  # (N, m, n)
            f = torch.matmul(a.unsqueeze(1), h).squeeze(1).mul_(inv)  # (N, n)
            w = f.sub_(y).sub_(z, alpha=sigma)
            ga = torch.matmul(h, w.unsqueeze(2)).squeeze(2).mul_(inv / n)  # (N, m)
            delta = torch.mul(h, h).neg_().add_(1.0).mul_(w.unsqueeze(1)).mul_(
                a.unsqueeze(2) * (inv / n))
            gW = torch.matmul(delta, X)  # (N, m, p)
            return [ga, gW]

        def observe(params):
            a, W = params
            h = torch.tanh(W @ XT)
            f = (a.unsqueeze(1) @ h).squeeze(1) * inv
            r = f - y
            d2 = (1 - h * h) ** 2
            go = ((h * h).sum(1) + ((a * a).unsqueeze(1) @ d2).squeeze(1) * xsq) / m
            return torch.stack([0.5 * (r * r).mean(1), go.mean(1)], 1).numpy()
    else:
        raise ValueError(key)

    holder = {}
    zshape = (every, n_traj, n_samples)

    def state0():
        gen = torch.Generator().manual_seed(seed)
        params = init()
        holder["gen"] = gen
        holder["opt"] = Optim(opt_spec, params)
        holder["z"] = torch.empty(zshape, dtype=dtype)
        holder["z1"] = torch.empty(zshape[1:], dtype=dtype)
        return params

    step_fn = None

    def one_step(params, z):
        holder["opt"].step(params, grad(params, z))

    if variant == "compile":
        step_fn = torch.compile(one_step, dynamic=False)
    else:
        step_fn = one_step

    def advance(params, _c):
        gen = holder["gen"]
        if variant == "step":
            z = holder["z1"]
            for _ in range(every):
                torch.randn(zshape[1:], generator=gen, dtype=dtype, out=z)
                step_fn(params, z)
        else:
            z = holder["z"]
            torch.randn(zshape, generator=gen, dtype=dtype, out=z)
            for k in range(every):
                step_fn(params, z[k])
        return params

    def warmup():
        # Pick the faster intra-op thread count for this run: on a loaded machine the
        # OpenMP hand-off of small element-wise kernels (sqrt, tanh, ...) across threads can
        # cost far more than the kernel itself.
        best = None
        for threads in sorted({1, os.cpu_count()}):
            torch.set_num_threads(threads)
            params = state0()
            advance(params, 0)
            t = time.perf_counter()
            advance(params, 1)
            dt = time.perf_counter() - t
            if best is None or dt < best[0]:
                best = (dt, threads)
        torch.set_num_threads(best[1])
        holder["threads"] = best[1]

    return warmup, advance, observe, state0, holder


def main():
    args = common.parse_args("torch", dtypes=("float64", "float32"))
    torch.set_num_threads(os.cpu_count())
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    variant = args.variant or "chunk"
    spec, tasks = common.load_tasks(args.tasks_file, args.tasks)
    results = {}
    with torch.inference_mode():
        for key, task in tasks.items():
            print(f"torch {key} ({variant}, {args.dtype}): N={task['trajectories']} "
                  f"steps={task['steps']}")
            results[key] = {}
            for name, opt in task["optimizers"].items():
                holder = {}

                def runner(key=key, task=task, opt=opt):
                    w, a, o, s0, h = make_runner(key, task, opt, args.seed, variant, dtype)
                    holder.update(h=h)
                    return w, a, o, s0

                results[key][name] = common.run_task(task, name, runner, args.repeats,
                                                     args.budget)
                results[key][name]["threads"] = holder["h"].get("threads")
    common.write_results(args.out, "torch", torch.__version__, args.dtype, args, tasks, results,
                         {"torch_threads": torch.get_num_threads(), "variant": variant})


if __name__ == "__main__":
    main()
