"""`reports.summary_table`: the Markdown a notebook's Summary renders, checked against tables written by hand."""

import numpy as np
import pytest

from cbir.reports import summary_table


def test_numbers_texts_and_missing_published_values():
    metrics = {"n_images": np.int64(70000), "map_gem": np.float32(0.52038515), "p1": 0.8703, "unused": 1.0}
    rows = [
        ("n_images", "images", 70000),
        ("map_gem", "mAP, GeM", "Radenović et al. 2018 (landmarks; no Fashion-MNIST figure)"),
        ("p1", "P@1", None),
        ("map_hamming_48", "mAP, 48 bits", 0.86),  # not recorded in this run: left out
    ]
    expected = (
        "| result | this run | published |\n"
        "|---|---:|---|\n"
        "| images | 70,000 | 70,000 |\n"
        "| mAP, GeM | 0.5204 | Radenović et al. 2018 (landmarks; no Fashion-MNIST figure) |\n"
        "| P@1 | 0.8703 | — |\n"
    )
    assert summary_table(metrics, rows) == expected


def test_rows_keep_their_order_and_pipes_are_escaped():
    metrics = {"b": 2, "a": 0.000123456}
    rows = [("b", "second | first", "a|b"), ("a", "tiny", 1.5e-4)]
    expected = (
        "| result | this run | published |\n"
        "|---|---:|---|\n"
        "| second \\| first | 2 | a\\|b |\n"
        "| tiny | 0.0001235 | 0.00015 |\n"
    )
    assert summary_table(metrics, rows) == expected


def test_no_recorded_row_gives_a_note_not_an_empty_table():
    assert summary_table({"x": 1.0}, [("y", "y", None)]) == (
        "_None of the headline numbers was recorded in this run: see the tables above._\n"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "0.5"])
def test_non_numbers_are_refused_with_the_metric_name(value):
    with pytest.raises(ValueError, match="map_gem must be a finite number"):
        summary_table({"map_gem": value}, [("map_gem", "mAP", None)])


def test_a_published_value_that_is_not_finite_is_refused():
    with pytest.raises(ValueError, match="published map_gem"):
        summary_table({"map_gem": 0.5}, [("map_gem", "mAP", float("nan"))])


def test_large_values_are_written_to_the_unit_with_separators():
    metrics = {"qps": 43204.4, "qps_exact": 999.96, "latency": -1234.5}
    rows = [("qps", "queries/s", 1e5), ("qps_exact", "exact", None), ("latency", "change", None)]
    expected = (
        "| result | this run | published |\n"
        "|---|---:|---|\n"
        "| queries/s | 43,204 | 100,000 |\n"
        "| exact | 1000 | — |\n"
        "| change | -1,234 | — |\n"
    )
    assert summary_table(metrics, rows) == expected
