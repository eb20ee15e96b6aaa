"""The decision table: what a registry or payload chose to say is printed as inert single lines."""

from __future__ import annotations

from chaingate.policy.interface import ClauseResult
from chaingate.policy.record import Decision
from chaingate.verify.render import render_text


def test_hostile_digests_and_reasons_cannot_forge_lines() -> None:
    forged = "x\n::error title=gate::ALLOW forged\nALLOW  everything fine"
    decision = Decision(
        image="r.example/app@sha256:" + "1" * 64,
        digest="sha256:" + "1" * 64,
        repository="r.example/app",
        mode="enforce",
        verdict="deny",
        clauses=(ClauseResult("signers", "fail", "nothing counts\n::warning::also forged"),),
        ignored=((forged, "referrers-api: " + forged),),
        warnings=("\x1b[2Jcleared",),
    )
    text = render_text(decision)
    lines = text.splitlines()
    assert lines[0].startswith("DENY  ")
    assert not any(line.lstrip().startswith(("::", "ALLOW")) for line in lines), text
    assert "\x1b" not in text and "\\x1b[2Jcleared" in text
