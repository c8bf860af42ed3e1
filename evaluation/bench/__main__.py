"""`python -m evaluation.bench run|report`: see evaluation/bench/run.py."""

from evaluation.bench.run import main

main()
