"""Reproductions and analyses built on kdexplain (run from the repository root).

Each sub-package is runnable with ``python -m analyses.<name>`` and writes its reports
under ``reports/<name>/``. Analyses may import any room of ``kdexplain``; ``kdexplain``
never imports them.
"""
