"""logger=tensorboard: event files in the run folder holding the sample grids and their prompts."""

import io

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.training import train


def test_tensorboard_logger_records_sample_grids_with_prompts(tiny_cfg, tmp_path):
    cfg = tiny_cfg("logger=tensorboard", "trainer.max_steps=2", "callbacks.samples.every_n_steps=1")
    train(cfg)
    (events,) = (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [1, 2]  # counted in G steps, like the PNG files
    # One row per prompt (10 digit classes), model.n_sample=2 images per row, 28 px + 2 px padding.
    assert (grids[-1].height, grids[-1].width) == (10 * 30 + 2, 2 * 30 + 2)
    png = np.asarray(Image.open(io.BytesIO(grids[-1].encoded_image_string)).convert("RGB"))
    on_disk = np.asarray(Image.open(tmp_path / "run" / "samples" / "step_0000002.png").convert("RGB"))
    assert np.array_equal(png, on_disk)
    (text,) = [e for e in acc.Tensors("samples/prompts/text_summary") if e.step == 2]
    rows = text.tensor_proto.string_val[0].decode().splitlines()
    assert rows[0] == "- row 0: a handwritten digit zero" and len(rows) == 10
