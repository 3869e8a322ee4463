"""scripts/ldraw_heads.py on a tiny LDraw library, in both layouts it reads: the official one (.dat files,
LDConfig.ldr, licence files at the root) and openscad-ldraw's (.scad files whose `// ` comments are the .dat
lines, colors.scad, licence files under orig/)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

AUTHOR = "Jane Doe [jdoe]"
X1, X2 = 3.0, 6.0  # LDU: the black print's sides in the subpart's frame (right of the front: theta > 0)


def _on_cylinder(x: float, y: float) -> str:
    """An LDraw vertex on the head's cylinder (radius 13) at the front (z < 0)."""
    return f"{x:g} {y:g} {-math.sqrt(169 - x * x):.6f}"


# LDraw name -> .dat text. The head refers to its face subpart through a mirror (x -> -x) and to a quarter
# cylinder primitive in red (4), stretched onto the head's cylinder at the front, right (theta 0..90 deg).
LIBRARY = {
    "parts/3626bp01": [
        "0 Minifig Head with Grin and Beard Pattern",
        "0 Name: 3626bp01.dat",
        f"0 Author: {AUTHOR}",
        "0 !LDRAW_ORG Part UPDATE 2020-01",
        "0 !KEYWORDS beard, moustache",
        "0 !KEYWORDS face",
        "",
        "1 16 0 0 0 -1 0 0 0 1 0 0 0 1 s\\3626bp01s01.dat",
        "1 4 0 14 0 13 0 0 0 2 0 0 0 -13 1-4cyli.dat",
        # black, but on the top (radius < 7.5): not the printed surface
        "4 0 1 0 -5 2 0 -5 2 0 -4 1 0 -4",
        "2 24 0 4 -13 0 17 -13",
    ],
    "parts/s/3626bp01s01": [
        "0 ~Minifig Head with Grin and Beard Pattern - Face",
        "0 Name: s\\3626bp01s01.dat",
        f"0 Author: {AUTHOR}",
        f"4 0 {_on_cylinder(X1, 8)} {_on_cylinder(X2, 8)} {_on_cylinder(X2, 12)} {_on_cylinder(X1, 12)}",
        f"3 0 {_on_cylinder(X1, 13)} {_on_cylinder(X2, 13)} {_on_cylinder(X1, 16)}",
        # the head's own colour between the print's parts: not print
        f"4 16 {_on_cylinder(-2, 4)} {_on_cylinder(2, 4)} {_on_cylinder(2, 17)} {_on_cylinder(-2, 17)}",
        f"5 24 {_on_cylinder(X1, 8)} {_on_cylinder(X1, 12)} 0 8 -13 {_on_cylinder(X2, 8)}",
    ],
    "p/1-4cyli": [
        "0 Cylinder 0.25",
        "0 Name: 1-4cyli.dat",
        "0 Author: Prim Maker [prim]",
        "4 16 1 1 0 0.9239 1 0.3827 0.9239 0 0.3827 1 0 0",
        "4 16 0.9239 1 0.3827 0.7071 1 0.7071 0.7071 0 0.7071 0.9239 0 0.3827",
        "4 16 0.7071 1 0.7071 0.3827 1 0.9239 0.3827 0 0.9239 0.7071 0 0.7071",
        "4 16 0.3827 1 0.9239 0 1 1 0 0 1 0.3827 0 0.9239",
        "5 24 1 0 0 1 1 0 0.9239 0 0.3827 1 0 -1",
    ],
    "parts/3626bp02": [  # moved: left out although it shows a print
        "0 ~Moved to 3626bp01",
        "0 Name: 3626bp02.dat",
        "0 Author: Moved Man [moved]",
        "1 16 0 0 0 1 0 0 0 1 0 0 0 1 3626bp01.dat",
    ],
    "parts/3626bp04": [  # obsolete ("~"): left out although it is a printed head
        "0 ~Minifig Head with Old Grin Pattern (Obsolete)",
        "0 Name: 3626bp04.dat",
        "0 Author: Old Timer [old]",
        "1 0 0 0 0 1 0 0 0 1 0 0 0 1 s\\3626bp01s01.dat",
    ],
    "parts/3626bp03": [  # no print: all of the head's colour, and the primitive inherits it
        "0 Minifig Head with Plain Pattern",
        "0 Name: 3626bp03.dat",
        "0 Author: Plain Person [plain]",
        f"4 16 {_on_cylinder(X1, 8)} {_on_cylinder(X2, 8)} {_on_cylinder(X2, 12)} {_on_cylinder(X1, 12)}",
        "1 16 0 14 0 13 0 0 0 2 0 0 0 -13 1-4cyli.dat",
    ],
}
COLOURS = {0: ("Black", "1B2A34", "808080"), 4: ("Red", "C91A09", "333333"),
           14: ("Yellow", "F2CD37", "333333")}
