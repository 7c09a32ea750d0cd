"""The uplift report: every section present, self-contained, escaped, Markdown too."""

import re
from html.parser import HTMLParser

from causalrec.report.uplift import build_uplift_report, estimates_table


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> list[tuple[str, dict]]:
    p = _Collect()
    p.feed(html)
    return p.tags


def test_sections_present(uplift_html):
    html = uplift_html.read_text()
    for heading in ("Question and estimand", "Data", "Assumptions", "Average effects", "Overlap and balance",
                    "Heterogeneous effects", "Uplift curve", "Refutations and sensitivity", "Warnings"):
        assert f"<h2>{heading}</h2>" in html or f"<h3>{heading}</h3>" in html, heading
    tags = _parse(html)
    imgs = [a for t, a in tags if t == "img"]
    # overlap, love plot, 2 group plots, CATE histogram, uplift curve
    assert len(imgs) == 6
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    for name in ("naive", "ipw", "aipw", "placebo", "random_common_cause", "data_subset", "unobserved_confounder"):
        assert f"<td>{name}</td>" in html, name


def test_no_external_urls(uplift_html):
    html = uplift_html.read_text()
    for tag, attrs in _parse(html):
        for key in ("src", "href"):
            v = attrs.get(key)
            if v is not None:
                assert v.startswith("data:") or v.startswith("#"), (tag, key, v[:60])
    assert not re.search(r"<(script|link|iframe)\b", html)


def test_injected_text_is_escaped(uplift_html):
    html = uplift_html.read_text()
    assert "evil.example" in html  # the text is shown ...
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html  # ... as text, escaped
    assert "<script>" not in html
    srcs = [a.get("src", "") for t, a in _parse(html) if t == "img"]
    assert not any("evil" in s for s in srcs)


def test_markdown_and_table(uplift_result):
    rep = build_uplift_report(uplift_result)
    md = rep.to_markdown()
    assert md.startswith("# Uplift report")
    assert "## Average effects" in md and "| aipw |" in md
    assert "## Refutations and sensitivity" in md
    tab = estimates_table(uplift_result)
    assert list(tab["method"]) == ["naive", "ipw", "aipw"]
    assert {"ATE", "ATE CI", "ATT"} <= set(tab.columns)
    aipw = uplift_result.get("aipw", "ate")
    assert tab.loc[tab["method"] == "aipw", "ATE"].iloc[0] == aipw.estimate


def test_report_without_analysis(uplift_result):
    from causalrec.uplift.result import UpliftResult

    bare = UpliftResult(command="uplift", n_rows=uplift_result.n_rows, estimates=uplift_result.estimates,
                        config=uplift_result.config)
    html = build_uplift_report(bare).to_html()
    assert "<h2>Average effects</h2>" in html and "<h2>Uplift curve</h2>" not in html


def test_empty_group_table_renders_note(uplift_result):
    import copy

    import numpy as np

    from causalrec.uplift.segments import group_effects

    res = copy.copy(uplift_result)
    res.analysis = copy.copy(uplift_result.analysis)
    n = res.nuisance["t"].shape[0]
    nu = res.nuisance
    tiny = group_effects(nu["y"], nu["t"], nu["e_hat"], nu["mu0"], nu["mu1"], np.arange(n), by="item_id")
    assert len(tiny.table) == 0 and tiny.n_groups_dropped == n
    res.analysis.groups = [tiny]
    html = build_uplift_report(res).to_html()
    assert "Effects by item_id" in html and f"{n} of {n} groups were left out" in html
