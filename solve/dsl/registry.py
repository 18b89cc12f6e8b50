"""Every DSL primitive as plain data: its name, its parameters' names and types, and its return type.

A program generator composes typed calls from this table (solve.synth.program). The type names
are the aliases that annotate the primitives (solve.dsl.core), and a test checks that each entry
matches the real function's signature, so the table cannot drift from the code.

Every type is reachable: a value of it is either a constant (CONSTANT_TYPES; CHOICES lists the whole
range of the enumerable ones, PARAM_CHOICES narrows it for some parameters) or the result of some
primitive, and every type but Grid is taken by some primitive. Names exported by solve.dsl but not
listed here (solve.dsl.ALIASES) are duplicates or helpers kept only so older programs still run.
"""

from __future__ import annotations

from dataclasses import dataclass

from solve.dsl.core import COMBINE_OPS, DIRECTIONS, LINE_MODES, OBJECT_ACTIONS, OBJECT_FILTERS, REGIONS

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
BOX = "Box"  # bbox's result: no registered primitive takes it, so bbox is an alias outside the registry
OBJECT_FILTER = "ObjectFilter"
REGION = "Region"
OBJECT_ACTION = "ObjectAction"
LINE_MODE = "LineMode"
COMBINE_OP = "CombineOp"
TYPES = (
    GRID, MASK, COLOR, INT, INDEX, OFFSET, BOOL, DIRECTION, OBJECT, OBJECTS, COLOR_MAP,
    OBJECT_FILTER, REGION, OBJECT_ACTION, LINE_MODE, COMBINE_OP,
)  # fmt: skip
# Types whose values are written as constants in programs (a search draws or enumerates them).
CONSTANT_TYPES = (COLOR, INT, INDEX, OFFSET, BOOL, DIRECTION, COLOR_MAP, OBJECT_FILTER, REGION, OBJECT_ACTION, LINE_MODE, COMBINE_OP)
# Every value of the enumerable constant types (colors, sizes and offsets come from the task instead).
CHOICES: dict[str, tuple] = {
    BOOL: (False, True),
    DIRECTION: tuple(DIRECTIONS),
    OBJECT_FILTER: OBJECT_FILTERS,
    REGION: REGIONS,
    OBJECT_ACTION: OBJECT_ACTIONS,
    LINE_MODE: LINE_MODES,
    COMBINE_OP: COMBINE_OPS,
}
STRAIGHT = ("up", "down", "left", "right")
# Parameters that accept only part of their type's choices (anything else raises ValueError).
PARAM_CHOICES: dict[tuple[str, str], tuple] = {("gravity", "direction"): STRAIGHT, ("slide", "direction"): STRAIGHT}


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
    # object sets
    _p("parts", OBJECTS, "grid:Grid", "diagonal:Bool"),
    _p("select_objects", OBJECTS, "grid:Grid", "pred:ObjectFilter", "diagonal:Bool", "multicolor:Bool"),
    _p("select_object", OBJECT, "grid:Grid", "pred:ObjectFilter", "diagonal:Bool", "multicolor:Bool"),
    _p("keep_objects", GRID, "grid:Grid", "objs:Objects"),
    _p("delete_objects", GRID, "grid:Grid", "objs:Objects"),
    _p("paint_region", GRID, "grid:Grid", "objs:Objects", "region:Region", "color:Color"),
    _p("map_objects", GRID, "grid:Grid", "objs:Objects", "action:ObjectAction"),
    _p("slide", GRID, "grid:Grid", "objs:Objects", "direction:Direction"),
    _p("move_toward", GRID, "grid:Grid", "objs:Objects", "color:Color"),
    _p("recolor_by_rank", GRID, "grid:Grid", "objs:Objects"),
    # panels
    _p("panel", GRID, "grid:Grid", "rows:Int", "cols:Int", "index:Index"),
    _p("odd_panel", GRID, "grid:Grid"),
    _p("combine_panels", GRID, "grid:Grid", "op:CombineOp", "color:Color"),
    _p("panel_colors", GRID, "grid:Grid"),
    _p("stack_panels", GRID, "grid:Grid", "first_on_top:Bool"),
    # patterns
    _p("fill_periodic", GRID, "grid:Grid", "color:Color"),
    _p("fill_symmetric", GRID, "grid:Grid", "color:Color"),
    _p("self_tile", GRID, "grid:Grid", "color:Color", "fill:Color"),
    _p("rotate_quad", GRID, "grid:Grid"),
    _p("pinwheel", GRID, "grid:Grid"),
    _p("crop_to_color", GRID, "grid:Grid", "color:Color"),
    _p("connect", GRID, "grid:Grid", "color:Color", "fill:Color", "lines:LineMode"),
    _p("connect_same", GRID, "grid:Grid", "lines:LineMode"),
    _p("extend_all", GRID, "grid:Grid", "direction:Direction"),
    _p("denoise", GRID, "grid:Grid", "color:Color"),
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
