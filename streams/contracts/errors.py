"""The one error class of the contracts layer, and its contract-check refinement."""

from __future__ import annotations


class CodecError(ValueError):
    """A record could not be decoded, encoded or validated; `field` names the culprit if known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message


class ContractError(CodecError):
    """A record decoded fine but breaks the contract (empty id, negative amount, ...)."""
