"""What the `dts-ppl` commands run: regret presets, validation problems, the approximation-error study.

- :mod:`~dts_ppl.experiments.synthetic`: the paper's random priors and environments.
- :mod:`~dts_ppl.experiments.registry`: every regret preset of ``dts-ppl bench regret`` and their registry.
- :mod:`~dts_ppl.experiments.regret`: the builders of the paper's Figure 1 and 2 presets.
- :mod:`~dts_ppl.experiments.paper_extra`: the paper's remaining experiments (Figures 2b, 2c, 6, Table 2).
- :mod:`~dts_ppl.experiments.realdata`: real-data and shared-parameter presets.
- :mod:`~dts_ppl.experiments.swissroll`: the learned-prior (Swiss roll) study and its presets.
- :mod:`~dts_ppl.experiments.validation`: the guide-vs-NUTS validation problems.
- :mod:`~dts_ppl.experiments.study`: the approximation-error study (`dts-ppl validation-study`).

The scripts that run them at full size, and their results, are in the repository's studies/ folder.
"""
