"""Execute a tutorial notebook headless and save it with its outputs.

    python scripts/execute-notebook.py notebooks/01-quickstart.ipynb quickstart-data

runs the notebook with nbclient in the given working folder (so the data and store it
writes land there, not beside the tutorials) and saves the executed copy in that folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source, workdir = Path(argv[0]), Path(argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(source, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    # the cells' own output (stderr included) comes back in the notebook; the kernel process's
    # start-up chatter (a warning about local TCP sockets) is not for the reader
    client.execute(stderr=subprocess.DEVNULL)
    target = workdir / source.name
    nbformat.write(notebook, target)
    print(f"\nexecuted notebook: {target}")
    print("open it, and every tutorial in notebooks/, with:  .venv/bin/jupyter lab notebooks/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
