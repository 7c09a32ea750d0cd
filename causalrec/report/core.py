"""``Report``: an ordered list of sections rendered to HTML or Markdown.

HTML goes through a jinja2 template with autoescape on, so item titles and
user text in tables cannot inject markup; figures are embedded as base64 PNG,
so the file works offline and has no external ``src``/``href``.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from causalrec.data.atomic import atomic_write_text


@dataclass
class Section:
    kind: str  # heading | text | table | figure | kv | warnings | list
    title: str = ""
    body: Any = None
    note: str = ""


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    payload: dict[str, Any] | None = None  # the result's to_dict(), for the JSON footer

    # -- building ----------------------------------------------------------
    def heading(self, title: str) -> Report:
        self.sections.append(Section("heading", title))
        return self

    def text(self, body: str, title: str = "") -> Report:
        self.sections.append(Section("text", title, body))
        return self

    def bullets(self, items: list[str], title: str = "") -> Report:
        self.sections.append(Section("list", title, list(items)))
        return self

    def table(self, frame: pd.DataFrame, title: str = "", note: str = "", digits: int = 4) -> Report:
        self.sections.append(Section("table", title, _format_frame(frame, digits), note))
        return self

    def kv(self, mapping: dict[str, Any], title: str = "", note: str = "") -> Report:
        rows = [(str(k), _fmt(v)) for k, v in mapping.items() if not isinstance(v, (dict, list))]
        self.sections.append(Section("kv", title, rows, note))
        return self

    def figure(self, fig: Any, title: str = "", note: str = "") -> Report:
        """Add a matplotlib figure (rendered and closed immediately)."""
        from causalrec.report.figures import figure_png, png_data_uri

        self.sections.append(Section("figure", title, png_data_uri(figure_png(fig)), note))
        return self

    def warnings(self, items: list[str], title: str = "Warnings") -> Report:
        if items:
            self.sections.append(Section("warnings", title, list(items)))
        return self

    # -- rendering ---------------------------------------------------------
    def to_html(self) -> str:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("causalrec.report", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from causalrec import __version__

        return env.get_template("report.html.j2").render(
            report=self, version=__version__,
            generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [self.subtitle, ""]
        for s in self.sections:
            if s.kind == "heading":
                out += [f"## {s.title}", ""]
                continue
            if s.title:
                out += [f"### {s.title}", ""]
            if s.kind == "text":
                out += [s.body, ""]
            elif s.kind in ("list", "warnings"):
                out += [f"- {x}" for x in s.body] + [""]
            elif s.kind == "table":
                out += [_md_table(s.body), ""]
            elif s.kind == "kv":
                out += [_md_table(pd.DataFrame(s.body, columns=["quantity", "value"])), ""]
            elif s.kind == "figure":
                out += ["*(figure in the HTML report)*", ""]
            if s.note:
                out += [f"*{s.note}*", ""]
        return "\n".join(out)

    def write(self, path: str | os.PathLike) -> Path:
        """Write HTML (``.html``/``.htm``) or Markdown (``.md``), atomically."""
        path = Path(path)
        text = self.to_markdown() if path.suffix.lower() in (".md", ".markdown") else self.to_html()
        return atomic_write_text(path, text)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _format_frame(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
        else:
            out[c] = out[c].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    return out.reset_index(drop=True)


def _md_table(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
    return "\n".join(lines)
