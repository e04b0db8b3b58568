"""The audit's HTML report: one self-contained file (inline CSS and plots)."""

from verification.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
