"""What every ``bench/`` result file opens with, and how it is written.

``header(name)`` is ``{"benchmark", "time", "machine": {"cpus", "python",
"load_average"}, "command"}``: the script, when and on what it ran, and the command line
that reproduces it (``python bench/NAME.py ARGS``). ``write(path, report)`` writes the
report as indented JSON, creating the folder, and says where.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def header(name: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "command": " ".join(["python", f"bench/{name}.py", *sys.argv[1:]]),
    }


def write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
