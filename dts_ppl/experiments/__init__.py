"""The paper's experiments and the package's studies, in one place.

- :mod:`~dts_ppl.experiments.synthetic`: the paper's random priors and environments.
- :mod:`~dts_ppl.experiments.regret`: the regret presets of ``dts-ppl bench regret`` (a plain registry).
- :mod:`~dts_ppl.experiments.swissroll`: the learned-prior (Swiss roll) study and its presets.
- :mod:`~dts_ppl.experiments.validation`: the guide-vs-NUTS validation problems.
- :mod:`~dts_ppl.experiments.study`: the approximation-error study.
"""
