"""Bad input, one test per case: the exact reproduction, then the message, exception or exit status
expected instead of silence, a crash or runaway memory. One section per area; add new cases to the
section they belong to, or a new section."""

from __future__ import annotations

import collections
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import FakeStorage, FakeTensor, write_legacy_checkpoint, write_zip_checkpoint
from PIL import Image

from cbir import indexing, reports
from cbir.cli import main
from cbir.cli import program as cli
from cbir.data.folder import scan_image_folder
from cbir.data.images import SkippedFile, list_image_files, read_image, readable_images
from cbir.models.torch_checkpoint import CheckpointError, load_state_dict
from cbir.retrieval.feature_index import FeatureIndex
from cbir.retrieval.storage import IndexFormatError, index_lock, sha256_of_file


def _png(path: Path, size: tuple[int, int] = (8, 6), value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 20, 200)).save(path)
    return path


def _run_python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (this one's environment), capturing its output."""
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def _chmod_blocks_reads(path: Path) -> bool:
    """False when this process reads through permissions anyway (root, CAP_DAC_OVERRIDE)."""
    try:
        if path.is_dir():
            os.listdir(path)
        else:
            path.read_bytes()
    except PermissionError:
        return True
    return False


# ------------------------------------------------------------------ image folders: every skip reported


def test_images_in_a_symlinked_folder_are_listed(tmp_path):
    outside = _png(tmp_path / "elsewhere" / "b.png").parent
    root = tmp_path / "photos"
    _png(root / "real" / "a.png")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    images, skipped = list_image_files(root)
    assert images == [root / "linked" / "b.png", root / "real" / "a.png"]
    assert skipped == []


def test_symlink_loops_are_reported_once(tmp_path):
    root = tmp_path / "photos"
    _png(root / "sub" / "a.png")
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)  # root/sub/up/sub/up/... forever
    (root / "ping.png").symlink_to("pong.png")  # a chain of file symlinks that never ends
    (root / "pong.png").symlink_to("ping.png")
    images, skipped = list_image_files(root)
    assert images == [root / "sub" / "a.png"]
    assert skipped == [
        SkippedFile(str(root / "ping.png"), "symlink loop"),
        SkippedFile(str(root / "pong.png"), "symlink loop"),
        SkippedFile(str(root / "sub" / "up"), f"symlink loop (leads back to {root})"),
    ]


def test_unlistable_folder_is_reported(tmp_path):
    root = tmp_path / "photos"
    _png(root / "open" / "a.png")
    locked = _png(root / "locked" / "b.png").parent
    locked.chmod(0)
    try:
        if not _chmod_blocks_reads(locked):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not block reading a folder")
        images, skipped = list_image_files(root)
    finally:
        locked.chmod(0o755)
    assert images == [root / "open" / "a.png"]
    assert skipped == [SkippedFile(str(locked), "cannot list folder (Permission denied)")]


def test_unlistable_folder_is_reported_whoever_runs_the_tests(tmp_path, monkeypatch):
    """The same case as above, with the refusal simulated, so that it also runs as root."""
    root = tmp_path / "photos"
    _png(root / "open" / "a.png")
    locked = _png(root / "locked" / "b.png").parent
    scandir = os.scandir

    def refusing_scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    images, skipped = list_image_files(root)
    assert images == [root / "open" / "a.png"]
    assert skipped == [SkippedFile(str(locked), "cannot list folder (Permission denied)")]


def test_unreadable_image_file_is_reported(tmp_path):
    good, locked = _png(tmp_path / "good.png"), _png(tmp_path / "locked.png")
    locked.chmod(0)
    try:
        if not _chmod_blocks_reads(locked):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not block reading a file")
        readable, skipped = readable_images([good, locked])
    finally:
        locked.chmod(0o644)
    assert readable == [good]
    assert skipped == [SkippedFile(str(locked), "PermissionError: Permission denied")]


