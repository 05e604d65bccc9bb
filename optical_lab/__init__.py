"""optical_lab: cross-lingual retrieval for low-resource languages.

Data flow: ``data`` -> ``models`` -> ``ot`` -> ``methods`` -> ``retrieval`` -> ``evaluation``
-> ``experiments`` -> ``reports`` (tables, plots, widgets, notebooks).
"""

__version__ = "0.1.0"
