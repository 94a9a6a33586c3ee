"""jpeg and png files: one grayscale image of dim1 x dim2 stream bytes each, encoded
by Pillow."""

from __future__ import annotations

import io

from .parts import Encoded


def parts(spec, f):
    from PIL import Image
    d1, d2 = f["dims"]
    fmt = "JPEG" if spec["format"] == "jpeg" else "PNG"

    def encode(pixels):
        out = io.BytesIO()
        Image.fromarray(pixels.reshape(d1, d2), mode="L").save(out, format=fmt)
        return out.getvalue()
    yield Encoded(f["payload_offset"], f["payload"], encode)


def encoders() -> dict:
    import PIL
    return {"pillow": PIL.__version__}