def test_dangling_symlinks_are_reported(tmp_path):
    root = tmp_path / "photos"
    _png(root / "a.png")
    (root / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (root / "gone_folder").symlink_to(tmp_path / "unmounted", target_is_directory=True)
    images, skipped = list_image_files(root)
    assert images == [root / "a.png"]
    assert skipped == [
        SkippedFile(str(root / "gone.jpg"), f"broken symlink (target {tmp_path / 'deleted.jpg'} does not exist)"),
        SkippedFile(str(root / "gone_folder"), f"broken symlink (target {tmp_path / 'unmounted'} does not exist)"),
    ]


def test_fifo_named_like_an_image_is_reported_not_opened(tmp_path):
    root = tmp_path / "photos"
    _png(root / "a.png")
    os.mkfifo(root / "pipe.jpg")  # opening it to decode would block forever
    images, skipped = list_image_files(root)
    assert images == [root / "a.png"]
    assert skipped == [SkippedFile(str(root / "pipe.jpg"), "not a regular file (FIFO)")]


def test_a_folder_reached_twice_is_listed_once(tmp_path):
    root = tmp_path / "photos"
    _png(root / "2019" / "a.png")
    (root / "best_of").symlink_to("2019", target_is_directory=True)
    images, skipped = list_image_files(root)
    assert images == [root / "2019" / "a.png"]
    assert skipped == [SkippedFile(str(root / "best_of"), f"same folder as {root / '2019'}, listed there")]


# ------------------------------------------------------------------ decoding: memory bounded by the consumer's size


def _write_large_png(path: Path, side: int) -> Path:
    """A side × side RGB PNG written row by row (little memory, ~0.6 s for 12 000): bands of a
    horizontal gradient and of black, 500 rows each; compresses to about 2 MB."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    x = np.arange(side)
    gradient = np.stack([x % 256, (x // 47) % 256, np.full(side, 128)], axis=-1).astype(np.uint8).tobytes()
    black = bytes(3 * side)
    compressor = zlib.compressobj(1)
    body = []
    for y in range(side):
        if y % 500 == 0:  # a band starts: raw pixels (filter 0)
            body.append(compressor.compress(b"\x00" + (gradient if y // 500 % 2 == 0 else black)))
        else:  # filter 2 ("up"): the same row again, all differences zero
            body.append(compressor.compress(b"\x02" + black))
    body.append(compressor.flush())
    with open(path, "wb") as stream:
        stream.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        stream.write(chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))
    return path


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak memory is read from Linux /proc")
def test_huge_png_is_decoded_within_a_memory_bound(tmp_path):
    """A 12 000 × 12 000 PNG of 2 MB: decoding it at full size peaked at 2.5 GB (3.4 GB through the
    feature pipeline). Bounded, only Pillow's own buffer of the file's pixels (576 MB) remains."""
    path = _write_large_png(tmp_path / "huge.png", 12_000)
    child = _run_python(
        f"""
        import re
        from pathlib import Path
        from cbir.data.images import read_image, readable_images
        readable, skipped = readable_images([{str(path)!r}])
        assert len(readable) == 1 and not skipped, skipped
        image = read_image({str(path)!r}, max_side=448)
        # VmHWM is this process's own peak; ru_maxrss would include the forked pytest before exec.
        peak_kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1])
        print(image.shape, image.dtype, peak_kib // 1024)
        """
    )
    assert child.returncode == 0, child.stderr
    shape, dtype, peak_mib = child.stdout.rsplit(maxsplit=2)
    assert (shape, dtype) == ("(445, 445, 3)", "uint8")  # 12 000 / 27: the smallest factor reaching <= 448
    assert int(peak_mib) < 1024, f"peak RSS {peak_mib} MiB"


def test_ordinary_images_decode_bit_identically_under_the_bound(tmp_path):
    """The bound must not change the features of images that are already small enough."""
    import tensorflow as tf

    from cbir.data.images import ImageSet
    from cbir.data.pipeline import image_dataset

    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (300, 440, 3), dtype=np.uint8))
    exif = noise.getexif()
    exif[0x0112] = 6  # rotated
    palette = noise.convert("P", palette=Image.Palette.ADAPTIVE)
    paths = [tmp_path / name for name in ("a.jpg", "b.png", "rotated.jpg", "palette.png")]
    noise.save(paths[0], quality=90)
    noise.save(paths[1])
    noise.save(paths[2], exif=exif.tobytes())
    palette.save(paths[3])
    for path in paths:
        np.testing.assert_array_equal(read_image(path, max_side=448), read_image(path), err_msg=path.name)
        np.testing.assert_array_equal(read_image(path, max_side=448, keep_aspect=False), read_image(path))
    image_set = ImageSet(labels=np.full(len(paths), -1), class_names=(), paths=tuple(map(str, paths)))
    batches = image_dataset(image_set, image_size=(224, 224), batch_size=None, with_labels=False)
    for path, decoded in zip(paths, batches):
        reference = tf.image.resize(tf.cast(read_image(path), tf.float32), (224, 224))
        np.testing.assert_array_equal(decoded.numpy(), reference.numpy(), err_msg=path.name)


def test_pipeline_decodes_large_files_at_a_bounded_size(tmp_path):
    import tensorflow as tf

    from cbir.data.images import ImageSet
    from cbir.data.pipeline import image_dataset

    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 2000, 3), dtype=np.uint8)).save(path)
    bounded = read_image(path, max_side=448, keep_aspect=False)
    assert bounded.shape == (300, 400, 3)  # each side on its own, between 224 and 448: never below the input
    image_set = ImageSet(labels=np.array([-1]), class_names=(), paths=(str(path),))
    decoded = next(iter(image_dataset(image_set, image_size=(224, 224), batch_size=None, with_labels=False)))
    reference = tf.image.resize(tf.cast(bounded, tf.float32), (224, 224))
    np.testing.assert_array_equal(decoded.numpy(), reference.numpy())


def test_decompression_bomb_limit_still_applies_with_a_bound(tmp_path, monkeypatch):
    path = _png(tmp_path / "bomb.png", size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # 10 000 pixels > 2 × the limit
    with pytest.raises(ValueError, match=r"bomb.png: DecompressionBombError"):
        read_image(path, max_side=16)


# ------------------------------------------------------------------ checkpoints: sizes checked before reading


def _crafted_checkpoint(path: Path, torch, writer, offset=0, shape=(64, 1024, 1024), stride=(1 << 20, 1024, 1)):
    """A checkpoint whose tensor 'w' claims `shape` / `stride` / `offset` over a 24-float storage."""
    storage = FakeStorage("0", np.arange(24, dtype=np.float32), torch.FloatStorage)
    writer(path, collections.OrderedDict(w=FakeTensor(storage, offset, shape, stride)), [storage])
    return path


@pytest.mark.parametrize("writer", [write_zip_checkpoint, write_legacy_checkpoint], ids=["zip", "legacy"])
def test_crafted_checkpoint_raises_instead_of_crashing(tmp_path, fake_torch, writer):
    """Reading a tensor far larger than its storage segfaulted (exit -11). Run in a child process,
    so that a regression fails this test instead of killing the test run."""
    path = _crafted_checkpoint(tmp_path / "crafted.pth", fake_torch, writer)
    child = _run_python(
        f"""
        import sys
        from cbir.models.torch_checkpoint import CheckpointError, load_state_dict
        try:
            load_state_dict({str(path)!r})
        except CheckpointError as error:
            sys.exit(str(error))
        """
    )
    assert child.returncode == 1, f"exit status {child.returncode}: {child.stderr}"
    assert child.stderr.strip() == (
        f"{path}: tensor 'w' (size (64, 1024, 1024), stride (1048576, 1024, 1), offset 0) reaches element "
        "67108863 of storage 0, which holds 24 elements"
    )


@pytest.mark.parametrize("writer", [write_zip_checkpoint, write_legacy_checkpoint], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    ("offset", "shape", "stride", "message"),
    [
        (10**12, (2,), (1,), r"tensor 'w' .* reaches element 1000000000001 of storage 0, which holds 24"),
        (0, (2, 3), (10**15, 1), r"tensor 'w' .* reaches element 1000000000000002 of storage 0, which holds 24"),
        (0, (25,), (1,), r"tensor 'w' .* reaches element 24 of storage 0, which holds 24"),  # one past the end
        (3, (4,), (-1,), r"tensor 'w' has an invalid layout: size \(4,\), stride \(-1,\), offset 3"),
        (-1, (2,), (1,), r"tensor 'w' has an invalid layout"),
        (0, (2, 2), (1,), r"tensor 'w' has an invalid layout"),
    ],
    ids=["offset", "stride", "one-past-the-end", "negative-stride", "negative-offset", "rank-mismatch"],
)
def test_crafted_tensor_layouts_are_refused(tmp_path, fake_torch, writer, offset, shape, stride, message):
    path = _crafted_checkpoint(tmp_path / "crafted.pth", fake_torch, writer, offset, shape, stride)
    with pytest.raises(CheckpointError, match=message):
        load_state_dict(path)


def test_storage_shorter_in_the_archive_than_declared_is_refused(tmp_path, fake_torch):
    path = _crafted_checkpoint(tmp_path / "crafted.pth", fake_torch, write_zip_checkpoint, shape=(24,), stride=(1,))
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["archive/data/0"] = members["archive/data/0"][:8]  # 2 of the 24 floats the pickle declares
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(CheckpointError, match=r"storage 0 holds 8 bytes in the archive; .* 24 × float32 = 96 bytes"):
        load_state_dict(path)


# ------------------------------------------------------------------ report runner: progress streamed to stderr


def _notebook(path: Path, sources: list[str]) -> None:
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    cells[0].metadata["tags"] = ["parameters"]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), path)


@pytest.mark.slow
def test_runner_streams_progress_to_stderr(tmp_path, isolated_paths, monkeypatch, capsys):
    """`make reports` showed nothing for minutes while a notebook ran. Now: a line per notebook and
    per finished cell (with its duration), and the cells' own output, all on stderr."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "00_talks.ipynb", ["n = 2", "print('hello from the kernel')", "import time\ntime.sleep(n / 10)"]
    )
    _notebook(notebooks / "01_breaks.ipynb", ["y = 0", "print('about to fail', end='')\n1 / y"])
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.yaml").write_text("00_talks:\n  n: 3\n")
    monkeypatch.setattr(reports.config, "PARAMS_DIR", tmp_path / "params")
    with pytest.raises(reports.NotebookFailed) as caught:
        reports.run("p", notebooks_dir=notebooks, progress=True)
    assert caught.value.notebook == "01_breaks" and caught.value.cell_index == 1  # no parameters: none injected
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"[1/2] 00_talks: running (profile p) -> {isolated_paths / 'reports_dir' / '00_talks.ipynb'}"
    assert "hello from the kernel" in lines
    # papermill injects the parameters after cell 0, so the notebook's cells 1 and 2 are 2 and 3 here
    finished = [line for line in lines if line.startswith("[1/2] 00_talks: cell ")]
    assert [line.split(" in ")[0] for line in finished] == [f"[1/2] 00_talks: cell {i} done" for i in range(4)]
    assert finished[-1].endswith(" s (4/4 code cells)")
    assert float(finished[-1].split(" in ")[1].split()[0]) >= 0.3  # the cell sleeps n / 10 s, n = 3
    assert lines.index(finished[-1]) < lines.index(next(line for line in lines if " 00_talks: done in " in line))
    assert "about to fail" in lines  # the half line the cell printed is ended before the next progress line
    assert any(line.startswith("[2/2] 01_breaks: cell 1 failed in ") for line in lines)
    assert lines[-1].startswith("[2/2] 01_breaks: failed after ")


