"""Digit scenes: the data contract (cells, size, offsets, colours, held-out pairs, seeds), true captions,
and the word-level text path (char-CNN word vectors, word-attention G, word-region D) training on them."""

import functools
import random

import pytest
import torch

from src.data.scene_data import SceneDataModule
from src.data.scene_text import (
    ALL_EDITS,
    EDITS,
    HELDOUT_TEMPLATES,
    Description,
    Item,
    caption,
    describe,
    edit,
    false_description,
    hard_negative,
    true_relations,
)
from src.data.scenes import (
    CELLS,
    EMPTY,
    PALETTE,
    DigitPool,
    count_digits,
    digit_side,
    is_heldout_pair,
    make_scenes,
    render_scenes,
    sample_layouts,
)
from src.data.sources import load_digits
from src.models.components.discriminator import (
    GridProjectionDiscriminator,
    SNProjectionDiscriminator,
    WordRegionDiscriminator,
)
from src.models.components.generator import AttentionGenerator, CellFiLM, CellFiLMGenerator, FiLMGenerator
from src.models.components.text_encoder import CharCNNEncoder
from src.serving.sampling import interpolate_prompts, invert, sample
from src.training import train

from conftest import compose_cfg

DIGITS_SOURCE = ["dataset.digit_source._target_=src.data.sources.load_digits", "dataset.num_scenes=64"]


def square_pool(size: int) -> DigitPool:
    """Every 'digit' a full square of intensity 200, so painted boxes can be measured exactly."""
    return DigitPool(torch.full((10, 1, 8, 8), 200, dtype=torch.uint8), torch.arange(10), size)


def test_layouts_hold_one_to_four_digits_and_never_a_heldout_pair():
    lay = sample_layouts(4000, torch.Generator().manual_seed(0))
    counts = count_digits(lay)
    assert counts.min() == 1 and counts.max() == 4 and set(counts.tolist()) == {1, 2, 3, 4}
    empty = lay[..., 0] == EMPTY
    assert torch.equal(empty, lay[..., 1] == EMPTY)
    assert lay[..., 0][~empty].max() == 9 and lay[..., 1][~empty].max() == len(PALETTE) - 1
    assert not is_heldout_pair(lay[..., 0], lay[..., 1]).any()
    # Without the rule every colour is drawn: held-out pairs then occur.
    free = sample_layouts(4000, torch.Generator().manual_seed(0), heldout_pairs=False)
    assert is_heldout_pair(free[..., 0], free[..., 1]).any()


@pytest.mark.parametrize("size", [32, 48, 64])
def test_each_digit_is_painted_in_its_cell_at_seven_eighths_with_its_colour(size):
    cell, side = size // 2, digit_side(size)
    assert side == round(cell * 7 / 8)
    layouts = torch.full((40, 4, 2), EMPTY)
    layouts[:, 3] = torch.tensor([5, 0])  # a red 5 in the bottom right
    layouts[:20, 0] = torch.tensor([2, 4])  # and a cyan 2 in the top left in half of them
    images = render_scenes(layouts, square_pool(size), size, torch.Generator().manual_seed(1))
    assert images.shape == (40, 3, size, size)
    red = images[:, 0, cell:, cell:]
    assert images[:, 1:, cell:, cell:].sum() == 0  # red lights one channel only
    assert set(red.unique().tolist()) == {0, 200}  # intensity x colour
    ys, xs = torch.nonzero(red[0] > 0, as_tuple=True)
    assert ys.max() - ys.min() + 1 == side and xs.max() - xs.min() + 1 == side
    reach, centre = cell // 16, (cell - side) // 2
    offsets = [int(torch.nonzero(r.sum(1))[0]) - centre for r in red]
    assert max(map(abs, offsets)) <= reach and len(set(offsets)) > 1
    cyan = images[:20, :, :cell, :cell]
    assert cyan[:, 0].sum() == 0 and cyan[:, 1].sum() > 0 and torch.equal(cyan[:, 1], cyan[:, 2])
    assert images[20:, :, :cell, :cell].sum() == 0  # empty cells stay black


