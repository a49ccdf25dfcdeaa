"""Data sources on real on-disk formats, captions, and the in-memory batch loader."""

import pickle

import pytest
import torch

from src.data.captions import CaptionSpec, mismatched_labels
from src.data.datamodule import InMemoryBatchLoader, resize_uint8
from src.data.sources import DataFilesMissing, load_cifar10, load_digits, load_mnist, load_svhn

from fakedata import write_cifar10, write_svhn

SPEC = CaptionSpec(("zero", "one", "two"), ("a {name}", "digit {index}"), ("held {name}",))


def test_digits_is_real_and_split():
    train_x, train_y = load_digits(".", train=True)
    test_x, test_y = load_digits(".", train=False)
    assert train_x.dtype == torch.uint8 and train_x.shape[1:] == (1, 8, 8)
    assert len(train_x) + len(test_x) == 1797 and len(test_x) == 360
    assert set(train_y.tolist()) == set(range(10)) and train_x.max() == 255


def test_mnist_real_files(mnist_dir):
    x, y = load_mnist(mnist_dir, train=False, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (10000,) and int(y.min()) == 0 and int(y.max()) == 9


def test_cifar10_real_format(tmp_path, skip_checksums):
    folder = write_cifar10(tmp_path)
    x, y = load_cifar10(tmp_path, train=True, download=False)
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (100,)
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)
    # Channel-planar rows become (C, H, W): the first row's red plane is its first 1024 bytes.
    assert torch.equal(x[0, 0].flatten(), torch.from_numpy(first["data"][0, :1024]))
    assert y[0].item() == first["labels"][0]


def test_svhn_real_format(tmp_path, skip_checksums):
    X, y = write_svhn(tmp_path)
    x, labels = load_svhn(tmp_path, train=True, download=False)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8
    assert labels[0].item() == 0  # SVHN's "10" is the digit zero
    assert labels.tolist()[1:] == [v % 10 for v in y[1:, 0].tolist()]


@pytest.mark.parametrize(
    "loader,name", [(load_cifar10, "CIFAR-10"), (load_svhn, "SVHN"), (load_mnist, "MNIST")]
)
def test_missing_files_give_one_line_error(tmp_path, loader, name):
    with pytest.raises(DataFilesMissing) as err:
        loader(tmp_path / "empty", train=True, download=False)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and str(tmp_path / "empty") in msg


def test_resize_uint8():
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    y = resize_uint8(x, 28)
    assert y.shape == (5, 1, 28, 28) and y.dtype == torch.uint8
    assert resize_uint8(y, 28) is y


def test_captions_bank_and_ids():
    assert SPEC.bank() == ["a zero", "digit 0", "a one", "digit 1", "a two", "digit 2"]
    ids = SPEC.caption_ids(torch.tensor([2, 0]), torch.tensor([1, 0]))
    assert [SPEC.bank()[i] for i in ids] == ["digit 2", "a zero"]
    assert SPEC.bank(heldout=True) == ["held zero", "held one", "held two"]
    assert SPEC.label_of("Held   TWO") == 2 and SPEC.label_of("a cat") is None
    with pytest.raises(ValueError, match="names no class"):
        CaptionSpec(("a",), ("no placeholder",))


def test_mismatched_labels_always_differ():
    labels = torch.randint(0, 10, (1000,))
    mis = mismatched_labels(labels, 10, torch.Generator().manual_seed(0))
    assert (mis != labels).all() and set(mis.tolist()) == set(range(10))


def _loader(**kw):
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
    labels = torch.arange(40) % 3
    return InMemoryBatchLoader(images, labels, SPEC, batch_size=4, **kw)


def test_loader_batches_are_consistent_and_deterministic():
    a, b = list(_loader(seed=1)), list(_loader(seed=1))
    assert len(a) == 10
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    batch = a[0]
    idx = batch["images"][:, 0, 0, 0].long()
    assert torch.equal(batch["labels"], idx % 3)
    captions = [SPEC.bank()[i] for i in batch["caption_ids"]]
    assert all(SPEC.label_of(c) == label for c, label in zip(captions, batch["labels"].tolist()))
    mismatched = [SPEC.label_of(SPEC.bank()[i]) for i in batch["mismatch_ids"]]
    assert all(m != label for m, label in zip(mismatched, batch["labels"].tolist()))
    seen = torch.cat([bt["images"][:, 0, 0, 0] for bt in a])
    assert sorted(seen.tolist()) == list(range(40))  # one epoch visits every image once


def test_loader_epochs_differ_and_resume_mid_epoch():
    loader = _loader(seed=3)
    epoch0 = list(loader)
    loader.sampler.set_epoch(1)  # what Lightning does at each epoch start
    epoch1 = list(loader)
    assert not torch.equal(epoch0[0]["images"], epoch1[0]["images"])
    resumed_loader = _loader(seed=3, resume=(1, 6))
    resumed_loader.sampler.set_epoch(1)
    resumed = list(resumed_loader)
    assert len(resumed) == 4
    assert all(torch.equal(r["images"], e["images"]) for r, e in zip(resumed, epoch1[6:]))


def test_loader_ddp_shards_disjoint():
    shards = [
        torch.cat([b["images"][:, 0, 0, 0] for b in _loader(seed=0, rank=r, world_size=2)]) for r in (0, 1)
    ]
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) == 0
    assert len(shards[0]) == len(shards[1]) == 20


def test_loader_too_small_is_an_error():
    with pytest.raises(ValueError, match="cannot fill one step"):
        _loader(critic_batches=20)


def test_too_small_data_says_which_batch_size_fits():
    from src.data.datamodule import TooFewImages

    # 40 images: 20 critic batches of 4 need 80; batch size 2 would fit.
    with pytest.raises(TooFewImages, match=r"40 images .* one step of 80 .*: set dataset.batch_size=2 or"):
        _loader(critic_batches=20)
    with pytest.raises(TooFewImages, match=r"on 2 rank\(s\): set dataset.batch_size=3 or lower"):
        _loader(critic_batches=6, rank=1, world_size=2)  # 20 images per rank, 6 critic batches
    with pytest.raises(TooFewImages, match=r"cannot fill one step of 200 .*: add images$"):
        _loader(critic_batches=50)  # not even one image per critic batch
    assert len(_loader(critic_batches=10)) == 1  # exactly one step fits
