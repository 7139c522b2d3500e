"""Analysis of dgl output folders and the notebooks' own result files (never imports torch or dgl).

- :mod:`analysis.runs`: reading runs into one table (``collect``); :mod:`analysis.collect` its CLI.
- :mod:`analysis.stats`: the bootstrap over seeds, transition fits, peaks, the finite-size collapse.
- :mod:`analysis.figures`: labels and the marks every figure shares.
- :mod:`analysis.report`: the command line, the printed report and the output files.
- :mod:`analysis.suggest`: the next lambda grid (``--suggest N``).
- :mod:`analysis.variance_peak` (Q1) and :mod:`analysis.phase_boundary` (Q3): the two scripts.
"""
