"""Runnable studies: each computes with :mod:`ghostsing.analytic` / :mod:`ghostsing.simulate`, draws with
:mod:`ghostsing.plots` and writes its figure, data and JSON.  The computing layers never import this
package or :mod:`ghostsing.plots`.

* :mod:`ghostsing.experiments.ghosts` — passage laws, traps, basins, the degenerate symmetric case and SGD
  noise along the former overlap line.

The older studies still live in :mod:`ghostsing.simulate.experiments`, whose ``EXPERIMENTS`` registry
(``ghostsing simulate --experiment NAME``) lists these too.
"""
