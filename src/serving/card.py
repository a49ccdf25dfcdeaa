"""The model card: Markdown written from a bundle's run config and the evaluation that scored it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from src.serving.provenance import Evaluation

# Metrics that metrics.json may hold, in the order the card lists them, with how to read them.
METRICS = (
    ("cond_acc", "share of images the reference classifier reads as the prompted class (higher is better)"),
    ("cfid", "FID in the reference classifier's 128-d feature space (lower is better)"),
    ("precision", "k-NN precision in that space: share of images that look real (higher is better)"),
    ("recall", "k-NN recall in that space: share of real variety covered (higher is better)"),
    ("fid", "Inception-v3 FID (lower is better)"),
    ("kid", "Inception-v3 KID (lower is better)"),
)

# Loss terms (conf/loss/terms) the recipe line shows when > 0: the weights that switch a term on, and the
# mode-seeking bound; cond_aug_kl only counts with cond_aug.
SHOWN_TERMS = (
    "matching_aware",
    "mode_seeking",
    "mode_seeking_bound",
    "contrastive",
    "gan_int",
    "instance_noise",
)


def _short(target: Any) -> str:
    return str(target or "?").rpartition(".")[2]


def _count(state: dict[str, Any]) -> str:
    n = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} K"


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _recipe(run: dict[str, Any], gan_step: int) -> list[str]:
    """Table rows of the settings that define the model and how it was trained."""
    m, loss, te, ds = (
        run.get("model", {}),
        run.get("loss", {}),
        run.get("text_encoder", {}),
        run.get("dataset", {}),
    )
    g, d, opt = m.get("generator", {}), m.get("discriminator", {}), loss.get("optimizer", {})
    terms = loss.get("terms") or {}
    weights = [*SHOWN_TERMS, *(["cond_aug_kl"] if g.get("cond_aug") else [])]
    active = ", ".join(f"{k} {terms[k]}" for k in weights if (terms.get(k) or 0) > 0)
    tuner = ", ".join(k for k, v in (run.get("tuner") or {}).items() if v) or "none"
    rows = [
        (
            "generator",
            f"{_short(g.get('_target_'))} (base_channels {g.get('base_channels')}, z_dim {g.get('z_dim')})",
        ),
        ("discriminator", f"{_short(d.get('_target_'))} (base_channels {d.get('base_channels')})"),
        (
            "text encoder",
            f"{_short(te.get('_target_'))} (embed_dim {te.get('embed_dim')}, "
            f"noise_std {te.get('noise_std', '-')})",
        ),
        (
            "loss",
            f"{_short((loss.get('d_loss') or {}).get('_target_'))} / "
            f"{_short((loss.get('g_loss') or {}).get('_target_'))}, n_critic {loss.get('n_critic')}",
        ),
        ("extra loss terms", active or "none"),
        (
            "optimizer",
            f"{_short(opt.get('_target_'))} betas {opt.get('betas')}, lr_g {loss.get('lr_g')}, "
            f"lr_d {loss.get('lr_d')}",
        ),
        ("batch size", ds.get("batch_size")),
        ("G steps", f"{gan_step} (trainer.max_steps {run.get('trainer', {}).get('max_steps')})"),
        ("precision", run.get("trainer", {}).get("precision")),
        ("EMA decay", m.get("ema_decay")),
        ("tuner", tuner),
        ("seed", run.get("seed")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (run.get("versions") or {}).items())),
    ]
    return ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def _metrics(ev: Evaluation) -> list[str]:
    """The metrics table (training templates vs held-out phrasings) and the per-phrasing accuracies."""
    m, n = ev.metrics, ev.metrics.get("num_samples", "?")
    real = ev.settings.get("real_samples")
    lines = [
        f"From `{ev.path}` (G step {m.get('gan_step')}): each column on {n:,} generated images"
        + (f", against {real:,} real training images" if isinstance(real, int) else "")
        + f"; feature space for precision/recall: {m.get('precision_recall_space', '?')}.",
        "",
        "| metric | training phrasings | held-out phrasings | meaning |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {_fmt(m[k])} | {_fmt(m.get('heldout_' + k, '-'))} | {why} |" for k, why in METRICS if k in m
    ]
    lines += _scene_lines(m)
    for title, key in (
        ("Held-out phrasings", "heldout_cond_acc_by_group"),
        ("Training phrasings", "cond_acc_by_group"),
    ):
        groups = m.get(key) or {}
        if groups:
            note = " (templates never used in training)" if key.startswith("heldout") else ""
            lines += ["", f"**{title}**{note}, by template:", ""]
            lines += ["| template | cond_acc |", "|---|---|"]
            lines += [f"| `{t}` | {_fmt(a)} |" for t, a in sorted(groups.items(), key=lambda kv: kv[1])]
    return lines


def _scene_lines(m: dict[str, Any]) -> list[str]:
    """Digit scenes: the share of prompts satisfied per category, beside the reader's ceiling."""
    names = [k.split("/", 1)[1] for k in m if k.startswith("scene/") and not k.endswith("to_ceiling")]
    if not names:
        return []
    lines = [
        "",
        "**Scenes**: share of prompts whose image holds exactly the asked digits with every stated colour "
        "and place, as read by the scene reader; the ceiling is what the reader grants real rendered scenes.",
        "",
        "| category | training phrasings | held-out phrasings | ceiling |",
        "|---|---|---|---|",
    ]
    for name in names:
        row = [_fmt(m.get(f"{prefix}/{name}", "-")) for prefix in ("scene", "scene_heldout", "ceiling")]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def _limits(run: dict[str, Any], ev: Evaluation | None, requires: list[str]) -> list[str]:
    """Known limits, derived from the config and the metrics rather than written by hand."""
    ds = run.get("dataset", {})
    names = list((ds.get("captions") or {}).get("class_names") or [])
    colour = "grayscale" if ds.get("channels") == 1 else "colour"
    out = [f"- Images are {ds.get('image_size')}x{ds.get('image_size')} {colour}."]
    if names:
        out.append(
            f"- It knows {len(names)} classes ({', '.join(names)}). A prompt about anything else is not "
            "refused: it still draws one of these (or a blend), whatever the text asks for."
        )
    if ev is not None:
        groups = ev.metrics.get("heldout_cond_acc_by_group") or {}
        if groups:
            worst = min(groups, key=groups.get)
            out.append(
                f"- New phrasings work less well than trained ones: lowest `{worst}`, {_fmt(groups[worst])}."
            )
        if "scene/overall" in ev.metrics:
            out.append(
                "- Digit quality is judged on cell crops in the reader's features; Inception does not apply."
            )
        elif "fid" not in ev.metrics:
            out.append("- Inception FID/KID were not measured (evaluated with `inception=false`).")
        judge = (
            "a scene reader trained on real rendered scenes"
            if "scene/overall" in ev.metrics
            else ("a classifier trained on the same data set")
        )
        out.append(f"- The metrics come from {judge}, not from human judgement.")
    else:
        out.append("- Not evaluated: run `python -m src.evaluate` on the checkpoint and export again.")
    out += [f"- Needs, not included in the bundle: {r}." for r in requires]
    return out


