"""The webhook health gate against a real health endpoint over HTTP."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from carrier_sidecar.webhook_health import FIRST_DELAY, WebhookHealthGate, WebhookOffline
from tests.support.servers import eventually

from .conftest import HealthEndpoint, gate_settings


async def test_wait_online_returns_soon_after_the_endpoint_comes_up(
    no_leaked_tasks: None,
    endpoint: HealthEndpoint,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.health")
    gate = WebhookHealthGate(gate_settings(endpoint.url, webhook_health_check_interval=60), session)
    assert not gate.online
    waiting = asyncio.create_task(gate.wait_online(asyncio.Event()))

    # The first check is refused (nothing listens yet) and says so once at INFO.
    await eventually(
        lambda: any(r.message == "waiting for the webhook health endpoint" for r in caplog.records),
        5,
        "the first failed check to be logged",
    )
    assert not waiting.done()
    await endpoint.up()

    # With a 60s interval the start-up pace is still capped at a few seconds, not 60.
    assert await asyncio.wait_for(waiting, 10) is True
    assert gate.online
    assert endpoint.hits == 1  # the first check after it came up succeeded; no extra checks
    online = [r for r in caplog.records if r.message == "webhook online"]
    assert len(online) == 1
    assert online[0].endpoint == endpoint.url


async def test_wait_online_backs_off_from_a_quarter_second_to_the_cap(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    endpoint.script = [503, 503, 500, 404]
    await endpoint.up()
    interval = 0.6  # the start-up cap is min(interval, 5s)
    gate = WebhookHealthGate(
        gate_settings(endpoint.url, webhook_health_check_interval=interval), session
    )

    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 10) is True

    assert endpoint.hits == 5  # four failures, then one success: nothing more
    gaps = [b - a for a, b in zip(endpoint.times, endpoint.times[1:], strict=False)]
    # Never a busy loop: at least the first delay between checks (timer slack allowed) ...
    assert min(gaps) >= FIRST_DELAY * 0.8, gaps
    # ... growing to, and bounded by, the cap (generous slack for a loaded CI machine).
    assert gaps[-1] >= interval * 0.8, gaps
    assert max(gaps) <= interval + 1.0, gaps


@pytest.mark.parametrize("status", [200, 204, 299])
async def test_any_2xx_is_online(
    endpoint: HealthEndpoint, session: aiohttp.ClientSession, status: int
) -> None:
    endpoint.status = status
    await endpoint.up()
    gate = WebhookHealthGate(gate_settings(endpoint.url), session)
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True


async def test_stop_event_ends_wait_online(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    endpoint.status = 503
    await endpoint.up()
    gate = WebhookHealthGate(gate_settings(endpoint.url), session)
    stop = asyncio.Event()
    waiting = asyncio.create_task(gate.wait_online(stop))
    await eventually(lambda: endpoint.hits >= 2, 5, "two failed checks")

    stop.set()

    assert await asyncio.wait_for(waiting, 5) is False
    assert not gate.online


async def test_stop_event_already_set_makes_no_check(
    endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    await endpoint.up()
    gate = WebhookHealthGate(gate_settings(endpoint.url), session)
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(gate.wait_online(stop), 5) is False
    assert endpoint.hits == 0


async def test_stop_event_interrupts_a_hanging_check(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    endpoint.hang = True
    await endpoint.up()
    # The check's own timeout (60s) is far beyond the test's deadline: stop must not wait for it.
    gate = WebhookHealthGate(gate_settings(endpoint.url, webhook_health_check_timeout=60), session)
    stop = asyncio.Event()
    waiting = asyncio.create_task(gate.wait_online(stop))
    await eventually(lambda: endpoint.hits == 1, 5, "the check to reach the endpoint")

    stop.set()

    assert await asyncio.wait_for(waiting, 5) is False


async def test_wait_online_is_cancellable(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    endpoint.hang = True
    await endpoint.up()
    gate = WebhookHealthGate(gate_settings(endpoint.url, webhook_health_check_timeout=60), session)
    waiting = asyncio.create_task(gate.wait_online(asyncio.Event()))
    await eventually(lambda: endpoint.hits == 1, 5, "the check to reach the endpoint")

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    # no_leaked_tasks: the in-flight check and the stop watcher were cancelled with it


async def test_watch_raises_after_exactly_the_threshold_of_failures(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    await endpoint.up()
    gate = WebhookHealthGate(
        gate_settings(endpoint.url, webhook_offline_threshold_count=3), session
    )
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True
    before = endpoint.hits
    endpoint.status = 503

    with pytest.raises(WebhookOffline) as raised:
        await asyncio.wait_for(gate.watch(), 10)

    assert endpoint.hits - before == 3
    assert not gate.online
    message = str(raised.value)
    assert "\n" not in message
    assert endpoint.url in message
    assert "3 consecutive" in message
    assert "HTTP 503" in message


async def test_a_success_resets_the_failure_count(
    endpoint: HealthEndpoint, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.health")
    await endpoint.up()
    gate = WebhookHealthGate(
        gate_settings(endpoint.url, webhook_offline_threshold_count=3), session
    )
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True
    before = endpoint.hits
    # Two failures, a success, two failures, a success, then failures for good.
    endpoint.script = [503, 500, 200, 503, 503, 200]
    endpoint.status = 502

    with pytest.raises(WebhookOffline):
        await asyncio.wait_for(gate.watch(), 10)

    assert endpoint.hits - before == 6 + 3
    recovered = [r for r in caplog.records if r.message == "webhook health recovered"]
    assert [vars(r)["failures"] for r in recovered] == [2, 2]  # an ``extra=`` field


async def test_watch_counts_an_unreachable_endpoint_as_failing(
    endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    await endpoint.up()
    gate = WebhookHealthGate(
        gate_settings(endpoint.url, webhook_offline_threshold_count=2), session
    )
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True
    await endpoint.down()

    with pytest.raises(WebhookOffline, match="ClientConnectorError"):
        await asyncio.wait_for(gate.watch(), 10)


async def test_check_timeout_is_honoured(
    endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    await endpoint.up()
    gate = WebhookHealthGate(
        gate_settings(
            endpoint.url,
            webhook_offline_threshold_count=2,
            webhook_health_check_timeout=0.2,
        ),
        session,
    )
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True
    endpoint.hang = True

    # Two checks that each give up after 0.2s: well within the deadline, though the endpoint
    # would hang for far longer.
    with pytest.raises(WebhookOffline, match=r"no answer within 0\.2s"):
        await asyncio.wait_for(gate.watch(), 5)


async def test_watch_is_cancellable_while_a_check_hangs(
    no_leaked_tasks: None, endpoint: HealthEndpoint, session: aiohttp.ClientSession
) -> None:
    await endpoint.up()
    gate = WebhookHealthGate(gate_settings(endpoint.url, webhook_health_check_timeout=60), session)
    assert await asyncio.wait_for(gate.wait_online(asyncio.Event()), 5) is True
    endpoint.hang = True
    before = endpoint.hits
    watching = asyncio.create_task(gate.watch())
    await eventually(lambda: endpoint.hits > before, 5, "a check in flight")

    watching.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(watching, 5)
    assert gate.online  # cancelling is not a verdict on the webhook


async def test_without_an_endpoint_the_gate_is_open_and_watch_waits_until_cancelled(
    no_leaked_tasks: None, session: aiohttp.ClientSession
) -> None:
    gate = WebhookHealthGate(gate_settings(None), session)
    assert gate.online
    stop = asyncio.Event()
    stop.set()  # even a stop already set does not matter: there is nothing to wait for
    assert await gate.wait_online(stop) is True

    watching = asyncio.create_task(gate.watch())
    done, _ = await asyncio.wait({watching}, timeout=0.3)
    assert not done  # watch() with nothing to watch never returns on its own
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching
