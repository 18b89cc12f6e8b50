"""Every DSL primitive as plain data: its name, its parameters' names and types, and its return type.

A program generator composes typed calls from this table (solve.synth.program). The type names
are the aliases that annotate the primitives (solve.dsl.core), and a test checks that each entry
matches the real function's signature, so the table cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

# Value types. What each holds is documented on the alias of the same name in solve.dsl.core.
GRID = "Grid"
MASK = "Mask"
COLOR = "Color"
INT = "Int"
INDEX = "Index"
OFFSET = "Offset"
BOOL = "Bool"
DIRECTION = "Direction"
OBJECT = "Object"
OBJECTS = "Objects"
COLORS = "Colors"
COLOR_MAP = "ColorMap"
BOX = "Box"
TYPES = (GRID, MASK, COLOR, INT, INDEX, OFFSET, BOOL, DIRECTION, OBJECT, OBJECTS, COLORS, COLOR_MAP, BOX)


@dataclass(frozen=True)
class Param:
    """One parameter of a primitive: its name (as in the function's signature) and its type."""

    name: str
    type: str


@dataclass(frozen=True)
class Primitive:
    """A DSL function's typed signature: solve.dsl.<name>(*params) -> returns."""

    name: str
    params: tuple[Param, ...]
    returns: str

    @property
    def param_types(self) -> tuple[str, ...]:
        return tuple(p.type for p in self.params)


def _p(name: str, returns: str, *params: str) -> Primitive:
    """A primitive from 'name:Type' parameter strings (keeps the table below one line per entry)."""
    parsed = []
    for spec in params:
        pname, ptype = spec.split(":")
        parsed.append(Param(pname, ptype))
    return Primitive(name, tuple(parsed), returns)


REGISTRY: tuple[Primitive, ...] = (
    # geometry
    _p("rot90", GRID, "grid:Grid"),
    _p("rot180", GRID, "grid:Grid"),
    _p("rot270", GRID, "grid:Grid"),
    _p("flip_h", GRID, "grid:Grid"),
    _p("flip_v", GRID, "grid:Grid"),
    _p("flip_diag", GRID, "grid:Grid"),
    _p("flip_antidiag", GRID, "grid:Grid"),
    _p("transpose", GRID, "grid:Grid"),
    _p("crop", GRID, "grid:Grid", "top:Index", "left:Index", "height:Int", "width:Int"),
    _p("pad", GRID, "grid:Grid", "n:Int", "color:Color"),
    _p("tile", GRID, "grid:Grid", "rows:Int", "cols:Int"),
    _p("upscale", GRID, "grid:Grid", "k:Int"),
    _p("downscale", GRID, "grid:Grid", "k:Int"),
    _p("hconcat", GRID, "left:Grid", "right:Grid"),
    _p("vconcat", GRID, "top:Grid", "bottom:Grid"),
    _p("shift", GRID, "grid:Grid", "dr:Offset", "dc:Offset", "fill:Color"),
    _p("roll", GRID, "grid:Grid", "dr:Offset", "dc:Offset"),
    _p("mirror_right", GRID, "grid:Grid"),
    _p("mirror_down", GRID, "grid:Grid"),
    _p("mirror_quad", GRID, "grid:Grid"),
    _p("top_half", GRID, "grid:Grid"),
    _p("bottom_half", GRID, "grid:Grid"),
    _p("left_half", GRID, "grid:Grid"),
    _p("right_half", GRID, "grid:Grid"),
    _p("trim_border", GRID, "grid:Grid"),
    _p("compress", GRID, "grid:Grid"),
    _p("dedupe_lines", GRID, "grid:Grid"),
    # color
    _p("recolor", GRID, "grid:Grid", "a:Color", "b:Color"),
    _p("recolor_map", GRID, "grid:Grid", "mapping:ColorMap"),
    _p("swap_colors", GRID, "grid:Grid", "a:Color", "b:Color"),
    _p("replace_foreground", GRID, "grid:Grid", "color:Color"),
    _p("keep_color", GRID, "grid:Grid", "color:Color"),
    _p("remove_color", GRID, "grid:Grid", "color:Color"),
    _p("background_color", COLOR, "grid:Grid"),
    _p("most_common_color", COLOR, "grid:Grid"),
    _p("least_common_color", COLOR, "grid:Grid"),
    _p("most_common_foreground", COLOR, "grid:Grid"),
    _p("colors_of", COLORS, "grid:Grid"),
    _p("count_color", INT, "grid:Grid", "color:Color"),
    _p("count_colors", INT, "grid:Grid"),
    # objects
    _p("objects", OBJECTS, "grid:Grid", "diagonal:Bool", "without_bg:Bool"),
    _p("objects_of_color", OBJECTS, "grid:Grid", "color:Color", "diagonal:Bool"),
    _p("largest", OBJECT, "objs:Objects"),
    _p("smallest", OBJECT, "objs:Objects"),
    _p("largest_object", OBJECT, "grid:Grid", "diagonal:Bool"),
    _p("smallest_object", OBJECT, "grid:Grid", "diagonal:Bool"),
    _p("count_objects", INT, "grid:Grid", "diagonal:Bool"),
    _p("bbox", BOX, "obj:Object"),
    _p("object_size", INT, "obj:Object"),
    _p("object_color", COLOR, "obj:Object"),
    _p("crop_to_object", GRID, "grid:Grid", "obj:Object"),
    _p("crop_to_content", GRID, "grid:Grid"),
    _p("move_object", GRID, "grid:Grid", "obj:Object", "dr:Offset", "dc:Offset"),
    _p("recolor_object", GRID, "grid:Grid", "obj:Object", "color:Color"),
    _p("delete_object", GRID, "grid:Grid", "obj:Object"),
    _p("keep_object", GRID, "grid:Grid", "obj:Object"),
    _p("remove_small_objects", GRID, "grid:Grid", "max_size:Int", "diagonal:Bool"),
    _p("recolor_largest", GRID, "grid:Grid", "color:Color", "diagonal:Bool"),
    _p("recolor_by_size", GRID, "grid:Grid", "size:Int", "color:Color", "diagonal:Bool"),
    # draw
    _p("mask_of_color", MASK, "grid:Grid", "color:Color"),
    _p("foreground_mask", MASK, "grid:Grid"),
    _p("invert_mask", MASK, "mask:Mask"),
    _p("apply_mask", GRID, "grid:Grid", "mask:Mask", "color:Color"),
    _p("draw_line", GRID, "grid:Grid", "row:Index", "col:Index", "direction:Direction", "color:Color"),
    _p("extend_color", GRID, "grid:Grid", "color:Color", "direction:Direction"),
    _p("cross_lines", GRID, "grid:Grid", "color:Color"),
    _p("draw_border", GRID, "grid:Grid", "color:Color"),
    _p("box_outline", GRID, "grid:Grid", "obj:Object", "color:Color"),
    _p("fill_box", GRID, "grid:Grid", "obj:Object", "color:Color"),
    _p("halo", GRID, "grid:Grid", "color:Color", "diagonal:Bool"),
    _p("flood_fill", GRID, "grid:Grid", "row:Index", "col:Index", "color:Color"),
    _p("fill_enclosed", GRID, "grid:Grid", "color:Color"),
    _p("complete_symmetry_h", GRID, "grid:Grid"),
    _p("complete_symmetry_v", GRID, "grid:Grid"),
    _p("gravity", GRID, "grid:Grid", "direction:Direction"),
    # combine
    _p("overlay", GRID, "base:Grid", "top:Grid"),
    _p("cell_and", GRID, "a:Grid", "b:Grid", "color:Color"),
    _p("cell_or", GRID, "a:Grid", "b:Grid", "color:Color"),
    _p("cell_xor", GRID, "a:Grid", "b:Grid", "color:Color"),
    _p("cell_nor", GRID, "a:Grid", "b:Grid", "color:Color"),
    _p("cell_diff", GRID, "a:Grid", "b:Grid", "color:Color"),
    # build
    _p("canvas", GRID, "color:Color", "height:Int", "width:Int"),
    _p("blank_like", GRID, "grid:Grid", "color:Color"),
    _p("bar_h", GRID, "count:Int", "color:Color"),
    _p("bar_v", GRID, "count:Int", "color:Color"),
    _p("checkerboard", GRID, "height:Int", "width:Int", "a:Color", "b:Color"),
    _p("stripes_h", GRID, "height:Int", "width:Int", "a:Color", "b:Color"),
    _p("stripes_v", GRID, "height:Int", "width:Int", "a:Color", "b:Color"),
    _p("diagonal_grid", GRID, "size:Int", "color:Color", "background:Color"),
)


def by_name() -> dict[str, Primitive]:
    """The registry keyed by primitive name."""
    return {p.name: p for p in REGISTRY}


def returning(type_: str) -> tuple[Primitive, ...]:
    """The primitives whose result has the given type."""
    return tuple(p for p in REGISTRY if p.returns == type_)
