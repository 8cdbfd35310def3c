"""Shared constrained types of contract §3: identifiers, currency, money."""

from typing import Annotated, Final

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo

DEFAULT_MAX_AMOUNT: Final = 10**15

_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_REF_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# C0 controls, DEL and C1 controls: they break logs, terminals and downstream renderers.
_NO_CONTROL_PATTERN: Final = r"^[^\x00-\x1f\x7f-\x9f]*$"


def _max_amount(info: ValidationInfo) -> int:
    context = info.context
    if isinstance(context, dict):
        value = context.get("max_amount", DEFAULT_MAX_AMOUNT)
        if isinstance(value, int):
            return value
    return DEFAULT_MAX_AMOUNT


def _check_max_amount(value: int, info: ValidationInfo) -> int:
    limit = _max_amount(info)
    if value > limit:
        raise ValueError(f"must be at most {limit}")
    return value


AccountId = Annotated[str, StringConstraints(strict=True, pattern=_ID_PATTERN)]
OwnerId = Annotated[str, StringConstraints(strict=True, pattern=_ID_PATTERN)]
TransferId = Annotated[str, StringConstraints(strict=True, pattern=_ID_PATTERN)]
ExternalRef = Annotated[str, StringConstraints(strict=True, pattern=_REF_PATTERN)]
Memo = Annotated[str, StringConstraints(strict=True, max_length=140, pattern=_NO_CONTROL_PATTERN)]
Reason = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=140, pattern=_NO_CONTROL_PATTERN),
]
Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
Day = Annotated[str, StringConstraints(strict=True, pattern=r"^\d{4}-\d{2}-\d{2}$")]

# Money in commands: bounded by TALLY_MAX_AMOUNT, passed as validation context.
Amount = Annotated[int, Field(strict=True, ge=1), AfterValidator(_check_max_amount)]
Limit = Annotated[int, Field(strict=True, ge=0), AfterValidator(_check_max_amount)]

# Money in events and documents: already admitted, so no configurable upper bound.
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
