"""csv files: rows of dim1 * dim2 stream bytes, each written as its decimal value,
comma-separated, no header (pandas' to_csv of DLIO)."""

from __future__ import annotations

from .parts import Encoded

ENCODE_VALUES = 1 << 20  # csv values encoded at once (the encoder holds about 25 bytes each)


def _csv_table():
    """(256 x 4 uint8: each byte value's decimal digits, left-aligned; their counts)."""
    import numpy as np
    table, counts = np.zeros((256, 4), np.uint8), np.zeros(256, np.intp)
    for v in range(256):
        text = str(v).encode()
        table[v, :len(text)] = list(text)
        counts[v] = len(text)
    return table, counts


def parts(spec, f):
    """n rows of dim1 * dim2 comma-separated values, no header (pandas' to_csv of DLIO),
    encoded ENCODE_VALUES values at a time, rows cut anywhere: memory stays bounded."""
    row = f["dims"][0] * f["dims"][1]
    table = []

    def piece(first):  # values [first, first + len(values)) of the file
        def encode(values):
            import numpy as np
            if not table:
                table.extend(_csv_table())
            digits, counts = table
            tokens = digits[values]  # each value's digits, then its separator
            n = len(values)
            ends = np.full(n, ord(","), np.uint8)
            ends[row - 1 - first % row::row] = ord("\n")  # the last value of a row
            width = counts[values]
            tokens.reshape(-1)[np.arange(0, 4 * n, 4) + width] = ends
            return tokens[np.arange(4) <= width[:, None]].tobytes()
        return encode
    for at in range(0, f["payload"], ENCODE_VALUES):
        yield Encoded(f["payload_offset"] + at, min(ENCODE_VALUES, f["payload"] - at),
                      piece(at))
