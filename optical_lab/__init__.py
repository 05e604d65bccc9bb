"""optical_lab: cross-lingual retrieval for low-resource languages.

Layers, lowest first (imports only point down; docs/architecture.md, tests/test_architecture.py):
``io`` -> ``data`` -> ``models`` -> ``ot`` -> ``retrieval``/``evaluation`` -> ``methods`` -> ``tasks``
-> ``experiments`` -> ``reports`` (tables, plots, widgets, notebooks) -> ``cli``.
"""

__version__ = "0.1.0"
