"""NumPy baseline: the ensemble as arrays with a leading trajectory axis, one vectorised update
per optimizer step, hand-written gradients, float64.

The label noise of a whole checkpoint chunk, shape (record_every, N, n), is drawn by one
`Generator(SFC64).standard_normal(out=...)` call; updates use `out=` / in-place operators to
avoid temporaries.
"""

import numpy as np

import common


def observables_t1(x, y):
    s = 1.0 + y * y
    return np.stack([0.5 * s * x * x, y, np.abs(x)], axis=1)


def observables_t2(a, b):
    r = a * b - 1.0
    return np.stack([0.5 * r * r, np.sqrt(a * a + b * b)], axis=1)


class Optim:
    """SGD, heavy ball and Adam (PyTorch conventions) over a list of arrays, in place."""

    def __init__(self, spec, params):
        self.kind = spec["kind"]
        self.spec = spec
        self.t = 0
        if self.kind == "heavy_ball":
            self.buf = [np.zeros_like(p) for p in params]
        elif self.kind == "adam":
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
            self.tmp = [np.empty_like(p) for p in params]

    def step(self, params, grads):
        s = self.spec
        lr = s["lr"]
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                g *= lr
                p -= g
        elif self.kind == "heavy_ball":
            for p, g, b in zip(params, grads, self.buf):
                b *= s["beta"]
                b += g
                p -= lr * b
        else:
            self.t += 1
            b1, b2, eps = s["beta1"], s["beta2"], s["eps"]
            c1 = 1.0 / (1.0 - b1 ** self.t)
            c2 = 1.0 / (1.0 - b2 ** self.t)
            for p, g, m, v, tmp in zip(params, grads, self.m, self.v, self.tmp):
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                g *= g
                g *= 1.0 - b2
                v += g
                np.multiply(v, c2, out=tmp)
                np.sqrt(tmp, out=tmp)
                tmp += eps
                np.divide(m, tmp, out=tmp)
                tmp *= lr * c1
                p -= tmp


def make_runner(key, task, opt_spec, seed):
    n_traj, every, sigma = task["trajectories"], task["record_every"], task["sigma"]
    start = np.asarray(task["start"], dtype=np.float64)
    n_samples = task["n_samples"]
    zbuf = np.empty((every, n_traj, n_samples))

    if key == "t1":
        def init():
            return [np.full(n_traj, start[0]), np.full(n_traj, start[1])]

        def grad(params, z):
            x, y = params
            sq = np.sqrt(1.0 + y * y)
            w = sq * x
            w -= sigma * z[:, 0]
            gy = w * x
            gy *= y
            gy /= sq
            w *= sq
            return [w, gy]

        def observe(params):
            return observables_t1(*params)
    elif key == "t2":
        def init():
            return [np.full(n_traj, start[0]), np.full(n_traj, start[1])]

        def grad(params, z):
            a, b = params
            w = a * b
            w -= 1.0
            w -= sigma * z[:, 0]
            return [w * b, w * a]

        def observe(params):
            return observables_t2(*params)
    elif key == "t3":
        X, y = common.data_arrays(task)
        n, p = X.shape
        teacher = np.asarray(task["teacher"])

        def init():
            return [np.tile(start[:p], (n_traj, 1)), np.tile(start[p:], (n_traj, 1))]

        def grad(params, z):
            u, v = params
            w = u * u - v * v
            r = w @ X.T
            r -= y
            r -= sigma * z
            c = r @ X
            c *= 2.0 / n
            return [u * c, -(v * c)]

        def observe(params):
            u, v = params
            w = u * u - v * v
            r = w @ X.T - y
            return np.stack([0.5 * np.mean(r * r, axis=1),
                             np.sum((w - teacher) ** 2, axis=1),
                             np.sum(np.abs(w), axis=1)], axis=1)
    elif key == "t4":
        X, y = common.data_arrays(task)
        n, p = X.shape
        m = task["width"]
        inv = 1.0 / np.sqrt(m)
        xsq = np.sum(X * X, axis=1)

        def init():
            return [np.tile(start[:m], (n_traj, 1)),
                    np.tile(start[m:].reshape(m, p), (n_traj, 1, 1))]

        def grad(params, z):
            a, W = params
            h = np.tanh(np.matmul(W, X.T))  # (N, m, n)
            f = np.einsum("km,kmi->ki", a, h) * inv
            w = f - y - sigma * z  # (N, n)
            ga = np.einsum("ki,kmi->km", w, h) * (inv / n)
            delta = (1.0 - h * h) * (a * (inv / n))[:, :, None] * w[:, None, :]  # (N, m, n)
            gW = np.matmul(delta, X)  # (N, m, p)
            return [ga, gW]

        def observe(params):
            a, W = params
            h = np.tanh(np.matmul(W, X.T))
            f = np.einsum("km,kmi->ki", a, h) * inv
            r = f - y
            d2 = (1.0 - h * h) ** 2
            go = (np.sum(h * h, axis=1) + np.einsum("km,kmi->ki", a * a, d2) * xsq) / m
            return np.stack([0.5 * np.mean(r * r, axis=1), np.mean(go, axis=1)], axis=1)
    else:
        raise ValueError(key)

    holder = {}

    def state0():
        rng = np.random.Generator(np.random.SFC64(seed))
        params = init()
        holder["rng"] = rng
        holder["opt"] = Optim(opt_spec, params)
        return params

    def advance(params, _c):
        rng, opt = holder["rng"], holder["opt"]
        rng.standard_normal(out=zbuf)
        for k in range(every):
            opt.step(params, grad(params, zbuf[k]))
        return params

    def warmup():
        pass

    return warmup, advance, observe, state0


def main():
    args = common.parse_args("numpy")
    spec, tasks = common.load_tasks(args.tasks_file, args.tasks)
    results = {}
    for key, task in tasks.items():
        print(f"numpy {key}: N={task['trajectories']} steps={task['steps']}")
        results[key] = {}
        for name, opt in task["optimizers"].items():
            results[key][name] = common.run_task(
                task, name, lambda: make_runner(key, task, opt, args.seed), args.repeats,
                args.budget)
    common.write_results(args.out, "numpy", np.__version__, "float64", args, tasks, results)


if __name__ == "__main__":
    main()