def test_scenes_are_a_pure_function_of_the_seed():
    images, labels = load_digits("", train=True)
    pool = DigitPool(images, labels, 32)
    a_img, a_lay = make_scenes(50, pool, 32, seed=3, chunk=16)
    b_img, b_lay = make_scenes(50, pool, 32, seed=3, chunk=16)
    assert torch.equal(a_img, b_img) and torch.equal(a_lay, b_lay)
    c_img, _ = make_scenes(20, pool, 32, seed=3, chunk=16)
    assert torch.equal(c_img, a_img[:20])  # the first scenes do not depend on how many are drawn
    assert not torch.equal(make_scenes(50, pool, 32, seed=4, chunk=16)[0], a_img)


def test_every_training_description_is_true_and_states_what_it_says():
    rng = random.Random(0)
    lay = sample_layouts(1500, torch.Generator().manual_seed(2))
    for layout in lay:
        desc = describe(layout, rng)
        assert desc.satisfied_by(layout)
        if any(it.digit is not None for it in desc.items):
            wrong = layout.clone()
            c = int(torch.nonzero(wrong[:, 0] >= 0)[0])
            wrong[c, 0] = (wrong[c, 0] + 1) % 10
            other = wrong.clone()
            other[other[:, 0] >= 0, 0] = (int(wrong[c, 0]) + 5) % 10
            # Changing a stated digit breaks it unless the description leaves that digit free.
            assert not desc.satisfied_by(other) or all(it.digit is None for it in desc.items)
        extra = layout.clone()
        free = torch.nonzero(extra[:, 0] == EMPTY).flatten()
        if len(free):
            extra[free[0]] = torch.tensor([1, 6])
            assert not desc.satisfied_by(extra)  # the count is exact


def test_relations_and_cells_follow_the_grid():
    assert set(true_relations(0, 3)) == {"above", "left of"}
    assert true_relations(1, 0) == ["right of"]
    layout = torch.full((4, 2), EMPTY)
    layout[0], layout[3] = torch.tensor([3, 0]), torch.tensor([5, 2])  # red 3 top left, blue 5 bottom right
    above = Description((Item(3), Item(5)), (0, "above", 1))
    assert above.satisfied_by(layout)
    assert not Description((Item(3), Item(5)), (0, "below", 1)).satisfied_by(layout)
    assert Description((Item(3, colour=0, cell=0), Item(5, colour=2))).satisfied_by(layout)
    assert not Description((Item(3, colour=2), Item(5, colour=0))).satisfied_by(layout)  # colours bound
    text = caption(Description((Item(3, 0, 0),)), random.Random(0))
    assert "red" in text and "top left" in text and ("3" in text or "three" in text)


def test_heldout_phrasings_never_occur_in_training_captions():
    rng = random.Random(1)
    lay = sample_layouts(500, torch.Generator().manual_seed(5))
    train_caps = [caption(describe(x, rng), rng) for x in lay]
    heldout_caps = [caption(describe(x, rng), rng, heldout=True) for x in lay]
    markers = [t.replace("{x}", "").strip(" ,") for t in HELDOUT_TEMPLATES] + ["coloured", "corner"]
    assert not any(m in c for c in train_caps for m in markers)
    assert all(any(m in c for m in markers) for c in heldout_caps)


def test_hard_negatives_are_one_edit_away_false_and_never_state_a_heldout_pair():
    rng = random.Random(0)
    lay = sample_layouts(600, torch.Generator().manual_seed(3))
    found = 0
    for layout in lay:
        desc = describe(layout, rng)
        changed = edit(desc, rng)
        assert changed != desc and abs(len(changed.items) - len(desc.items)) <= 1
        wrong = false_description(layout, rng, heldout_pairs=True)
        if wrong is None:
            continue
        found += 1
        assert not wrong.satisfied_by(layout)
        assert not any(i.digit is not None and i.colour == i.digit % 6 for i in wrong.items)
        assert hard_negative(layout, rng, heldout_pairs=True) is not None
    assert found >= 0.95 * len(lay)


