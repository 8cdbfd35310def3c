"""docs/contract.md (and the README's configuration table) name what the code has.

The configuration table of the README is the one list of `TALLY_*` variables; the contract
points to it. Each test compares a name set taken from the code with one taken from the docs,
in both directions where the docs list a closed set, so an addition, a removal or a typo on
either side fails here.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest
from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase

from models.commands import COMMAND_MODELS
from models.events import EVENT_MODELS, RejectionReason
from streams import metrics
from streams.codec import encode
from streams.health import Health
from streams.publish import dead_letter
from streams.settings import Settings
from streams.web import build_app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
README = ROOT / "README.md"

# TALLY_* variables read by the local tooling, not by Settings: deploy/local/infra.sh (the
# local Kafka and FerretDB), the hostile-input fuzzer (Makefile, tests/unit) and the console's
# browser tests (where to put their screenshots, tests/e2e/console).
TOOLING_VARIABLES = frozenset(
    {
        "TALLY_LOCAL_MONGO",
        "TALLY_FERRETDB_VERSION",
        "TALLY_FUZZ_EXAMPLES",
        "TALLY_CONSOLE_SCREENSHOTS",
    }
)
TOOLING_PREFIX = "TALLY_INFRA_"
DEAD_LETTER_REASONS = frozenset(
    {"undecodable", "invalid_envelope", "too_large", "untrusted_leg", "processing_error"}
)

_VARIABLE = re.compile(r"\bTALLY_[A-Z0-9_]*[A-Z0-9]\b")
_CODE = re.compile(r"`([^`]+)`")


@cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of the `## heading...` section (up to the next `## `)."""
    match = re.search(rf"^## {re.escape(heading)}(?=\s).*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def _contract(number: str) -> str:
    return _section(_text(CONTRACT), f"{number}.")


def _code_names(text: str) -> set[str]:
    return set(_CODE.findall(text))


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the markdown tables in `text`."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line)
    ]


# Configuration: the README table against Settings


def _settings_variables() -> set[str]:
    return {f"TALLY_{name.upper()}" for name in Settings.model_fields}


def _row_variables(cell: str) -> list[str]:
    """`TALLY_A_B` / `TALLY_C`, and the short form `TALLY_X_CAFILE` / `_CERTFILE` (= TALLY_X_CERTFILE)."""
    names: list[str] = []
    for name in _CODE.findall(cell):
        if name.startswith("_") and names:
            stem = names[-1].rsplit("_", 1)[0]
            names.append(stem + name)
        elif name.startswith("TALLY_"):
            names.append(name)
    return names


def _configuration_table(readme: str) -> list[tuple[list[str], str]]:
    """(variables, default cell) of each row of the README's configuration table."""
    rows = _table_rows(_section(readme, "Configuration"))
    assert rows and rows[0][:2] == ["variable", "default"], rows[:1]
    return [(_row_variables(row[0]), row[1]) for row in rows[1:]]


def _unlisted_settings(readme: str) -> set[str]:
    listed = {v for variables, _ in _configuration_table(readme) for v in variables}
    return _settings_variables() - listed


def _unknown_variables(text: str) -> set[str]:
    known = _settings_variables() | TOOLING_VARIABLES
    return {
        name
        for name in _VARIABLE.findall(text)
        if name not in known and not name.startswith(TOOLING_PREFIX)
    }


def _default_matches(variable: str, shown: str) -> bool:
    """Whether `shown` (a doc's default, as written) is the Settings default of `variable`."""
    default = Settings.model_fields[variable.removeprefix("TALLY_").lower()].default
    value = shown.strip().strip("`")
    if default is None:  # shown as "—", "— (system CAs)", "derived from ..."
        return value.startswith(("—", "derived from"))
    if isinstance(default, bool):
        return value == str(default).lower()
    if isinstance(default, frozenset):
        return set(value.split(",")) == default
    if isinstance(default, int | float):
        try:
            return float(value) == default
        except ValueError:
            return False
    return bool(value == default)