def model_card(
    bundle: dict[str, Any],
    bundle_path: Path,
    evaluation: Evaluation | None,
    commands: dict[str, str | None],
    notes: str | None = None,
) -> str:
    """Markdown model card for a bundle dict; `commands` maps train/evaluate/export to their command lines."""
    run, step = bundle["run_config"], bundle["gan_step"]
    ds = run.get("dataset", {})
    g, te = bundle["generator"], bundle["text_encoder"]
    g_name, te_name = _short(g["config"].get("_target_")), _short(te["config"].get("_target_"))
    cap = ds.get("captions") or {}
    side = ds.get("image_size")
    size = bundle_path.stat().st_size / 1e6 if bundle_path.is_file() else float("nan")
    example = (cap.get("templates") or ["{name}"])[0]
    names = cap.get("class_names") or ["thing"]
    prompt = example.format(name=names[min(3, len(names) - 1)], index=min(3, len(names) - 1))
    lines = [
        f"# PixelGAN {ds.get('name', '?')}: text-conditioned image generator",
        "",
        f"`{bundle_path.name}` ({size:.1f} MB) holds the EMA generator ({g_name}, "
        f"{_count(g['state_dict'])} weights) and the trained text side ({te_name}, "
        f"{_count(te['state_dict'])} weights) with their configs, after {step} G steps. It loads without "
        "Lightning or the discriminator (`src.serving.bundle.load_sampler`).",
        "",
        "## Use",
        "",
        "```bash",
        f"python -m src.generate ckpt_path={bundle_path} prompts='[\"{prompt}\"]' n_per_prompt=16",
        f"python -m src.demo ckpt_path={bundle_path}",
        "```",
        "",
        "## Data",
        "",
        f"`{ds.get('name')}` ({side}x{side}, channels {ds.get('channels')}), {len(names)} classes. "
        f"Captions: {len(cap.get('templates') or [])} training templates plus {cap.get('augment', 0)} "
        f"rewrites per class; {len(cap.get('heldout_templates') or [])} held-out templates never used in "
        "training.",
        "",
        "## Recipe",
        "",
        *_recipe(run, step),
        "",
        "## How it was made",
        "",
    ]
    for what, cmd in commands.items():
        lines += [f"{what}:", "", "```bash", cmd or "(not recorded)", "```", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += ["## Metrics", ""]
    lines += _metrics(evaluation) if evaluation is not None else ["Not evaluated."]
    lines += ["", "## Known limits", "", *_limits(run, evaluation, bundle.get("requires") or []), ""]
    return "\n".join(lines)
