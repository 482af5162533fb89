"""``lvm bench images``: one draw of each kind of image the app shows, pyqtgraph's ``ImageItem`` (the reference)
against the app's (``app.widgets.image_item``: its picture converted once to a format Qt draws as is), side by side
in one run of ``python -m app.bench_images`` (a subprocess: this library never imports Qt).

``ours_s`` / ``reference_s``: one paint, scaled and flipped as a plot draws it; ``render_ms`` /
``reference_render_ms``: the once-per-new-image render (ours includes the conversion).
"""

from __future__ import annotations

from typing import Any

import torch

from lvm.bench import app_json, case


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    result = app_json("app.bench_images", ["--json"] + (["--quick"] if quick else []), "the image benchmark", 600)
    cases = []
    for r in result["cases"]:
        cases.append(
            case(
                f"images {r['name']}",
                r["draw_ms"] / 1000,
                "pyqtgraph ImageItem",
                r["reference_draw_ms"] / 1000,
                render_ms=r["render_ms"],
                reference_render_ms=r["reference_render_ms"],
            )
        )
    return {"cases": cases}
