from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_WNIDS, make_fashion_mnist, make_tiny_imagenet, write_idx
from PIL import Image

from cbir.data import cifar10, digits, fashion_mnist, folder, pipeline, sources, tiny_imagenet
from cbir.data import images as image_files
from cbir.data import splits as data_splits

REAL_FASHION_MNIST = fashion_mnist.FASHION_MNIST_SYSTEM_DIR


# ------------------------------------------------------------------ IDX / Fashion-MNIST


def test_read_idx_round_trips_generated_file(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x.gz", array)
    np.testing.assert_array_equal(fashion_mnist.read_idx(path, ndim=3), array)


def test_read_idx_rejects_wrong_magic_naming_the_file(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8), magic=0x0803)
    with pytest.raises(
        image_files.DatasetFormatError, match=r"labels\.gz.*magic number 0x00000803, expected 0x00000801"
    ):
        fashion_mnist.read_idx(path, ndim=1)


def test_read_idx_rejects_truncated_data(tmp_path):
    path = tmp_path / "images.gz"
    header = (0x0803).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in (10, 28, 28))
    with gzip.open(path, "wb") as stream:
        stream.write(header + bytes(28 * 28 * 9))  # one image short
    with pytest.raises(image_files.DatasetFormatError, match=r"images\.gz.*\(10, 28, 28\).*truncated"):
        fashion_mnist.read_idx(path, ndim=3)


def test_read_idx_rejects_truncated_gzip_stream(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.zeros((10, 28, 28), np.uint8))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(image_files.DatasetFormatError, match=r"broken\.gz"):
        fashion_mnist.read_idx(broken, ndim=3)


def test_read_idx_rejects_non_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_text("<html>404 not found</html>")
    with pytest.raises(image_files.DatasetFormatError, match="train-images-idx3-ubyte.gz: not a readable gzip"):
        fashion_mnist.read_idx(path, ndim=3)


def test_load_fashion_mnist_from_explicit_dir(fashion_mnist_dir, isolated_paths):
    splits = fashion_mnist.load_fashion_mnist(fashion_mnist_dir, download=False)
    assert set(splits) == {"train", "test"}
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (30, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (20, 28, 28)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.labels, np.arange(30) % 10)
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"