LICENCES = {"CAreadme.txt": "readme of the tiny library\n", "CAlicense.txt": "CC BY 2.0\n",
            "CAlicense4.txt": "CC BY 4.0\n"}


def _official(root: Path) -> Path:
    for name, lines in LIBRARY.items():
        path = root / f"{name}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\r\n".join(lines) + "\r\n")
    (root / "LDConfig.ldr").write_text("0 LDraw.org Configuration File\n" + "".join(
        f"0 !COLOUR {n:<20} CODE {code:>3}   VALUE #{value}   EDGE #{edge}\n"
        for code, (n, value, edge) in COLOURS.items()))
    for name, text in LICENCES.items():
        (root / name).write_text(text)
    return root


def _openscad(root: Path) -> Path:
    for name, lines in LIBRARY.items():
        path = root / f"{name}.scad"
        path.parent.mkdir(parents=True, exist_ok=True)
        ident = name.split("/")[-1].replace("-", "_")
        data = [f"  [{','.join(line.split()[:2])}]," for line in lines if line and line[0] in "12345"]
        head = [f"use <{'../' * name.count('/')}lib.scad>", f"function ldraw_lib__{ident}() = ["]
        comments = [f"// {line}" for line in lines]
        path.write_text("\n".join([*head, *comments, *data, "];", f"ldraw_lib__{ident}(line=0.2);"]) + "\n")
    table = "".join(f'(id=={code}) ? ["#{value}FF","#{edge}"] : (\n' for code, (_, value, edge)
                    in COLOURS.items())
    alt = '(id==0) ? ["#FF00FFFF","#000000"] : (\n(id==4) ? ["#00FF00FF","#000000"] : (\n'  # not LDConfig's
    (root / "colors.scad").write_text(
        "function ldraw_color(id, alt=false) = alt ? ldraw_color_LDCfgalt(id) : ldraw_color_LDConfig(id);\n"
        f"function ldraw_color_LDConfig(id) = (\n{table}\"UNKNOWN\"{')' * len(COLOURS)});\n"
        f"function ldraw_color_LDCfgalt(id) = (\n{alt}\"UNKNOWN\"));\n")
    (root / "orig").mkdir()
    for name, text in LICENCES.items():
        (root / "orig" / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("ldraw_heads_script", ROOT / "scripts" / "ldraw_heads.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(script, library: Path, out: Path) -> dict:
    argv = [str(library), "--out", str(out / "heads.npz"), "--source", "a tiny test library"]
    assert script.main(argv) == 0
    with np.load(out / "heads.npz") as data:
        return {name: data[name] for name in data.files}


def _uv(grid: np.ndarray, width: int, x: float, y: float) -> tuple[float, float]:
    """Texture (column, row) of the head's surface point at x, y (z on the front of the cylinder)."""
    theta_max, y0, dy = grid
    theta = math.atan2(x, math.sqrt(169 - x * x))  # atan2(x, -z) with z = -sqrt(169 - x^2)
    return (theta + theta_max) / (2 * theta_max) * width, (y - y0) / dy


def _box(grid, width, points: list[tuple[float, float]]) -> tuple[slice, slice]:
    uv = np.array([_uv(grid, width, x, y) for x, y in points])
    (u0, v0), (u1, v1) = uv.min(0), uv.max(0)
    return slice(int(v0), math.ceil(v1)), slice(int(u0), math.ceil(u1))


@pytest.mark.parametrize("layout", [_official, _openscad], ids=["official", "openscad"])
def test_the_script_keeps_the_printed_head_and_draws_its_print_where_it_is(script, tmp_path, layout) -> None:
    heads = _build(script, layout(tmp_path / "library"), tmp_path / "out")
    # The moved part and the part without a print are left out; the subpart and the primitive are no heads.
    assert heads["names"].tolist() == ["3626bp01"]
    assert heads["description"].tolist() == ["Minifig Head with Grin and Beard Pattern"]
    assert heads["keywords"].tolist() == ["beard, moustache, face"]
    assert heads["author"].tolist() == [AUTHOR]
    # Palette: 0 the head's colour (16), then the colours in the order drawn, with LDConfig's RGB.
    assert heads["codes"].tolist() == [16, 0, 4]
    assert heads["rgb"][1:].tolist() == [[0x1B, 0x2A, 0x34], [0xC9, 0x1A, 0x09]]
    texture, grid = heads["textures"][0], heads["grid"]
    assert heads["textures"].shape == (1, 112, 256) and texture.dtype == np.uint8
    width = texture.shape[1]
    # The subpart is mirrored (x -> -x): its black quad lands left of the front (theta < 0), not right.
    quad = _box(grid, width, [(-X1, 8), (-X2, 8), (-X1, 12), (-X2, 12)])
    assert quad[1].stop <= width // 2
    assert (texture[quad[0].start + 1:quad[0].stop - 1, quad[1].start + 1:quad[1].stop - 1] == 1).all()
    unmirrored = _box(grid, width, [(X1, 8), (X2, 12)])
    assert not texture[unmirrored].any()
    # Its black triangle: the corner at (-X1, 13) is black, the opposite corner of its box is not.
    (c0, r0), (c1, r1) = _uv(grid, width, -X1, 13), _uv(grid, width, -X2, 16)
    assert texture[int(r0) + 1, int(c0) - 2] == 1
    assert texture[int(r1) - 1, int(c1) + 1] == 0
    triangle = _box(grid, width, [(-X1, 13), (-X2, 13), (-X1, 16)])
    # The red primitive: a band over y 14..16 from the front (theta 0) to the right side (theta 90 deg).
    theta_max, y0, dy = grid
    band = (slice(int((14 - y0) / dy), int(math.ceil((16 - y0) / dy))),
            slice(int(width / 2), int(math.ceil((math.pi / 2 + theta_max) / (2 * theta_max) * width))))
    assert (texture[band[0].start + 1:band[0].stop - 1, band[1].start + 1:band[1].stop - 1] == 2).all()
    # Nothing else: not the head's colour-16 polygons, the edges, nor the black quad on the top.
    elsewhere = np.ones_like(texture, dtype=bool)
    for rows, cols in (quad, triangle, band):
        elsewhere[rows.start - 1:rows.stop + 1, cols.start - 1:cols.stop + 1] = False
    assert not texture[elsewhere].any()
    assert set(np.unique(texture).tolist()) == {0, 1, 2}


def test_both_layouts_give_the_same_designs_and_the_notice(script, tmp_path) -> None:
    official = _build(script, _official(tmp_path / "official"), tmp_path / "a")
    scad = _build(script, _openscad(tmp_path / "scad"), tmp_path / "b")
    assert official.keys() == scad.keys()
    for name in official:
        assert np.array_equal(official[name], scad[name]), name
    for out in (tmp_path / "a", tmp_path / "b"):
        for name, text in LICENCES.items():
            assert (out / name).read_text() == text
        notice = (out / "NOTICE").read_text()
        assert "CC BY 2.0 and CC BY 4.0" in notice and "a tiny test library" in notice
        assert "1 parts: 3626bp01." in notice
        assert f"  {AUTHOR}" in notice.splitlines()
        # Authors of parts left out (moved, obsolete, unprinted) and of primitives are not named.
        for other in ("Moved Man", "Old Timer", "Plain Person", "Prim Maker"):
            assert other not in notice
