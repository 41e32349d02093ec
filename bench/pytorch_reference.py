#!/usr/bin/env python3
"""Plain PyTorch eager reference for bench/gpu_vs_pytorch.sh: the same model, batch and
optimizer as a skillrun config, timed on one GPU.

Model: depth-2 MLP (n_tasks + n_bits -> width -> 2), ReLU, cross-entropy. Data: a fresh
multi-task sparse-parity batch every step, generated on the GPU (torch RNG: same shapes and
work as skillrun's Philox kernel, not the same bits). Optimizer: as the config says; Muon =
momentum + Newton-Schulz (ns5, Gram on the small side) on the hidden weight matrix, scaled by
sqrt(fan_out / fan_in), Adam for everything else (torch.optim.Adam, foreach).

Reports: us/step (median of --steps steps after --warmup, each step timed with CUDA events),
NS5 time on a 2000 x 150 matrix (median of 200), and peak device memory.

With --msign ROWSxCOLS (no CONFIG): only NS5 on a random ROWS x COLS matrix, the counterpart
of `skillrun bench --msign ROWSxCOLS --msign-method ns5`: median us per call over --repeats
calls after --warmup, timed two ways: host clock with torch.cuda.synchronize() before and after
each call (what skillrun reports) and CUDA events (kernel time without the host round trip).
"""
import argparse
import json
import re
import statistics
import time

import torch


def ns5(g, steps=5, eps=1e-7):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + eps)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    return x.T if tall else x


def parse_shape(text):
    m = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text)
    if not m:
        raise SystemExit(f"--msign: expected ROWSxCOLS, two positive integers such as 2000x150, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def time_ns5(rows, cols, warmup, repeats, amp):
    """Median us per ns5 call on a random rows x cols matrix: (host clock with syncs, CUDA events)."""
    g = torch.randn(rows, cols, device="cuda")
    with amp:
        for _ in range(warmup):
            ns5(g)
        torch.cuda.synchronize()
        host, events = [], []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            start.record()
            ns5(g)
            end.record()
            torch.cuda.synchronize()
            host.append((time.perf_counter() - t0) * 1e6)
            events.append(start.elapsed_time(end) * 1e3)
    return statistics.median(host), statistics.median(events)


def make_batch(batch, n_tasks, n_bits, subsets, probs, device):
    tasks = torch.multinomial(probs, batch, replacement=True)
    v = torch.randint(0, 2, (batch, n_bits), device=device, dtype=torch.float32)
    u = torch.nn.functional.one_hot(tasks, n_tasks).float()
    bits = v.gather(1, subsets[tasks]).long()
    y = bits.sum(1) % 2
    return torch.cat([u, v], 1), y


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config", nargs="?")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--precision", default=None, help="fp32 | tf32 | bf16 (default: the config's, or fp32)")
    p.add_argument("--msign", metavar="ROWSxCOLS", help="time NS5 alone on this shape (no CONFIG)")
    p.add_argument("--repeats", type=int, default=200, help="timed NS5 calls")
    args = p.parse_args()
    if args.msign:
        if args.config:
            raise SystemExit("--msign times NS5 alone: give no CONFIG")
        rows, cols = parse_shape(args.msign)
        precision = args.precision or "fp32"
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
        host_us, event_us = time_ns5(rows, cols, args.warmup, args.repeats, amp)
        print(json.dumps({
            "program": "pytorch_eager", "msign": "ns5", "shape": f"{rows}x{cols}", "precision": precision,
            "device": torch.cuda.get_device_name(), "torch": torch.__version__, "repeats": args.repeats,
            "ns5_us_median_host_synced": host_us, "ns5_us_median_cuda_events": event_us,
        }))
        return
    if not args.config:
        raise SystemExit("give a CONFIG, or --msign ROWSxCOLS")
    cfg = json.load(open(args.config))
    task, model_cfg, opt_cfg = cfg["task"], cfg.get("model", {}), cfg["optimizer"]
    batch = cfg.get("train", {}).get("batch_size", 1000)
    width = model_cfg.get("width", 2000)
    n_tasks, n_bits, k = task["n_tasks"], task["n_bits"], task["k"]
    precision = args.precision or cfg.get("precision", "fp32")
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    dev = torch.device("cuda")
    torch.manual_seed(cfg.get("seed", 0))

    zipf = task.get("zipf_exponent", 1.4)
    probs = torch.arange(1, n_tasks + 1, device=dev, dtype=torch.float64) ** (-zipf)
    probs = (probs / probs.sum()).float()
    subsets = torch.stack([torch.randperm(n_bits, device=dev)[:k] for _ in range(n_tasks)])

    model = torch.nn.Sequential(torch.nn.Linear(n_tasks + n_bits, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 2)).to(dev)
    hidden = [model[0].weight]
    typ, lr = opt_cfg["type"], opt_cfg["lr"]
    if typ == "muon":
        other_cfg = opt_cfg.get("other_params", {"type": "adam", "lr": 1e-3})
        rest = [q for q in model.parameters() if all(q is not h for h in hidden)]
        other = torch.optim.Adam(rest, lr=other_cfg.get("lr", 1e-3), foreach=True)
        momentum = [torch.zeros_like(h) for h in hidden]
        beta = opt_cfg.get("momentum", 0.95)
    elif typ == "adam":
        other = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    else:  # nmd / sgd: plain SGD with momentum has the same memory traffic
        other = torch.optim.SGD(model.parameters(), lr=lr, momentum=opt_cfg.get("momentum", 0.9), foreach=True)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        x, y = make_batch(batch, n_tasks, n_bits, subsets, probs, dev)
        with amp:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if typ == "muon":
            with torch.no_grad():
                for h, m in zip(hidden, momentum):
                    m.mul_(beta).add_(h.grad)
                    scale = (h.shape[0] / h.shape[1]) ** 0.5
                    h.add_(ns5(m), alpha=-lr * scale)
        other.step()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    peak = torch.cuda.max_memory_allocated()

    _, ns5_event_us = time_ns5(2000, 150, 20, 200, amp)

    print(json.dumps({
        "program": "pytorch_eager", "config": args.config, "precision": precision,
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "batch": batch, "width": width, "steps": args.steps,
        "us_per_step_median": statistics.median(times),
        "ns5_2000x150_us_median": ns5_event_us,
        "peak_memory_mib": peak / 2**20,
    }))


if __name__ == "__main__":
    main()
