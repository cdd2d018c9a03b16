"""aelab's Hydra plugins: the SLURM launcher (hydra/launcher=slurm) and the Optuna sweeper (hydra/sweeper=optuna).

Hydra imports every module here when it looks for plugins: none imports torch, submitit or optuna at its top.
"""
