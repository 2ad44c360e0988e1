"""The figures draw what they are given: checked on the artists they create."""

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from cbir.data.images import ImageSet
from cbir.viz.plots import plot_latent_activations, plot_map_by_bits, plot_score_bars, plot_search_results


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _edge(ax) -> tuple:
    return tuple(ax.spines["left"].get_edgecolor())


def test_search_results_frame_relevant_results_green_and_others_red():
    rng = np.random.default_rng(0)
    database = ImageSet(
        labels=np.array([0, 1, 0, 1, 2]),
        class_names=("shirt", "trouser", "a very long class name"),
        images=rng.integers(0, 256, (5, 6, 6), dtype=np.uint8),
    )
    queries = database.subset([0, 4])
    indices = np.array([[2, 1, 0], [4, 3, 1]])
    scores = np.array([[0.9, 0.8, 0.7], [1.0, 0.55, 0.5]])
    figure = plot_search_results(queries, database, scores, indices)
    axes = np.array(figure.axes).reshape(2, 4)
    assert [ax.get_title() for ax in axes[:, 0]] == ["shirt", "a very long cl"]  # class names, 14 characters
    assert [ax.get_title() for ax in axes[0, 1:]] == ["0.900", "0.800", "0.700"]
    green, red = mcolors.to_rgba("tab:green"), mcolors.to_rgba("tab:red")
    expected = [[green, red, green], [green, red, red]]  # same class as the query: green
    assert [[_edge(ax) for ax in row[1:]] for row in axes] == expected
    assert _edge(axes[0, 0]) == mcolors.to_rgba("black")
    np.testing.assert_array_equal(axes[1, 2].images[0].get_array()[..., 0], database.images[3])


def test_search_results_of_unlabelled_files_are_titled_by_name_and_not_framed(tmp_path):
    paths = []
    for name in ("cat.png", "dog.png"):
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    images = ImageSet(labels=np.full(2, -1), class_names=(), paths=tuple(paths))
    figure = plot_search_results(images.subset([1]), images, np.array([[1.0, 0.75]]), np.array([[1, 0]]))
    assert [ax.get_title() for ax in figure.axes] == ["dog.png", "1.000", "0.750"]
    colours = {_edge(ax) for ax in figure.axes[1:]}
    assert not colours & {mcolors.to_rgba("tab:green"), mcolors.to_rgba("tab:red")}


def test_search_results_need_one_row_per_query():
    images = ImageSet(labels=np.zeros(3, np.int64), class_names=("a",), images=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(2, k\)"):
        plot_search_results(images.subset([0, 1]), images, np.zeros((1, 2)), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match=r"shape \(2, k\)"):
        plot_search_results(images.subset([0, 1]), images, np.zeros((2, 2)), np.zeros((2, 3), np.int64))


def test_score_bars_draw_each_value_top_to_bottom():
    figure = plot_score_bars({"a · gem": 0.5, "b · mac": 0.25}, "mAP by method")
    ax = figure.axes[0]
    assert [bar.get_width() for bar in ax.patches] == [0.5, 0.25]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["a · gem", "b · mac"]
    assert [text.get_text() for text in ax.texts] == ["0.500", "0.250"]


def test_latent_activations_show_the_bit_balance():
    activations = np.array([[0.1, 0.6, 0.5], [0.9, 0.7, 0.2], [0.2, 0.8, 0.4], [0.3, 0.95, 0.45]])
    figure = plot_latent_activations(activations)
    balance = [bar.get_height() for bar in figure.axes[1].patches]
    assert balance == [0.25, 1.0, 0.25]  # the fraction of codes with each bit >= 0.5
    assert "3 bits (12 values)" in figure.axes[0].get_title()


def test_map_by_bits_draws_each_series_and_the_reference():
    figure = plot_map_by_bits(
        {"Hamming": {12: 0.4, 48: 0.6}},
        ("cosine", 0.5),
        {"Hamming": {1: 0.9, 10: 0.8}},
        48,
        published={"QSMIH": {12: 0.84}},
    )
    left = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert left["Hamming"].get_xdata().tolist() == [12, 48] and left["Hamming"].get_ydata().tolist() == [0.4, 0.6]
    assert list(left["cosine"].get_ydata()) == [0.5, 0.5] and "QSMIH (published)" in left
    right = figure.axes[1].get_lines()[0]
    assert right.get_xdata().tolist() == [1, 10] and right.get_ydata().tolist() == [0.9, 0.8]
    assert figure.axes[1].get_title() == "Precision@k, 48 bits"
