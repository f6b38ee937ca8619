"""How a budget is written, in the console and the report alike: n/255 on [0, 1] pixels (8/255, 2.55/255,
76.5/255), and "x std" where it was given in standard deviations of the input."""


def grey_levels(eps: float) -> str:
    """A pixel budget in grey levels: 8/255, 0.25/255, 17.7/255."""
    levels = eps * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 0.02 else f"{levels:.3g}/255"


def written(eps: float | None, unit: str = "pixel", eps_pixel: float | None = None) -> str:
    """A budget as configured: "8/255" on pixels; "0.3 std" (with its pixel value, "0.3 std = 17.7/255",
    where known) in std units; "–" for none."""
    if eps is None:
        return "–"
    if unit == "std":
        return f"{eps:g} std" + ("" if eps_pixel is None else f" = {grey_levels(eps_pixel)}")
    return grey_levels(eps)
