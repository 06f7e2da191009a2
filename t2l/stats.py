"""Means, standard errors and paired differences of per-item scores, as the benches and experiments report them."""

import math


def mean_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error with the sample standard deviation (ddof=1), as lm-eval reports it."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def item_means(runs: list[str]) -> list[float]:
    """Several runs' hit strings on the same items ("0110...") -> the mean hit of each item."""
    return [sum(int(r[i]) for r in runs) / len(runs) for i in range(min(len(r) for r in runs))]


def paired_cells(x: dict, y: dict, benches) -> list[tuple[float, float]]:
    """Per bench, the mean and stderr of x minus y item by item (x, y: bench -> per-item values on the same items).
    What the two share - which items are easy - cancels, so the stderr is far smaller than the two scores' own."""
    return [mean_stderr([a - b for a, b in zip(x[bench], y[bench])]) for bench in benches]


def average_cells(cells: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean of per-bench (value, stderr) cells, with stderr sqrt(sum of squares) / number of benches."""
    return sum(v for v, _ in cells) / len(cells), math.sqrt(sum(e * e for _, e in cells)) / len(cells)
