"""Units of the values beamline files record, with one rule for every layout.

A temperature without a ``units`` attribute is read as degrees Celsius, in APS 8-ID-I results
files and in Eiger master files alike: the sample stages and controllers that beamlines log
(8-ID-I's qnw and rheometer stages, its legacy ``temperature_A``) record degC, and gbsbi cannot
tell the difference from the number alone. Every conversion is reported in a note (printed by
``gbsbi import`` and ``gbsbi correlate``), which says when the unit was assumed; a flag
(``--temperature K``) overrides the file. The rule is written down in docs/maps-file.md.
"""

from __future__ import annotations

import numpy as np

#: Spellings of the temperature units, lower case.
KELVIN = ("k", "kelvin")
CELSIUS = ("c", "degc", "deg c", "°c", "celsius", "degrees celsius", "degree_celsius", "cel")
#: The unit a temperature without a units attribute is read in.
ASSUMED_TEMPERATURE_UNIT = "degC"


def unit_text(raw: object) -> str:
    """A ``units`` attribute as stripped lower-case text ('' when absent)."""
    if isinstance(raw, np.ndarray) and raw.size == 1:
        raw = raw.reshape(-1)[0]
    if isinstance(raw, bytes | np.bytes_):
        raw = raw.decode("utf-8", "replace")
    return "" if raw is None else str(raw).strip().lower()


def kelvin(value: float, units: str, where: str) -> tuple[float | None, str]:
    """A temperature in K from a value and its units (:data:`ASSUMED_TEMPERATURE_UNIT` when
    ``units`` is empty).

    Args:
        value: the recorded number.
        units: its units attribute, as :func:`unit_text` gives it.
        where: the file and dataset, for the note.

    Returns:
        The temperature in K and a note on how it was read; or None and the reason.
    """
    if units in KELVIN:
        result, how = value, f"{value:g} K"
    elif units in CELSIUS or not units:
        result = value + 273.15
        how = f"{value:g} degC" + ("" if units else
                                   " (no units attribute: read as Celsius, gbsbi's rule)")
    else:
        return None, f"{where} has unknown temperature units {units!r} (expected K or degC)"
    if not (np.isfinite(result) and result > 0):
        return None, f"{where} gives {how}, not a temperature"
    return result, f"temperature {how} from {where} -> {result:.2f} K"


def scaled(value: float, units: str, table: dict[str, float], default: str,
           where: str) -> tuple[float | None, str]:
    """A value times its unit's factor in ``table`` (``default`` when ``units`` is empty).

    Returns:
        The value in the table's base unit and a note when the unit was assumed ('' otherwise);
        or None and the reason when the unit is unknown.
    """
    if units and units not in table:
        return None, f"{where} has units {units!r}, expected one of {sorted(table)}"
    note = "" if units else f"{where} has no units attribute: read as {default}"
    return value * table[units or default], note