def test_scene_datamodule_serves_hard_negatives_as_mismatches():
    kw = dict(digit_source=functools.partial(load_digits), data_dir="", num_scenes=48, batch_size=8, seed=0)
    dm = SceneDataModule(hard_negatives=2, hard_share=1.0, **kw)
    dm.setup()
    plain = SceneDataModule(**kw)
    plain.setup()
    # The true captions are the same as without hard negatives; the bank also holds the negatives.
    assert dm.table.captions == plain.table.captions and len(dm.captions) > len(plain.captions)
    batch = next(iter(dm.train_dataloader()))
    for mid, lay in zip(batch["mismatch_ids"], batch["labels"]):
        row = [torch.equal(lay, x) for x in dm.train_labels].index(True)
        text = dm.captions[int(mid)]
        assert text not in dm.table.captions[row]
        assert text in [dm.captions[int(i)] for i in dm.table.neg_ids[row, : dm.table.neg_counts[row]]]
    assert dm.true_caption_count == len(plain.captions)  # what standing statistics and encoders learn from
    # Negatives that are never used leave the batch stream as it was.
    unused = SceneDataModule(hard_negatives=2, hard_share=0.0, **kw)
    unused.setup()
    for a, b in zip(unused.train_dataloader(), plain.train_dataloader()):
        assert all(torch.equal(a[k], b[k]) for k in ("caption_ids", "mismatch_ids", "images"))
    with pytest.raises(ValueError, match="hard_negatives"):
        SceneDataModule(hard_negatives=-1, **kw)
    with pytest.raises(ValueError, match="dataset.hard_share"):
        SceneDataModule(hard_share=1.5, **kw)
    with pytest.raises(ValueError, match=r"hard_negative_edits: .*\(got \['swop'\]\)"):
        SceneDataModule(hard_negative_edits=["swap", "swop"], **kw)


def test_scene_evaluation_refuses_class_accuracy_in_score_or_monitor():
    from src.callbacks.evaluation import EvalCallback
    from src.metrics.scene_eval import SceneEvaluator
    from src.utils.config import ConfigError

    cb = EvalCallback(cache_dir="c", ckpt_dir="k", score={"eval/heldout_cond_acc": -100.0, "eval/cfid": 1.0})
    cb._evaluator = SceneEvaluator.__new__(SceneEvaluator)  # only its type matters to the check
    with pytest.raises(ConfigError, match=r"class accuracies \['eval/heldout_cond_acc'\]"):
        cb._check_names()
    cb.score = {"eval/scene_heldout/overall": -100.0, "eval/cfid": 1.0}
    cb._check_names()


def test_scene_datamodule_serves_scenes_with_their_own_captions():
    dm = SceneDataModule(
        digit_source=functools.partial(load_digits), data_dir="", num_scenes=48, batch_size=8, seed=0
    )
    dm.setup()
    assert dm.train_images.shape == (48, 3, 32, 32) and dm.train_labels.shape == (48, 4, 2)
    batch = next(iter(dm.train_dataloader()))
    bank = dm.captions
    for cid, lay in zip(batch["caption_ids"], batch["labels"]):
        text = bank[int(cid)]
        assert text in dm.table.captions[[torch.equal(lay, x) for x in dm.train_labels].index(True)]
    test_images, test_layouts = dm.load_split(train=False)
    assert test_images.shape[1:] == (3, 32, 32) and not torch.equal(test_layouts[:8], dm.train_labels[:8])


