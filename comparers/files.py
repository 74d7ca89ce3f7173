"""Files ktdiff writes for the user: the whole file or nothing, with the permissions of any program's output."""

from __future__ import annotations

import os
import tempfile
from typing import Callable


def write_atomically(path: str, write: Callable[[str], object], suffix: str = "") -> None:
    """`write(tmp)` fills a temporary file in PATH's folder, which is then renamed over PATH. The file keeps
    the mode an existing one had, or gets 0666 minus the umask. OSError when the folder takes no file."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=".ktdiff-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
