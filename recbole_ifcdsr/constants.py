"""The names every part of the plug-in shares, defined once."""

#: domain codes of the ``domain`` field in ``.item`` files; a domain's index is its position (X = 0)
DOMAINS = ("X", "Y")
#: the evaluated splits, in the order a run evaluates them
SPLITS = ("valid", "test")
#: the evaluation protocols (evaluation/protocol.py): the source recipe's sampled negatives, full ranking
PROTOCOLS = ("sampled", "full")
#: values of the ``protocol`` setting: one protocol, or ``both``
PROTOCOL_SETTINGS = (*PROTOCOLS, "both")

#: The fields of a recipe's two dict settings (properties/dataset/*.yaml).
SELECTION_FIELDS = ("mode", "metric", "improve", "warmup_epochs", "patience")
NEGATIVE_FIELDS = ("num", "replacement", "exclude", "redraw", "rng", "seed")
#: optional field of a batch given to ``full_sort_predict``: each case's target domain (a DOMAINS index).
#: A model may then score only that domain's items and leave the others -inf, since the protocols and
#: serving rank within the target domain; a model that ignores it scores every item.
TARGET_DOMAIN_FIELD = "target_domain"
#: how a run's ``stop_reason`` ends when a training budget stopped it ("120 CPU-minute budget"); every
#: other stop ("early stopping", "max epochs") came from the run's own schedule, also "early stopping (last
#: epoch cut short by the 120 CPU-minute budget)": patience ran out at the validation of an epoch the budget cut
BUDGET_STOP_SUFFIX = "-minute budget"


def budget_stopped(stop_reason: str | None) -> bool:
    """Whether a training budget, not model selection or the epoch count, ended the run."""
    return bool(stop_reason) and stop_reason.endswith(BUDGET_STOP_SUFFIX)
