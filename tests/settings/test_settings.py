"""The CARRIER_* settings model: Go Carrier names and defaults, one-line errors."""

from __future__ import annotations

import pytest

from carrier_sidecar.settings import (
    ConfigError,
    Settings,
    env_names,
    parse_addr,
    unknown_variables,
)

BASE = {"CARRIER_SQS_QUEUE_NAME": "orders"}

# The Go Carrier's 16 variables and defaults (carrier-go.md), as the drop-in promise.
GO_DEFAULTS = {
    "CARRIER_SQS_ENDPOINT": None,
    "CARRIER_SQS_QUEUE_NAME": None,
    "CARRIER_SQS_BATCH_SIZE": 1,
    "CARRIER_SQS_RECEIVERS": 1,
    "CARRIER_SQS_RECEIVER_WORKERS": 1,
    "CARRIER_WEBHOOK_ENDPOINT": "http://localhost:9000",
    "CARRIER_WEBHOOK_TLS_INSECURE_SKIP_VERIFY": False,
    "CARRIER_WEBHOOK_DEFAULT_CONTENT_TYPE": "application/json",
    "CARRIER_WEBHOOK_REQUEST_TIMEOUT": 60.0,
    "CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT": None,
    "CARRIER_WEBHOOK_OFFLINE_THRESHOLD_COUNT": 5,
    "CARRIER_WEBHOOK_HEALTH_CHECK_INTERVAL": 60.0,
    "CARRIER_WEBHOOK_HEALTH_CHECK_TIMEOUT": 10.0,
    "CARRIER_ENABLE_STAT_LOG": False,
    "CARRIER_STAT_LOG_TIMER": 120.0,
    "CARRIER_ENABLE_COLORIZED_LOGGING": False,
}


def test_every_go_carrier_variable_exists_with_its_default() -> None:
    fields = {env: field for field, env in env_names()}
    settings = Settings.load(BASE)
    for env, default in GO_DEFAULTS.items():
        assert env in fields, env
        if env != "CARRIER_SQS_QUEUE_NAME":
            assert getattr(settings, fields[env]) == default, env
        info = Settings.model_fields[fields[env]]
        assert isinstance(info.json_schema_extra, dict)
        assert info.json_schema_extra["go"] is True, env
    go_marked = {
        env
        for field, env in env_names()
        if isinstance(Settings.model_fields[field].json_schema_extra, dict)
        and Settings.model_fields[field].json_schema_extra["go"]  # type: ignore[index]
    }
    assert go_marked == set(GO_DEFAULTS)


def test_reads_a_go_carrier_environment() -> None:
    settings = Settings.load(
        {
            "CARRIER_SQS_ENDPOINT": "http://127.0.0.1:4566",
            "CARRIER_SQS_QUEUE_NAME": "jobs.fifo",
            "CARRIER_SQS_BATCH_SIZE": "10",
            "CARRIER_SQS_RECEIVERS": "4",
            "CARRIER_SQS_RECEIVER_WORKERS": "10",
            "CARRIER_WEBHOOK_ENDPOINT": "http://localhost:8080/hook?x=1",
            "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "1m30s",
            "CARRIER_WEBHOOK_TLS_INSECURE_SKIP_VERIFY": "true",
            "CARRIER_ENABLE_STAT_LOG": "1",
            "CARRIER_STAT_LOG_TIMER": "500ms",
        }
    )
    assert settings.in_flight_limit == 40
    assert settings.is_fifo
    assert settings.webhook_request_timeout == 90.0
    assert settings.webhook_endpoint == "http://localhost:8080/hook?x=1"
    assert settings.webhook_tls_insecure_skip_verify is True
    assert settings.stat_log_timer == 0.5


def test_names_are_case_insensitive_and_empty_means_unset() -> None:
    settings = Settings.load({"carrier_sqs_queue_name": "q", "CARRIER_SQS_BATCH_SIZE": ""})
    assert settings.sqs_queue_name == "q"
    assert settings.sqs_batch_size == 1


