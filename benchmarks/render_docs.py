"""Write the measured figures of README.md and docs/*.md from the JSON in benchmarks/results/.

    python benchmarks/render_docs.py            # rewrite every region that is out of date
    python benchmarks/render_docs.py --check    # change nothing; exit 1 naming each stale region

Every figure a benchmark measured is typed once, by the benchmark, into its JSON; the
Markdown holds it only inside a marked region that this script fills, so a re-run
benchmark updates README and docs together and a figure edited by hand fails `--check`
(tests/test_docs.py runs it; docs/hooks.py renders the same way when the site is built).

Two kinds of region:

    <!-- results: NAME ARG... -->        a block (a table, a printed output) made by the
    ...                                  function registered as NAME below
    <!-- /results -->

    <!--n EXPR FORMAT-->0.0993<!--/n-->  one figure inside a sentence or a table cell

EXPR is a reference SOURCE:PATH, or arithmetic on references and numbers (+ - * / and
parentheses, each a word of its own; min, max and mean of lists). SOURCE names a file of
benchmarks/results/ without `.json`, or a study folder (`study-msd-quick`: its study.csv,
by model). PATH walks the JSON: keys joined by `.`; `[3]` a list index or a key;
`[batch=256,mode=recurrent]` the first list item with those values; `[*model=warp]` every
such item (the rest of the path then applies to each). FORMAT is a Python format spec
(`.3g`, `.4g`, `,`, `.2%`, `.1f`, `.0f`), with exponents written short (5.47e-6, 1e4).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from functools import lru_cache
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

BLOCK = re.compile(r"(?P<open><!-- results: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
                   re.DOTALL)
INLINE = re.compile(r"(?P<open><!--n (?P<expr>[^>]*?) (?P<fmt>\S+)-->)(?P<value>[^<`]*)(?P<close><!--/n-->)")


class RenderError(ValueError):
    """A region names a source, path, table or format that does not exist."""


# --- sources and paths -------------------------------------------------------------------

@lru_cache(maxsize=None)
def source(name: str):
    path = RESULTS / name
    if path.is_dir():
        with open(path / "study.csv", newline="") as f:
            return {row["model"]: {k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)}
    if path.with_suffix(".json").is_file():
        return json.loads(path.with_suffix(".json").read_text())
    raise RenderError(f"no benchmarks/results/{name}.json or study folder {name}/")


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class Values(list):
    """Several values of one path (`[*k=v]`): arithmetic applies item by item."""

    def _apply(self, other, op):
        others = other if isinstance(other, list) else [other] * len(self)
        if len(others) != len(self):
            raise RenderError(f"lists of {len(self)} and {len(others)} values")
        return Values(op(a, b) for a, b in zip(self, others))

    __add__ = lambda self, o: self._apply(o, lambda a, b: a + b)
    __sub__ = lambda self, o: self._apply(o, lambda a, b: a - b)
    __mul__ = lambda self, o: self._apply(o, lambda a, b: a * b)
    __truediv__ = lambda self, o: self._apply(o, lambda a, b: a / b)
    __radd__ = lambda self, o: self._apply(o, lambda a, b: b + a)
    __rsub__ = lambda self, o: self._apply(o, lambda a, b: b - a)
    __rmul__ = lambda self, o: self._apply(o, lambda a, b: b * a)
    __rtruediv__ = lambda self, o: self._apply(o, lambda a, b: b / a)


_STEP = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


def lookup(reference: str):
    """The value at SOURCE:PATH."""
    name, _, path = reference.partition(":")
    value, many = source(name), False
    for match in _STEP.finditer(path):
        key, bracket = match.group(1), match.group(2)
        value = [_step(v, key, bracket, reference) for v in value] if many else _step(value, key, bracket, reference)
        if bracket is not None and bracket.startswith("*"):
            value, many = Values(sum(value, []) if many else value), True
    return Values(value) if many else value


def _step(value, key, bracket, reference):
    try:
        if key is not None:
            return value[key]
        if "=" in bracket:
            wanted = dict(part.split("=", 1) for part in bracket.lstrip("*").split(","))
            found = [item for item in value
                     if all(str(item.get(k)) == v for k, v in wanted.items())]
            if not found:
                raise KeyError(bracket)
            return found if bracket.startswith("*") else found[0]
        if isinstance(value, list):
            return value[int(bracket)]
        return value[bracket]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise RenderError(f"{reference}: no {key or bracket!r} ({error!r})") from None


def _over(function):
    return lambda *v: function(v[0] if len(v) == 1 and isinstance(v[0], list) else v)


_FUNCTIONS = {"min": _over(min), "max": _over(max), "abs": abs, "mean": _over(statistics.fmean)}


_WORD = re.compile(r"\s*([\w-]+:(?:\[[^\]]*\]|[^\s\[\]])+|\S+)")


def evaluate(expression: str):
    words, values = [], {}
    for word in _WORD.findall(expression):
        if ":" in word:
            values[f"_v{len(values)}"] = lookup(word)
            words.append(f"_v{len(values) - 1}")
        elif re.fullmatch(r"[-+*/(),]|(min|max|abs|mean)\(?|\d+(\.\d*)?(e-?\d+)?", word):
            words.append(word)
        else:
            raise RenderError(f"{expression!r}: cannot read {word!r}")
    try:
        return eval(" ".join(words), {"__builtins__": {}}, {**_FUNCTIONS, **values})
    except Exception as error:  # a bad expression is the page's error, said in one line
        raise RenderError(f"{expression!r}: {error}") from None


def fmt(value, spec: str) -> str:
    """`format(value, spec)` with short exponents (5.47e-06 -> 5.47e-6, 1e+04 -> 1e4)."""
    if isinstance(value, float) and value.is_integer() and spec in (",", "d", ",d"):
        value = int(value)
    try:
        text = format(value, spec)
    except (ValueError, TypeError) as error:
        raise RenderError(f"cannot format {value!r} as {spec!r}: {error}") from None
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


def figure(expression: str, spec: str) -> str:
    return fmt(evaluate(expression), spec)


# --- blocks ------------------------------------------------------------------------------

TABLES = {}


def table(name):
    def register(function):
        TABLES[name] = function
        return function
    return register


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@table("fit-output")
def fit_output(name: str, run: str = "runs/msd/warp/<timestamp>") -> str:
    """What `warp-phys fit` printed after training: where the run is, its best epoch and
    time, and its test table (`warp_phys.format_table`)."""
    from warp_phys import format_table

    result = source(name)
    rows = [f"run: {run}",
            f"best epoch {result['best_epoch']} of {result['epochs_run']} run (on val); "
            f"{result['wall_seconds_including_data_and_compile']:.1f} s in all, "
            f"{result['seconds_per_epoch']:.3g} s per epoch",
            format_table(result["splits"])]
    return "```text\n" + "\n".join(rows) + "\n```"


@table("study")
def study_table(name: str) -> str:
    """A study.csv as `warp-phys study` writes study.md: mean +- std over seeds."""
    header = ["model", "params", "s/epoch"]
    splits = ("test-id", "test-ood", "test-paper")
    header += [f"{s} {m.upper()}" for s in splits for m in ("mse", "mae")]
    rows = []
    for model, row in source(name).items():
        cells = [model, f"{row['parameters']:,}", f"{row['seconds_per_epoch']:.3g}"]
        for s in splits:
            for m in ("mse", "mae"):
                mean, std = row.get(f"{s}_{m}_mean"), row.get(f"{s}_{m}_std")
                cells.append("n/a" if mean in (None, "") else f"{mean:.4g} +- {std:.2g}")
        rows.append(cells)
    return markdown_table(header, rows)


@table("generate")
def generate_table() -> str:
    rows = []
    labels = {"msd": ("MSD", "`expm`"), "lotka-volterra": ("LV", "Dopri8 rtol = atol = 1e-9")}
    for r in source("generate")["results"]:
        short, how = labels.get(r["system"], (r["system"], r["method"]))
        rows.append([f"{short} train ({r['trajectories']:,}), {how}", f"{r['warp_phys_seconds']:.3g} s",
                     fmt(r["warp_phys_max_abs_error_vs_dop853"], ".1e"), f"{r['scipy_rk45_loop_seconds']:.3g} s",
                     fmt(r["scipy_rk45_max_abs_error_vs_dop853"], ".1e"), f"{r['speedup']:.0f}x"])
    return markdown_table(["split (size x 256 steps)", "warp-phys", "max error vs DOP853",
                           "SciPy RK45 loop, same run", "its error", "speed-up"], rows)


REFERENCE_STEP = {8: "7.2 s", 64: "21.2 s"}  # the reference code's own timings (REFERENCE.md)


@table("train-step-cpu")
def train_step_cpu(name: str = "train_step-cpu") -> str:
    results = source(name)["results"]
    rows = []
    for batch in sorted({r["batch"] for r in results}):
        fast = next(r for r in results if r["batch"] == batch and r["fast_vjp"])
        plain = next(r for r in results if r["batch"] == batch and not r["fast_vjp"])
        rows.append([str(batch), f"{fast['seconds_per_step']:.3g} s", f"{plain['seconds_per_step']:.3g} s",
                     f"{fast['floor_seconds']:.3g} s", f"{fast['stream_floor_seconds']:.3g} s",
                     REFERENCE_STEP.get(batch, "")])
    return markdown_table(["batch", "fast VJP for A", "plain autodiff", "matmul floor", "stream floor",
                           "reference code (REFERENCE.md)"], rows)


@table("train-step-gpu")
def train_step_gpu(name: str = "train_step-gpu") -> str:
    results = source(name)["results"]
    label = {"default": "default", "highest": "highest"}
    rows = []
    for batch, precision in ((1024, "default"), (1024, "highest"), (256, "default"), (8, "default")):
        pick = [r for r in results if r["batch"] == batch and r["precision"] == precision]
        fast = next(r for r in pick if r["fast_vjp"])
        plain = next(r for r in pick if not r["fast_vjp"])
        name_ = label[precision]
        if batch == 1024:
            name_ += " (TF32)" if precision == "default" else " (FP32)"
        memory = f"{fast['peak_memory_gib_so_far']:.3g} GiB" if batch == 1024 else ""
        rows.append([str(batch), name_, f"{fast['seconds_per_step']:.3f} s", f"{plain['seconds_per_step']:.3f} s",
                     f"{fast['floor_seconds']:.3f} s", memory])
    return markdown_table(["batch", "precision", "fast VJP for A", "plain autodiff", "floor", "peak memory"], rows)


@table("convolution-step")
def convolution_step(name: str = "convolution-cpu") -> str:
    results = [r for r in source(name)["results"] if "block" not in r and "convolution" not in r]
    rows = []
    for batch in sorted({r["batch"] for r in results}):
        by = {r.get("mode", "speedup"): r for r in results if r["batch"] == batch}
        rows.append([str(batch), f"{by['convolutional']['seconds_per_step']:.3g} s",
                     f"{by['recurrent']['seconds_per_step']:.2f} s", f"{by['speedup']['speedup']:.2f}x"])
    return markdown_table(["batch", "convolutional", "recurrent", "speed-up"], rows)


@table("convolution-alone")
def convolution_alone(name: str = "convolution-cpu") -> str:
    results = [r for r in source(name)["results"] if "convolution" in r]
    kinds = list(dict.fromkeys(r["convolution"] for r in results))
    header = ["batch"] + [("blocks of " + k.split()[1] + (" (used)" if k == "blocked 8" else ""))
                          if k.startswith("blocked") else "FFT over time" for k in kinds]
    rows = []
    for batch in sorted({r["batch"] for r in results}):
        by = {r["convolution"]: r for r in results if r["batch"] == batch}
        rows.append([str(batch)] + [f"{by[k]['seconds_forward_backward']:.2f} s" for k in kinds])
    return markdown_table(header, rows)


TRANSITION_LABEL = {"dense": "dense (the paper)", "diagonal-low-rank": "diagonal + rank {rank}",
                    "block-diagonal": "block-diagonal by root layer"}


@table("transitions")
def transitions_table(name: str = "transitions-msd-quick") -> str:
    rows = []
    for i, r in enumerate(source(name)["results"]):
        label = TRANSITION_LABEL[r["transition"]].format(rank=r["rank"]) if i == 0 or r["transition"] != "dense" \
            else "dense"
        rows.append([label, r["precision"], f"{r['A_parameters']:,}",
                     f"{r['seconds_per_epoch']:.2f} ({r['seconds_per_step']:.3f})",
                     f"{r['test_id_mse']:.4g}", f"{r['test_ood_mse']:.4g}"])
    return markdown_table(["A", "products", "parameters of A", "seconds per epoch (per step)",
                           "test-id MSE", "test-ood MSE"], rows)


@table("ensemble")
def ensemble_table(name: str = "ensemble-msd-quick") -> str:
    rows = [[r["model"], f"{r['seconds_per_epoch_of_all_seeds_one_by_one']:.2f} s",
             f"{r['seconds_per_epoch_of_all_seeds_as_ensemble']:.2f} s", f"{r['speedup']:.2f}x",
             fmt(r["max_relative_test_ood_mse_difference"], ".1e")] for r in source(name)["rows"]]
    return markdown_table(["model", "one by one", "ensemble", "speed-up",
                           "largest relative test-ood MSE difference after 3 epochs"], rows)


def block(spec: str) -> str:
    name, *args = spec.split()
    if name not in TABLES:
        raise RenderError(f"no table {name!r}; known: {', '.join(sorted(TABLES))}")
    return TABLES[name](*args)


# --- pages -------------------------------------------------------------------------------

def render(text: str, where: str = "") -> tuple[str, list[str]]:
    """The text with every region filled, and a line per region whose content changed."""
    stale = []

    def line_of(match):
        return f"{where}:{text.count(chr(10), 0, match.start()) + 1}"

    def fill_block(match):
        try:
            body = block(match.group("spec")) + "\n"
        except RenderError as error:
            raise RenderError(f"{line_of(match)}: {error}") from None
        if body != match.group("body"):
            stale.append(f"{line_of(match)}: results: {match.group('spec')}")
        return match.group("open") + body + match.group("close")

    def fill_inline(match):
        try:
            value = figure(match.group("expr"), match.group("fmt"))
        except RenderError as error:
            raise RenderError(f"{line_of(match)}: {error}") from None
        if value != match.group("value"):
            stale.append(f"{line_of(match)}: {match.group('value')!r} should be {value!r} "
                         f"({match.group('expr')})")
        return match.group("open") + value + match.group("close")

    text = BLOCK.sub(fill_block, text)
    return INLINE.sub(fill_inline, text), stale


# Figures the pages show, copied from the results (docs/ is the site's root, so an image
# must lie under it): page path -> source under benchmarks/results/.
FIGURES = {
    "docs/images/study-msd-quick-distance.png": "study-msd-quick/distance.png",
}


def stale_figures(write: bool) -> list[str]:
    stale = []
    for target, origin in FIGURES.items():
        target, origin = ROOT / target, RESULTS / origin
        if not target.is_file() or target.read_bytes() != origin.read_bytes():
            stale.append(f"{target.relative_to(ROOT)}: differs from {origin.relative_to(ROOT)}")
            if write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(origin.read_bytes())
                print(f"updated {target.relative_to(ROOT)}")
    return stale


def pages() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is stale")
    args = parser.parse_args(argv)
    stale_all = []
    try:
        for path in pages():
            text = path.read_text()
            new, stale = render(text, str(path.relative_to(ROOT)))
            stale_all += stale
            if new != text and not args.check:
                path.write_text(new)
                print(f"updated {path.relative_to(ROOT)} ({len(stale)} regions)")
        stale_all += stale_figures(write=not args.check)
    except RenderError as error:
        print(f"render_docs: {error}", file=sys.stderr)
        return 2
    if args.check and stale_all:
        print("out of date with benchmarks/results (run python benchmarks/render_docs.py):", file=sys.stderr)
        print("\n".join(stale_all), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
