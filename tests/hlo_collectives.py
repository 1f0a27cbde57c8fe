"""Every collective of a compiled (optimized) HLO module, for the sharding tests.

``compiled.as_text()`` prints one instruction a line: ``%name = SHAPE OPCODE(OPERANDS), attrs``.
A collective's result ``SHAPE`` is one array (``f32[40,52]{0,1}``), or a tuple when XLA's
combiners merged several collectives into one (``(f32[256]{0}, s32[]) all-reduce(...)``) or
when the collective is asynchronous: ``all-gather-start`` returns a tuple of its operands and
results and ``all-gather-done`` the results; the generic ``async-start`` form wraps a plain
collective in a called computation, whose own line is parsed like any other. Every array of
every result counts, so a gather hidden in a tuple or behind a ``-start``/``-done`` pair is
seen. :func:`collectives` refuses text in which an opcode occurrence was not parsed, so a
format it does not understand fails a test instead of passing it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: the collective opcodes of XLA's HLO (each may also appear as ``OP-start`` / ``OP-done``)
OPCODES = (
    "all-gather",
    "all-reduce",
    "all-to-all",
    "ragged-all-to-all",
    "collective-permute",
    "collective-broadcast",
    "reduce-scatter",
)
_OPCODE = "|".join(sorted(OPCODES, key=len, reverse=True))
# an opcode in opcode position: after the result shape (a space) and before "(";
# instruction names such as %all-gather.1 are followed by "." or " =" and never match
_ANY_OPCODE = re.compile(rf"(?<=\s)(?:{_OPCODE})(?:-start|-done)?\(")
_INSTRUCTION = re.compile(
    rf"^\s*(?:ROOT\s+)?%?(?P<name>[^\s=]+)\s*=\s*(?P<shape>.+?)\s+"
    rf"(?P<op>{_OPCODE})(?P<phase>-start|-done)?\("
)
_ARRAY = re.compile(r"\b(?P<dtype>[a-z]+\d*(?:e\d+m\d+\w*)?)\[(?P<dims>[\d,]*)\]")


@dataclass(frozen=True)
class Collective:
    """One collective instruction of an HLO module.

    Attributes:
        name: the instruction's name (``all-gather.1``).
        op: the opcode without its async suffix (``all-gather``).
        phase: ``""`` for a synchronous collective, ``"-start"`` or ``"-done"``.
        arrays: every array in the result shape, as ``(dtype, dims)``, tuples flattened.
        line: the instruction's text.
    """

    name: str
    op: str
    phase: str
    arrays: tuple[tuple[str, tuple[int, ...]], ...]
    line: str

    @property
    def sizes(self) -> tuple[int, ...]:
        """The element count of each result array."""
        return tuple(math.prod(dims) for _, dims in self.arrays)

    @property
    def largest(self) -> int:
        """The element count of the largest result array (0 for a result of tokens only)."""
        return max(self.sizes, default=0)


def collectives(hlo_text: str) -> list[Collective]:
    """Every collective instruction in ``hlo_text`` (all computations, nested ones included).

    Raises:
        ValueError: an opcode occurrence on a line that does not parse as an instruction.
    """
    found: list[Collective] = []
    for line in hlo_text.splitlines():
        occurrences = len(_ANY_OPCODE.findall(line))
        if not occurrences:
            continue
        match = _INSTRUCTION.match(line)
        if match is None or occurrences != 1:
            raise ValueError(f"unparsed collective line: {line.strip()[:300]}")
        arrays = tuple(
            (a.group("dtype"), tuple(int(d) for d in a.group("dims").split(",") if d))
            for a in _ARRAY.finditer(match.group("shape"))
        )
        if not arrays and "token[]" not in match.group("shape"):
            raise ValueError(f"no result shape parsed: {line.strip()[:300]}")
        found.append(Collective(match.group("name"), match.group("op"), match.group("phase") or "", arrays, line.strip()))
    return found


def oversized_gathers(hlo_text: str, max_elements: int) -> list[Collective]:
    """The all-gathers (sync, ``-start``, ``-done``; tuple results too) with any result array
    of more than ``max_elements`` elements."""
    return [c for c in collectives(hlo_text) if c.op == "all-gather" and c.largest > max_elements]


def full_layer_collectives(hlo_text: str, layer_sizes: set[int]) -> list[Collective]:
    """Any collective (an all-reduce included: a gather can be compiled as an all-reduce of a
    zero-padded buffer) with a result array exactly as large as one of ``layer_sizes``."""
    return [c for c in collectives(hlo_text) if set(c.sizes) & layer_sizes]
