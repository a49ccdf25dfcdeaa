"""Benchmark: training images/s of the full Lightning path vs a bare PyTorch loop over the same G, D,
text encoder, loss and batches, and the share of Lightning step time spent waiting for data.

`python -m src.bench [hydra overrides]`; prints one table. Paths alternate so machine noise hits both.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from typing import Any

import hydra
import torch
from lightning.pytorch import Callback
from omegaconf import DictConfig, open_dict

from src.losses.phases import Nets, compile_phases, d_phase, g_phase, make_fakes, mode_seeking_pairs
from src.training import fit, prepare
from src.utils.cli import check_yaml, silence_known_noise


class TimedLoader:
    """Wraps the batch loader, timing every `next()` (the data wait of a main-process loader)."""

    def __init__(self, loader: Any) -> None:
        self.loader, self.sampler, self.wait_s = loader, loader.sampler, 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.wait_s += time.perf_counter() - t0
            yield batch


class StepClock(Callback):
    """Wall time from the end of warm-up to the end of training, and the data wait inside it."""

    def __init__(self, warmup: int, loader_box: list) -> None:
        self.warmup, self.loader_box = warmup, loader_box
        self.t0 = self.wait0 = None
        self.elapsed = self.wait = 0.0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if pl_module.gan_step == self.warmup:
            _sync(pl_module.device)
            self.t0, self.wait0 = time.perf_counter(), self.loader_box[0].wait_s

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        _sync(pl_module.device)
        self.elapsed = time.perf_counter() - self.t0
        self.wait = self.loader_box[0].wait_s - self.wait0


def lightning_path(cfg: DictConfig, steps: int, warmup: int) -> dict[str, float]:
    """Images/s of `src.train`'s own path (Trainer, callbacks off, logger off)."""
    with open_dict(cfg):
        cfg.trainer.max_steps = steps + warmup
    run = prepare(cfg)
    box: list = []
    make_loader = run.datamodule.train_dataloader
    run.datamodule.train_dataloader = lambda: box.append(TimedLoader(make_loader())) or box[-1]
    clock = StepClock(warmup, box)
    run.trainer.callbacks.append(clock)
    fit(run)
    per_step = cfg.dataset.batch_size * cfg.loss.n_critic
    return {
        "images_s": steps * per_step / clock.elapsed,
        "step_ms": 1e3 * clock.elapsed / steps,
        "data_wait": clock.wait / clock.elapsed,
    }


def bare_loop(cfg: DictConfig, steps: int, warmup: int) -> dict[str, float]:
    """The same loss phases driven by a plain PyTorch loop: the reference for Lightning's overhead."""
    torch.manual_seed(cfg.seed)
    run = prepare(cfg)  # the same data module and model as the Lightning path; its Trainer is not used
    dm, module = run.datamodule, run.model
    dev = _device(cfg)
    module.to(dev)
    G, D, T, obj = module.G, module.D, module.text_encoder, module.loss
    fmt = torch.channels_last if module.channels_last else torch.contiguous_format
    G.to(memory_format=fmt)
    D.to(memory_format=fmt)
    if module.compile_nets:
        compile_phases(G, D, T)
    bank = T.prepare(dm.captions).to(dev)
    d_params = list(D.parameters()) + [p for p in T.parameters() if p.requires_grad]
    opt_g, opt_d = obj.optimizers(G.parameters(), d_params, fused=dev.type == "cuda")
    nets = Nets(G, D, module._see)
    autocast = _autocast(cfg.trainer.precision, dev)
    loader = dm.train_dataloader()
    batches = iter(())
    k = obj.n_critic
    t0 = None
    for step in range(steps + warmup):
        if step == warmup:
            t0 = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        batch = dm.on_after_batch_transfer({k: v.to(dev, non_blocking=True) for k, v in batch.items()}, 0)
        images = batch["images"].contiguous(memory_format=fmt)
        xs, cs, ms = images.chunk(k), batch["caption_ids"].chunk(k), batch["mismatch_ids"].chunk(k)
        for i in range(k):
            with autocast:
                t = T(bank[cs[i]])
                t_mis = T(bank[ms[i]]) if obj.uses_mismatch else None
                fakes = make_fakes(G, t, mode_seeking_pairs(obj, t.shape[0]) if i == k - 1 else 0, t_mis)
                loss_d, _, _ = d_phase(obj, nets, xs[i], t, t_mis, fakes)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            _clip(opt_d, obj.grad_clip)
            opt_d.step()
        D.requires_grad_(False)
        T.requires_grad_(False)
        with autocast:
            loss_g, _ = g_phase(obj, nets, fakes)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        _clip(opt_g, obj.grad_clip)
        opt_g.step()
        D.requires_grad_(True)
        T.requires_grad_(True)
        module.ema.update(module.ema_decay, generator=G, text_encoder=T)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    per_step = cfg.dataset.batch_size * k
    return {"images_s": steps * per_step / elapsed, "step_ms": 1e3 * elapsed / steps}