def test_word_vectors_ignore_padding_and_the_word_models_read_them():
    torch.manual_seed(0)
    short, long = CharCNNEncoder(max_len=40, words=8), CharCNNEncoder(max_len=80, words=8)
    long.load_state_dict(short.state_dict())
    texts = ["a red 3 above a blue 5", "two 7s"]
    a, b = short(short.prepare(texts)), long(long.prepare(texts))
    assert a.shape == (2, 9, 128) and torch.allclose(a, b, atol=1e-5)
    assert torch.equal((a[:, 1:].abs().amax(-1) > 0).sum(1), torch.tensor([7, 2]))
    kw = {"image_size": 32, "channels": 3, "base_channels": 8, "text_dim": 128}
    G, film = AttentionGenerator(**kw), FiLMGenerator(**kw)
    film.load_state_dict(G.state_dict(), strict=False)
    z = torch.randn(2, 128)
    G.eval(), film.eval()
    # Zero-initialised attention: the word G starts as its sentence-only FiLM version.
    assert torch.allclose(G(z, a.detach()), film(z, a.detach()), atol=1e-6)
    D = WordRegionDiscriminator(**kw)
    swapped = a.detach().clone()
    swapped[:, 1:] = swapped[:, 1:].flip(0)  # same sentence vectors, other words
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert not torch.allclose(D(x, a.detach()), D(x, swapped))


def test_scenes_train_end_to_end_with_word_attention(tiny_cfg):
    cfg = tiny_cfg(
        "dataset=scenes",
        *DIGITS_SOURCE,
        "text_encoder=charcnn_words",
        "text_encoder.embed_dim=16",
        "model/generator=attention",
        "model/discriminator=word_region",
        "trainer.max_steps=2",
    )
    _, objs = train(cfg)
    model = objs["model"]
    assert model.gan_step == 2
    with torch.no_grad():
        img = model.generate(["a red 3 in the top left"], torch.zeros(1, model.G.z_dim))
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    # Prompt walks and inversion read word-level text too (demo tabs, generate interpolate=/like=).
    z = torch.randn(2, model.G.z_dim)
    walk = interpolate_prompts(model, "a red 3", "two blue sevens in the top left", z, steps=4)
    assert walk.shape == (8, 3, 32, 32)
    ends = sample(model, ["a red 3", "two blue sevens in the top left"], z[:1].repeat(2, 1))
    assert torch.allclose(walk[[0, 3]], ends, atol=1e-5)
    found, mse = invert(model, ends[:1], "a red 3", steps=3, starts=2)
    assert found.shape == (1, model.G.z_dim) and mse >= 0


def test_grid_projection_judges_the_text_per_cell_and_grid_1_is_the_projection_d():
    kw = {"image_size": 32, "channels": 3, "base_channels": 8, "text_dim": 16}
    torch.manual_seed(0)
    plain, one = SNProjectionDiscriminator(**kw), GridProjectionDiscriminator(grid=1, **kw)
    one.load_state_dict(plain.state_dict())
    x, t = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randn(3, 16)
    plain.eval(), one.eval()
    assert torch.allclose(one(x, t), plain(x, t), atol=1e-5)
    D = GridProjectionDiscriminator(grid=2, **kw).eval()
    assert D.features(x).shape == (3, D.feature_dim, 2, 2)
    # The same features in the top-left cell or in the bottom-right one: one unconditional score, two
    # text scores (a pooled projection D cannot tell where a thing is).
    h = torch.zeros(1, D.feature_dim, 2, 2)
    h[..., 0, 0] = torch.rand(D.feature_dim)
    moved = h.flip(2, 3)
    assert torch.allclose(D.head(h.sum((2, 3))), D.head(moved.sum((2, 3))))
    assert not torch.allclose(D.judge(h, t[:1]), D.judge(moved, t[:1]))
    with pytest.raises(ValueError, match="grid=5 must be between 1"):
        GridProjectionDiscriminator(grid=5, **kw)


def test_contrastive_cells_let_the_image_text_term_see_where_a_thing_is():
    kw = {"image_size": 32, "channels": 3, "base_channels": 8, "text_dim": 16, "contrastive_dim": 4}
    torch.manual_seed(0)
    pooled = GridProjectionDiscriminator(**kw)
    cells = GridProjectionDiscriminator(contrastive_cells=True, **kw)
    assert cells.image_head.in_features == 4 * cells.feature_dim
    h = torch.zeros(1, cells.feature_dim, 2, 2)
    h[..., 0, 0] = torch.rand(cells.feature_dim)
    moved = h.flip(2, 3)  # the same thing, top left -> bottom right
    assert torch.allclose(pooled.contrastive_image(h), pooled.contrastive_image(moved))
    assert not torch.allclose(cells.contrastive_image(h), cells.contrastive_image(moved))
    x, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    img, txt = cells.contrastive_pair(cells.features(x), t)
    assert img.shape == txt.shape == (2, 4)


