"""Demo page: `python -m src.demo [ckpt_path=<bundle>|<checkpoint>|latest] [port=7860]` (`make demo`).

Serves a Gradio page on 127.0.0.1 (prompt -> grid, prompt walk + GIF, variations of an upload) for the
shipped MNIST bundle by default. Nothing leaves the machine: no share link, no analytics, no web fonts.
A model that does not load is reported on the page (and as one `error: ...` line here).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

# Gradio reports usage and checks for updates over the network unless told not to, before it is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from src.models.factory import CheckpointError  # noqa: E402
from src.serving.actions import DemoActions, Limits  # noqa: E402
from src.serving.bundle import BundleError, load_sampler  # noqa: E402
from src.serving.page import build_page, theme  # noqa: E402
from src.serving.sampling import noise  # noqa: E402
from src.utils.cli import check_argv, run_entry  # noqa: E402
from src.utils.config import ConfigError  # noqa: E402
from src.utils.inputs import check_device, check_ints, checkpoint_path  # noqa: E402

# Errors about the model file: shown on the page, which still opens.
MODEL_ERRORS = (ConfigError, CheckpointError, BundleError)


def load_actions(cfg: DictConfig) -> tuple[DemoActions, str]:
    """Load the model and draw once (the frozen sentence model loads now, not on the first click)."""
    limits = Limits(cfg.max_images, cfg.max_steps, cfg.like_steps, float(cfg.like_sigma))
    source = str(cfg.ckpt_path)
    try:
        path = checkpoint_path(cfg)
        source = str(path)
        sampler = load_sampler(path, device=cfg.device)
        sampler(["warm-up"], noise(1, sampler.z_dim, 0))
    except MODEL_ERRORS as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return DemoActions(None, str(err), limits), source
    return DemoActions(sampler, None, limits), source


def check_port(host: str, port: int) -> None:
    """Fail before the model loads if the address cannot be served (port taken, unknown host)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # As the server will: a port in TIME_WAIT is usable, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({err.strerror or err}); give another port=..."
        ) from err


def serve(cfg: DictConfig, block: bool = True) -> tuple[object, str]:
    """Start the page; returns (the Gradio app, its URL). `block=False` returns while it keeps serving."""
    start = time.perf_counter()
    check_ints(cfg, {"port": 1, "max_images": 1, "max_steps": 2, "like_steps": 1})
    check_device(cfg.device)
    check_port(cfg.host, cfg.port)
    actions, source = load_actions(cfg)
    page = build_page(actions, source)
    try:
        page.launch(
            server_name=cfg.host,
            server_port=cfg.port,
            share=False,
            inbrowser=False,
            quiet=True,
            ssr_mode=False,
            footer_links=[],
            theme=theme(),
            prevent_thread_lock=True,
        )
    except OSError as err:  # taken between the check above and now
        raise ConfigError(
            f"cannot serve on {cfg.host}:{cfg.port}: the port is in use; give another port=..."
        ) from err
    url = f"http://{cfg.host}:{cfg.port}"
    print(
        f"serving {source} at {url} (ready in {time.perf_counter() - start:.1f} s); Ctrl+C stops it",
        flush=True,
    )
    if block:
        page.block_thread()
    return page, url


@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    """CLI entry: serve the page until Ctrl+C; settings the user can fix end with one `error: ...` line."""
    # Gradio's HTTP client logs every request to its own server at INFO, which Hydra's logging shows.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run_entry(serve, cfg, (ConfigError,))


if __name__ == "__main__":
    check_argv("demo")
    main()
