"""The contract's kill rule, one module (docs/architecture.md, "The two-engine contract").

The retry rule is the core's: packages/dbos-orchestrator/tests/test_core_rules.py, run in both venvs.
"""

from __future__ import annotations

from typing import Any

from dbos_airflow.contract import kill


def test_kill_decision(monkeypatch: Any) -> None:
    assert kill.decide_on_kill(object(), cancel_on_kill=False, deferred=False, own_timeout=True) == (False, None)
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False, own_timeout=True)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "failed")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=False)[0] is True
    monkeypatch.setattr(kill, "current_ti_state", lambda ti, timeout=0: "deferred")
    assert kill.decide_on_kill(object(), cancel_on_kill=True, deferred=True)[0] is False
    assert kill.cancel_on_wait_timeout(cancel_on_kill=True) and not kill.cancel_on_wait_timeout(cancel_on_kill=False)
