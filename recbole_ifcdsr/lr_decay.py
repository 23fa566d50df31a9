"""Learning-rate decay on a plateau of the model selection (``lr_decay``), as ABXI's recipe trains.

ABXI multiplies the learning rate by 0.3162 once its selection criterion has not improved for 31
validations in a row, and its early stopping stops at the 62nd (its count must exceed ``es_p = 2 * (lr_p + 1) - 1
= 61`` with ``lr_p = 30``, PROTOCOLS.md): one decay per plateau, half-way to early stopping, the count restarting
after the decay and after every improvement.
``lr_decay: {patience: N, factor: f}`` does the same with any patience; unset (or ``~``) it is off, as in
RecBole, so nothing changes for a run that does not ask for it.
"""
from __future__ import annotations

from recbole_ifcdsr.errors import ConfigError

DEFAULT_FACTOR = 0.3162  # ABXI's lr_g: the learning rate falls by sqrt(10) per plateau


class PlateauDecay:
    """Counts validations without improvement and scales every parameter group's learning rate by
    ``factor`` when the count reaches ``patience``; its state travels in the ``-last`` checkpoint."""

    def __init__(self, patience: int, factor: float = DEFAULT_FACTOR):
        self.patience = patience
        self.factor = factor
        self.bad_evals = 0
        self.decays = 0

    @classmethod
    def from_config(cls, setting) -> PlateauDecay | None:
        """``None`` (off) or a dict ``{patience: int >= 1, factor: 0 < float < 1}``; anything else is
        named in a ConfigError (a silently ignored decay would change what a table compares)."""
        if setting is None:
            return None
        valid = "valid: ~ (off) or {patience: N, factor: f} with an integer N >= 1 and 0 < f < 1"
        if not isinstance(setting, dict) or not setting or set(setting) - {"patience", "factor"}:
            raise ConfigError(f"lr_decay {setting!r} invalid; {valid}")
        patience, factor = setting.get("patience"), setting.get("factor", DEFAULT_FACTOR)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"lr_decay patience {patience!r} invalid; {valid}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ConfigError(f"lr_decay factor {factor!r} invalid; {valid}")
        return cls(patience, float(factor))

    def step(self, improved: bool, optimizer) -> float | None:
        """Feed one validation; returns the new learning rate when this one decays it, else None."""
        if improved:
            self.bad_evals = 0
            return None
        self.bad_evals += 1
        if self.bad_evals < self.patience or optimizer is None:
            return None
        self.bad_evals = 0
        self.decays += 1
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * self.factor
        return optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"bad_evals": self.bad_evals, "decays": self.decays}

    def load_state_dict(self, state: dict) -> None:
        self.bad_evals, self.decays = int(state["bad_evals"]), int(state["decays"])
