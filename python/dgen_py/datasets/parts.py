"""The parts a format's generator yields besides container bytes: Payload (stream bytes
stored raw) and Encoded (stream bytes turned into other bytes); tfrecord.Records is the
third kind."""


class Payload:
    """Stream bytes [offset, offset + length) stored raw; with crc ("crc32" or "crc32c")
    the consumer sets .crc to the checksum of them, continued from `start`. `step`: the
    stream bytes from this payload to the next of its kind (TFRecord's samples), if any."""

    __slots__ = ("offset", "length", "crc", "start", "step")

    def __init__(self, offset, length, crc=None, start=0, step=None):
        self.offset, self.length, self.crc, self.start = offset, length, crc, start
        self.step = step


class Encoded:
    """Stream bytes [offset, offset + length) passed to encode(uint8 array) -> bytes."""

    __slots__ = ("offset", "length", "encode")

    def __init__(self, offset, length, encode):
        self.offset, self.length, self.encode = offset, length, encode
