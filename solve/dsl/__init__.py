"""A small typed grid DSL for ARC programs: pure functions over 2-D uint8 numpy grids (values 0-9).

Programs do `from solve.dsl import *` and compose calls, one per line:

    from solve.dsl import *

    def transform(grid):
        g = to_array(grid)
        x1 = crop_to_content(g)
        x2 = flip_h(x1)
        return x2

Rules every primitive keeps: it never changes its inputs, it returns a new uint8 grid (or an int,
list, Object or tuple for queries), and it raises ValueError instead of returning an invalid grid
(GridSizeError, a ValueError, when the result would be empty or larger than 30x30).
"Background" (the empty cell) means one thing everywhere, `background_color`: the most common color
with black (0) cells counted twice, ties to the smaller color (for the cell-by-cell combinations and
panels, that of both grids or all panels together).
`solve.dsl.registry` lists every primitive with its argument types; ALIASES are exported names
outside the registry (duplicates and helpers), kept so programs written with them still run.
"""

from solve.dsl.build import bar_h, bar_v, blank_like, canvas, checkerboard, diagonal_grid, stripes_h, stripes_v
from solve.dsl.color import (
    background_color,
    colors_of,
    count_color,
    count_colors,
    keep_color,
    least_common_color,
    most_common_color,
    most_common_foreground,
    recolor,
    recolor_map,
    remove_color,
    replace_foreground,
    swap_colors,
)
from solve.dsl.combine import cell_and, cell_diff, cell_nor, cell_or, cell_xor, overlay
from solve.dsl.core import DIRECTIONS, GridSizeError, to_array
from solve.dsl.draw import (
    apply_mask,
    box_outline,
    complete_symmetry_h,
    complete_symmetry_v,
    cross_lines,
    draw_border,
    draw_line,
    extend_color,
    fill_box,
    fill_enclosed,
    flood_fill,
    foreground_mask,
    gravity,
    halo,
    invert_mask,
    mask_of_color,
)
from solve.dsl.geometry import (
    bottom_half,
    compress,
    crop,
    dedupe_lines,
    downscale,
    flip_antidiag,
    flip_diag,
    flip_h,
    flip_v,
    hconcat,
    left_half,
    mirror_down,
    mirror_quad,
    mirror_right,
    pad,
    right_half,
    roll,
    rot90,
    rot180,
    rot270,
    shift,
    tile,
    top_half,
    transpose,
    trim_border,
    upscale,
    vconcat,
)
from solve.dsl.objects import (
    Object,
    bbox,
    count_objects,
    crop_to_content,
    crop_to_object,
    delete_object,
    keep_object,
    largest,
    largest_object,
    move_object,
    object_color,
    object_size,
    objects,
    objects_of_color,
    recolor_by_size,
    recolor_largest,
    recolor_object,
    remove_small_objects,
    smallest,
    smallest_object,
)
from solve.dsl.objsets import (
    delete_objects,
    keep_objects,
    map_objects,
    move_toward,
    paint_region,
    parts,
    recolor_by_rank,
    select_object,
    select_objects,
    slide,
)
from solve.dsl.panels import combine_panels, odd_panel, panel, panel_colors, stack_panels
from solve.dsl.pattern import (
    connect,
    connect_same,
    crop_to_color,
    denoise,
    extend_all,
    fill_periodic,
    fill_symmetric,
    pinwheel,
    rotate_quad,
    self_tile,
)

__all__ = [
    # Not primitives: the converter, the Object type, the size error and the direction names.
    "to_array", "Object", "GridSizeError", "DIRECTIONS",
    # geometry
    "rot90", "rot180", "rot270", "flip_h", "flip_v", "flip_diag", "flip_antidiag", "transpose",
    "crop", "pad", "tile", "upscale", "downscale", "hconcat", "vconcat", "shift", "roll",
    "mirror_right", "mirror_down", "mirror_quad", "top_half", "bottom_half", "left_half", "right_half",
    "trim_border", "compress", "dedupe_lines",
    # color
    "recolor", "recolor_map", "swap_colors", "replace_foreground", "keep_color", "remove_color",
    "background_color", "most_common_color", "least_common_color", "most_common_foreground",
    "colors_of", "count_color", "count_colors",
    # objects
    "objects", "objects_of_color", "largest", "smallest", "largest_object", "smallest_object",
    "count_objects", "bbox", "object_size", "object_color", "crop_to_object", "crop_to_content",
    "move_object", "recolor_object", "delete_object", "keep_object", "remove_small_objects",
    "recolor_largest", "recolor_by_size",
    # draw
    "mask_of_color", "foreground_mask", "invert_mask", "apply_mask", "draw_line", "extend_color",
    "cross_lines", "draw_border", "box_outline", "fill_box", "halo", "flood_fill", "fill_enclosed",
    "complete_symmetry_h", "complete_symmetry_v", "gravity",
    # combine
    "overlay", "cell_and", "cell_or", "cell_xor", "cell_nor", "cell_diff",
    # build
    "canvas", "blank_like", "bar_h", "bar_v", "checkerboard", "stripes_h", "stripes_v", "diagonal_grid",
    # object sets
    "parts", "select_objects", "select_object", "keep_objects", "delete_objects", "paint_region",
    "map_objects", "slide", "move_toward", "recolor_by_rank",
    # panels
    "panel", "odd_panel", "combine_panels", "stack_panels", "panel_colors",
    # patterns
    "fill_periodic", "fill_symmetric", "self_tile", "rotate_quad", "pinwheel", "crop_to_color", "connect", "connect_same", "extend_all", "denoise",
]  # fmt: skip

SUPPORT = ("to_array", "Object", "GridSizeError", "DIRECTIONS")
# Importable for older programs but not in the registry: transpose is flip_diag, and bbox / colors_of
# return types no primitive takes.
ALIASES = ("transpose", "bbox", "colors_of")
PRIMITIVES = tuple(name for name in __all__ if name not in SUPPORT and name not in ALIASES)  # in solve.dsl.registry
