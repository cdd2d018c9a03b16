"""A first-order Markov chain over the positions of discrete codes: the prior for sampling a discrete bottleneck
(VQ-VAE, FSQ, Gumbel-softmax, binary codes), as the autoregressive priors of van den Oord et al. 2017 ("Neural
Discrete Representation Learning") in their simplest exact form.

A code z (d,) is G = d / `position` positions of `position` dims; position i takes values in the finite set V_i of
those seen in fitting (values equal to `decimals` decimals are one value). With c_i the value index,
    p(c) = p(c_1) prod_{i>1} p(c_i | c_{i-1}),
    p(c_1 = a) = (n_1(a) + alpha) / (N + alpha |V_1|),   p(c_i = b | c_{i-1} = a) = (n_i(a, b) + alpha) / (n_{i-1}(a) + alpha |V_i|),
the add-alpha smoothed maximum likelihood from the counts (alpha = 0: the exact MLE). Transitions never seen get
the smoothed mass alpha / (...); a value never seen at a position snaps to the nearest value seen there (so every
code gets a finite score, e.g. for anomaly detection). `sample` returns each position's value as fitted, i.e.
rounded to `decimals`. Counts are kept sparse (only seen pairs), so a chain over many distinct values costs memory
in the number of training codes, not |V_{i-1}| x |V_i|.
"""

from __future__ import annotations

import torch

from aelab.core.errors import ConfigError
from aelab.models.density import check_kind

LISTS = ("values", "pairs", "pair_counts", "row_counts")  # per position (transitions: from the second on)