def test_scenes_train_with_the_grid_projection_d_and_the_contrastive_term(tiny_cfg):
    cfg = tiny_cfg(
        "dataset=scenes",
        *DIGITS_SOURCE,
        "model/discriminator=grid_projection",
        "model.discriminator.contrastive_dim=8",
        "loss.terms.contrastive=1.0",
        "trainer.max_steps=2",
    )
    _, objs = train(cfg)
    assert objs["model"].gan_step == 2
    assert isinstance(objs["model"].D, GridProjectionDiscriminator) and objs["model"].D.grid == 2


def test_scenes_bring_their_measured_recipe_and_the_command_line_wins(tmp_path):
    cfg = compose_cfg("train", ["dataset=scenes"], tmp_path)
    assert cfg.text_encoder._target_.endswith("CharCNNEncoder") and cfg.text_encoder.max_len == 176
    assert not cfg.text_encoder.get("words") and cfg.text_encoder.max_len >= 163  # the longest caption
    assert cfg.model.generator._target_.endswith(".CellFiLMGenerator") and cfg.model.generator.grid == 2
    assert cfg.model.discriminator._target_.endswith(".SNProjectionDiscriminator")
    assert cfg.model.discriminator.contrastive_dim == 128 and cfg.loss.terms.contrastive == 1.0
    assert cfg.loss.terms.contrastive_negatives and cfg.loss.terms.matching_aware == 0.5
    assert cfg.dataset.hard_negatives == 2
    assert cfg.dataset.caption_noise == 0.25 and cfg.dataset.caption_noise_words == "english"
    assert cfg.dataset.caption_noise_marks == 2
    assert cfg.loss.terms.mode_seeking == 0.3 and cfg.loss.terms.mode_seeking_bound == 0.072
    assert cfg.trainer.max_steps == cfg.dataset.train_steps == 5200
    mine = compose_cfg("train", ["dataset=scenes", "text_encoder=minilm", "model/generator=film"], tmp_path)
    assert mine.text_encoder._target_.endswith("MiniLMEncoder")
    assert mine.model.generator._target_.endswith(".FiLMGenerator")
    other = compose_cfg("train", ["dataset=mnist"], tmp_path)
    assert other.model.generator._target_.endswith(".FiLMGenerator") and not other.loss.terms.contrastive
    assert other.text_encoder._target_.endswith("MiniLMEncoder")
    plain = compose_cfg(
        "train", ["dataset=scenes", "model/discriminator=grid_projection", "loss/terms=default"], tmp_path
    )
    assert plain.model.discriminator._target_.endswith("GridProjectionDiscriminator")
    assert plain.loss.terms.contrastive == 0.0 and plain.model.discriminator.contrastive_dim == 0
    assert plain.loss.terms.matching_aware == 0.1 and plain.loss.terms.mode_seeking_bound == 0.0


def test_heldout_pair_prompts_mix_one_and_two_digits_as_seen_pair_prompts_do():
    from src.metrics.scene_prompts import category_prompts

    held = category_prompts("heldout_pairs", 600, seed=0)
    seen = category_prompts("colour", 300, seed=0) + category_prompts("colour_attribution", 300, seed=0)
    share = lambda ps: sum(len(p.description.items) == 1 for p in ps) / len(ps)  # noqa: E731
    assert abs(share(held) - share(seen)) < 0.07
    pairs = lambda p: is_heldout_pair(p.layout[:, 0], p.layout[:, 1]).any()  # noqa: E731
    assert all(pairs(p) for p in held) and not any(pairs(p) for p in seen)
    assert all(p.description.satisfied_by(p.layout) for p in held + seen)


