"""Where t2l keeps its registry, cached models and adapter files."""

import os
from pathlib import Path


def t2l_home() -> Path:
    """`$T2L_HOME` if set, else the platform's user-data dir (e.g. ~/.local/share/t2l)."""
    if os.environ.get("T2L_HOME"):
        return Path(os.environ["T2L_HOME"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("t2l", appauthor=False))