def _wrong_table_defaults(readme: str) -> list[str]:
    wrong = []
    for variables, cell in _configuration_table(readme):
        shown = (
            cell.split(" / ") if len(variables) > 1 and " / " in cell else [cell] * len(variables)
        )
        assert len(shown) == len(variables), (variables, cell)
        wrong += [
            f"{v}: {s}" for v, s in zip(variables, shown, strict=True) if not _default_matches(v, s)
        ]
    return wrong


_CONTRACT_DEFAULT = re.compile(r"`(TALLY_[A-Z0-9_]+)`[^`|]{0,20}\(default\s+`([^`]+)`")


def _wrong_contract_defaults(contract: str) -> tuple[int, list[str]]:
    found = _CONTRACT_DEFAULT.findall(contract)
    return len(found), [f"{v}: {s}" for v, s in found if not _default_matches(v, s)]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    assert _unlisted_settings(_text(README)) == set()


def test_the_configuration_table_lists_only_settings() -> None:
    listed = {v for variables, _ in _configuration_table(_text(README)) for v in variables}
    assert listed - _settings_variables() == set()


def test_no_unknown_tally_variable_is_mentioned() -> None:
    for path in (README, CONTRACT):
        assert _unknown_variables(_text(path)) == set(), path.name


def test_the_tooling_variables_are_read_by_the_tooling() -> None:
    tooling = "\n".join(
        _text(path)
        for path in (
            ROOT / "Makefile",
            ROOT / "deploy" / "local" / "infra.sh",
            ROOT / "tests" / "unit" / "test_hostile_input.py",
            ROOT / "tests" / "e2e" / "console" / "conftest.py",
        )
    )
    assert {v for v in TOOLING_VARIABLES if v not in tooling} == set()
    assert TOOLING_PREFIX in _text(ROOT / "deploy" / "local" / "infra.sh")


def test_defaults_in_the_readme_table_are_the_settings_defaults() -> None:
    assert _wrong_table_defaults(_text(README)) == []


def test_defaults_in_the_contract_are_the_settings_defaults() -> None:
    count, wrong = _wrong_contract_defaults(_text(CONTRACT))
    assert count >= 14, "the pattern `TALLY_X` ... (default `v`) no longer finds the defaults"
    assert wrong == []


def test_the_contract_points_to_the_configuration_table() -> None:
    assert "../README.md#configuration" in _contract("11")


# Topics, commands, outcomes, rejections


def test_every_topic_default_is_in_the_topics_table_with_its_variable() -> None:
    rows = _table_rows(_contract("1"))
    pairs = {(row[0].strip("`"), row[1].strip("`")) for row in rows[1:]}
    topics = {
        (str(field.default), f"TALLY_{name.upper()}")
        for name, field in Settings.model_fields.items()
        if name.startswith("topic_")
    }
    assert len(topics) == 4
    assert pairs == topics


def test_every_command_type_is_in_the_commands_table() -> None:
    listed = {row[0].strip("`") for row in _table_rows(_contract("4"))[1:]}
    assert listed == set(COMMAND_MODELS)


def test_every_outcome_type_is_in_the_outcomes_table() -> None:
    tables = _contract("5").split("**Rejection reasons**")[0]
    listed = {row[0].strip("`") for row in _table_rows(tables)[1:]}
    assert listed == set(EVENT_MODELS)


def test_every_type_the_contract_names_exists() -> None:
    named = set(re.findall(r"`(ledger\.[a-z_.]+\.v1)`", _text(CONTRACT)))
    assert named - set(COMMAND_MODELS) - set(EVENT_MODELS) == set()


def test_the_rejection_reasons_are_exactly_the_code_s() -> None:
    checks = _contract("5").split("**Rejection reasons**")[1]
    listed = {name for row in _table_rows(checks)[1:] for name in _CODE.findall(row[-1])}
    reasons = set(get_args(RejectionReason))
    assert listed == reasons
    assert f"That makes {len(reasons)} reasons" in checks


