"""Ex-post densities of the training codes (`model/density=`), fitted after training: deterministic autoencoders
sample through them (Ghosh et al. 2020, RAE + GMM), and any model can (`model.sample_from: density`, e.g. the
two-stage VAE of Dai & Wipf 2019); discrete codes through a Markov chain over their positions (categorical).
Each implements aelab.models.density.CodeDensity.
"""

from aelab.densities.categorical import CategoricalChain
from aelab.densities.gmm import LatentGMM
from aelab.densities.two_stage import TwoStageVAE

__all__ = ["CategoricalChain", "LatentGMM", "TwoStageVAE"]
