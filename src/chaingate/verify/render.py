"""The decision for a human: a clause table, the ignored attachments and the warnings.

Kept out of the CLI module so the deploy command prints a decision the same
way ``verify`` does, and so the layout is testable without a subprocess.
Reasons are never truncated: a denial's reason is the one line an operator
needs, and a table that cuts it off defeats the gate's purpose.
"""

from __future__ import annotations

from chaingate.policy.record import Decision
from chaingate.text import one_line

#: Reasons are not cut for layout, only bounded against a payload that is one huge string.
_REASON_LIMIT = 8000
_SHORT = 19  # "sha256:" + 12 hex digits: enough to find an attachment, short enough for a table


def _short(digest: str) -> str:
    return digest[:_SHORT] if digest.startswith("sha256:") else digest


def _safe(text: str) -> str:
    """Reasons quote registries and signed payloads (hostile text): one line each, never a CI command."""
    return one_line(text, _REASON_LIMIT)


def render_text(decision: Decision) -> str:
    """A table of clauses (clause, result, exception, reason, evidence), then ignored attachments and warnings."""
    if decision.verdict == "allow":
        headline = "ALLOW"
    elif decision.mode == "warn":
        headline = "DENY (warn mode: reported, not enforced)"
    else:
        headline = "DENY"
    lines = [
        f"{headline}  {_safe(decision.image)}",
        f"  digest:  {decision.digest or '(not resolved)'}"
        + (f"  (platform manifest of index {decision.index_digest})" if decision.index_digest else ""),
        f"  policy:  {decision.policy_path} ({decision.policy_digest})  mode: {decision.mode}"
        + (f"  project: {decision.project}" if decision.project else ""),
        "",
    ]
    rows = [("CLAUSE", "RESULT", "EXCEPTION", "REASON")] + [
        (c.clause, c.result, c.exception_id or "-", _safe(c.reason)) for c in decision.clauses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    indent = " " * (sum(widths) + 6)
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
        if index:
            evidence = decision.clauses[index - 1].evidence
            if evidence:
                lines.append(f"{indent}evidence: {', '.join(_short(d) for d in evidence)}")
    if decision.ignored:
        lines += ["", f"ignored attachments ({len(decision.ignored)}):"]
        lines += [f"  {_safe(_short(digest))}  {_safe(reason)}" for digest, reason in decision.ignored]
    if decision.warnings:
        lines += ["", "warnings:"]
        lines += [f"  {_safe(warning)}" for warning in decision.warnings]
    return "\n".join(lines)
