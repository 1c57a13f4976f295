"""JAX baseline: per-trajectory gradient written by hand, `jax.vmap` over trajectories,
`lax.scan` over the steps of one checkpoint chunk inside `jax.jit` (buffers donated), the
optimizer update element-wise on the batched arrays. float64 (`jax_enable_x64`) or float32.

Variants (`--variant`; the fastest on this machine is the default):
- `chunk` (default): the label noise of a whole chunk, shape (record_every, N, n), drawn by
  one `jax.random.normal(fold_in(key, chunk))` inside the jitted chunk, then scanned over.
- `split`: `jax.random.split` of a carried key and a fresh `normal` every step inside the
  scan (threefry per step; slower on CPU).
- `chunk2`: like `chunk`, but the trajectory axis split over two XLA host devices
  (`--xla_force_host_platform_device_count=2`, a `NamedSharding` of the trajectory axis
  under `jax.jit`) so that both cores work.
- `outer`: like `chunk`, but the checkpoints too are a `lax.scan` (one jitted call runs the
  whole task and returns every record); timed as a whole.
Gradients are written by hand (the same formulas as the other baselines).
"""

import os
import sys
import time

VARIANT = "chunk"
for i, a in enumerate(sys.argv):
    if a == "--variant" and i + 1 < len(sys.argv):
        VARIANT = sys.argv[i + 1]
    elif a.startswith("--variant="):
        VARIANT = a.split("=", 1)[1]
if VARIANT == "chunk2":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

import common  # noqa: E402

jax.config.update("jax_enable_x64", True)


def task_functions(key, task, dt):
    """(init_params, grad_one(params, z, sigma), obs_one(params)) for one trajectory."""
    start = np.asarray(task["start"], dtype=np.float64)
    sigma = task["sigma"]
    if key == "t1":
        def init():
            return (jnp.asarray(start[0], dt), jnp.asarray(start[1], dt))

        def grad_one(params, z):
            x, y = params
            sq = jnp.sqrt(1.0 + y * y)
            w = sq * x - sigma * z[0]
            return (w * sq, w * x * y / sq)

        def obs_one(params):
            x, y = params
            return jnp.stack([0.5 * (1.0 + y * y) * x * x, y, jnp.abs(x)])
    elif key == "t2":
        def init():
            return (jnp.asarray(start[0], dt), jnp.asarray(start[1], dt))

        def grad_one(params, z):
            a, b = params
            w = a * b - 1.0 - sigma * z[0]
            return (w * b, w * a)

        def obs_one(params):
            a, b = params
            r = a * b - 1.0
            return jnp.stack([0.5 * r * r, jnp.sqrt(a * a + b * b)])
    elif key == "t3":
        Xn, yn = common.data_arrays(task)
        X, y = jnp.asarray(Xn, dt), jnp.asarray(yn, dt)
        n, p = Xn.shape
        teacher = jnp.asarray(task["teacher"], dt)

        def init():
            return (jnp.asarray(start[:p], dt), jnp.asarray(start[p:], dt))

        def grad_one(params, z):
            u, v = params
            w = u * u - v * v
            r = X @ w - y - sigma * z
            c = (r @ X) * (2.0 / n)
            return (u * c, -v * c)

        def obs_one(params):
            u, v = params
            w = u * u - v * v
            r = X @ w - y
            return jnp.stack([0.5 * jnp.mean(r * r), jnp.sum((w - teacher) ** 2),
                              jnp.sum(jnp.abs(w))])
    elif key == "t4":
        Xn, yn = common.data_arrays(task)
        X, y = jnp.asarray(Xn, dt), jnp.asarray(yn, dt)
        n, p = Xn.shape
        m = task["width"]
        inv = float(1.0 / np.sqrt(m))  # a Python float keeps float32 runs in float32
        xsq = jnp.sum(X * X, axis=1)

        def init():
            return (jnp.asarray(start[:m], dt), jnp.asarray(start[m:].reshape(m, p), dt))

        def grad_one(params, z):
            a, W = params
            h = jnp.tanh(X @ W.T)  # (n, m)
            f = (h @ a) * inv
            w = f - y - sigma * z  # (n,)
            ga = (w @ h) * (inv / n)
            delta = (1.0 - h * h) * (w[:, None] * (a * (inv / n))[None, :])  # (n, m)
            return (ga, delta.T @ X)

        def obs_one(params):
            a, W = params
            h = jnp.tanh(X @ W.T)
            r = (h @ a) * inv - y
            go = (jnp.sum(h * h, axis=1) + ((1.0 - h * h) ** 2 @ (a * a)) * xsq) / m
            return jnp.stack([0.5 * jnp.mean(r * r), jnp.mean(go)])
    else:
        raise ValueError(key)
    return init, grad_one, obs_one


def optimizer(spec):
    """(init(params) -> state, update(params, grads, state, t) -> (params, state))."""
    kind, lr = spec["kind"], spec["lr"]
    tm = jax.tree_util.tree_map
    if kind == "sgd":
        return (lambda p: ()), (lambda p, g, s, t: (tm(lambda a, b: a - lr * b, p, g), s))
    if kind == "heavy_ball":
        beta = spec["beta"]

        def upd(p, g, s, t):
            s = tm(lambda b, gg: beta * b + gg, s, g)
            return tm(lambda a, b: a - lr * b, p, s), s
        return (lambda p: tm(jnp.zeros_like, p)), upd
    b1, b2, eps = spec["beta1"], spec["beta2"], spec["eps"]

    def upd(p, g, s, t):
        m, v = s
        m = tm(lambda a, gg: b1 * a + (1.0 - b1) * gg, m, g)
        v = tm(lambda a, gg: b2 * a + (1.0 - b2) * gg * gg, v, g)
        tf = t.astype(jnp.float64)
        c1 = 1.0 / (1.0 - b1 ** tf)
        c2 = 1.0 / (1.0 - b2 ** tf)
        p = tm(lambda a, mm, vv: a - lr * (mm * c1).astype(a.dtype)
               / (jnp.sqrt(vv * c2).astype(a.dtype) + eps), p, m, v)
        return p, (m, v)
    return (lambda p: (tm(jnp.zeros_like, p), tm(jnp.zeros_like, p))), upd


