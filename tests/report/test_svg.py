"""Inline-SVG plot helpers: ticks, escaping, empty plots, focused views."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from nasbench.report.svg import Bars, Panel, Rule, Series, View, bars_svg, nice_ticks, panels_svg, scatter_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_nice_ticks_are_round_and_cover_the_range():
    ticks = nice_ticks(3.2, 27.9)
    assert ticks[0] <= 3.2 and ticks[-1] >= 27.9
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() in (2.5, 5.0)
    assert nice_ticks(0, 300) == [0, 50, 100, 150, 200, 250, 300]
    assert nice_ticks(2.21, 3.07) == [2.2, 2.4, 2.6, 2.8, 3.0, 3.2]  # past 3.07: the last tick covers hi
    assert nice_ticks(0.6, 1.0, target=3) == [0.6, 0.8, 1.0]  # 0.6 / 0.2 = 2.999…: no extra tick below lo
    assert nice_ticks(5.0, 5.0) == [5, 6, 7, 8, 9, 10]  # a degenerate range still gets ticks
    assert nice_ticks(float("nan"), 1.0) == [0.0, 1.0]


def test_panels_stack_plots_in_one_standalone_file_with_aligned_x_axes():
    line = Series("loss <a&b>", [1, 2, 4], [3.0, 2.0, 1.0], line="line")
    svg = panels_svg([Panel([line], "loss", "p1", height=200), Panel([line], "top-1", "p2", height=300)],
                     x_label="step", title="t & t", notes=["n"], warning="SYNTHETIC", x_range=(0, 4))
    root = ET.fromstring(svg)
    assert root.get("height") == str(3 * 19 + 8 + 200 + 300)  # title, note, warning, then the panels
    assert ".tick{" in root.find(f"{SVG}style").text  # styled without a page around it
    groups = root.findall(f"{SVG}g")
    assert [g.get("transform") for g in groups] == ["translate(0,65)", "translate(0,265)"]
    plots = [g.find(f"{SVG}svg") for g in groups]
    assert [p.get("id") for p in plots] == ["p1", "p2"] and all(p.get("data-marks") == "4" for p in plots)
    lines = [[p.get("d") for p in plot.iter(f"{SVG}path") if p.get("fill") == "none"] for plot in plots]
    xs = [[float(v) for v in re.findall(r"[ML]([\d.]+) ", d)] for [d] in lines]
    assert xs[0] == xs[1] == [70 + 670 * x / 4 for x in (1, 2, 4)]  # the same step axis in both panels
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "t & t" in texts and "SYNTHETIC" in texts and "loss <a&b>" in texts


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
                      plot_id="v", view=View(x_range=(0, 3)))
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
