"""The commands of contract §4, one model per `type`."""

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from models.types import (
    AccountId,
    Amount,
    Currency,
    ExternalRef,
    Limit,
    Memo,
    OwnerId,
    Reason,
    TransferId,
)


class _CommandModel(BaseModel):
    """Base of commands: frozen, strict, unknown fields invalid."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _OnAccount(_CommandModel):
    """A command acting on one account, `account_id`, which is also its Kafka key."""

    account_id: AccountId

    @property
    def account_key(self) -> str:
        return self.account_id


class OpenAccount(_OnAccount):
    TYPE: ClassVar[str] = "ledger.account.open.v1"

    owner_id: OwnerId
    currency: Currency
    overdraft_limit: Limit = 0
    daily_outflow_limit: Limit | None = None


class Deposit(_OnAccount):
    TYPE: ClassVar[str] = "ledger.deposit.v1"

    amount: Amount
    currency: Currency
    external_ref: ExternalRef


class Withdrawal(_OnAccount):
    TYPE: ClassVar[str] = "ledger.withdrawal.v1"

    amount: Amount
    currency: Currency
    external_ref: ExternalRef


class Transfer(_CommandModel):
    TYPE: ClassVar[str] = "ledger.transfer.v1"

    transfer_id: TransferId
    from_account: AccountId
    to_account: AccountId
    amount: Amount
    currency: Currency
    memo: Memo | None = None

    @property
    def account_key(self) -> str:
        return self.from_account


class FreezeAccount(_OnAccount):
    TYPE: ClassVar[str] = "ledger.account.freeze.v1"

    reason: Reason


class UnfreezeAccount(_OnAccount):
    TYPE: ClassVar[str] = "ledger.account.unfreeze.v1"


class CloseAccount(_OnAccount):
    TYPE: ClassVar[str] = "ledger.account.close.v1"


class SetLimits(_OnAccount):
    """Change limits; an absent field stays as is, `daily_outflow_limit: null` removes it."""

    TYPE: ClassVar[str] = "ledger.account.limits.v1"

    overdraft_limit: Limit | None = None
    daily_outflow_limit: Limit | None = None

    @field_validator("overdraft_limit")
    @classmethod
    def _overdraft_not_null(cls, value: int | None) -> int | None:
        # Runs only on explicit input (defaults are not validated): null is not "absent".
        if value is None:
            raise ValueError("overdraft_limit may be omitted but not null")
        return value

    @model_validator(mode="after")
    def _at_least_one_limit(self) -> Self:
        if not self.model_fields_set & {"overdraft_limit", "daily_outflow_limit"}:
            raise ValueError("overdraft_limit and/or daily_outflow_limit is required")
        return self

    @property
    def sets_overdraft_limit(self) -> bool:
        return "overdraft_limit" in self.model_fields_set

    @property
    def sets_daily_outflow_limit(self) -> bool:
        return "daily_outflow_limit" in self.model_fields_set


Command = (
    OpenAccount
    | Deposit
    | Withdrawal
    | Transfer
    | FreezeAccount
    | UnfreezeAccount
    | CloseAccount
    | SetLimits
)

COMMAND_MODELS: dict[str, type[Command]] = {
    model.TYPE: model
    for model in (
        OpenAccount,
        Deposit,
        Withdrawal,
        Transfer,
        FreezeAccount,
        UnfreezeAccount,
        CloseAccount,
        SetLimits,
    )
}
