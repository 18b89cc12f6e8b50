"""What each `solve.mode` means, in one table: the stages it runs and the order of the vote's tiers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    skipped_stages: frozenset[str]  # pipeline stages this mode does not run
    vote_order: tuple[str, ...]  # solve.select.vote tiers, each filling the slots the ones before it left
    help: str


MODES: dict[str, Mode] = {
    "hybrid": Mode(frozenset(), ("verified", "extra", "partial"), "verified programs, then grids, then partial programs"),
    "code": Mode(frozenset({"transduction"}), ("verified", "partial", "extra"), "programs only"),
    "grid": Mode(frozenset({"dsl_search", "induction", "verify", "search"}), ("extra",), "direct grid predictions only"),
}


def mode_help() -> str:
    return "; ".join(f"{name}: {m.help}" for name, m in MODES.items())
