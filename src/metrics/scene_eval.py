"""Scene evaluation: the share of prompts whose image holds exactly the asked digits with every stated
attribute, per category and phrasing, next to the reader's ceiling on real scenes; and the quality and
diversity of the digits (classifier-FID, precision, recall of cell crops in the reader's feature space).

The ceiling is what the reader makes of real test digits painted at the prompts' own layouts, so
`scene/overall` over `ceiling/overall` is how close a model comes to a perfect renderer. `seen_pairs`
averages `colour` and `colour_attribution`: the same claims as `heldout_pairs` (one or two digits with
colours, half each), with pairs seen in training.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor

from src.data.scenes import EMPTY, DigitPool, render_scenes
from src.data.sources import load_mnist
from src.metrics.classifier import ClassifierSettings
from src.metrics.evaluator import EvalSettings
from src.metrics.features import fid_from_features, precision_recall
from src.metrics.scene_prompts import CATEGORIES, ScenePrompt, evaluation_prompts
from src.metrics.scene_reader import ReaderSettings, SceneReader, cached_reader, cell_crops
from src.serving.sampler import as_sampler
from src.utils.images import to_uint8
from src.utils.progress import note, track

SampleFn = Callable[[list[ScenePrompt]], Tensor]
# Crops per side for FID and precision/recall: k-NN over all ~17k crops of 10k scenes costs more than
# it tells.
CROP_LIMIT = 10000
# metrics prefix of each phrasing: (shares, crop metrics)
PREFIXES = {False: ("scene", ""), True: ("scene_heldout", "heldout_")}


def satisfied(prompts: list[ScenePrompt], layouts: Tensor) -> Tensor:
    """Whether each read layout (N, 4, 2) satisfies its prompt's description: (N,) bool."""
    hits = [p.description.satisfied_by(lay) for p, lay in zip(prompts, layouts)]
    return torch.tensor(hits, dtype=torch.bool)


def category_shares(prompts: list[ScenePrompt], hits: Tensor, prefix: str) -> dict[str, float]:
    """`{prefix}/<category>` shares of hits (N,) bool, `{prefix}/overall` and `{prefix}/seen_pairs`."""
    cats = [p.category for p in prompts]
    out = {
        f"{prefix}/{c}": float(hits[[k == c for k in cats]].float().mean()) for c in CATEGORIES if c in cats
    }
    out[f"{prefix}/overall"] = float(hits.float().mean())
    if f"{prefix}/colour" in out and f"{prefix}/colour_attribution" in out:
        out[f"{prefix}/seen_pairs"] = (out[f"{prefix}/colour"] + out[f"{prefix}/colour_attribution"]) / 2
    return out


def inked_crops(images: Tensor, layouts: Tensor) -> Tensor:
    """Crops (K, 3, S/2, S/2) of images (N, 3, S, S) at the cells a layout (N, 4, 2) marks as inked."""
    return cell_crops(images)[layouts.reshape(-1, 2)[:, 0] != EMPTY]


def _subset(x: Tensor, limit: int, seed: int) -> Tensor:
    if len(x) <= limit:
        return x
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit]]


def _check_images(images: Tensor, n: int, size: int) -> None:
    if images.dtype != torch.uint8 or tuple(images.shape) != (n, 3, size, size):
        raise ValueError(
            f"sample(prompts) must return uint8 images ({n}, 3, {size}, {size}); "
            f"got {images.dtype} {tuple(images.shape)}"
        )