# ---------------------------------------------------------------- the index directory and the command line

FAST = ["--backbone", "vgg16", "--layer", "block5_conv3", "--weights", "none", "--input-size", "32"]
SETTINGS = {
    "backbone": "vgg16",
    "weights": None,
    "seed": 0,
    "layer": "block5_conv3",
    "pooling": "gem",
    "pooling_options": {"p": 3.0},
    "input_size": [32, 32],
}


def _noise_png(path: Path, seed: int, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, n: int, first_seed: int = 0) -> Path:
    for i in range(n):
        _noise_png(root / f"image_{first_seed + i:03d}.png", first_seed + i)
    return root


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _subprocess(*argv, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "cbir.cli", *map(str, argv)], capture_output=True, text=True, timeout=timeout
    )


def test_stdout_is_json_lines_even_with_more_images_than_a_batch(tmp_path, isolated_paths):
    images = _folder(tmp_path / "images", 7)
    indexed = _subprocess("index", images, "--out", tmp_path / "index", *FAST, "--batch-size", "2", "--json")
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["images"] == 7  # the summary, and nothing else, on stdout
    searched = _subprocess("search", tmp_path / "index", images, "--json", "-k", "3")
    assert searched.returncode == 0, searched.stderr
    lines = searched.stdout.splitlines()
    assert len(lines) == 7 and all(len(json.loads(line)["results"]) == 3 for line in lines)
    for noise in ("cuda", "oneDNN", "absl", "cpu_feature_guard"):
        assert noise not in indexed.stderr + searched.stderr, noise