def _clip(opt: torch.optim.Optimizer, clip: float) -> None:
    """Clip the optimizer's gradients to norm `clip` as the module does (0: off)."""
    if clip > 0:
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device(cfg: DictConfig) -> torch.device:
    """The device Lightning's `accelerator` setting picks."""
    gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def _autocast(precision: str, dev: torch.device) -> Any:
    """The autocast context Lightning's precision plugin uses (none for 32-true).

    Unlike Lightning's fp16 path, the bare loop runs fp16 without a GradScaler: it is a speed reference.
    """
    if precision in ("bf16-mixed", "16-mixed"):
        dtype = torch.bfloat16 if precision.startswith("bf16") else torch.half
        return torch.autocast(dev.type, dtype=dtype, cache_enabled=False)
    return contextlib.nullcontext()


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Alternate both paths `repeats` times; report medians and the median of the paired ratios."""
    b = cfg.bench
    results: dict[str, list[dict[str, float]]] = {"bare": [], "lightning": []}
    for r in range(b.repeats):
        for name, fn in (("bare", bare_loop), ("lightning", lightning_path)):
            with open_dict(cfg):
                cfg.paths.output_dir = (
                    f"{cfg.paths.output_dir.rstrip('/').rsplit('/rep', 1)[0]}/rep{r}_{name}"
                )
            results[name].append(fn(cfg, b.steps, b.warmup))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    ratios = [lt["images_s"] / bare["images_s"] for lt, bare in zip(results["lightning"], results["bare"])]
    ratio = statistics.median(ratios)
    print(
        f"\nPixelGAN bench: dataset={cfg.dataset.name} loss={cfg.loss.d_loss._target_.rsplit('.', 1)[-1]} "
        f"batch={cfg.dataset.batch_size} n_critic={cfg.loss.n_critic} device={_device(cfg).type} "
        f"precision={cfg.trainer.precision} compile={cfg.model.compile} threads={torch.get_num_threads()}"
    )
    head = f"{'path':<12}{'images/s':>10}{'ms/step':>10}{'data wait':>11}"
    print(f"{head}   median of {b.repeats} alternating runs x {b.steps} G steps")
    print(f"{'bare loop':<12}{med['bare']['images_s']:>10.1f}{med['bare']['step_ms']:>10.1f}{'-':>11}")
    lt = med["lightning"]
    print(f"{'lightning':<12}{lt['images_s']:>10.1f}{lt['step_ms']:>10.1f}{lt['data_wait']:>10.1%}")
    print(
        f"ratio lightning / bare: {ratio:.3f} (median of paired runs; each: "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + ")"
    )
    return {"median": med, "ratio": ratio, "ratios": ratios, "all": results}


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    silence_known_noise()
    bench(cfg)


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    main()
