"""DDPM diffusion priors: noise schedule, epsilon-network, trained links, training.

- :mod:`~dts_ppl.ddpm.schedule`: betas and level variances.
- :mod:`~dts_ppl.ddpm.network`: the epsilon-network and its forward pass.
- :mod:`~dts_ppl.ddpm.prior`: :class:`DDPMLink` and the DiffusionPrior of a trained network.
- :mod:`~dts_ppl.ddpm.train`: :func:`train_diffusion_prior`.
- :mod:`~dts_ppl.ddpm.calibrate`: S_1 calibrated to the data (:func:`calibrate_action_cov`) or
  set without retraining (:func:`with_action_cov`).
"""

from dts_ppl.ddpm.calibrate import (
    MARGINAL,
    ActionCovCalibration,
    action_cov_calibration,
    calibrate_action_cov,
    with_action_cov,
)
from dts_ppl.ddpm.network import EMBED_DIM, EpsNet, eps_net, init_eps_net, mlp_forward, step_embedding
from dts_ppl.ddpm.prior import DDPMLink, action_covariance, build_prior, ddpm_links
from dts_ppl.ddpm.schedule import SCHEDULES, VARIANCES, level_variances, noise_schedule, schedule_arrays
from dts_ppl.ddpm.train import TrainedPrior, plot_loss_curve, train_diffusion_prior

__all__ = [
    "MARGINAL",
    "ActionCovCalibration",
    "DDPMLink",
    "EMBED_DIM",
    "EpsNet",
    "SCHEDULES",
    "TrainedPrior",
    "VARIANCES",
    "action_cov_calibration",
    "action_covariance",
    "build_prior",
    "calibrate_action_cov",
    "ddpm_links",
    "eps_net",
    "init_eps_net",
    "level_variances",
    "mlp_forward",
    "noise_schedule",
    "plot_loss_curve",
    "schedule_arrays",
    "step_embedding",
    "train_diffusion_prior",
    "with_action_cov",
]
