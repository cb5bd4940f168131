"""Draw data/chair.png, the picture 01_quickstart.ipynb sends to image-to-3D (run once; the PNG is committed).

A wooden chair in three-quarter view, flat-shaded on a plain background, 256 x 256: what Rodin asks of
an input image (one object, plain background), drawn with Pillow so the repository holds no photograph.
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 256
WOOD = (150, 96, 52)
WOOD_DARK = (112, 68, 34)
WOOD_LIGHT = (186, 128, 74)


def draw() -> Image.Image:
    # Drawn at 4x and reduced: smooth edges without an anti-aliasing dependency.
    s = 4
    img = Image.new("RGB", (SIZE * s, SIZE * s), (238, 236, 232))
    d = ImageDraw.Draw(img)

    def poly(points, fill):
        d.polygon([(x * s, y * s) for x, y in points], fill=fill)

    # Shadow on the floor.
    d.ellipse([60 * s, 206 * s, 200 * s, 232 * s], fill=(214, 211, 205))
    # Back legs (behind the seat).
    poly([(86, 44), (96, 44), (96, 200), (86, 200)], WOOD_DARK)
    poly([(158, 36), (167, 36), (167, 186), (158, 186)], WOOD_DARK)
    # Back rest: two rails and three slats between the back legs.
    poly([(92, 46), (162, 38), (162, 52), (92, 60)], WOOD)
    poly([(92, 92), (162, 84), (162, 94), (92, 102)], WOOD)
    for x in (108, 124, 140):
        poly([(x, 58), (x + 7, 57), (x + 7, 86), (x, 87)], WOOD_LIGHT)
    # Seat: top and front edge.
    poly([(70, 128), (150, 116), (190, 132), (110, 146)], WOOD_LIGHT)
    poly([(70, 128), (110, 146), (110, 156), (70, 138)], WOOD_DARK)
    poly([(110, 146), (190, 132), (190, 142), (110, 156)], WOOD)
    # Front legs.
    poly([(72, 136), (81, 140), (81, 214), (72, 210)], WOOD)
    poly([(104, 152), (114, 152), (114, 224), (104, 224)], WOOD)
    poly([(180, 140), (189, 138), (189, 206), (180, 208)], WOOD_DARK)
    # A stretcher between the front legs.
    poly([(81, 186), (104, 196), (104, 202), (81, 192)], WOOD_DARK)
    img = img.filter(ImageFilter.GaussianBlur(1.2)).resize((SIZE, SIZE), Image.LANCZOS)
    return img


if __name__ == "__main__":
    out = Path(__file__).with_name("chair.png")
    draw().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
