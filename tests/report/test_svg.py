"""Inline-SVG plot helpers: ticks, escaping, empty plots, focused views."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from nasbench.report.svg import Bars, Rule, Series, bars_svg, nice_ticks, scatter_svg


def test_nice_ticks_are_round_and_cover_the_range():
    ticks = nice_ticks(3.2, 27.9)
    assert ticks[0] <= 3.2 and ticks[-1] >= 27.9
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() in (2.5, 5.0)
    assert nice_ticks(5.0, 5.0)  # a degenerate range still gets ticks


def test_scatter_is_valid_svg_and_escapes_every_string():
    evil = "<script>alert(1)</script>"
    svg = scatter_svg([Series(evil, [1, 2, 3], [3, 1, 2], labels=[evil, "", "b"], tips=[evil] * 3)],
                      x_label=evil, y_label="y <ms>", plot_id="p1", title=evil, rules=[Rule("x", 2.5, evil)])
    assert "<script" not in svg
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("id") == "p1" and int(root.get("data-marks")) == 3
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert evil in texts and "y <ms>" in texts  # shown as text once parsed


def test_scatter_without_points_says_so():
    svg = scatter_svg([Series("a", [], [])], x_label="x", y_label="y", plot_id="e", empty_text="nothing yet")
    assert "nothing yet" in svg and "data-marks='0'" in svg


def test_x_range_hides_points_outside_and_their_legend_entry():
    svg = scatter_svg([Series("in", [1, 2], [1, 2]), Series("far", [100], [50])], x_label="x", y_label="y",
                      plot_id="v", x_range=(0, 3))
    assert "data-marks='2'" in svg
    assert ">far<" not in svg
    ys = [float(v) for v in re.findall(r"class='tick'>([0-9.]+)<", svg)]
    assert max(ys) < 50  # the y range fits only the points in view


def test_nan_and_none_points_are_skipped():
    svg = scatter_svg([Series("s", [1, None, float("nan"), 4], [1, 2, 3, None])], x_label="x", y_label="y",
                      plot_id="n")
    assert "data-marks='1'" in svg


def test_bars_draw_one_rect_per_value():
    svg = bars_svg(["depth", "width<"], [Bars("objective", [0.7, 0.3]), Bars("latency", [None, 1.0])],
                   x_label="importance", plot_id="b", x_max=1.0)
    root = ET.fromstring(svg)
    assert int(root.get("data-marks")) == 3
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) >= 3
    assert "width&lt;" in svg and "n/a" in svg
