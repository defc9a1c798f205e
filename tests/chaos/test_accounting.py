"""The accounting itself can fail: small hand-made histories with a known cause each."""

from __future__ import annotations

from tests.chaos.accounting import Window, account, order_violations
from tests.chaos.faulty_webhook import Delivery
from tests.support.sidecar_runner import Incarnation
from tests.support.sqs_proxy import Ack, Ledger, Receive


def _ok(mid: str, inc: int, t: float, group: str | None = None, seq: int | None = None) -> Delivery:
    return Delivery(mid, inc, t, t + 0.01, "ok", group, seq)


def _incs(*ends: tuple[str, float, float]) -> list[Incarnation]:
    return [
        Incarnation(n, t_start=0.0, ended_by=how, t_signal=sig, t_exit=ex, returncode=0)
        for n, (how, sig, ex) in enumerate(ends, start=1)
    ]


def _duplicate_cause(
    ledger: Ledger, incs: list[Incarnation], windows: list[Window] | None = None
) -> str:
    deliveries = [_ok("a", 1, 1.0), _ok("a", 2, 10.1)]
    report = account(["a"], deliveries, ledger, incs, windows or [])
    assert sum(report.duplicates.values()) == 1
    return next(iter(report.duplicates))


def _two_receives(second_at: float = 10.0) -> Ledger:
    ledger = Ledger()
    ledger.receives.append(Receive(0.5, 0.6, 1, 3.0, (("a", "h1"),)))
    ledger.receives.append(Receive(second_at - 0.05, second_at, 2, 3.0, (("a", "h2"),)))
    return ledger


def test_a_missing_id_is_lost_and_nothing_else() -> None:
    report = account(["a", "b"], [_ok("a", 1, 1.0)], Ledger(), _incs(("final", 5, 6)), [])
    assert report.lost == ["b"]
    assert report.delivered == 1
    assert not report.duplicates


def test_kill_before_the_delete_is_a_sigkill_duplicate() -> None:
    assert (
        _duplicate_cause(_two_receives(), _incs(("sigkill", 2.0, 2.0), ("final", 20, 21)))
        == "sigkill"
    )


def test_sigterm_without_a_delete_is_a_sigterm_duplicate() -> None:
    assert (
        _duplicate_cause(_two_receives(), _incs(("sigterm", 2.0, 2.5), ("final", 20, 21)))
        == "sigterm"
    )


def test_sigterm_whose_drain_deleted_is_not_blamed_on_sigterm() -> None:
    ledger = _two_receives()
    ledger.acks.append(Ack(2.1, 2.2, 1, "delete", (("h1", 0.0),)))
    # Deleted before the re-receive: the server handed out a deleted message.
    assert _duplicate_cause(ledger, _incs(("sigterm", 2.0, 2.5), ("final", 20, 21))) == "server"


def test_a_receive_while_still_invisible_is_the_servers() -> None:
    ledger = _two_receives(second_at=2.0)  # visibility 3 s from 0.5: invisible until 3.5
    deliveries = [_ok("a", 1, 1.0), _ok("a", 1, 2.1)]
    ledger.receives[1] = Receive(1.9, 2.0, 1, 3.0, (("a", "h2"),))
    report = account(["a"], deliveries, ledger, _incs(("final", 20, 21)), [])
    assert dict(report.duplicates) == {"server": 1}


def test_an_outage_between_the_2xx_and_the_re_receive_is_the_outage() -> None:
    windows = [Window("sqs_outage", 1.5, 4.5)]
    cause = _duplicate_cause(
        _two_receives(), _incs(("sigterm", 8.0, 8.5), ("final", 20, 21)), windows
    )
    assert cause == "sqs_outage"


def test_one_message_to_two_overlapping_receives_is_the_servers() -> None:
    ledger = Ledger()
    ledger.receives.append(Receive(0.5, 0.9, 1, 3.0, (("a", "h1"),)))
    ledger.receives.append(Receive(0.6, 1.0, 2, 3.0, (("a", "h2"),)))
    deliveries = [_ok("a", 1, 1.0), _ok("a", 2, 1.1)]
    incs = _incs(("final", 20, 21), ("final", 20, 21))
    report = account(["a"], deliveries, ledger, incs, [])
    assert dict(report.duplicates) == {"server": 1}


def test_an_outage_between_the_receive_request_and_the_2xx_is_the_outage() -> None:
    # SQS stamped the visibility at the request (0.5); the freeze ended before the POST began.
    windows = [Window("sqs_freeze", 0.55, 0.95)]
    cause = _duplicate_cause(_two_receives(), _incs(("final", 20, 21), ("final", 30, 31)), windows)
    assert cause == "sqs_outage"


def test_a_late_delete_with_no_fault_is_late_ack() -> None:
    ledger = _two_receives()
    ledger.acks.append(Ack(10.5, 10.6, 1, "delete", (("h1", 0.0),)))
    assert _duplicate_cause(ledger, _incs(("sigterm", 15.0, 15.5), ("final", 20, 21))) == "late_ack"


def test_a_2xx_never_acknowledged_without_a_fault_is_the_sidecars() -> None:
    assert (
        _duplicate_cause(_two_receives(), _incs(("final", 20.0, 21.0), ("final", 30, 31)))
        == "sidecar"
    )


def test_fifo_inversion_inside_one_receive_is_the_sidecars() -> None:
    ledger = Ledger()
    ledger.receives.append(Receive(0.0, 0.1, 1, 3.0, (("a", "h1"), ("b", "h2"))))
    deliveries = [_ok("b", 1, 1.0, "g", 1), _ok("a", 1, 2.0, "g", 0)]
    sidecar, server = order_violations(deliveries, ledger)
    assert len(sidecar) == 1
    assert not server


def test_fifo_tail_handed_out_alone_is_the_servers() -> None:
    ledger = Ledger()
    ledger.receives.append(Receive(0.0, 0.1, 1, 3.0, (("b", "h2"),)))
    ledger.receives.append(Receive(1.5, 1.6, 1, 3.0, (("a", "h1"),)))
    deliveries = [_ok("b", 1, 1.0, "g", 1), _ok("a", 1, 2.0, "g", 0)]
    sidecar, server = order_violations(deliveries, ledger)
    assert not sidecar
    assert len(server) == 1


def test_fifo_in_order_is_clean() -> None:
    ledger = Ledger()
    ledger.receives.append(Receive(0.0, 0.1, 1, 3.0, (("a", "h1"), ("b", "h2"))))
    deliveries = [_ok("a", 1, 1.0, "g", 0), _ok("b", 1, 2.0, "g", 1), _ok("a", 2, 3.0, "g", 0)]
    assert order_violations(deliveries, ledger) == ([], [])
