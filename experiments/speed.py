"""CPU cost of each recipe switch: training images/s of `src.train`'s path, every variant against the
recipe in one process, alternating, best of `--repeats` (printed side by side with ratios).

    python experiments/speed.py --data ../shared/data --steps 40 --repeats 2
    python experiments/speed.py --recipe scenes --steps 10 --repeats 2    # the scenes recipe's switches
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.bench import lightning_path  # noqa: E402

SWITCHES = {
    "recipe (fp32)": [],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "channels_last": ["model.channels_last=true"],
    "torch.compile": ["model.compile=true"],
    "batch 32": ["dataset.batch_size=32"],
    "batch 128": ["dataset.batch_size=128"],
    "residual G/D": ["model/generator=residual", "model/discriminator=sn_residual"],
    "no FiLM": ["model/generator=dcgan"],
    "no spectral norm": ["model/discriminator=projection"],
    "DiffAugment": ["tuner=diffaugment"],
    "64 base channels": ["model.generator.base_channels=64", "model.discriminator.base_channels=64"],
    "n_critic 2": ["loss.n_critic=2"],
    "mode-seeking": ["loss.terms.mode_seeking=0.1"],
}

# `--recipe scenes`: the data set's own recipe (dataset=scenes: char-CNN sentence, cell FiLM G, SN projection
# D, contrastive term with negatives) and what its parts and the word-level parts cost.
SCENE_BASE = ["dataset=scenes", "dataset.num_scenes=2048"]
WORD_LEVEL = ["text_encoder=charcnn_words", "model/generator=attention", "model/discriminator=word_region"]
SCENE_SWITCHES = {
    "scenes recipe": [],
    "FiLM G (one code for the image)": ["model/generator=film"],
    "no contrastive negatives": ["loss.terms.contrastive_negatives=false"],
    "word level": WORD_LEVEL,
    "word level, attention 8 px": [*WORD_LEVEL, "model.generator.attention_size=8"],
    "words in D only": ["text_encoder=charcnn_words", "model/discriminator=word_region"],
    "no mode-seeking": ["loss.terms.mode_seeking=0"],
    "char-CNN 64 ch": ["text_encoder.channels=64"],
    "n_critic 2": ["loss.n_critic=2"],
    "fp32": ["trainer.precision=32-true"],
    "contiguous (no channels_last)": ["model.channels_last=false"],
    "torch.compile": ["model.compile=true"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--recipe", default="mnist")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps (compile happens here)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    scenes = args.recipe == "scenes"
    switches = SCENE_SWITCHES if scenes else SWITCHES
    base_overrides = SCENE_BASE if scenes else [f"experiment={args.recipe}"]
    names = args.only or list(switches)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name in names:
            GlobalHydra.instance().clear()
            overrides = [
                *base_overrides,
                f"paths.data_dir={args.data}",
                "logger=none",
                "callbacks=none",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                *switches[name],
            ]
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                cfg = compose(config_name="train", overrides=overrides)
            with tempfile.TemporaryDirectory() as tmp, open_dict(cfg):
                cfg.paths.output_dir = tmp
                cfg.trainer.max_time = None
                result = lightning_path(cfg, args.steps, args.warmup)
            # Images per G step differ with batch size and n_critic: compare G steps/s and images/s.
            gsteps = 1e3 / result["step_ms"]
            best[name] = max(best.get(name, 0.0), gsteps)
            best[name + " img"] = max(best.get(name + " img", 0.0), result["images_s"])
    base = best[names[0]]
    print(
        f"\nCPU cost of recipe switches ({torch.get_num_threads()} threads, best of {args.repeats} x "
        f"{args.steps} G steps after {args.warmup} warm-up)"
    )
    print(f"{'switch':<20}{'G steps/s':>10}{'images/s':>10}{'vs recipe':>11}")
    for name in names:
        print(f"{name:<20}{best[name]:>10.2f}{best[name + ' img']:>10.1f}{best[name] / base:>10.2f}x")


if __name__ == "__main__":
    main()
