"""What to save beside every run so it can be reproduced: versions and git revision."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

_PACKAGES = ("kdexplain", "torch", "torchvision", "captum", "numpy", "scipy", "pandas",
             "matplotlib", "pydantic", "scikit-image", "scikit-learn")


#: Where the commands write what they generate; a changed file there does not make the
#: source "dirty" (a regenerated committed report is not a change to the code that wrote it).
GENERATED = ("reports",)


def git_revision(path: str | Path | None = None) -> str | None:
    """The git commit of the source tree at ``path`` (default: this package), or None.

    ``-dirty`` is appended when a tracked file outside :data:`GENERATED` differs from the
    commit, so a report regenerated into ``reports/`` still names the clean commit.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=True)
        rev = out.stdout.strip()
        spec = [":(top)", *(f":(top,exclude){g}" for g in GENERATED)]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                *spec], cwd=where, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict:
    """Package versions, Python, platform, device and the git revision, as a JSON-able dict."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_revision": git_revision(),
    }
    try:
        import torch

        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover - torch is a hard dependency
        pass
    return info