def test_swap_edits_keep_every_word_and_move_a_colour_to_the_other_digit():
    # "a red 3 and a blue 5": a swap says "a blue 3 and a red 5", the same words, false of the scene.
    desc = Description((Item(3, 0, None), Item(5, 2, None)))
    layout = torch.full((len(CELLS), 2), EMPTY)
    layout[0], layout[3] = torch.tensor([3, 0]), torch.tensor([5, 2])
    assert desc.satisfied_by(layout)
    rng = random.Random(0)
    swaps = set()
    for _ in range(200):
        changed = edit(desc, rng)
        same_words = sorted(i.digit for i in changed.items) == [3, 5] and sorted(
            i.colour for i in changed.items
        ) == [0, 2]
        if same_words and changed != desc:
            swaps.add(changed.items)
            assert not changed.satisfied_by(layout)
    # Swapping the colours or the digits says the same thing: the blue one is the 3.
    assert swaps == {(Item(3, 2, None), Item(5, 0, None)), (Item(5, 0, None), Item(3, 2, None))}


def test_copy_edits_name_one_digit_twice_and_only_when_asked_for():
    # "a 3 and a red 5" -> "a 3 and a red 3" / "a 5 and a red 5": a digit drawn twice is false of the scene.
    desc = Description((Item(3, None, None), Item(5, 0, None)))
    layout = torch.full((len(CELLS), 2), EMPTY)
    layout[0], layout[3] = torch.tensor([3, 1]), torch.tensor([5, 0])
    rng = random.Random(0)
    copies = set()
    for _ in range(300):
        changed = edit(desc, rng, ALL_EDITS)
        if len(changed.items) == 2 and changed.items[0].digit == changed.items[1].digit:
            copies.add(changed.items)
            assert not changed.satisfied_by(layout)
    assert copies == {(Item(3, None, None), Item(3, 0, None)), (Item(5, None, None), Item(5, 0, None))}
    # Without "copy" among the edits, the other edits draw exactly the random stream they drew before it.
    old, new = random.Random(1), random.Random(1)
    assert [edit(desc, old) for _ in range(50)] == [edit(desc, new, EDITS) for _ in range(50)]
    only = [edit(desc, rng, ("copy",)) for _ in range(20)]
    assert all(len({i.digit for i in d.items}) == 1 for d in only)
    # One digit has nothing to copy: the description comes back unchanged, never another kind of edit.
    single = Description((Item(3, 0, None),))
    assert all(edit(single, rng, ("copy",)) == single for _ in range(20))


def test_cell_film_modulates_each_cell_by_its_own_code_and_trains_on_scenes(tiny_cfg):
    norm = CellFiLM(4, 6)
    torch.nn.init.normal_(norm.affine.weight)
    norm.eval()
    h, cells = torch.randn(1, 4, 8, 8), torch.randn(1, 2, 2, 6)
    other = cells.clone()
    other[0, 0, 1] += 1.0  # only the top right cell's code changes
    moved = (norm(h, cells) - norm(h, other)).abs().sum(1)[0] > 0
    assert moved[:4, 4:].all() and not moved[4:].any() and not moved[:, :4].any()
    with pytest.raises(ValueError, match="grid=5"):
        CellFiLMGenerator(image_size=32, channels=3, base_channels=8, text_dim=16, grid=5)
    odd = CellFiLMGenerator(image_size=28, channels=3, base_channels=8, text_dim=16, z_dim=8)  # 7 px first
    assert odd(torch.randn(2, 8), torch.randn(2, 16)).shape == (2, 3, 28, 28)
    cfg = tiny_cfg("dataset=scenes", *DIGITS_SOURCE, "model/generator=cell_film", "trainer.max_steps=2")
    _, objs = train(cfg)
    model = objs["model"]
    assert isinstance(model.G, CellFiLMGenerator) and model.gan_step == 2
    z = torch.randn(4, model.G.z_dim)
    with torch.no_grad():
        img = model.generate(["a red 3 and a blue 5"] * 4, z)
    assert img.shape == (4, 3, 32, 32) and torch.isfinite(img).all()


