"""A data set's identity follows its content, and its caches follow its files."""

import os

import numpy as np
import pytest

from tests import dataset_fixtures as fx
from tests.fifos import without_hanging
from trainables import data_identity as identity_module
from trainables import dataset_files
from trainables.data_identity import FINGERPRINT_FOLDER, data_identity
from trainables.datasets import load_dataset


def _touch_later(path, seconds=10):
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_the_identity_is_the_content_wherever_it_lies(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "a" / "fashion-mnist")
    fx.write_fashion_mnist(tmp_path / "b" / "fashion-mnist")  # the same files, copied
    fx.write_fashion_mnist(tmp_path / "c" / "fashion-mnist", n_train=6)
    a, b, c = (data_identity("fashion_mnist", tmp_path / x) for x in "abc")
    assert a == b and a.samples == 8
    assert c != a and c.samples == 9
    subset = data_identity("fashion_mnist", tmp_path / "a", options={"subset": 4})
    assert subset.samples == 4 and subset.sha256 != a.sha256


def test_it_is_computed_once_and_kept_beside_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "fashion-mnist")
    first = data_identity("fashion_mnist", tmp_path)
    assert len(list((tmp_path / "fashion-mnist" / FINGERPRINT_FOLDER).iterdir())) == 1

    def unread(*args, **kwargs):
        raise AssertionError("the data was read again")

    monkeypatch.setattr(identity_module, "read_source", unread)
    assert data_identity("fashion_mnist", tmp_path) == first


def test_a_replaced_file_is_hashed_again_not_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "fashion-mnist")
    before = data_identity("fashion_mnist", tmp_path)
    images = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    rng = np.random.default_rng(9)
    fx._write_idx(images, rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
    _touch_later(images)
    after = data_identity("fashion_mnist", tmp_path)
    assert after.samples == before.samples and after.sha256 != before.sha256


def test_data_outside_the_data_root_is_fingerprinted_in_the_users_cache(tmp_path, monkeypatch):
    """Debian's read-only /usr/share copy: nothing is written beside it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "system")
    monkeypatch.setattr(dataset_files, "DEBIAN_FASHION_MNIST", tmp_path / "system")
    data_identity("fashion_mnist", tmp_path / "empty-root")
    assert not (tmp_path / "system" / FINGERPRINT_FOLDER).exists()
    assert len(list((tmp_path / "cache" / "ablate" / "data-fingerprints").iterdir())) == 1


def test_digits_are_identified_without_torch_and_by_their_size():
    import subprocess
    import sys

    code = (
        "import sys; from trainables.data_identity import data_identity as d; "
        "a, b = d('digits', options={'size': 16}), d('digits', options={'size': 20}); "
        "print(a.samples, a != b, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1797", "True", "False"]


@pytest.mark.parametrize("change", ["replaced", "added"])
def test_the_image_decode_cache_follows_the_files(tmp_path, change):
    wnids = dataset_files.IMAGENET10_WNIDS
    fx.write_image_folder(tmp_path / "imagenet10", wnids, per_class=1)
    first = load_dataset("imagenet10", tmp_path, options={"size": 24})
    folder = tmp_path / "imagenet10" / wnids[0]
    from PIL import Image

    white = np.full((20, 24, 3), 255, dtype=np.uint8)
    target = folder / (f"{wnids[0]}_0.JPEG" if change == "replaced" else "extra.JPEG")
    Image.fromarray(white).save(target)
    _touch_later(target)
    again = load_dataset("imagenet10", tmp_path, options={"size": 24})
    if change == "replaced":
        assert again.train.images[0].float().mean() > 250
        assert np.array_equal(again.train.images[1:].numpy(), first.train.images[1:].numpy())
    else:
        assert again.train.num_samples == first.train.num_samples + 1
        assert again.labels.tolist()[:2] == [0, 0]


def _stored_images(root, seed):
    """Rewrite a fixture's train images as stored gzip (a size that other images keep)."""
    images = root / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    array = np.random.default_rng(seed).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    fx._write_idx(images, array, compresslevel=0)
    return images


def test_a_file_rewritten_with_its_size_and_times_kept_is_hashed_again(tmp_path, monkeypatch):
    """What `cp -p`, `rsync -a`, `touch -r` or an archive with fixed times leave: the old
    stamp (names, sizes, mtimes) served the other data's identity."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "fashion-mnist")
    images = _stored_images(tmp_path, seed=1)
    before = data_identity("fashion_mnist", tmp_path)
    other = np.random.default_rng(2).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    fx.rewrite_keeping_size_and_times(images, other)
    after = data_identity("fashion_mnist", tmp_path)
    assert after.samples == before.samples and after.sha256 != before.sha256
    assert data_identity("fashion_mnist", tmp_path) == after  # and cached again


def test_two_roots_that_resolve_to_different_data_never_share_a_fingerprint(tmp_path, monkeypatch):
    """Both data sets lie outside their roots (links), so both fingerprints go to the user's
    cache; their names relative to the roots, sizes and mtimes are the same."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    identities = []
    for seed, name in ((1, "one"), (2, "two")):
        real = tmp_path / "real" / name
        fx.write_fashion_mnist(real / "fashion-mnist")
        images = _stored_images(real, seed)
        os.utime(images, ns=(0, 10**18))
        for other in (real / "fashion-mnist").iterdir():
            os.utime(other, ns=(0, 10**18))
        root = tmp_path / f"root-{name}"
        root.mkdir()
        (root / "fashion-mnist").symlink_to(real / "fashion-mnist")
        identities.append(data_identity("fashion_mnist", root))
    assert identities[0].sha256 != identities[1].sha256
    cached = list((tmp_path / "cache" / "ablate" / "data-fingerprints").iterdir())
    assert len(cached) == 2


def test_a_fifo_in_the_fingerprint_cache_is_passed_over(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fx.write_fashion_mnist(tmp_path / "fashion-mnist")
    first = data_identity("fashion_mnist", tmp_path)
    (cached,) = (tmp_path / "fashion-mnist" / FINGERPRINT_FOLDER).iterdir()
    cached.unlink()
    os.mkfifo(cached)  # open() would wait for a writer forever
    found = without_hanging(lambda: data_identity("fashion_mnist", tmp_path), [cached])
    assert found == {"value": first}
