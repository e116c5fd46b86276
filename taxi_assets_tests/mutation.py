"""``make mutation``: mutmut over the code that decides, scored per module.

Runs ``mutmut run`` on the functions in :data:`SCOPE` (mutmut's config, the fast tests and the
copied files are in ``pyproject.toml`` ``[tool.mutmut]``), then reads mutmut's results and
prints, per module, the mutants killed, survived, named equivalent (:data:`EQUIVALENT`, each
with its reason) and timed out, the score (killed / (all - equivalent)) and the wall time.
``--report`` rewrites the table in ``taxi_assets_tests/MUTATION.md``. It fails (exit 1) when a
module is under :data:`TARGET` or a mutant survives that is not named equivalent, and also when
a named equivalent no longer exists or was killed (the list is kept honest both ways).

    python -m taxi_assets_tests.mutation            # run, then print the table
    python -m taxi_assets_tests.mutation --no-run   # the table of the last run
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTANTS = REPO / "mutants"
REPORT = REPO / "taxi_assets_tests" / "MUTATION.md"
TARGET = 0.90
C = "ǁ"  # mutmut's separator between a class and its method in mutant names

# Module -> the functions whose conditions decide what users get (mutmut name globs).
SCOPE: dict[str, list[str]] = {
    "taxi_assets.ml.cleaning": ["*"],
    "taxi_assets.ml.champion": ["x_decide__*", "x_check_trained_before__*", "x_choose_champion__*"],
    "taxi_assets.registry.champion": ["x_alias_target__*", "x_serve_newest__*", "x_register_champion__*"],
    "taxi_assets.ml.tuning": [f"x{C}LocalTraining{C}*", "x_search__*", "x_tune__*"],
    "taxi_assets.ml.dataset": ["x_selection_mask__*"],
    "taxi_assets.defs.checks": ["x_gate__*", "x_refusal__*", "x_combine__*"],
    "taxi_assets.io.download": [
        "x__download__*", "x__body_chunks__*", "x__request_error__*", "x_month_available__*", "x__destination_error__*",
    ],
    "taxi_assets.ml.features": ["*"],
    "taxi_assets.ml.representation": [
        "x_distance_clip__*", f"x{C}OneHotFeatures{C}_clipped__*", f"x{C}OneHotFeatures{C}transform__*",
        f"x{C}CompactFeatures{C}encode__*", f"x{C}CompactFeatures{C}transform__*", "x_fit_representation__*",
    ],
}  # fmt: skip

# Surviving mutants that behave like the original for every input the code can get (no test
# can tell them apart), each with the reason. Keyed by mutmut's mutant name (``mutmut show NAME``
# prints the change); the names hold while the functions are unchanged, and the run fails if
# one no longer survives or exists.
_NO_KIND = "a dtype's kind is one character, never X: the same kinds match"
_CASE_INSENSITIVE = "HTTP header names are case-insensitive: the server receives the same header"
_NAN_TARGET = "pandas 2.3 turns NA and None into NaN for a float64 target whatever na_value says (checked)"
_NO_FLAG = "no operation in this block sets numpy's invalid flag (comparing or rounding NaN and inf does not): errstate changes nothing"
_UNUSED = "the values at the bad positions are never returned: a bad id raises first, and with none bad the result is the same"
_COPY = "only whether astype copies; the values are the same"
_ONCE = "the decision text holds the replaced phrase once, so replacing the first or every occurrence is the same"
_OVERWRITTEN = "the initial entry is overwritten by best.update() at the first finite trial; without one tune raises before reading it"
_INT64_IDS = ("ids arrive as int64 (validate_request, the training set's rides); for other integer or float arrays _codes converts "
              "to int64 and the float32 columns hold the same values")  # fmt: skip
EQUIVALENT: dict[str, str] = {
    # cleaning
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_4": _NO_KIND,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_5": "integer ids then take the float path, which judges each int64 value by the same range and gives the same ids and the same message (the value shown is the original element)",
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_15": _NO_FLAG,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_30": _UNUSED,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_31": _UNUSED,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_36": _UNUSED,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_52": _COPY,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_54": _COPY,
    "taxi_assets.ml.cleaning.x__zone_ids__mutmut_55": _COPY,
    "taxi_assets.ml.cleaning.x_valid_zone_ids__mutmut_3": "to_numeric(errors='coerce') of the object Series is float64 with NaN already: na_value is never used",
    "taxi_assets.ml.cleaning.x_valid_zone_ids__mutmut_5": "to_numeric(errors='coerce') of the object Series is float64 with NaN already: na_value is never used",
    "taxi_assets.ml.cleaning.x_valid_zone_ids__mutmut_14": _NO_FLAG,
    "taxi_assets.ml.cleaning.x_voided_reversals__mutmut_3": "pandas 2.3 turns NA into False for a bool target when na_value is None (checked): the same mask",
    "taxi_assets.ml.cleaning.x_duration_minutes__mutmut_17": "assigning None into a float64 array stores NaN",
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_79": "the distances only feed comparisons and impossible_distances (which converts to float64 itself): an object array of numbers gives the same masks, and a text distance fails either way",
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_80": _NAN_TARGET,
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_81": "without the dtype the array keeps the column's numbers (NaN for NA), which feed comparisons and impossible_distances only: the same masks",
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_82": _NAN_TARGET,
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_85": "too_far's first value is read only when max_distance_miles is given, and then it is assigned before",
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_87": "too_far's first value is read only when max_distance_miles is given, and then it is assigned before",
    "taxi_assets.ml.cleaning.x_clean_trips__mutmut_89": "too_far's first value is read only when max_distance_miles is given, and then it is assigned before",
    "taxi_assets.ml.cleaning.x_pu_do__mutmut_11": "pandas 2.3 infers object dtype for an Index of str labels",
    "taxi_assets.ml.cleaning.x_pu_do__mutmut_13": "pandas 2.3 infers object dtype for an Index of str labels",
    "taxi_assets.ml.cleaning.x_pu_do_codes__mutmut_35": "numpy takes any negative size as the one unknown dimension: reshape(-2) is reshape(-1)",
    # champion line
    "taxi_assets.ml.champion.x_check_trained_before__mutmut_5": "a missing attribute gives None instead of [], and `None or []` is []",
    **{f"taxi_assets.ml.champion.x_choose_champion__mutmut_{n}": _ONCE for n in (61, 64, 71, 74, 81, 84)},
    # tuning split
    **{f"taxi_assets.ml.tuning.x_search__mutmut_{n}": _OVERWRITTEN for n in (7, 8, 9, 10, 11)},
    "taxi_assets.ml.tuning.x_search__mutmut_65": "hyperopt's fmin uses tpe.suggest when algo is None (fmin.py)",
    "taxi_assets.ml.tuning.x_search__mutmut_72": "hyperopt's fmin uses tpe.suggest when algo is None (fmin.py)",
    "taxi_assets.ml.tuning.x_search__mutmut_67": "hyperopt's fmin makes its own Trials when given none",
    "taxi_assets.ml.tuning.x_search__mutmut_74": "hyperopt's fmin makes its own Trials when given none",
    "taxi_assets.ml.tuning.x_search__mutmut_69": "hyperopt draws no progress bar for a falsy show_progressbar: None is False there",
    "taxi_assets.ml.tuning.x_tune__mutmut_89": "the display precision of refit_seconds (3 or 4 decimals): no behaviour reads it, and telling them apart needs a refit whose duration has a non-zero fourth decimal, a timing test",
    "taxi_assets.ml.tuning.x_tune__mutmut_114": "predict_training_set's part defaults to 'val'",
    "taxi_assets.ml.tuning.xǁLocalTrainingǁpredict_selection__mutmut_4": "the predictor's name appears only in its width-mismatch message, which cannot happen: the slice is built by the same step",
    "taxi_assets.ml.tuning.xǁLocalTrainingǁ__init____mutmut_28": "y_train is float64 already (build_training_set and load_training_set make it so)",
    "taxi_assets.ml.tuning.xǁLocalTrainingǁ__init____mutmut_30": "y_train is float64 already (build_training_set and load_training_set make it so)",
    "taxi_assets.ml.tuning.xǁLocalTrainingǁ__init____mutmut_100": "the training rides' pickups are datetime64[us] already (_rides and load_training_set make them so)",
    "taxi_assets.ml.tuning.xǁLocalTrainingǁ__init____mutmut_102": "the training rides' pickups are datetime64[us] already (_rides and load_training_set make them so)",
    "taxi_assets.ml.dataset.x_selection_mask__mutmut_3": "pickups arrive as datetime64 (the training rides, a Series or array): the unit does not change the last-week arithmetic",
    "taxi_assets.ml.dataset.x_selection_mask__mutmut_5": "pickups arrive as datetime64 (the training rides, a Series or array): the unit does not change the last-week arithmetic",
    "taxi_assets.ml.dataset.x_selection_mask__mutmut_31": "numpy reads argsort's kind case-insensitively: 'STABLE' is 'stable'",
    "taxi_assets.ml.dataset.x_selection_mask__mutmut_37": "count = max(1, round(0.2 n)) is at most n - 1 for every n >= 2, so neither min(n - 1, ...) nor min(n + 1, ...) binds",
    # downloader
    "taxi_assets.io.download.x__download__mutmut_13": _CASE_INSENSITIVE,
    "taxi_assets.io.download.x__download__mutmut_14": _CASE_INSENSITIVE,
    "taxi_assets.io.download.x__body_chunks__mutmut_9": "a missing Content-Length shows no size either way: 'XXXX' is not digits",
    "taxi_assets.io.download.x_month_available__mutmut_1": "only the default of the probe's bound (10 s or 11 s); telling them apart needs a 10 s wait on a silent server",
    "taxi_assets.io.download.x_month_available__mutmut_31": "the ranged GET asks for 4 bytes and reads none: streaming or not gives the same status",
    "taxi_assets.io.download.x_month_available__mutmut_35": "the ranged GET asks for 4 bytes and reads none: streaming or not gives the same status",
    "taxi_assets.io.download.x_month_available__mutmut_42": "the ranged GET asks for 4 bytes and reads none: streaming or not gives the same status",
    "taxi_assets.io.download.x_month_available__mutmut_38": _CASE_INSENSITIVE,
    "taxi_assets.io.download.x_month_available__mutmut_39": _CASE_INSENSITIVE,
    # request validation
    "taxi_assets.ml.features.x__as_float__mutmut_3": _NO_KIND,
    "taxi_assets.ml.features.x__as_float__mutmut_4": "numpy number columns then take the general path (to_numeric of a numeric column): the same float64 values, slower",
    "taxi_assets.ml.features.x__as_float__mutmut_6": "nullable number columns then take the general path: to_numeric keeps them nullable and to_numpy gives the same float64 with NaN",
    "taxi_assets.ml.features.x__as_float__mutmut_8": _NAN_TARGET,
    "taxi_assets.ml.features.x__as_float__mutmut_10": _NAN_TARGET,
    "taxi_assets.ml.features.x__as_float__mutmut_12": _NAN_TARGET,
    "taxi_assets.ml.features.x__as_float__mutmut_14": _NAN_TARGET,
    "taxi_assets.ml.features.x_validate_request__mutmut_37": "iloc[row:row + 2].tolist()[0] is the same first element as iloc[row:row + 1]",
    "taxi_assets.ml.features.x_validate_request__mutmut_61": "iloc[row:row + 2].tolist()[0] is the same first element as iloc[row:row + 1]",
    "taxi_assets.ml.features.x_validate_request__mutmut_90": "iloc[row:row + 2].tolist()[0] is the same first element as iloc[row:row + 1]",
    # distance clip
    "taxi_assets.ml.representation.x_distance_clip__mutmut_3": "np.quantile gives the same float for integer or float distances",
    "taxi_assets.ml.representation.x_distance_clip__mutmut_5": "np.quantile gives the same float for integer or float distances",
    "taxi_assets.ml.representation.x_fit_representation__mutmut_9": "bool(None) is False, the default's value",
    "taxi_assets.ml.representation.x_fit_representation__mutmut_11": "bool(None) is False, the default's value",
    **{f"taxi_assets.ml.representation.xǁCompactFeaturesǁencode__mutmut_{n}": _INT64_IDS for n in (3, 5, 8, 10)},
    "taxi_assets.ml.representation.xǁCompactFeaturesǁencode__mutmut_51": "the half-way rank is stored into a float32 column either way (x.5 of a small integer is exact in both)",
    "taxi_assets.ml.representation.xǁCompactFeaturesǁencode__mutmut_66": "np.minimum of numeric distances and the float clip, stored into the float32 column: the same values",
    "taxi_assets.ml.representation.xǁCompactFeaturesǁencode__mutmut_68": "np.minimum of numeric distances and the float clip, stored into the float32 column: the same values",
    "taxi_assets.ml.representation.xǁOneHotFeaturesǁ_clipped__mutmut_11": "tocsr() of a CSR matrix returns that matrix: converting it or not is the same",
}

def _status(code: int) -> str:
    """mutmut's word for an exit code; a mutant killed by a signal (the CPU limit) is a timeout."""
    from mutmut.stats import status_by_exit_code

    status = status_by_exit_code[code]
    return "timeout" if status == "segfault" else status


