"""The demo: its actions turn mistakes into a message, and the real page works in a headless browser.

The browser test drives Debian's `chromium` + `chromium-driver` with Selenium against `python -m src.demo`
on 127.0.0.1 (shipped MNIST bundle), and leaves a screenshot and the timings in logs/test_artifacts/.
"""

import base64
import gc
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from src.serving.actions import DemoActions
from src.serving.sampler import Sampler

from conftest import ROOT, TINY, compose_cfg

ARTIFACTS = ROOT / "logs" / "test_artifacts"


@pytest.fixture(scope="module")
def actions(tmp_path_factory):
    """Actions on an untrained tiny Sampler: the wiring and the checks, not the pictures."""
    cfg = compose_cfg("train", TINY, tmp_path_factory.mktemp("demo"))
    torch.manual_seed(0)
    sampler = Sampler(generator=instantiate(cfg.model.generator), text_encoder=instantiate(cfg.text_encoder))
    return DemoActions(sampler)


def test_actions_answer_mistakes_with_a_message(actions):
    grid, status = actions.prompt_grid("a handwritten digit three", 3, 16)
    assert grid.shape == (488, 488, 3) and grid.dtype == np.uint8  # 4x4 of 28 px + 2 px gaps, x4
    assert status == "16 images for “a handwritten digit three”, seed 3"
    walk, gif, _ = actions.interpolation("digit 1", "digit 7", 5, 0)
    assert walk.shape[1] > walk.shape[0] and Image.open(gif).n_frames == 8
    for args, message in [
        (("   ", 0, 16), "error: the prompt is empty"),
        (("three", 0, 0), "error: number of images must be between 1 and 64 (got 0)"),
        (("three", 1.5, 4), "error: seed must be a whole number"),
    ]:
        assert actions.prompt_grid(*args) == (None, actions.prompt_grid(*args)[1])
        assert actions.prompt_grid(*args)[1].startswith(message)
    assert actions.variations(None, "three", 4, 0) == (None, "error: upload an image first")
    broken = DemoActions(None, "models/x.pt is not a readable PixelGAN bundle or checkpoint")
    assert broken.prompt_grid("three", 0, 4)[1] == (
        "error: the model did not load: models/x.pt is not a readable PixelGAN bundle or checkpoint"
    )
    crashing = DemoActions(Sampler(generator=None, text_encoder=torch.nn.Identity()))
    assert crashing.prompt_grid("three", 0, 4)[1].startswith("error: generation failed (")


def test_each_walk_gets_its_own_gif_and_the_folder_goes_with_the_page(actions):
    _, first, _ = actions.interpolation("digit 1", "digit 7", 3, 0)
    _, second, _ = actions.interpolation("digit 1", "digit 7", 3, 1)
    assert first != second and Path(first).is_file() and Path(second).is_file()
    page = DemoActions(actions.sampler)
    folder = page.tmp
    assert folder.is_dir()
    del page
    gc.collect()
    assert not folder.exists()


def _browser_or_skip() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    for module in ("selenium", "gradio"):
        pytest.importorskip(module, reason=f"needs {module}: pip install -e '.[demo]'")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pixels(src: str) -> np.ndarray:
    """An <img> src (a data: URL or a file on the local server) -> its decoded pixels."""
    if src.startswith("data:"):
        raw = base64.b64decode(src.split(",", 1)[1])
    else:  # straight to 127.0.0.1, whatever proxy the environment names
        raw = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(src, timeout=30).read()
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"))


@pytest.mark.slow
def test_the_page_in_a_headless_browser(tmp_path):
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    port, start = _free_port(), time.perf_counter()
    log = (tmp_path / "demo.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "src.demo", f"port={port}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
    ):
        options.add_argument(flag)
    options.add_argument("--disable-background-networking")
    options.add_argument("--window-size=1200,1400")
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        while "serving" not in (tmp_path / "demo.log").read_text():
            assert server.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.perf_counter() - start < 240, "the demo did not start in 240 s"
            time.sleep(0.25)
        browser = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
        browser.get(url)
        wait = WebDriverWait(browser, 120)

        def grid_src(previous: str | None = None) -> str:
            def ready(d):
                found = d.find_elements(By.CSS_SELECTOR, "#grid img")
                src = found[0].get_attribute("src") if found else None
                return src if src and src != previous else False

            return wait.until(ready)

        def status() -> str:
            return browser.find_element(By.CSS_SELECTOR, "#status").text

        first = grid_src()  # drawn when the page opens
        first_image_s = time.perf_counter() - start
        box = browser.find_element(By.CSS_SELECTOR, "#prompt textarea, #prompt input")
        seen = {}
        for prompt in ("a handwritten digit zero", "someone wrote the number seven"):
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(prompt)
            clicked = time.perf_counter()
            browser.find_element(By.CSS_SELECTOR, "#generate").click()
            first = grid_src(first)
            wait.until(lambda d, p=prompt: p in status())
            seen[prompt] = (_pixels(first), time.perf_counter() - clicked)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "demo_page.png"))

        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("   ")
        browser.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: status().startswith("error:"))
        assert "the prompt is empty" in status() and "Traceback" not in browser.page_source
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()

    (zero, zero_s), (seven, seven_s) = seen.values()
    assert zero.shape == seven.shape and zero.shape[0] >= 4 * 28  # a 4x4 grid, enlarged
    assert zero.std() > 20 and seven.std() > 20  # strokes on a background, not a blank or flat image
    assert np.abs(zero.astype(int) - seven.astype(int)).mean() > 5  # two prompts, two different grids
    timings = {"first_image_s": first_image_s, "prompt_s": [zero_s, seven_s]}
    (ARTIFACTS / "demo_timings.json").write_text(json.dumps(timings, indent=2))
    print(f"demo: first image {first_image_s:.1f} s after start, prompts {zero_s:.2f} s / {seven_s:.2f} s")