@pytest.mark.parametrize(("words", "marks"), [("strings", 0), ("english", 0), ("english", 2)])
def test_caption_noise_keeps_the_claims_in_order_and_never_writes_a_grammar_word(words, marks):
    from src.data.captions import PUNCTUATION, english_words, noise_caption
    from src.data.scene_text import CONTENT_WORDS, GRAMMAR_WORDS, STRUCTURE_WORDS

    rng = random.Random(0)
    keep = CONTENT_WORDS | STRUCTURE_WORDS
    pool = english_words(GRAMMAR_WORDS) if words == "english" else ()
    kept = lambda text: [w.strip(PUNCTUATION) for w in text.split() if w.strip(PUNCTUATION) in keep]  # noqa: E731
    changed = marked = 0
    for layout in sample_layouts(400, torch.Generator().manual_seed(2)):
        text = caption(describe(layout, rng), rng)
        noised = noise_caption(text, keep, GRAMMAR_WORDS, rng, pool=pool, marks=marks)
        assert kept(noised) == kept(text)
        marked += sum(noised.count(m) for m in PUNCTUATION) > text.count(",")
        new_words = {w.strip(PUNCTUATION) for w in noised.split()} - {
            w.strip(PUNCTUATION) for w in text.split()
        }
        assert not new_words & GRAMMAR_WORDS and all(w.isalpha() and w.islower() for w in new_words)
        assert not pool or new_words <= set(pool)
        changed += noised != text
    assert changed > 0.8 * 400
    assert (marked > 0.5 * 400) if marks else not marked
    # The held-out phrasings' own words are grammar words: noise never writes them, nor (English) their stems.
    assert {"there", "shows", "coloured", "corner", "ink", "higher", "than"} <= GRAMMAR_WORDS - CONTENT_WORDS
    if pool:
        assert len(pool) > 20000 and "zebra" in pool
        assert not {"colour", "colored", "shown", "drawing", "corners", "highest", "therefore"} & set(pool)


def test_caption_noise_rewrites_true_captions_and_hard_negatives_alike():
    from src.data.scene_data import NOISED_MAX_CHARS

    kw = dict(digit_source=functools.partial(load_digits), data_dir="", num_scenes=300, batch_size=8, seed=0)
    plain = SceneDataModule(hard_negatives=2, **kw)
    plain.setup()
    off = SceneDataModule(hard_negatives=2, caption_noise=0.0, **kw)
    off.setup()
    assert off.captions == plain.captions  # off is the data set as it was
    noisy = SceneDataModule(hard_negatives=2, caption_noise=0.5, **kw)
    noisy.setup()

    def negatives(dm: SceneDataModule) -> list[str]:
        t = dm.table
        return [dm.captions[int(i)] for row, n in zip(t.neg_ids, t.neg_counts) for i in row[:n]]

    def share_changed(a: list[str], b: list[str]) -> float:
        assert len(a) == len(b)  # the same scenes, the same number of captions each
        return sum(x != y for x, y in zip(a, b)) / len(a)

    true_share = share_changed(sum(noisy.table.captions, []), sum(plain.table.captions, []))
    neg_share = share_changed(negatives(noisy), negatives(plain))
    assert 0.35 < true_share < 0.6 and 0.35 < neg_share < 0.6 and abs(true_share - neg_share) < 0.1
    assert max(map(len, noisy.captions)) <= max(NOISED_MAX_CHARS, max(map(len, plain.captions)))
    with pytest.raises(ValueError, match=r"dataset.caption_noise must be in \[0, 1\], got 1.5"):
        SceneDataModule(caption_noise=1.5, **kw)
    with pytest.raises(ValueError, match=r"caption_noise_words: one of strings, english, got 'french'"):
        SceneDataModule(caption_noise_words="french", **kw)
    with pytest.raises(ValueError, match=r"dataset.caption_noise_marks must be >= 0, got -1"):
        SceneDataModule(caption_noise_marks=-1, **kw)