def test_the_rules_of_the_commands_table_name_every_state_reason() -> None:
    rules = {
        r
        for row in _table_rows(_contract("4"))[1:]
        for r in re.findall(r"\(`([a-z_]+)`\)", row[-1])
    }
    stateless = {"invalid", "unsupported_type", "unauthenticated", "forbidden"}
    assert rules | stateless == set(get_args(RejectionReason))
    assert rules & stateless == set()


# Dead letters


def _dead_letter_reasons_in_code() -> set[str]:
    """Every reason a dead letter is created with in streams/ (literal first string argument)."""
    pattern = re.compile(
        r'(?:Undecodable|DeadItem|dead_letter)\(\s*(?:[\w.]+,\s*)?"([a-z_]+)"', re.S
    )
    return {
        reason
        for path in sorted((ROOT / "streams").glob("*.py"))
        for reason in pattern.findall(_text(path))
    }


def test_the_code_creates_exactly_the_five_dead_letter_reasons() -> None:
    assert _dead_letter_reasons_in_code() == DEAD_LETTER_REASONS


def test_every_dead_letter_reason_is_in_the_contract() -> None:
    reasons_table = _contract("7").split("| `tally_error_reason` | when |")[1].split("\n\n")[0]
    listed = {row[0].strip("`") for row in _table_rows(reasons_table)}
    assert listed == DEAD_LETTER_REASONS


def test_every_dead_letter_header_is_in_the_contract() -> None:
    record = SimpleNamespace(
        topic="ledger.commands", partition=0, offset=7, key=b"k", value=b"v", headers=[]
    )
    added = {name for name, _ in dead_letter("ledger.dlq", record, "undecodable", "x").headers}
    rows = _table_rows(_contract("7"))
    listed = {row[0].strip("`") for row in rows if row[0].startswith("`tally_")}
    assert added == listed


# Outcome headers, HTTP, metrics


def test_every_outcome_header_is_in_the_contract() -> None:
    event = {
        "id": "i",
        "source": "tally",
        "type": "ledger.account.closed.v1",
        "time": "2026-01-01T00:00:00Z",
        "subject": "alice",
        "correlationid": "c",
        "causationid": "c",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "data": {"account_id": "alice"},
    }
    _, headers = encode(event)
    listed = {row[0].strip("`") for row in _table_rows(_contract("2"))}
    assert {name for name, _ in headers} - listed == set()


def test_every_http_route_is_in_the_contract() -> None:
    app = build_app(Health(), dict)
    routes = {
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    listed = {row[0].strip("`") for row in _table_rows(_contract("10"))[1:]}
    assert routes == listed


def _registered_metrics() -> dict[str, tuple[str, ...]]:
    """Exposed name (counters end in `_total`) → label names, of every metric in streams.metrics."""
    found = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            suffix = "_total" if isinstance(metric, Counter) else ""
            found[metric._name + suffix] = tuple(metric._labelnames)
    return found


def _metrics_table() -> dict[str, tuple[str, ...]]:
    table = {}
    for row in _table_rows(_contract("10a"))[1:]:
        labels = re.sub(r"\([^)]*\)", "", row[2])  # drop the label values in parentheses
        table[row[0].strip("`")] = tuple(_CODE.findall(labels))
    return table


def test_every_metric_is_in_the_contract_with_its_labels() -> None:
    assert _metrics_table() == _registered_metrics()


# The contract stands alone


def test_the_contract_s_links_stay_inside_the_repository() -> None:
    text = _text(CONTRACT)
    assert "SPEC" not in text and "../shared" not in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        path = (CONTRACT.parent / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target


def test_the_readme_points_to_the_contract() -> None:
    readme = _text(README)
    opening = readme.split("## ")[0]
    assert "[docs/contract.md](docs/contract.md)" in opening
    assert "[docs/contract.md](docs/contract.md)" in _section(readme, "Documentation")
