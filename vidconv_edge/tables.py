"""Tables that never cut a cell: a grid when the words fit the console, one block of lines per row otherwise."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

WIDE = 1_000_000  # "no width limit" when measuring a table's natural width


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` with every name and number whole at the console's width (piped: ``COLUMNS`` or 80).

    A grid when the longest word of every column fits (cells wrap between words, never inside one);
    otherwise each row as a heading and ``column: value`` lines.
    """
    console = console or Console()
    if fit_table(table, console):
        console.print(table)
    else:
        _print_records(table, console)


class TableConsole(Console):
    """A console whose ``print`` of a lone table goes through ``print_table`` (for printers given a console)."""

    def print(self, *objects, **kwargs) -> None:
        if len(objects) == 1 and isinstance(objects[0], Table) and not kwargs and not fit_table(objects[0], self):
            _print_records(objects[0], self)
        else:
            super().print(*objects, **kwargs)


def fit_table(table: Table, console: Console) -> bool:
    """Fix the column widths of ``table`` so no word is broken at the console's width; False if they cannot fit."""
    widths = _column_widths(table, console)
    if widths is None:
        return False
    for column, width in zip(table.columns, widths):
        column.width, column.no_wrap, column.overflow = width, False, "fold"
    return True


def _column_widths(table: Table, console: Console) -> list[int] | None:
    """Content widths of the columns at the console's width (no word broken), or None if they cannot fit."""
    for column in table.columns:
        column.width = None  # measure the contents (again, if a previous fit fixed the widths)
    wide = console.options.update_width(WIDE)
    ranges = [_measure(console, wide, [column.header, *column.cells]) for column in table.columns]
    overhead = Measurement.get(console, wide, table).maximum - sum(r.maximum for r in ranges)
    room = console.width - overhead
    low, high = sum(r.minimum for r in ranges), sum(r.maximum for r in ranges)
    if high <= room:
        return [r.maximum for r in ranges]
    if low > room:
        return None
    share = (room - low) / (high - low)  # the same fraction of every column's slack
    widths = [r.minimum + int(share * (r.maximum - r.minimum)) for r in ranges]
    for i in sorted(range(len(ranges)), key=lambda i: ranges[i].minimum - ranges[i].maximum)[: room - sum(widths)]:
        widths[i] += 1  # hand out what rounding left
    return widths


def _measure(console: Console, options, cells: list) -> Measurement:
    sizes = [Measurement.get(console, options, cell) for cell in cells]
    return Measurement(max(s.minimum for s in sizes), max(s.maximum for s in sizes))


def _print_records(table: Table, console: Console) -> None:
    if table.title:
        console.print(table.title, style="italic")
    columns = table.columns
    for row in zip(*[list(column.cells) for column in columns]):
        if not table.show_header:  # a key / value table: one line per row
            console.print(Text(": ").join(_text(console, cell) for cell in row))
            continue
        console.print(_text(console, row[0]), style="bold")
        for column, cell in zip(columns[1:], row[1:]):
            console.print(Text.assemble(f"  {_text(console, column.header).plain}: ", _text(console, cell)))


def _text(console: Console, cell) -> Text:
    return console.render_str(cell) if isinstance(cell, str) else cell