@pytest.mark.parametrize(
    ("env", "variable", "fragment"),
    [
        ({"CARRIER_SQS_BATCH_SIZE": "11"}, "CARRIER_SQS_BATCH_SIZE", "less than or equal to 10"),
        ({"CARRIER_SQS_BATCH_SIZE": "0"}, "CARRIER_SQS_BATCH_SIZE", "greater than or equal to 1"),
        ({"CARRIER_SQS_RECEIVERS": "many"}, "CARRIER_SQS_RECEIVERS", "valid integer"),
        ({"CARRIER_WEBHOOK_ENDPOINT": "localhost:9000"}, "CARRIER_WEBHOOK_ENDPOINT", "http(s) URL"),
        ({"CARRIER_WEBHOOK_ENDPOINT": "http://h:99999/"}, "CARRIER_WEBHOOK_ENDPOINT", "port"),
        (
            {"CARRIER_WEBHOOK_REQUEST_TIMEOUT": "soon"},
            "CARRIER_WEBHOOK_REQUEST_TIMEOUT",
            "duration",
        ),
        (
            {"CARRIER_WEBHOOK_REQUEST_TIMEOUT": "0s"},
            "CARRIER_WEBHOOK_REQUEST_TIMEOUT",
            "greater than 0",
        ),
        ({"CARRIER_SQS_WAIT_TIME": "21s"}, "CARRIER_SQS_WAIT_TIME", "less than or equal to 20"),
        ({"CARRIER_SQS_VISIBILITY_TIMEOUT": "13h"}, "CARRIER_SQS_VISIBILITY_TIMEOUT", "43200"),
        ({"CARRIER_RETRY_BACKOFF": "linear"}, "CARRIER_RETRY_BACKOFF", "exponential"),
        ({"CARRIER_LOG_LEVEL": "loud"}, "CARRIER_LOG_LEVEL", "debug"),
        ({"CARRIER_ENABLE_STAT_LOG": "maybe"}, "CARRIER_ENABLE_STAT_LOG", "boolean"),
        ({"CARRIER_HTTP_ADDR": "9102"}, "CARRIER_HTTP_ADDR", "host:port"),
        ({"CARRIER_SQS_QUEUE_NAME": "bad name"}, "CARRIER_SQS_QUEUE_NAME", "queue name"),
        (
            {"CARRIER_RETRY_BACKOFF_BASE": "1h", "CARRIER_RETRY_BACKOFF_MAX": "1m"},
            "CARRIER_RETRY_BACKOFF_BASE",
            "must not exceed",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    env: dict[str, str], variable: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load({**BASE, **env})
    message = str(caught.value)
    assert message.startswith(variable + ":"), message
    assert fragment in message
    assert "\n" not in message


def test_queue_name_or_url_is_required_but_not_both() -> None:
    with pytest.raises(ConfigError, match=r"^CARRIER_SQS_QUEUE_NAME: .*neither is set"):
        Settings.load({})
    with pytest.raises(ConfigError, match=r"^CARRIER_SQS_QUEUE_URL: .*not both"):
        Settings.load({**BASE, "CARRIER_SQS_QUEUE_URL": "http://127.0.0.1:1/123/orders"})
    by_url = Settings.load({"CARRIER_SQS_QUEUE_URL": "http://127.0.0.1:1/123/jobs.fifo"})
    assert by_url.is_fifo
    assert by_url.queue_label.endswith("/jobs.fifo")


def test_to_env_renders_only_what_was_set_and_round_trips() -> None:
    env = {
        **BASE,
        "CARRIER_SQS_VISIBILITY_TIMEOUT": "90",
        "CARRIER_SQS_HEARTBEAT": "false",
        "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "500ms",
    }
    settings = Settings.load(env)
    rendered = settings.to_env()
    assert rendered == {
        "CARRIER_SQS_QUEUE_NAME": "orders",
        "CARRIER_SQS_VISIBILITY_TIMEOUT": "90s",
        "CARRIER_SQS_HEARTBEAT": "false",
        "CARRIER_WEBHOOK_REQUEST_TIMEOUT": "500ms",
    }
    assert Settings.load(rendered) == settings
    everything = settings.to_env(include_defaults=True)
    assert everything["CARRIER_SQS_WAIT_TIME"] == "20s"
    assert Settings.load(everything) == settings


def test_from_fields_never_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_SQS_BATCH_SIZE", "7")
    assert Settings.from_fields({"sqs_queue_name": "q"}).sqs_batch_size == 1
    assert Settings.load({"CARRIER_SQS_QUEUE_NAME": "q"}).sqs_batch_size == 1


def test_load_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_SQS_QUEUE_NAME", "from-env")
    monkeypatch.setenv("CARRIER_SQS_BATCH_SIZE", "7")
    settings = Settings.load()
    assert (settings.sqs_queue_name, settings.sqs_batch_size) == ("from-env", 7)


def test_unknown_carrier_variables_are_reported() -> None:
    env = {**BASE, "CARRIER_SQS_BATCHSIZE": "10", "PATH": "/bin", "carrier_x": "1"}
    assert unknown_variables(env) == ["CARRIER_SQS_BATCHSIZE", "carrier_x"]


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        (":9102", ("", 9102)),
        ("0.0.0.0:9102", ("0.0.0.0", 9102)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("none", None),
        ("NONE", None),
    ],
)
def test_http_addr(text: str, bind: tuple[str, int] | None) -> None:
    assert parse_addr(text) == bind
