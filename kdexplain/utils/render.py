"""How every report shows a number, a p-value, a table and a figure, and the entropy colours.

One place for what readers see, so that the package's report, the quickstart figures,
the dataset preview and the analyses under ``analyses/`` print and draw alike:

- :func:`format_number`, :func:`format_p`, :func:`format_percent`, :func:`format_pm`,
  :func:`format_interval`:
  numbers as text (NaN prints as ``"n/a"``);
- :func:`markdown_table`, :func:`text_table`: a DataFrame as a Markdown table or as a
  plain-text one for a terminal (both through pandas ``to_markdown``, whose tables come
  from the ``tabulate`` package, a dependency for that alone);
- :func:`save_png`: a figure to a PNG file, written atomically;
- :data:`ENTROPY_CMAP`, :func:`show_entropy`, :func:`entropy_colorbar`: the one colour map
  of every entropy grid, and its colour bar labelled in words.

This module lives in the lowest room (``utils``) so that ``data`` and ``quantify`` can use
it; matplotlib and pandas are imported only by the functions that need them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdexplain.utils.io import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

__all__ = [
    "ENTROPY_CMAP",
    "ENTROPY_LABEL",
    "RELEVANCE_CMAP",
    "entropy_colorbar",
    "format_interval",
    "format_number",
    "format_p",
    "format_percent",
    "format_pm",
    "markdown_table",
    "save_png",
    "show_entropy",
    "text_table",
]

#: Colour map of every entropy grid: inverted magma, so low entropy (a cell whose
#: information the layer uses) is bright and high entropy (ignored) is dark.
ENTROPY_CMAP = "magma_r"
#: Colour map of a relevance map where high = used (``map="normalized"``, Captum's
#: attributions): plain magma, so a used region looks as bright as in an entropy grid.
RELEVANCE_CMAP = "magma"
#: Label of the colour bar of an entropy grid.
ENTROPY_LABEL = "entropy per cell (nats); bright = low = information used"
#: What a missing or undefined number prints as.
MISSING = "n/a"


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def format_number(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits: ``0.0123``, ``4.56``, ``78.9``.

    A magnitude of ``10**digits`` or more prints as a whole number (``1234``, not
    ``1.23e+03``); NaN and None print as ``"n/a"``, infinities as ``"inf"`` / ``"-inf"``.
    """
    if x is None:
        return MISSING
    x = float(x)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) >= 10 ** digits:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def format_p(p: float | None) -> str:
    """A p-value: three decimals (``0.032``), or two significant digits in scientific
    notation below 0.001 (``4.9e-05``); NaN and None print as ``"n/a"``."""
    if not _finite(p):
        return MISSING
    p = float(p)
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def format_percent(x: float | None, decimals: int = 1) -> str:
    """A share in [0, 1] as a percentage: ``0.1234 -> "12.3%"``; NaN prints as ``"n/a"``."""
    if not _finite(x):
        return MISSING
    return f"{100 * float(x):.{decimals}f}%"


def _decimals(spread: float, value: float) -> int:
    """Decimals so that the spread shows two significant digits (value: three if no spread)."""
    if _finite(spread) and spread > 0:
        ref, digits = spread, 2
    else:
        ref, digits = value, 3
    if not _finite(ref) or ref == 0:
        return 2
    return max(0, digits - 1 - math.floor(math.log10(abs(ref))))


def format_pm(value: float, spread: float, *, pm: str = " ± ") -> str:
    """``"12.3 ± 2.1"``: the spread to two significant digits, the value to the same place.

    NaN prints as ``"n/a"``; a NaN spread prints the value alone.
    """
    if not _finite(value):
        return MISSING
    dec = _decimals(spread, value)
    if not _finite(spread):
        return f"{value:.{dec}f}"
    return f"{value:.{dec}f}{pm}{spread:.{dec}f}"


