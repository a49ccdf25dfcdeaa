"""Plot the hyper-parameter schedule each trial of a `src.tune` experiment trained under (PNG, no matplotlib).

One panel per varied key (log scale for learning rates), one line per trial, x = G step; the winner is drawn
thick. Reads each trial's newest `checkpoint_*/schedule.json` (its weights' whole history: a trial that
copied another's checkpoint carries that trial's earlier segments).

    python experiments/plot_schedules.py logs/tune/pbt_mnist --out experiments/pbt_schedules.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.tuner.recorded import read_schedule  # noqa: E402

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
W, H, PAD = 520, 200, 46


def trial_schedules(experiment: Path) -> dict[str, list[tuple[int, dict]]]:
    """{trial folder name: [(start G step, params), ...]} from each trial's newest checkpoint."""
    out = {}
    for trial in sorted(p for p in experiment.iterdir() if p.is_dir()):
        checkpoints = sorted(trial.glob("checkpoint_*/schedule.json"))
        if checkpoints:
            segments, _ = read_schedule(checkpoints[-1])
            out[trial.name] = [(s.start, s.params) for s in segments]
    return out


def panel(key: str, series: dict[str, list[tuple[int, float]]], end: int, best: str | None) -> Image.Image:
    """One key's step lines for every trial: {trial: [(start, value), ...]} -> RGB image (W, H)."""
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    values = [v for pts in series.values() for _, v in pts]
    log = key.endswith(("lr_g", "lr_d")) and min(values) > 0
    f = math.log10 if log else float
    lo, hi = f(min(values)), f(max(values))
    lo, hi = (lo - 0.5, hi + 0.5) if hi == lo else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))

    def xy(step: int, v: float) -> tuple[float, float]:
        return PAD + (W - 2 * PAD) * step / end, H - PAD + (2 * PAD - H) * (f(v) - lo) / (hi - lo)

    d.rectangle([PAD, PAD, W - PAD, H - PAD], outline="black")
    d.text((PAD, 8), f"{key}{' (log scale)' if log else ''}", fill="black")
    for v in (min(values), max(values)):
        d.text((2, xy(0, v)[1] - 6), f"{v:.3g}", fill="black")
    d.text((PAD, H - PAD + 6), "0", fill="black")
    d.text((W - PAD - 30, H - PAD + 6), f"{end} G steps", fill="black")
    for i, (trial, pts) in enumerate(series.items()):
        line = []
        for j, (start, v) in enumerate(pts):
            stop = pts[j + 1][0] if j + 1 < len(pts) else end
            line += [xy(start, v), xy(stop, v)]
        d.line(line, fill=COLOURS[i % len(COLOURS)], width=4 if trial == best else 1)
        d.text((W - PAD + 4, PAD + 12 * i), trial[-5:], fill=COLOURS[i % len(COLOURS)])
    return img


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("experiment", type=Path, help="the experiment folder (<tune.storage_path>/<tune.name>)")
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default: <experiment>/schedules.png)")
    args = ap.parse_args()
    schedules = trial_schedules(args.experiment)
    if not schedules:
        raise SystemExit(f"error: no trial_*/checkpoint_*/schedule.json under {args.experiment}")
    results = args.experiment / "results.json"
    summary = json.loads(results.read_text()) if results.is_file() else {}
    steps = {t["trial"]: t.get("gan_step") or 0 for t in summary.get("trials", [])}
    end = max([*steps.values(), *(s for segs in schedules.values() for s, _ in segs)], default=1) or 1
    keys = sorted({k for segs in schedules.values() for _, params in segs for k in params})
    best = summary.get("best")
    panels = []
    for k in keys:
        series = {t: [(s, p[k]) for s, p in segs if k in p] for t, segs in schedules.items()}
        panels.append(panel(k, series, end, best))
    sheet = Image.new("RGB", (W * 2, H * math.ceil(len(panels) / 2)), "white")
    for i, img in enumerate(panels):
        sheet.paste(img, ((i % 2) * W, (i // 2) * H))
    out = args.out or args.experiment / "schedules.png"
    sheet.save(out)
    print(f"wrote {out} ({len(schedules)} trials, {len(keys)} hyper-parameters)")


if __name__ == "__main__":
    main()