def test_out_never_deletes_files_the_index_did_not_write(tmp_path, capsys, isolated_paths):
    images = _folder(tmp_path / "images", 3)
    out = tmp_path / "index"
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    mine = out / "features-experiment1.npy"
    np.save(mine, np.zeros(3))
    _noise_png(images / "image_new.png", 99)
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    assert mine.is_file() and len(FeatureIndex.load(out)) == 4


def test_a_foreign_directory_is_refused_without_force(tmp_path, capsys, isolated_paths):
    images = _folder(tmp_path / "images", 2)
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("...")
    code, out, err = _cli(capsys, "index", images, "--out", foreign, *FAST)
    assert code == 1 and out == "" and "is not empty and holds no cbir index" in err and "--force" in err
    assert _cli(capsys, "index", images, "--out", foreign, *FAST, "--force")[0] == 0
    assert (foreign / "chapter1.tex").read_text() == "..." and len(FeatureIndex.load(foreign)) == 2
    regular = tmp_path / "a-file"
    regular.write_text("x")
    code, _, err = _cli(capsys, "index", images, "--out", regular, *FAST)
    assert code == 1 and f"--out {regular} is a file" in err


def test_a_second_writer_waits_for_the_lock_or_says_why_it_stopped(tmp_path, isolated_paths):
    images = _folder(tmp_path / "images", 2)
    out = tmp_path / "index"
    with index_lock(out):
        blocked = _subprocess("index", images, "--out", out, *FAST, "--lock-timeout", "1")
    assert blocked.returncode == 1 and "another process has been writing this index" in blocked.stderr
    assert not (out / "index.json").exists()


