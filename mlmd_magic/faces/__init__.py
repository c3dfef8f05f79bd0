"""The faces people use: the ``%mlmd`` magics and cells, the console script's commands.

They parse and delegate to the store; none of them touches MLMD.

* :mod:`~mlmd_magic.faces.commands` — the subcommands shared by ``%mlmd`` and ``mlmd-magic``
* :mod:`~mlmd_magic.faces.magics` — the IPython magics and their settings (traitlets)
* :mod:`~mlmd_magic.faces.cells` — YAML bodies of cells, ``--set`` values and files
* :mod:`~mlmd_magic.faces.registry` — the open stores and which one is current
"""
