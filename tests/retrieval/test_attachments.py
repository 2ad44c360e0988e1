"""Attachments of a FeatureIndex: committed with the manifest, verified on read, replaced and deleted
like shards, and never mistaken for foreign files."""

import json

import numpy as np
import pytest

from cbir.retrieval.feature_index import MANIFEST_NAME, FeatureIndex
from cbir.retrieval.storage import IndexFormatError, is_index_file


def _index(directory):
    features = np.eye(3, dtype=np.float32)
    entries = [{"path": f"/x/{i}.png", "size": 1, "mtime_ns": 1} for i in range(3)]
    return FeatureIndex({"backbone": "b"}, entries, features).save(directory)


def _writer(values):
    return lambda path: np.savez(path, values=np.asarray(values))


def test_attach_reload_replace_detach(tmp_path):
    _index(tmp_path)
    index = FeatureIndex.load(tmp_path)
    index.attach(tmp_path, "vocabulary", _writer([1.0, 2.0]), {"size": 2})
    first = index.attachments["vocabulary"]["file"]
    loaded = FeatureIndex.load(tmp_path)
    assert loaded.attachments["vocabulary"]["meta"] == {"size": 2}
    with np.load(loaded.attachment_path(tmp_path, "vocabulary")) as data:
        np.testing.assert_array_equal(data["values"], [1.0, 2.0])
    assert is_index_file(first)
    loaded.attach(tmp_path, "vocabulary", _writer([3.0]), {"size": 1})
    assert not (tmp_path / first).exists()  # the replaced file is deleted once the new manifest is committed
    loaded.detach(tmp_path, "vocabulary")
    assert FeatureIndex.load(tmp_path).attachments == {}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("attachment")) == []
    assert FeatureIndex.load(tmp_path).attachment_path(tmp_path, "vocabulary") is None


def test_corrupt_or_unsafe_attachment_is_refused(tmp_path):
    _index(tmp_path)
    index = FeatureIndex.load(tmp_path)
    index.attach(tmp_path, "ann", _writer([1.0]), {})
    path = tmp_path / index.attachments["ann"]["file"]
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IndexFormatError, match="attachment 'ann' is missing or corrupted"):
        FeatureIndex.load(tmp_path).attachment_path(tmp_path, "ann")
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    manifest["attachments"]["ann"]["file"] = "../elsewhere.npz"
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="attachments.ann.file"):
        FeatureIndex.load(tmp_path)
    with pytest.raises(ValueError, match="attachment names"):
        index.attach(tmp_path, "Bad/Name", _writer([1.0]), {})