def format_interval(low: float, high: float, value: float, spread: float) -> str:
    """``"[10.2, 14.4]"``: an interval at the decimals :func:`format_pm` gives ``value ±
    spread``; ``"n/a"`` when the interval is undefined."""
    if not (_finite(low) and _finite(high)):
        return MISSING
    dec = _decimals(spread, value)
    return f"[{low:.{dec}f}, {high:.{dec}f}]"


def _column_align(frame: pd.DataFrame, align: str | None) -> Sequence[str] | None:
    """``align`` (one of l, r, c per column) as tabulate's column alignment."""
    names = {"l": "left", "r": "right", "c": "center"}
    if align is None:
        return None
    if len(align) != frame.shape[1] or set(align) - set(names):
        raise ValueError(f"align needs one of l, r, c per column ({frame.shape[1]} "
                         f"columns: {list(frame.columns)}), got {align!r}")
    return [names[a] for a in align]


def markdown_table(frame: pd.DataFrame, align: str | None = None) -> str:
    """A DataFrame as a Markdown (pipe) table; the index is left out.

    Cells are printed as they are (format numbers first, e.g. with :func:`format_number`):
    text that looks like a number is not re-parsed, so ``"0.500"`` stays ``0.500``.

    Parameters
    ----------
    frame : DataFrame
        Column names are the headers: name them in words.
    align : str, optional
        One letter per column, ``l`` (left), ``r`` (right) or ``c`` (centre); default all
        left.
    """
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                             colalign=_column_align(frame, align))


def text_table(frame: pd.DataFrame, align: str | None = None) -> str:
    """A DataFrame as a plain-text table for a terminal: headers, a dashed rule, the rows.

    The same cells and ``align`` as :func:`markdown_table`, without the pipes::

        model    phase      val acc
        -------  -------  ---------
        teacher  main         91.2%
    """
    return frame.to_markdown(index=False, tablefmt="simple", disable_numparse=True,
                             colalign=_column_align(frame, align))


def save_png(fig: Figure, path: str | Path, dpi: int = 120,
             bbox_inches: str | None = None) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it.

    A :class:`matplotlib.figure.Figure` built directly needs no backend; a figure that
    pyplot manages is closed through pyplot, so none is left open.

    Parameters
    ----------
    fig : Figure
    path : path
        Parent folders are created.
    dpi : int
    bbox_inches : str, optional
        ``"tight"`` crops the white margin.

    Returns
    -------
    Path
        ``path``.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=bbox_inches)
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt  # already imported: pyplot made this figure

        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def show_entropy(ax: Axes, grid: Any, vmin: float | None = None, vmax: float | None = None,
                 **imshow: Any) -> AxesImage:
    """Draw an entropy grid (or its upsampled pixels) on ``ax`` in :data:`ENTROPY_CMAP`.

    Parameters
    ----------
    ax : Axes
    grid : array (g, g) or (H, W)
        Entropy per cell, nats per dimension.
    vmin, vmax : float, optional
        The colour scale; share it between the grids a reader compares.
    **imshow
        Further arguments of ``ax.imshow`` (``extent``, ``alpha``, ...); nearest
        interpolation unless given.

    Returns
    -------
    AxesImage
        For :func:`entropy_colorbar`.
    """
    imshow.setdefault("interpolation", "nearest")
    return ax.imshow(grid, cmap=ENTROPY_CMAP, vmin=vmin, vmax=vmax, **imshow)


def entropy_colorbar(fig: Figure, mappable: AxesImage, label: str = ENTROPY_LABEL,
                     fontsize: float = 8, **colorbar: Any):
    """The colour bar of an entropy grid, labelled in words; ``**colorbar`` goes to
    ``fig.colorbar`` (``ax=``, ``cax=``, ``shrink=``, ...). Returns the colour bar."""
    cb = fig.colorbar(mappable, **colorbar)
    cb.set_label(label, fontsize=fontsize)
    return cb
