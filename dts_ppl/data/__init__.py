"""Data for bandits from files the user provides, and small data sets that ship with packages.

- :mod:`~dts_ppl.data.movielens`: loaders for the MovieLens 100K and latest-small formats (never downloaded).
- :mod:`~dts_ppl.data.factorisation`: ALS matrix factorisation in JAX with held-out RMSE.
- :mod:`~dts_ppl.data.digits`: the digits multi-task bandit (scikit-learn optional: ``dts_ppl[datasets]``).
- :mod:`~dts_ppl.data.open_bandit`: logged bandit data in the Open Bandit Dataset's CSV layout.

``import dts_ppl`` does not import this package; scikit-learn is needed only to load the digits.
"""

from dts_ppl.data.digits import DigitsTasks, digits_tasks, embed, fit_linear_models, load_digit_images
from dts_ppl.data.factorisation import Factorisation, als, train_test_split
from dts_ppl.data.movielens import ENV_VAR, FORMATS, Ratings, detect_format, load_movielens, movielens_dir
from dts_ppl.data.open_bandit import LoggedData, read_open_bandit

__all__ = [
    "ENV_VAR",
    "FORMATS",
    "DigitsTasks",
    "Factorisation",
    "LoggedData",
    "Ratings",
    "als",
    "detect_format",
    "digits_tasks",
    "embed",
    "fit_linear_models",
    "load_digit_images",
    "load_movielens",
    "movielens_dir",
    "read_open_bandit",
    "train_test_split",
]
