"""Analysis of dgl output folders (no training code needed).

- :mod:`analysis.collect`: output folders -> one tidy table (one row per run);
  ``from analysis.collect import collect``.
- :mod:`analysis.variance_peak`: Q1 finite-size scaling (variance peak vs lambda per width).
- :mod:`analysis.phase_boundary`: Q3 phase boundary lambda_c per learning rate.
- :mod:`analysis.common`: what the two scripts share (loading, bootstrap, plots, output).

Every script reads ``result.json`` files only (schema: ``docs/RUN_RECORD.md``); it never
imports torch or :mod:`dgl`, so it runs on any machine that has the output folders.
(The package deliberately re-exports nothing: ``analysis.collect`` stays the module.)
"""
