"""Analysis of dgl output folders and the notebooks' own result files (never imports torch;
of dgl only dgl.identity, which says what identifies a run).

- :mod:`analysis.runs`: reading runs into one table (``collect``); :mod:`analysis.collect` its CLI.
- :mod:`analysis.stats`: the bootstrap over seeds, transition fits, peaks, the finite-size collapse.
- :mod:`analysis.figures`: labels and the marks every figure shares.
- :mod:`analysis.cli`: the options every script shares, checked before any work; loading the runs.
- :mod:`analysis.output`: the printed summary and the output files (CSVs, figures, Markdown report).
- :mod:`analysis.suggest`: the next lambda grid (``--suggest N``).
- :mod:`analysis.variance_peak` (Q1) and :mod:`analysis.phase_boundary` (Q3): the two figure scripts;
  :mod:`analysis.paired` and :mod:`analysis.repeats`: two settings compared, reruns' spread.
"""