def test_concurrent_writers_are_serialised_and_the_last_one_wins(tmp_path, isolated_paths):
    first, second = _folder(tmp_path / "a", 5), _folder(tmp_path / "b", 3, first_seed=50)
    out = tmp_path / "index"
    command = [sys.executable, "-m", "cbir.cli", "index", "--out", str(out), *FAST, "--json"]
    runs = [
        subprocess.Popen([*command, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for folder in (first, second)
    ]
    finished = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        finished.append((os.stat(out / "index.json").st_mtime_ns, json.loads(stdout)))
    index = FeatureIndex.load(out)  # readable, never a mix
    folders = {Path(entry["path"]).parent for entry in index.entries}
    assert len(folders) == 1 and len(index) in (5, 3)
    reports = [report for _, report in finished]
    assert len(index) in [report["images"] for report in reports]


def _saved_index(directory: Path, rows: int = 4) -> FeatureIndex:
    features = np.random.default_rng(0).normal(size=(rows, 6)).astype(np.float32)
    entries = [{"path": f"/x/{i}.png", "size": i, "mtime_ns": i} for i in range(rows)]
    index = FeatureIndex(SETTINGS, entries, features)
    with index_lock(directory):
        index.save(directory)
    return index


def _shard(directory: Path) -> Path:
    return directory / json.loads((directory / "index.json").read_text())["shards"][0]["file"]


def test_garbled_feature_bytes_are_detected_and_not_kept_by_reindexing(tmp_path, capsys, isolated_paths):
    images = _folder(tmp_path / "images", 3)
    out = tmp_path / "index"
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    shard = _shard(out)
    data = bytearray(shard.read_bytes())
    data[-20:-10] = b"\x7f" * 10
    shard.write_bytes(bytes(data))
    code, _, err = _cli(capsys, "search", out, images / "image_000.png")
    assert code == 1 and "do not match the SHA-256" in err
    code, _, err = _cli(capsys, "index", images, "--out", out, *FAST)
    assert code == 1 and "--force to rebuild" in err
    code, out_text, _ = _cli(capsys, "index", images, "--out", out, *FAST, "--force")
    assert code == 0 and "3 embedded, 0 unchanged" in out_text and len(FeatureIndex.load(out)) == 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda m, d: m.pop("entries"), "field 'entries' must be a list"),
        (lambda m, d: m.pop("settings"), "field 'settings' must be an object"),
        (lambda m, d: m["entries"][1].pop("size"), r"field 'entries\[1\]'"),
        (lambda m, d: m["shards"][0].update(file="/etc/passwd"), r"field 'shards\[0\].file' must name a file inside"),
        (lambda m, d: m["shards"][0].update(file="../elsewhere.npy"), r"must name a file inside"),
        (lambda m, d: m.update(format_version="two"), "field 'format_version' must be a positive integer"),
        (lambda m, d: m["shards"][0].update(rows=3), "the shards hold 3 rows for 4 entries"),
        (lambda m, d: _shard(d).write_bytes(b""), "do not match the SHA-256"),
    ],
)
def test_every_malformed_manifest_is_an_index_format_error(tmp_path, damage, message):
    _saved_index(tmp_path)
    manifest = json.loads((tmp_path / "index.json").read_text())
    damage(manifest, tmp_path)
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=message):
        FeatureIndex.load(tmp_path)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.zeros(4, np.float32), "expected float32 rows"),
        (np.zeros((4, 6), np.float64), "expected float32 rows"),
        (np.full((4, 6), np.nan, np.float32), "NaN or infinity"),
    ],
)
def test_shards_of_the_wrong_shape_dtype_or_values_are_refused(tmp_path, features, message):
    _saved_index(tmp_path)
    manifest = json.loads((tmp_path / "index.json").read_text())
    shard = _shard(tmp_path)
    np.save(shard, features)
    manifest["shards"][0]["sha256"] = sha256_of_file(shard)  # a consistent checksum: the content is still wrong
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=message):
        FeatureIndex.load(tmp_path)


