"""Every ``CARRIER_*`` variable fuzzed: the settings either load or fail with one line naming it.

The variables come from :func:`carrier_sidecar.settings.env_names` (no second list), so a new
setting is fuzzed the day it is added.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sidecar.settings import ConfigError, Settings, env_names

VARIABLES = [env for _, env in env_names()]
QUEUE_NAME, QUEUE_URL = "CARRIER_SQS_QUEUE_NAME", "CARRIER_SQS_QUEUE_URL"

# Values shaped like what people type, plus the edges: numbers around every bound, Go durations
# good and bad, URLs good and bad, booleans, addresses, and arbitrary text (no NUL: env forbids it).
_numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, 1, 9, 10, 11, 20, 21, 100, 101, 1000, 1001, 3600, 43200, 43201, 86401]),
    st.floats(allow_nan=True, allow_infinity=True),
).map(str)
_durations = st.one_of(
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.one_of(st.integers(-5, 10**5), st.floats(0, 10**5, allow_nan=False)),
        st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", "", "S", " s"]),
    ),
    st.sampled_from(["1m30s", "2h", "500ms", "-1s", "1.5.5s", "inf", "nan", "1e3", "+3s", "s"]),
)
_urls = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "ftp://", "", "http:/", "HTTP://"]),
        st.sampled_from(["127.0.0.1", "localhost", "", "[::1]", "exa mple", "a.b"]),
        st.sampled_from(["", ":80", ":0", ":99999", ":x", ":-1"]),
        st.sampled_from(["", "/", "/hook?x=1", "/a b", "#frag"]),
    ),
)
_words = st.sampled_from(
    ["true", "false", "TRUE", "yes", "no", "1", "0", "none", "off", ":9102", "127.0.0.1:0",
     "[::1]:80", "host:", "debug", "INFO", "loud", "exponential", "queue", "Queue", "q.fifo",
     "q" * 81, "q" * 76 + ".fifo", "x/y", " ", "\t", "\n"]
)  # fmt: skip
_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
VALUES = st.one_of(_numbers, _durations, _urls, _words, _text, st.text(string.printable))


def _base_for(variable: str) -> dict[str, str]:
    """A valid environment that leaves the fuzzed variable the only suspect."""
    if variable in (QUEUE_NAME, QUEUE_URL):
        return {}
    return {QUEUE_NAME: "orders"}


def _check_outcome(environ: Mapping[str, str], suspects: set[str]) -> Settings | None:
    try:
        return Settings.load(environ)
    except ConfigError as exc:
        message = str(exc)
        assert message, "empty error message"
        assert len(message.splitlines()) == 1, f"not one line: {message!r}"
        assert "Traceback" not in message
        assert any(name in message for name in suspects), f"{message!r} names none of {suspects}"
        return None


@given(variable=st.sampled_from(VARIABLES), value=VALUES)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_one_variable_loads_or_names_itself(variable: str, value: str) -> None:
    environ = {**_base_for(variable), variable: value}
    _check_outcome(environ, {variable})


@given(
    environ=st.dictionaries(
        st.sampled_from(VARIABLES).flatmap(
            lambda v: st.sampled_from([v, v.lower(), v.title()])  # names are case-insensitive
        ),
        VALUES,
        max_size=8,
    )
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_mix_loads_or_names_a_variable_it_was_given(environ: dict[str, str]) -> None:
    # The one error that may name a variable that was not given: neither queue name nor URL.
    given_names = {name.upper() for name in environ} | {QUEUE_NAME}
    _check_outcome(environ, given_names)


@given(variable=st.sampled_from(VARIABLES), value=VALUES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_what_loads_renders_back_to_the_same_settings(variable: str, value: str) -> None:
    """The operator renders bindings with ``to_env``: that output must load to the same thing."""
    loaded = _check_outcome({**_base_for(variable), variable: value}, {variable})
    if loaded is not None:
        assert Settings.load(loaded.to_env()) == loaded


def test_every_variable_was_fuzzed_with_a_rejecting_value() -> None:
    """Guard against a fuzz that never reaches the error path: each variable has a bad value."""
    rejected: dict[str, str] = {}
    for variable in VARIABLES:
        for value in ["-1", "not-a-value", "99999999", "http//x", "q" * 81, ""]:
            try:
                Settings.load({**_base_for(variable), variable: value})
            except ConfigError as exc:
                rejected[variable] = str(exc)
                break
    # Free-text settings accept anything non-empty; all others must reject something.
    # A CA file path is checked when the sidecar starts (tests/sidecar/test_webhook_ca_file.py).
    free_text = {
        "CARRIER_WEBHOOK_DEFAULT_CONTENT_TYPE",
        "CARRIER_SQS_REGION",
        "CARRIER_WEBHOOK_CA_FILE",
    }
    missing = set(VARIABLES) - set(rejected) - free_text
    assert not missing, f"no rejecting value found for {sorted(missing)}"
    for variable, message in rejected.items():
        assert variable in message, message
