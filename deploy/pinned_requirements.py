"""Print the pinned requirements of pyproject.toml, one per line, for ``pip install -r``.

deploy/Dockerfile runs it before copying the code, so the dependency layer is rebuilt only
when the pins change. ``TAXI_EXTRAS`` (space or comma separated) adds optional dependency
groups, e.g. ``k8s``; an unknown group exits 1 naming it. Standard library only (the image has
nothing installed yet).
"""

import os
import sys
import tomllib


def requirements(pyproject: str, extras: str) -> list[str]:
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    wanted = [e for e in extras.replace(",", " ").split() if e]
    optional = project.get("optional-dependencies", {})
    missing = [e for e in wanted if e not in optional]
    if missing:
        sys.exit(f"TAXI_EXTRAS names unknown extras {missing}; pyproject.toml has {sorted(optional)}")
    return project["dependencies"] + [d for e in wanted for d in optional[e]]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", os.environ.get("TAXI_EXTRAS", ""))))