def test_a_shard_of_another_width_is_refused(tmp_path):
    index = _saved_index(tmp_path)
    with index_lock(tmp_path):
        index.append(tmp_path, [{"path": "/x/new.png", "size": 1, "mtime_ns": 1}], np.ones((1, 6), np.float32))
    manifest = json.loads((tmp_path / "index.json").read_text())
    shard = tmp_path / manifest["shards"][1]["file"]
    np.save(shard, np.ones((1, 5), np.float32))
    manifest["shards"][1]["sha256"] = sha256_of_file(shard)
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="float32 rows of width 6"):
        FeatureIndex.load(tmp_path)


def test_an_interrupted_run_resumes_after_its_last_commit(tmp_path, capsys, isolated_paths, monkeypatch):
    images = _folder(tmp_path / "images", 7)
    out = tmp_path / "index"
    calls = []
    real = indexing.embed_files

    def killed_after_two_chunks(extractor, paths, progress=True):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process died here
        calls.append(len(paths))
        return real(extractor, paths, progress)

    monkeypatch.setattr(indexing, "embed_files", killed_after_two_chunks)
    code, _, err = _cli(capsys, "index", images, "--out", out, *FAST, "--commit-every", "3")
    assert code == 130 and "interrupted" in err
    assert len(FeatureIndex.load(out)) == 6  # two chunks of 3 committed
    monkeypatch.setattr(indexing, "embed_files", real)
    code, out_text, _ = _cli(capsys, "index", images, "--out", out, *FAST, "--commit-every", "3")
    assert code == 0 and "1 embedded, 6 unchanged" in out_text and len(FeatureIndex.load(out)) == 7


def test_temporaries_of_a_killed_save_are_removed_by_the_next_run(tmp_path, capsys, isolated_paths):
    images = _folder(tmp_path / "images", 2)
    out = tmp_path / "index"
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    stale = [out / ".index.json.k1l2m3.tmp", out / ".features-0.npy.x9y8.tmp.npy"]
    for path in stale:
        path.write_bytes(b"half written")
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    assert not any(path.exists() for path in stale)


