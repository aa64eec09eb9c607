"""Bit widths of a quantized model: weights and activations, per part (early / later)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vidconv_edge.errors import UserError

ALLOWED_BITS = (2, 4, 8)
PARTS = ("early", "later")


@dataclass(frozen=True)
class PartBits:
    weight: int = 8
    act: int = 8


@dataclass(frozen=True)
class QuantBits:
    """``early``: stem + stages before the collage; ``later``: the rest (for SEVNet: first / second half)."""

    early: PartBits = PartBits()
    later: PartBits = PartBits()

    def __post_init__(self) -> None:
        for part in PARTS:
            pb = getattr(self, part)
            for kind in ("weight", "act"):
                b = getattr(pb, kind)
                if b not in ALLOWED_BITS:
                    raise UserError(
                        f"unsupported {kind} bit width {b} for the {part} part: allowed {', '.join(map(str, ALLOWED_BITS))}"
                    )

    def part(self, name: str) -> PartBits:
        return getattr(self, name)

    def label(self) -> str:
        """Short name such as ``W8A8`` or ``W8A4`` (``early W8A8 / later W8A4`` when the parts differ)."""
        e, l = self.early, self.later
        if e == l:
            return f"W{e.weight}A{e.act}"
        return f"early W{e.weight}A{e.act} / later W{l.weight}A{l.act}"

    def tag(self) -> str:
        """File-name form of :meth:`label`: ``W8A4``, or ``W8A8-W8A4`` (early-later); :func:`parse_mix` reads it."""
        return self.label().replace("early ", "").replace(" / later ", "-")

    def to_dict(self) -> dict:
        """The checkpoint's ``quant`` entry."""
        return {
            "weight_bits": {p: self.part(p).weight for p in PARTS},
            "act_bits": {p: self.part(p).act for p in PARTS},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "QuantBits":
        try:
            w, a = d["weight_bits"], d["act_bits"]
            return cls(*(PartBits(int(w[p]), int(a[p])) for p in PARTS))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"malformed quantization settings {d!r}: {e}") from e


def _int_bits(value, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise UserError(f"{what} must be an integer bit width, got {value!r}") from e


def parse_part(spec: str | None) -> tuple[int | None, int | None]:
    """``"8"`` -> (8, 8); ``"W8A4"`` / ``"8,4"`` -> (8, 4); None -> (None, None)."""
    if spec is None:
        return None, None
    s = spec.strip().upper()
    if s.startswith("W") and "A" in s:
        w, a = s[1:].split("A", 1)
    elif "," in s:
        w, a = s.split(",", 1)
    else:
        w = a = s
    return _int_bits(w, f"bit width '{spec}'"), _int_bits(a, f"bit width '{spec}'")


def make_bits(
    bits: int = 8,
    weight_bits: int | None = None,
    act_bits: int | None = None,
    early: str | None = None,
    later: str | None = None,
) -> QuantBits:
    """Global ``bits``, overridden by ``weight_bits``/``act_bits``, overridden per part by ``early``/``later``."""
    bits = _int_bits(bits, "bits")
    w = _int_bits(weight_bits, "weight bits") or bits
    a = _int_bits(act_bits, "activation bits") or bits
    parts = []
    for spec in (early, later):
        pw, pa = parse_part(spec)
        parts.append(PartBits(pw or w, pa or a))
    return QuantBits(*parts)


def parse_mix(spec: str) -> QuantBits:
    """A bit-width mix: ``W8A4`` (both parts), ``W8A8/W8A4`` or ``W8A8-W8A4`` (early / later)."""
    parts = spec.replace("-", "/").split("/")
    if len(parts) == 1:
        w, a = parse_part(spec)
        return make_bits(w, w, a)
    if len(parts) == 2 and all(p.strip() for p in parts):
        return make_bits(8, early=parts[0], later=parts[1])
    raise UserError(f"bit-width mix '{spec}': write W8A4 (both parts) or W8A8/W8A4 (early/later)")


def describe(bits: QuantBits) -> dict:
    return {"label": bits.label(), **{p: asdict(bits.part(p)) for p in PARTS}}
