"""`covid-robustness params`: parameter counts of the registered models beside the paper's Table I."""

import argparse

from .registry import count_params, create, names, spec

DASH = "–"  # a model the paper does not count


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="covid-robustness params", description=__doc__)
    parser.add_argument("--num-classes", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"{'model':<14}{'parameters':>14}{'+ BN statistics':>18}{'paper (Table I)':>18}{'ratio':>8}")
    for name in names():
        params, with_stats = count_params(create(name, args.num_classes))
        paper = spec(name).paper_params
        paper_text, ratio = (DASH, DASH) if paper is None else (f"{paper:,}", f"{with_stats / paper:.4f}")
        print(f"{name:<14}{params:>14,}{with_stats:>18,}{paper_text:>18}{ratio:>8}")
    print("Paper counts are Keras counts, which include BatchNorm running statistics: compare the third column.")
