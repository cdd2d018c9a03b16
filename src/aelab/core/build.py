"""`build`: hydra.utils.instantiate that lets aelab's own errors through, so the CLI can report them in one line."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from aelab.core.errors import AelabError


def build(node: Any, **kwargs: Any) -> Any:
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, AelabError):
                raise cause from None
            cause = cause.__cause__
        raise
