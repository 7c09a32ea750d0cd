"""Rendering of result objects: self-contained HTML (figures embedded), Markdown, JSON.

``Report`` is a list of sections built by per-command builders
(``causalrec.report.ope``, ...). The report layer only renders: every number
it shows comes from a result object.
"""

from causalrec.report.core import Report

__all__ = ["Report"]
