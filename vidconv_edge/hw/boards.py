"""The FPGA boards ``build-fpga`` targets: part, clock, capacity, shell flow and precision profile."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vidconv_edge.errors import UserError

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True)
class Board:
    """One board. ``finn_board`` is FINN's name for it (driver / shell lookup); capacity from the part's datasheet."""

    name: str
    finn_board: str
    part: str
    clock_ns: float
    lut: int
    ff: int
    bram_18k: int
    uram: int
    dsp: int
    shell_flow: str  # "vivado_zynq" | "vitis_alveo"
    precision: str  # default QAT precision, e.g. "W8A4"
    note: str = ""

    @property
    def capacity(self) -> dict[str, int]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM_18K": self.bram_18k, "URAM": self.uram, "DSP": self.dsp}

    @property
    def weight_bits(self) -> int:
        return int(self.precision[1 : self.precision.index("A")])

    @property
    def act_bits(self) -> int:
        return int(self.precision[self.precision.index("A") + 1 :])

    def to_dict(self) -> dict:
        return {**asdict(self), "capacity": self.capacity}


# Precision by capacity: a W8A8 vic_edge (early + later) is estimated at ~162k LUT (DESIGN "FINN facts"),
# so every part under ~200k LUT gets 4-bit activations.
BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("pynq-z2", "Pynq-Z2", "xc7z020clg400-1", 10.0, 53_200, 106_400, 280, 0, 220, "vivado_zynq", "W8A4",
              "Zynq-7020; W8A8 vic_edge needs ~3x its LUTs"),
        Board("pynq-z1", "Pynq-Z1", "xc7z020clg400-1", 10.0, 53_200, 106_400, 280, 0, 220, "vivado_zynq", "W8A4",
              "same part as pynq-z2"),
        Board("ultra96-v2", "Ultra96-V2", "xczu3eg-sbva484-1-i", 5.0, 70_560, 141_120, 432, 0, 360, "vivado_zynq",
              "W8A4", "ZU3EG: too small for W8A8 (~162k LUT)"),
        Board("kv260", "KV260_SOM", "xck26-sfvc784-2LV-c", 5.0, 117_120, 234_240, 288, 64, 1_248, "vivado_zynq",
              "W8A4", "K26 SOM: W8A8 (~162k LUT) does not fit"),
        Board("zcu104", "ZCU104", "xczu7ev-ffvc1156-2-e", 5.0, 230_400, 460_800, 624, 96, 1_728, "vivado_zynq",
              "W8A8", "ZU7EV: room for 8-bit activations"),
        Board("u250", "U250", "xcu250-figd2104-2L-e", 5.0, 1_728_000, 3_456_000, 5_376, 1_280, 12_288, "vitis_alveo",
              "W8A8", "Alveo datacenter card (Vitis shell)"),
    )  # fmt: skip
}


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive); UserError listing the known ones otherwise."""
    key = name.strip().lower()
    if key not in BOARDS:
        raise UserError(f"unknown board '{name}': choose one of {', '.join(BOARDS)}")
    return BOARDS[key]


def list_boards() -> list[Board]:
    return list(BOARDS.values())