def test_load_fashion_mnist_rejects_image_label_count_mismatch(fashion_mnist_dir, isolated_paths):
    write_idx(fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(image_files.DatasetFormatError, match="20 images but .*t10k-labels-idx1-ubyte.gz holds 19"):
        fashion_mnist.load_fashion_mnist(fashion_mnist_dir, download=False)


def test_fashion_mnist_lookup_order(tmp_path, isolated_paths, monkeypatch):
    system = make_fashion_mnist(tmp_path / "system", n_train=10, n_test=10)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", system)
    explicit = make_fashion_mnist(tmp_path / "explicit", n_train=10, n_test=10)
    assert fashion_mnist.find_fashion_mnist(explicit, download=False) == explicit
    # An explicit directory without the files falls through to data/raw, then the system copy.
    assert fashion_mnist.find_fashion_mnist(tmp_path / "empty", download=False) == system
    raw = make_fashion_mnist(isolated_paths / "data_dir" / "raw" / "fashion-mnist", n_train=10, n_test=10)
    assert fashion_mnist.find_fashion_mnist(tmp_path / "empty", download=False) == raw


def test_fashion_mnist_not_found_lists_every_place_tried(tmp_path, isolated_paths, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")

    def offline(url, destination, timeout=30.0):
        raise OSError(f"network unreachable: {url}")

    monkeypatch.setattr(fashion_mnist, "_download", offline)
    with pytest.raises(image_files.DatasetNotFoundError) as caught:
        fashion_mnist.find_fashion_mnist(tmp_path / "mine")
    message = str(caught.value)
    for place in (
        str(tmp_path / "mine"),
        str(isolated_paths / "data_dir" / "raw" / "fashion-mnist"),
        str(tmp_path / "no-system-copy"),
        fashion_mnist.FASHION_MNIST_URLS[0],
        fashion_mnist.FASHION_MNIST_URLS[1],
        "apt-get install dataset-fashion-mnist",
    ):
        assert place in message


def test_fashion_mnist_download_lands_in_raw_dir(tmp_path, isolated_paths, monkeypatch):
    """The download path, with the network replaced by a copy from a generated 'server'."""
    server = make_fashion_mnist(tmp_path / "server", n_train=10, n_test=10)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    requested = []

    def fake_download(url, destination, timeout=30.0):
        requested.append(url)
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(server / url.rsplit("/", 1)[1], destination)
        return destination

    monkeypatch.setattr(fashion_mnist, "_download", fake_download)
    splits = fashion_mnist.load_fashion_mnist()
    assert len(splits["train"]) == 10
    assert all(url.startswith(fashion_mnist.FASHION_MNIST_URLS[0]) for url in requested) and len(requested) == 4
    assert (isolated_paths / "data_dir" / "raw" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


@pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(),
    reason=f"real Fashion-MNIST not installed at {REAL_FASHION_MNIST} (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    splits = fashion_mnist.load_fashion_mnist(REAL_FASHION_MNIST, download=False)
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8
    assert train.labels.min() == 0 and train.labels.max() == 9
    np.testing.assert_array_equal(train.class_counts(), np.full(10, 6000))
    np.testing.assert_array_equal(test.class_counts(), np.full(10, 1000))


# ------------------------------------------------------------------ Tiny ImageNet


def test_load_tiny_imagenet_fixture(tiny_imagenet_dir, isolated_paths):
    splits = tiny_imagenet.load_tiny_imagenet(tiny_imagenet_dir, download=False)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert (len(train), len(val), len(test)) == (12, 6, 3)
    assert train.class_names == ("goldfish", "European fire salamander", "tabby")
    np.testing.assert_array_equal(train.class_counts(), [4, 4, 4])
    np.testing.assert_array_equal(val.labels, [0, 0, 1, 1, 2, 2])
    assert (test.labels == -1).all()
    # The class a validation image carries is the one its annotation names.
    assert Path(val.paths[2]).name == "val_2.JPEG"


def test_tiny_imagenet_grayscale_jpegs_become_rgb(tiny_imagenet_dir, isolated_paths):
    train = tiny_imagenet.load_tiny_imagenet(tiny_imagenet_dir, download=False)["train"]
    grayscale = [p for p in train.paths if Image.open(p).mode == "L"]
    assert len(grayscale) == 3
    image = image_files.read_image(grayscale[0])
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    batch, labels = next(iter(pipeline.image_dataset(train, image_size=(32, 32), batch_size=12)))
    assert batch.shape == (12, 32, 32, 3) and batch.dtype.name == "float32"
    np.testing.assert_array_equal(labels.numpy(), train.labels)


def test_tiny_imagenet_bad_annotation_names_file_and_line(tiny_imagenet_dir, isolated_paths):
    annotations = tiny_imagenet_dir / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines()
    lines[3] = lines[3].replace(TINY_WNIDS[1], "n00000000")
    annotations.write_text("\n".join(lines))
    with pytest.raises(image_files.DatasetFormatError, match=r"val_annotations.txt:4: .*n00000000"):
        tiny_imagenet.load_tiny_imagenet(tiny_imagenet_dir, download=False)


def test_tiny_imagenet_missing_class_images(tiny_imagenet_dir, isolated_paths):
    shutil.rmtree(tiny_imagenet_dir / "train" / TINY_WNIDS[2])
    with pytest.raises(image_files.DatasetFormatError, match=f"no training images for class {TINY_WNIDS[2]}"):
        tiny_imagenet.load_tiny_imagenet(tiny_imagenet_dir, download=False)


def test_tiny_imagenet_download_and_extract(tmp_path, isolated_paths, monkeypatch):
    """The real download-and-extract code, fed a zip of the generated layout instead of the network."""
    source = make_tiny_imagenet(tmp_path / "build" / "tiny-imagenet-200")
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(source.rglob("*")):
            zipped.write(path, path.relative_to(source.parent))

    def fake_download(url, destination, timeout=30.0):
        assert url == tiny_imagenet.TINY_IMAGENET_URL
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, destination)
        return destination

    monkeypatch.setattr(tiny_imagenet, "_download", fake_download)
    splits = tiny_imagenet.load_tiny_imagenet()
    target = isolated_paths / "data_dir" / "raw" / "tiny-imagenet-200"
    assert all(p.startswith(str(target)) for p in splits["train"].paths)
    assert len(splits["train"]) == 12
    # No staging directory is left behind.
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []


def test_tiny_imagenet_not_found(tmp_path, isolated_paths):
    with pytest.raises(image_files.DatasetNotFoundError, match="download: disabled"):
        tiny_imagenet.load_tiny_imagenet(tmp_path / "nowhere", download=False)


# ------------------------------------------------------------------ CIFAR-10, digits


@pytest.mark.network
def test_cifar10_through_keras():
    try:
        splits = cifar10.load_cifar10()
    except image_files.DatasetNotFoundError as error:
        pytest.skip(f"CIFAR-10 unavailable offline: {str(error).splitlines()[0][:200]}")
    assert splits["train"].images.shape == (50000, 32, 32, 3)
    np.testing.assert_array_equal(splits["test"].class_counts(), np.full(10, 1000))


def test_digits():
    digit_set = digits.load_digits()["all"]
    assert digit_set.images.shape == (1797, 8, 8) and digit_set.images.dtype == np.uint8
    assert digit_set.images.max() == 255 and digit_set.images.min() == 0
    assert sorted(set(digit_set.labels.tolist())) == list(range(10))


def test_load_by_name_rejects_unknown():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*fashion_mnist"):
        sources.load("mnist")


# ------------------------------------------------------------------ image folders and decoding


def _save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def test_read_image_converts_modes(tmp_path):
    gray = _save(tmp_path / "g.png", Image.new("L", (5, 4), 77))
    np.testing.assert_array_equal(image_files.read_image(gray), np.full((4, 5, 3), 77, np.uint8))

    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    rgba.putpixel((1, 0), (10, 20, 30, 0))  # fully transparent: composited over white
    np.testing.assert_array_equal(
        image_files.read_image(_save(tmp_path / "a.png", rgba)), [[[10, 20, 30], [255, 255, 255]]]
    )

    palette = Image.new("P", (3, 3))
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 1), 1)
    decoded = image_files.read_image(_save(tmp_path / "p.png", palette))
    np.testing.assert_array_equal(decoded[1, 1], [200, 100, 50])
    np.testing.assert_array_equal(decoded[0, 0], [0, 0, 0])

    sixteen = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    decoded = image_files.read_image(_save(tmp_path / "s.png", sixteen))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 100, 255])

    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    decoded = image_files.read_image(_save(tmp_path / "c.tif", cmyk))
    np.testing.assert_array_equal(decoded[0, 0], [255, 0, 0])


