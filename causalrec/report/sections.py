"""Replace one marked section of a Markdown file, leaving the rest intact.

Benchmarks and analyses each own a section of a shared file such as
``reports/benchmarks.md``::

    <!-- BEGIN ope-10m -->
    ...generated text...
    <!-- END ope-10m -->

so that re-running one benchmark rewrites its figures and nobody else's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from causalrec.data.atomic import atomic_write_text


def update_section(path: str | os.PathLike, name: str, markdown: str, title: str = "Benchmarks") -> Path:
    """Insert or replace the section ``name`` of ``path`` with ``markdown`` (atomic write)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name must be [A-Za-z0-9_.-]+, got {name!r}")
    path = Path(path)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# {title}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    return atomic_write_text(path, text)