def test_empty_query_folder_and_empty_image_folder_are_errors(tmp_path, capsys, isolated_paths):
    images = _folder(tmp_path / "images", 2)
    assert _cli(capsys, "index", images, "--out", tmp_path / "index", *FAST)[0] == 0
    (tmp_path / "no-queries").mkdir()
    code, out, err = _cli(capsys, "search", tmp_path / "index", tmp_path / "no-queries")
    assert code == 1 and out == "" and f"no query images in {tmp_path / 'no-queries'}" in err
    (tmp_path / "empty").mkdir()
    code, out, err = _cli(capsys, "index", tmp_path / "empty", "--out", tmp_path / "other", *FAST)
    assert code == 1 and out == "" and f"no images found under {tmp_path / 'empty'}" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--batch-size", "0"], "--batch-size: must be >= 1"),
        (["--gem-p", "0"], "--gem-p: must be > 0"),
        (["--commit-every", "-3"], "--commit-every: must be >= 1"),
    ],
)
def test_odd_options_are_usage_errors(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit_status:
        main(["index", str(tmp_path), "--out", str(tmp_path / "i"), *option])
    assert exit_status.value.code == 2 and message in capsys.readouterr().err


def test_identical_features_are_warned_about(tmp_path, capsys, isolated_paths, monkeypatch):
    images = _folder(tmp_path / "images", 3)
    monkeypatch.setattr(
        indexing, "embed_files", lambda extractor, paths, progress=True: np.ones((len(paths), 8), np.float32)
    )
    code, _, err = _cli(capsys, "index", images, "--out", tmp_path / "index", *FAST)
    assert code == 0 and "all 3 features are identical" in err


def test_help_version_and_defaults_need_no_tensorflow():
    script = (
        "import sys\nfrom cbir.cli import main\ntry:\n    main(['index', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "(default: 32)" in text and "(default: efficientnet_lite0)" in text and "(default: gem)" in text
    version = _subprocess("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("cbir ")


def test_cli_names_match_the_registries():
    from cbir.models.backbones import BACKBONES
    from cbir.models.pooling import POOLINGS

    assert set(cli.BACKBONE_NAMES) == set(BACKBONES) and set(cli.POOLING_NAMES) == set(POOLINGS)


def test_class_folder_tree_reports_loose_files_and_broken_class_links(tmp_path):
    root = tmp_path / "tree"
    _png(root / "cats" / "a.png")
    _png(root / "dogs" / "b.png")
    _png(root / "loose.png")
    (root / "birds").symlink_to(tmp_path / "gone")
    paths, labels, class_names, skipped = scan_image_folder(root)
    assert class_names == ("cats", "dogs") and labels == [0, 1]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["loose.png"].startswith("not in a class subfolder")
    assert reasons["birds"].startswith("broken symlink")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(settings={}), "field 'settings.backbone' must be one of"),
        (lambda m: m["settings"].update(pooling="bogus"), "field 'settings.pooling' must be null or one of"),
        (lambda m: m["settings"].update(input_size=[100000, 100000]), r"field 'settings.input_size' must be"),
        (lambda m: m["settings"].update(pooling_options={"p": float("nan")}), "field 'settings.pooling_options'"),
        (
            lambda m: m["settings"].update(backbone="efficientnet_lite0", layer="head_activation"),
            "holds 512-D features but its settings give 1280-D ones",
        ),
    ],
)
def test_a_hand_edited_manifest_gives_a_message_not_a_traceback(tmp_path, capsys, isolated_paths, edit, message):
    images = _folder(tmp_path / "images", 2)
    out = tmp_path / "index"
    assert _cli(capsys, "index", images, "--out", out, *FAST)[0] == 0
    manifest = json.loads((out / "index.json").read_text())
    edit(manifest)
    (out / "index.json").write_text(json.dumps(manifest))
    code, stdout, err = _cli(capsys, "search", out, images / "image_000.png")
    assert code == 1 and stdout == "" and re.search(message, err), err


def test_a_deeply_nested_manifest_is_an_index_format_error(tmp_path):
    (tmp_path / "index.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(IndexFormatError, match="unreadable index manifest"):
        FeatureIndex.load(tmp_path)