def make_runner(key, task, opt_spec, seed, variant, dt):
    n_traj, every = task["trajectories"], task["record_every"]
    n_samples = task["n_samples"]
    init, grad_one, obs_one = task_functions(key, task, dt)
    opt_init, opt_update = optimizer(opt_spec)
    grad_b = jax.vmap(grad_one)
    obs_b = jax.vmap(obs_one)
    ndev = 2 if variant == "chunk2" else 1
    nloc = n_traj

    def step(carry, z):
        params, ost, t = carry
        g = grad_b(params, z)
        params, ost = opt_update(params, g, ost, t + 1)
        return (params, ost, t + 1), None

    def chunk(carry, k):
        if variant == "split":
            def body(c, _):
                inner, kk = c
                kk, sub = jax.random.split(kk)
                z = jax.random.normal(sub, (nloc, n_samples), dt)
                inner, _ = step(inner, z)
                return (inner, kk), None
            (carry, _), _ = lax.scan(body, (carry, k), None, length=every)
            return carry
        z = jax.random.normal(k, (every, nloc, n_samples), dt)
        carry, _ = lax.scan(step, carry, z)
        return carry

    def start_carry():
        p1 = init()
        params = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (nloc,) + a.shape), p1)
        params = jax.tree_util.tree_map(lambda a: a + jnp.zeros_like(a), params)
        return (params, opt_init(params), jnp.asarray(0, jnp.int64))

    base = jax.random.PRNGKey(seed)

    if ndev == 1:
        chunk_j = jax.jit(chunk, donate_argnums=0)
        obs_j = jax.jit(obs_b)

        def state0():
            return jax.jit(start_carry)()

        def chunk_key(c):
            return jax.random.fold_in(base, c)

        def observe(carry):
            return np.asarray(obs_j(carry[0]))
    else:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        mesh = Mesh(np.array(jax.local_devices()[:ndev]), ("traj",))
        batch = NamedSharding(mesh, PartitionSpec("traj"))
        repl = NamedSharding(mesh, PartitionSpec())

        def shard(c):
            params, ost, t = c
            return (jax.tree_util.tree_map(lambda a: jax.device_put(a, batch), params),
                    jax.tree_util.tree_map(lambda a: jax.device_put(a, batch), ost),
                    jax.device_put(t, repl))

        def chunk_sharded(carry, k):
            # noise drawn per device half: the same key gives a (every, N, n) array whose
            # trajectory axis is sharded like the carry
            z = jax.random.normal(k, (every, n_traj, n_samples), dt)
            z = jax.lax.with_sharding_constraint(
                z, NamedSharding(mesh, PartitionSpec(None, "traj")))
            carry, _ = lax.scan(step, carry, z)
            return carry

        chunk_j = jax.jit(chunk_sharded, donate_argnums=0)
        obs_j = jax.jit(obs_b)

        def state0():
            return shard(jax.jit(start_carry)())

        def chunk_key(c):
            return jax.random.fold_in(base, c)

        def observe(carry):
            return np.asarray(obs_j(carry[0]))

    if variant == "outer":
        n_chunks = task["steps"] // every

        def whole(carry):
            def outer(c, i):
                c = chunk(c, jax.random.fold_in(base, i))
                return c, obs_b(c[0])
            return lax.scan(outer, carry, jnp.arange(n_chunks))[1]
        whole_j = jax.jit(whole)
        holder = {}

        def advance(carry, c):
            if c == 0:
                holder["obs"] = np.asarray(whole_j(carry))
            holder["c"] = c
            return carry

        def observe_outer(carry):
            if "c" not in holder:
                return np.asarray(obs_j(carry[0]))
            return holder["obs"][holder["c"]]

        def warmup():
            whole_j.lower(state0()).compile()
            holder.clear()

        def state0_outer():
            holder.clear()
            return state0()
        return warmup, advance, observe_outer, state0_outer

    def advance(carry, c):
        out = chunk_j(carry, chunk_key(c))
        jax.block_until_ready(out)
        return out

    def warmup():
        carry = state0()
        carry = advance(carry, 0)
        observe(carry)

    return warmup, advance, observe, state0


def main():
    args = common.parse_args("jax", dtypes=("float64", "float32"))
    dt = jnp.float64 if args.dtype == "float64" else jnp.float32
    variant = args.variant or "chunk"
    spec, tasks = common.load_tasks(args.tasks_file, args.tasks)
    results = {}
    for key, task in tasks.items():
        print(f"jax {key} ({variant}, {args.dtype}): N={task['trajectories']} "
              f"steps={task['steps']}")
        results[key] = {}
        for name, opt in task["optimizers"].items():
            results[key][name] = common.run_task(
                task, name, lambda: make_runner(key, task, opt, args.seed, variant, dt),
                args.repeats, args.budget)
    common.write_results(args.out, "jax", jax.__version__, args.dtype, args, tasks, results,
                         {"variant": variant, "devices": len(jax.local_devices())})


if __name__ == "__main__":
    main()