def test_read_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:10, :10] = [255, 0, 0]  # a red block at the top-left of a 20×30 (h×w) image
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(tmp_path / "rotated.jpg", image, exif=exif.tobytes(), quality=100)
    decoded = image_files.read_image(path)
    assert decoded.shape == (30, 20, 3)
    top_right, top_left = decoded[2:8, -8:-2].mean(axis=(0, 1)), decoded[2:8, 2:8].mean(axis=(0, 1))
    assert top_right[0] > 200 and top_right[1] < 60  # rotated clockwise: top-left moved to top-right
    assert top_left[0] < 60


def _box_mean(pixels: np.ndarray, factor_y: int, factor_x: int) -> np.ndarray:
    """Reference downsampling: the mean of each factor_y × factor_x block (sides divisible)."""
    height, width = pixels.shape[:2]
    blocks = pixels.astype(np.float64).reshape(height // factor_y, factor_y, width // factor_x, factor_x, -1)
    return blocks.mean(axis=(1, 3))


def _smooth(height: int, width: int) -> np.ndarray:
    """uint8 (height, width, 3): slow gradients, so that JPEG and block means agree closely."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(np.uint8)


@pytest.mark.parametrize(
    ("mode", "extension", "tolerance"),
    [
        ("RGB", "png", 0.5),
        ("RGB", "jpg", 1.0),  # decoded at 1/4 or 1/2 scale by libjpeg (DCT scaling), then reduced
        ("L", "jpg", 1.0),
        ("RGBA", "png", 0.5),
        ("P", "png", 0.5),
        ("P+transparency", "png", 0.5),
        ("1", "png", 0.5),
        ("I;16", "png", 0.5),
        ("CMYK", "tif", 0.5),
    ],
)
@pytest.mark.parametrize("keep_aspect", [True, False], ids=["keep_aspect", "each_side"])
def test_read_image_max_side_matches_block_means_of_the_full_decode(tmp_path, mode, extension, tolerance, keep_aspect):
    rgb = _smooth(240, 480)
    if mode == "RGBA":
        alpha = np.tile(np.linspace(0, 255, 480).astype(np.uint8), (240, 1))
        image = Image.fromarray(np.dstack([rgb, alpha]))
    elif mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode == "1":
        image = Image.fromarray(rgb[..., 0] > 127).convert("1")
    elif mode == "P+transparency":
        image = Image.fromarray(rgb).convert("P")
        image.info["transparency"] = int(np.asarray(image)[0, 0])  # that palette entry is composited over white
    else:
        image = Image.fromarray(rgb).convert(mode)
    path = _save(tmp_path / f"image.{extension}", image)
    full = image_files.read_image(path)
    shrunk = image_files.read_image(path, max_side=120, keep_aspect=keep_aspect)
    factor_y, factor_x = (4, 4) if keep_aspect else (2, 4)  # ceil(480 / 120) = 4, ceil(240 / 120) = 2
    assert shrunk.shape == (240 // factor_y, 480 // factor_x, 3) and shrunk.dtype == np.uint8
    difference = np.abs(shrunk - _box_mean(full, factor_y, factor_x))
    assert difference.mean() <= tolerance, difference.mean()


def test_read_image_max_side_applies_exif_orientation(tmp_path):
    pixels = np.zeros((400, 600, 3), np.uint8)
    pixels[:200, :200] = [255, 0, 0]  # a red block at the top-left of a 400×600 (h×w) image
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(tmp_path / "rotated.jpg", image, exif=exif.tobytes(), quality=95)
    full, shrunk = image_files.read_image(path), image_files.read_image(path, max_side=150)
    assert full.shape == (600, 400, 3) and shrunk.shape == (150, 100, 3)
    assert np.abs(shrunk - _box_mean(full, 4, 4)).mean() < 3.0


def test_read_image_rejects_bad_max_side(tmp_path):
    path = _save(tmp_path / "g.png", Image.new("L", (5, 4), 77))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_side must be a positive integer"):
            image_files.read_image(path, max_side=bad)


def test_read_image_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(image_files.UnreadableImageError, match=r"empty.jpg: empty file \(0 bytes\)"):
        image_files.read_image(empty)
    with pytest.raises(image_files.UnreadableImageError, match="missing.png"):
        image_files.read_image(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(image_files.UnreadableImageError, match="notes.png"):
        image_files.read_image(text)


def _folder_with_problems(root: Path) -> Path:
    rng = np.random.default_rng(0)
    _save(root / "cats" / "a.JPG", Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)))
    _save(root / "cats" / "nested" / "deeper" / "b.png", Image.new("RGBA", (6, 6)))
    _save(root / "dogs" / "c.Jpeg", Image.new("L", (6, 6), 9), format="JPEG")
    (root / "dogs" / "readme.txt").write_text("not an image")
    good = _save(
        root / "dogs" / "d.jpg", Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), quality=95
    )
    (root / "dogs" / "truncated.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (root / ".hidden").mkdir()
    _save(root / ".hidden" / "x.png", Image.new("L", (2, 2)))
    return root


def test_load_image_folder_skips_and_reports(tmp_path):
    root = _folder_with_problems(tmp_path / "pets")
    with pytest.warns(UserWarning) as warned:
        image_set = folder.load_image_folder(root)["all"]
    message = str(warned[0].message)
    assert "readme.txt: not an image" in message
    assert "truncated.jpg" in message
    assert image_set.class_names == ("cats", "dogs")
    names = [Path(p).name for p in image_set.paths]
    assert names == ["a.JPG", "b.png", "c.Jpeg", "d.jpg"]
    np.testing.assert_array_equal(image_set.labels, [0, 0, 1, 1])
    assert {Path(s.path).name for s in image_set.skipped} == {"readme.txt", "truncated.jpg"}
    images = image_set.load_images()
    assert all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[-1] == 3 for i in images)


def test_load_image_folder_raise_mode(tmp_path):
    root = _folder_with_problems(tmp_path / "pets")
    with pytest.raises(image_files.UnreadableImageError, match="truncated.jpg"):
        folder.load_image_folder(root, on_error="raise")


def test_load_image_folder_bad_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        folder.load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(FileNotFoundError, match="no class subfolders"):
        folder.load_image_folder(tmp_path / "flat")
    with pytest.raises(ValueError, match="on_error"):
        folder.load_image_folder(tmp_path / "flat", on_error="ignore")


# ------------------------------------------------------------------ split and tf.data


def test_split_is_a_stratified_seeded_partition():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), [100, 200, 300, 50, 350])
    rng.shuffle(labels)
    parts = data_splits.split(labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    combined = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(combined), np.arange(len(labels)))  # disjoint and complete
    totals = np.bincount(labels)
    for name, fraction in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
        per_class = np.bincount(labels[parts[name]], minlength=5)
        # Each class split in the requested proportion, up to one image of rounding.
        assert np.all(np.abs(per_class - fraction * totals) <= 1.0), (name, per_class)
    again = data_splits.split(labels, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = data_splits.split(labels, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert not np.array_equal(parts["val"], other["val"])


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="val_fraction"):
        data_splits.split(np.zeros(10, int), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="cannot take a stratified val split of 0.1 from 18 images in 3 classes"):
        data_splits.split(np.repeat(np.arange(3), 6), val_fraction=0.1, test_fraction=0.0)


def test_image_dataset_from_arrays_expands_grayscale():
    digit_set = digits.load_digits()["all"].subset(np.arange(10))
    batch, labels = next(iter(pipeline.image_dataset(digit_set, image_size=(16, 16), batch_size=4)))
    assert batch.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(labels.numpy(), digit_set.labels[:4])
    unresized = next(iter(pipeline.image_dataset(digit_set, batch_size=10, with_labels=False)))
    np.testing.assert_array_equal(unresized.numpy()[..., 2], digit_set.images.astype(np.float32))


def test_retrieval_split_and_sample(tiny_imagenet_dir, isolated_paths):
    digit_set = digits.load_digits()
    database, queries = data_splits.retrieval_split(digit_set, query_fraction=0.2, seed=0)
    assert len(database) + len(queries) == 1797 and abs(len(queries) - 0.2 * 1797) <= 1
    np.testing.assert_array_equal(np.bincount(queries.labels, minlength=10) >= 35, True)  # stratified
    tiny = tiny_imagenet.load_tiny_imagenet(tiny_imagenet_dir, download=False)
    database, queries = data_splits.retrieval_split(tiny)  # test is unlabelled: the validation split answers
    assert database is tiny["train"] and queries is tiny["val"]
    sampled = database.sample(5, seed=1)
    assert len(sampled) == 5 and list(sampled.paths) == sorted(sampled.paths, key=database.paths.index)
    assert database.sample(0) is database and database.sample(10_000) is database


def test_held_out_is_the_labelled_test_split_else_the_labelled_validation_split():
    def image_set(labels):
        return image_files.ImageSet(
            labels=np.array(labels), class_names=("a", "b"), images=np.zeros((len(labels), 2, 2), np.uint8)
        )

    labelled, unlabelled = image_set([0, 1]), image_set([-1, -1])
    assert data_splits.held_out_name({"train": labelled, "test": labelled, "val": labelled}) == "test"
    assert data_splits.held_out_name({"train": labelled, "test": unlabelled, "val": labelled}) == "val"
    assert data_splits.held_out_name({"train": labelled, "test": unlabelled}) is None
    assert data_splits.held_out_name({"all": labelled}) is None
    with pytest.raises(ValueError, match="no labelled test or validation split"):
        data_splits.retrieval_split({"train": labelled, "test": unlabelled})