def patterns() -> list[str]:
    return [f"{module}.{glob}" for module, globs in SCOPE.items() for glob in globs]


def in_scope(name: str) -> str | None:
    """The module of an in-scope mutant name, else None."""
    for module, globs in SCOPE.items():
        if any(fnmatch.fnmatchcase(name, f"{module}.{glob}") for glob in globs):
            return module
    return None


def results() -> dict[str, int]:
    """Every in-scope mutant's exit code, from mutmut's ``mutants/**/*.py.meta`` files."""
    codes: dict[str, int] = {}
    for meta in MUTANTS.rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if in_scope(name) and code is not None:
                codes[name] = code
    return codes


def table(codes: dict[str, int]) -> tuple[list[str], list[str]]:
    """Markdown rows per module, and the problems (survivors not named, stale equivalents)."""
    rows = ["| module | mutants | killed | survived | equivalent | timeout | no tests | score |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    problems = []
    for module in SCOPE:
        mine = {n: _status(c) for n, c in codes.items() if in_scope(n) == module}
        count = {k: 0 for k in ("killed", "survived", "equivalent", "timeout", "no tests")}
        for name, status in sorted(mine.items()):
            if name in EQUIVALENT:
                if status != "survived":
                    problems.append(f"{name} is named equivalent but {status}: remove it from EQUIVALENT")
                count["equivalent"] += 1
            elif status in count:
                count[status] += 1
                if status in ("survived", "no tests"):
                    problems.append(f"{name} {status}: kill it with a test or name it equivalent (mutmut show {name})")
            else:
                problems.append(f"{name}: {status}")
        judged = len(mine) - count["equivalent"]
        score = (count["killed"] + count["timeout"]) / judged if judged else 1.0
        if score < TARGET:
            problems.append(f"{module}: {score:.1%} of non-equivalent mutants killed, under {TARGET:.0%}")
        rows.append(f"| `{module}` | {len(mine)} | {count['killed']} | {count['survived']} | {count['equivalent']} | "
                    f"{count['timeout']} | {count['no tests']} | {score:.1%} |")  # fmt: skip
    problems += [f"{name} is named equivalent but no longer exists" for name in EQUIVALENT if name not in codes]
    return rows, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only print the table of the last run")
    parser.add_argument("--report", action="store_true", help=f"write the table into {REPORT.relative_to(REPO)}")
    parser.add_argument("--max-children", default="2")
    args = parser.parse_args()
    seconds = None
    if not args.no_run:
        started = time.monotonic()
        mutmut = Path(sys.executable).with_name("mutmut")
        run = subprocess.run([str(mutmut), "run", "--max-children", args.max_children, *patterns()], cwd=REPO,
                             env={**os.environ, "PYTHONHASHSEED": "0", "HYPOTHESIS_PROFILE": "mutation"})  # fmt: skip
        seconds = time.monotonic() - started
        if run.returncode != 0:
            print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return run.returncode
    rows, problems = table(results())
    print("\n".join(rows))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if seconds is not None:
        print(f"\nwall time {seconds / 60:.1f} min (load average now {load})")
    for problem in problems:
        print("PROBLEM:", problem)
    if args.report:
        table_text = "\n".join(rows)
        if seconds is not None:
            table_text += f"\n\nWall time of the run: {seconds / 60:.1f} min on 2 cores (load average after it: {load})."
        equivalents = "\n".join(f"- `{name}`: {reason}" for name, reason in sorted(EQUIVALENT.items()))
        REPORT.write_text(_between(_between(REPORT.read_text(), "table", table_text), "equivalent", equivalents))
    return 1 if problems else 0


def _between(text: str, marker: str, body: str) -> str:
    """``text`` with what stands between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced."""
    head, rest = text.split(f"<!-- {marker} -->\n", 1)
    _, tail = rest.split(f"<!-- /{marker} -->\n", 1)
    return f"{head}<!-- {marker} -->\n{body}\n<!-- /{marker} -->\n{tail}"


if __name__ == "__main__":
    sys.exit(main())
