"""Every study of the package as a registered experiment (the one layer that joins computing and drawing).

Each experiment computes with :mod:`ghostsing.analytic` / :mod:`ghostsing.simulate` (or the torch library
:mod:`ghostsing.deepcheck`), draws with :mod:`ghostsing.plots` and returns an
:class:`~ghostsing.experiments.base.ExperimentOutput`; :func:`~ghostsing.experiments.report.run_experiment`
writes its report.  The computing layers never import this package or :mod:`ghostsing.plots`.

* :mod:`~ghostsing.experiments.base` — the contract (Experiment, configs, outputs);
  :mod:`~ghostsing.experiments.registry` — the one catalog of names; :mod:`~ghostsing.experiments.report`
  — the one report writer; :mod:`~ghostsing.experiments.laws` — fitted/derived laws as predictions;
* :mod:`~ghostsing.experiments.simulations` — portraits, plateaus, loss curves, SGD vs ODE;
* :mod:`~ghostsing.experiments.ghosts` — passage laws, traps, basins, the degenerate symmetric case and
  SGD noise along the former overlap line;
* ``derivation_two_unit``, ``derivation_three_unit`` — the derivation documents (kind ``analytic``);
* the deep-net and curvature checks (kind ``deep``) and the sweeps.
"""