class CategoricalChain:
    """p(c_1) prod p(c_i | c_{i-1}) over the positions of discrete codes, by smoothed counts."""

    def __init__(self, position: int = 1, alpha: float = 0.01, decimals: int = 4) -> None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise ConfigError(f"model.density.position must be a positive integer, got {position!r}")
        if alpha < 0:
            raise ConfigError(f"model.density.alpha must be >= 0, got {alpha}")
        self.position, self.alpha, self.decimals = position, float(alpha), int(decimals)
        self.fitted = False

    def split(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, d) as positions (N, G, position), rounded to `decimals`."""
        if z.ndim != 2 or z.shape[1] % self.position:
            raise ConfigError(f"the categorical density needs codes (N, d) with d a multiple of model.density.position="
                              f"{self.position}, got codes of shape {tuple(z.shape)}")
        return z.detach().cpu().double().round(decimals=self.decimals).view(len(z), -1, self.position)  # (N, d) -> (N, G, p)

    def fit(self, z: torch.Tensor) -> "CategoricalChain":
        parts = self.split(z)
        self.values, self.pairs, self.pair_counts, self.row_counts = [], [], [], []
        idx = []
        for i in range(parts.shape[1]):
            values, inverse = torch.unique(parts[:, i], dim=0, return_inverse=True)  # (K_i, p), (N,)
            self.values.append(values)
            idx.append(inverse)
        self.first = torch.bincount(idx[0], minlength=len(self.values[0])).double()  # (K_1,)
        for i in range(1, len(idx)):
            keys, counts = torch.unique(idx[i - 1] * len(self.values[i]) + idx[i], return_counts=True)  # sorted a*K_i + b
            self.pairs.append(keys)
            self.pair_counts.append(counts.double())
            self.row_counts.append(torch.bincount(idx[i - 1], minlength=len(self.values[i - 1])).double())
        self.fitted = True
        return self

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("the latent density is not fitted yet: call module.fit_density(train codes) first")

    def index(self, i: int, rows: torch.Tensor) -> torch.Tensor:
        """Value index (B,) at position i of rows (B, p): the equal value, else the nearest one."""
        values = self.values[i]
        both, inverse = torch.unique(torch.cat([values, rows]), dim=0, return_inverse=True)
        lookup = torch.full((len(both),), -1, dtype=torch.long)
        lookup[inverse[:len(values)]] = torch.arange(len(values))
        idx = lookup[inverse[len(values):]]
        unseen = idx < 0
        if unseen.any():
            idx[unseen] = torch.cdist(rows[unseen], values).argmin(1)
        return idx

    def _pair_counts(self, i: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """n_i(a, b) (B,) from the sorted sparse pairs of transition i (into position i)."""
        keys, counts = self.pairs[i - 1], self.pair_counts[i - 1]
        query = a * len(self.values[i]) + b
        j = torch.searchsorted(keys, query).clamp_max(len(keys) - 1)
        return torch.where(keys[j] == query, counts[j], torch.zeros_like(counts[j]))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c) (B,) of codes z (B, d)."""
        self._check()
        parts = self.split(z)
        a = self.index(0, parts[:, 0])
        log_p = torch.log((self.first[a] + self.alpha) / (self.first.sum() + self.alpha * len(self.first)))
        for i in range(1, parts.shape[1]):
            b = self.index(i, parts[:, i])
            total = self.row_counts[i - 1][a] + self.alpha * len(self.values[i])
            log_p = log_p + torch.log((self._pair_counts(i, a, b) + self.alpha) / total)
            a = b
        return log_p.float()

    def initial(self) -> torch.Tensor:
        """p(c_1) (K_1,)."""
        self._check()
        return (self.first + self.alpha) / (self.first.sum() + self.alpha * len(self.first))

    def transition(self, i: int) -> torch.Tensor:
        """The dense matrix p(c_i = b | c_{i-1} = a) (K_{i-1}, K_i), i >= 1 (for inspection and tests)."""
        self._check()
        k_prev, k = len(self.values[i - 1]), len(self.values[i])
        counts = torch.zeros(k_prev * k, dtype=torch.float64).index_put_((self.pairs[i - 1],), self.pair_counts[i - 1])
        return (counts.view(k_prev, k) + self.alpha) / (self.row_counts[i - 1][:, None] + self.alpha * k)  # (K_{i-1} * K_i,) -> (K_{i-1}, K_i)

    def _next(self, i: int, a: torch.Tensor) -> torch.Tensor:
        """Draw c_i given c_{i-1} = a (n,): a seen pair with prob n(a) / T (then by its count), else uniform (alpha K / T)."""
        k = len(self.values[i])
        rows = self.row_counts[i - 1][a]
        u = torch.rand(len(a), dtype=torch.float64) * (rows + self.alpha * k)
        counts = self.pair_counts[i - 1]
        cum = counts.cumsum(0)
        start = torch.searchsorted(self.pairs[i - 1], a * k)  # first pair of row a
        before = cum[start] - counts[start]  # counts of the rows before a
        j = torch.searchsorted(cum, before + u, right=True).clamp_max(len(cum) - 1)
        seen = self.pairs[i - 1][j] % k
        return torch.where(u < rows, seen, torch.randint(k, (len(a),)))

    def sample(self, n: int) -> torch.Tensor:
        """n codes (n, d) drawn from the chain (torch's global RNG), each position's value vector concatenated."""
        self._check()
        a = torch.multinomial(self.initial(), n, replacement=True)
        parts = [self.values[0][a]]
        for i in range(1, len(self.values)):
            a = self._next(i, a)
            parts.append(self.values[i][a])
        return torch.cat(parts, dim=1).float()  # G x (n, p) -> (n, d)

    def state(self) -> dict:
        self._check()
        lists = {name: [t.clone() for t in getattr(self, name)] for name in LISTS}
        return {"kind": "CategoricalChain", "position": self.position, "alpha": self.alpha, "decimals": self.decimals,
                "first": self.first.clone(), **lists}

    def load_state(self, state: dict) -> None:
        check_kind(self, state)
        self.position, self.alpha, self.decimals = state["position"], state["alpha"], state["decimals"]
        self.first = state["first"]
        for name in LISTS:
            setattr(self, name, list(state[name]))
        self.fitted = True
