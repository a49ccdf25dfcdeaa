"""Benchmark: training images/s of the full Lightning path vs a bare PyTorch loop over the same G, D,
text encoder, loss and batches, and the share of Lightning step time spent waiting for data.

`python -m src.bench [hydra overrides]`; prints one table. Paths alternate so machine noise hits both.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import hydra
import torch
from lightning.pytorch import Callback
from omegaconf import DictConfig, open_dict

from src.losses.regularizers import gradient_penalty, interpolate
from src.train import fit, prepare
from src.utils.cli import check_yaml


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
            self.t0, self.wait0 = time.perf_counter(), self.loader_box[0].wait_s

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
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
    """The same GAN step written as a plain PyTorch loop: the reference for Lightning's overhead."""
    torch.manual_seed(cfg.seed)
    run = prepare(cfg)  # the same data module and model as the Lightning path; its Trainer is not used
    dm, module = run.datamodule, run.model
    G, D, T, obj = module.G, module.D, module.text_encoder, module.objective
    bank = T.prepare(dm.captions)
    opt_g = torch.optim.Adam(G.parameters(), lr=module.lr_g, betas=module.betas)
    opt_d = torch.optim.Adam(list(D.parameters()) + list(T.parameters()), lr=module.lr_d, betas=module.betas)
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
        batch = dm.on_after_batch_transfer(batch, 0)
        xs, cs, ms = batch["images"].chunk(k), batch["caption_ids"].chunk(k), batch["mismatch_ids"].chunk(k)
        for i in range(k):
            t = T(bank[cs[i]])
            fake = G(torch.randn(xs[i].shape[0], G.z_dim), t.detach())
            h = D.features(xs[i])
            fakes = torch.cat([D(fake.detach(), t), D.judge(h, T(bank[ms[i]]))])
            loss_d = obj.d_loss(D.judge(h, t), fakes)
            if obj.gp_weight > 0:
                x_hat = interpolate(xs[i], fake.detach()).requires_grad_(True)
                loss_d = loss_d + obj.gp_weight * gradient_penalty(x_hat, D(x_hat, t.detach()))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        D.requires_grad_(False)
        loss_g = obj.g_loss(D(fake, t.detach()))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        module.ema.update(module.ema_decay, generator=G, text_encoder=T)
    elapsed = time.perf_counter() - t0
    per_step = cfg.dataset.batch_size * k
    return {"images_s": steps * per_step / elapsed, "step_ms": 1e3 * elapsed / steps}


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Alternate both paths `repeats` times; report the best of each (least disturbed by noise)."""
    b = cfg.bench
    results: dict[str, list[dict[str, float]]] = {"bare": [], "lightning": []}
    for r in range(b.repeats):
        for name, fn in (("bare", bare_loop), ("lightning", lightning_path)):
            with open_dict(cfg):
                cfg.paths.output_dir = (
                    f"{cfg.paths.output_dir.rstrip('/').rsplit('/rep', 1)[0]}/rep{r}_{name}"
                )
            results[name].append(fn(cfg, b.steps, b.warmup))
    best = {k: max(v, key=lambda m: m["images_s"]) for k, v in results.items()}
    ratio = best["lightning"]["images_s"] / best["bare"]["images_s"]
    print(
        f"\nPixelGAN bench: dataset={cfg.dataset.name} loss={cfg.loss.d_loss._target_.rsplit('.', 1)[-1]} "
        f"batch={cfg.dataset.batch_size} n_critic={cfg.loss.n_critic} device={cfg.trainer.accelerator} "
        f"precision={cfg.trainer.precision} threads={torch.get_num_threads()}"
    )
    head = f"{'path':<12}{'images/s':>10}{'ms/step':>10}{'data wait':>11}"
    print(f"{head}   best of {b.repeats} x {b.steps} steps")
    print(f"{'bare loop':<12}{best['bare']['images_s']:>10.1f}{best['bare']['step_ms']:>10.1f}{'-':>11}")
    lt = best["lightning"]
    print(f"{'lightning':<12}{lt['images_s']:>10.1f}{lt['step_ms']:>10.1f}{lt['data_wait']:>10.1%}")
    print(f"ratio lightning / bare: {ratio:.3f}")
    return {"best": best, "ratio": ratio, "all": results}


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    check_yaml(sys.argv[1:])
    main()
