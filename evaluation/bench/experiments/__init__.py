"""One-off speed experiments, kept runnable because docs/benchmark-profiling.md quotes their
numbers: model-level levers (`levers`), server-level levers (`server_levers`) and the int8
sensitivity of each feed-forward down-projection (`int8_sensitivity`). The benchmark the README
promises is `python -m evaluation.bench run`, one folder up."""