class SceneEvaluator:
    """Holds the reader, the prompts, the ceiling and the real crop features; `score(sample)` pays only for
    the fakes, so the training callback can call it again and again."""

    def __init__(
        self,
        *,
        reader: SceneReader,
        reader_meta: dict[str, Any],
        test_pool: DigitPool,
        image_size: int,
        settings: EvalSettings,
        progress: bool = True,
    ) -> None:
        self.reader, self.settings, self.size, self.progress = reader.eval(), settings, image_size, progress
        s = settings
        phrasings = [False, True] if s.heldout else [False]
        self.prompts = {h: evaluation_prompts(s.num_samples, s.seed, heldout_phrasing=h) for h in phrasings}
        self.fixed: dict[str, Any] = {
            "reader/cell_accuracy": reader_meta["cell_accuracy"],
            "reader/inked_cell_accuracy": reader_meta["inked_cell_accuracy"],
            "reader/scene_accuracy": reader_meta["scene_accuracy"],
        }
        t0 = time.perf_counter()
        for h, prompts in self.prompts.items():
            layouts = torch.stack([p.layout for p in prompts])
            g = torch.Generator().manual_seed(s.seed + 1 + h)
            real = render_scenes(layouts, test_pool, image_size, g)
            self.fixed.update(category_shares(prompts, satisfied(prompts, reader.read(real)), _ceiling(h)))
            if not h:  # the digits a perfect renderer would paint for these prompts: the crop reference
                crops = _subset(inked_crops(real, layouts), CROP_LIMIT, s.seed)
                self.real_features = reader.crop_features(crops)
        self.setup_s = time.perf_counter() - t0

    @classmethod
    def from_datamodule(
        cls,
        datamodule: Any,
        settings: EvalSettings,
        cache_dir: str | Path,
        classifier: ClassifierSettings | None = None,
    ) -> SceneEvaluator:
        """Evaluator for a SceneDataModule: its digit source, image size and a cached reader."""
        if settings.inception:
            # Said, not silently dropped: Inception-v3 features of 2x2 digit scenes would rank grids of
            # coloured strokes, while crops in the reader's features ask whether each digit looks real.
            note("scenes: no Inception metrics (inception=true); digits are scored as cell crops instead")
        pools = (datamodule.digit_pool(train=True), datamodule.digit_pool(train=False))
        size, reader_settings = datamodule.image_size, ReaderSettings.from_classifier(classifier)
        reader, meta = cached_reader(cache_dir, datamodule.name, pools, size, reader_settings)
        return cls(reader=reader, reader_meta=meta, test_pool=pools[1], image_size=size, settings=settings)

    def score(self, sample: SampleFn) -> dict[str, Any]:
        """Scene shares, ceiling, reader accuracy and crop cfid/precision/recall of `sample`'s images."""
        s = self.settings
        metrics: dict[str, Any] = dict(self.fixed)
        timings: dict[str, float] = {"ceiling_and_real_crops": self.setup_s}
        for h, prompts in self.prompts.items():
            shares, crop = PREFIXES[h]
            t0 = time.perf_counter()
            images = sample(prompts)
            _check_images(images, len(prompts), self.size)
            t1 = time.perf_counter()
            read = self.reader.read(images)
            metrics.update(category_shares(prompts, satisfied(prompts, read), shares))
            ceiling = metrics[f"{_ceiling(h)}/overall"]
            relative = metrics[f"{shares}/overall"] / ceiling if ceiling else 0.0
            metrics[f"{shares}/relative_to_ceiling"] = relative
            t2 = time.perf_counter()
            fake = self.reader.crop_features(_subset(inked_crops(images, read), CROP_LIMIT, s.seed))
            enough = len(fake) > s.pr_k
            metrics[f"{crop}cfid"] = fid_from_features(self.real_features, fake) if enough else float("nan")
            pr = precision_recall(self.real_features, fake, k=s.pr_k) if enough else (float("nan"),) * 2
            metrics[f"{crop}precision"], metrics[f"{crop}recall"] = pr
            metrics[f"{crop}digits_per_image"] = float((read[..., 0] != EMPTY).sum(1).float().mean())
            timings.update(
                {
                    f"{shares}_sampling": t1 - t0,
                    f"{shares}_reading": t2 - t1,
                    f"{crop}crop_metrics": time.perf_counter() - t2,
                }
            )
        metrics["precision_recall_space"] = "scene reader features of cell crops"
        metrics["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        return metrics

    def evaluate(self, module: Any) -> dict[str, Any]:
        """Scene metrics of a TextGAN's (or a Sampler's) EMA generator, prompted by each prompt's text."""
        s = self.settings
        return self.score(module_sampler(module, s.batch_size, s.seed, self.progress))


def _ceiling(heldout: bool) -> str:
    return "ceiling_heldout" if heldout else "ceiling"


def _maybe_track(items: list, desc: str, progress: bool) -> Iterable:
    return track(items, len(items), desc) if progress else items


def module_sampler(module: Any, batch_size: int, seed: int, progress: bool = True) -> SampleFn:
    """sample(prompts) for a TextGAN or Sampler: EMA images of each prompt's text, uint8 (N, 3, S, S); z is
    seeded, so every evaluation draws the same noise."""

    sampler = as_sampler(module)

    @torch.no_grad()
    def sample(prompts: list[ScenePrompt]) -> Tensor:
        z = torch.randn(len(prompts), sampler.z_dim, generator=torch.Generator().manual_seed(seed))
        starts = list(range(0, len(prompts), batch_size))
        texts = [p.text for p in prompts]
        return torch.cat(
            [
                to_uint8(sampler(texts[i : i + batch_size], z[i : i + batch_size])).cpu()
                for i in _maybe_track(starts, f"sampling {len(prompts)} scenes", progress)
            ]
        )

    return sample


def evaluate_generator(
    sample: Callable[[list[ScenePrompt]], Tensor],
    *,
    data_dir: str,
    cache_dir: str,
    image_size: int = 32,
    num_samples: int = 10000,
    seed: int = 0,
    heldout_phrasing: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Scene metrics of any generator: `sample(prompts)` -> uint8 (len(prompts), 3, S, S); MNIST digits from
    `data_dir`, the reader cached in `cache_dir`."""
    train, test = (DigitPool(*load_mnist(data_dir, t, download=False), image_size) for t in (True, False))
    pools = (train, test)
    reader, meta = cached_reader(cache_dir, "scenes", pools, image_size)
    settings = EvalSettings(num_samples=num_samples, heldout=heldout_phrasing, seed=seed)
    evaluator = SceneEvaluator(
        reader=reader,
        reader_meta=meta,
        test_pool=pools[1],
        image_size=image_size,
        settings=settings,
        progress=progress,
    )
    return evaluator.score(sample)


def scene_table(metrics: dict[str, Any]) -> str:
    """Per-category shares side by side: training phrasing, held-out phrasing, the reader's ceiling."""

    def cell(key: str) -> str:
        return f"{metrics[key]:>9.3f}" if key in metrics else f"{'-':>9}"

    rows = [f"{'category':<20}{'training':>9}{'held-out':>9}{'ceiling':>9}"]
    for name in (*CATEGORIES, "overall", "seen_pairs"):
        rows.append(
            f"{name:<20}{cell(f'scene/{name}')}{cell(f'scene_heldout/{name}')}{cell(f'ceiling/{name}')}"
        )
    rows.append(
        f"reader: {metrics['reader/cell_accuracy']:.4f} of real test cells read right "
        f"({metrics['reader/inked_cell_accuracy']:.4f} of digits, {metrics['reader/scene_accuracy']:.4f} of "
        f"scenes); digit crops: cfid {metrics['cfid']:.3f}, "
        f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}"
    )
    return "\n".join(rows)


def print_scene_table(metrics: dict[str, Any], file: TextIO | None = None) -> None:
    """Print `scene_table(metrics)` (to stderr by default: stdout carries metrics.json)."""
    print(scene_table(metrics), file=file or sys.stderr, flush=True)
