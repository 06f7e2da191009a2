"""Experiments: each module here answers one question about T2L at this project's scale and keeps its run folder
and report; none of the library imports them.

    paper        the paper's zero-shot table (`t2l bench paper`); `report` writes its markdown and chart
    oracle       how much a description-specific adapter could gain on the benches at all (per-bench oracle LoRAs)
    sensitivity  how much a hypernetwork's adapter depends on the description it is given
    heldout      whether generated adapters help on training tasks held out of training
    unseen       whether an adapter follows its description on tasks no training collection touched
                 (`t2l bench unseen`); `unseen_report` writes its tables, bar and chart

Run one with `python -m t2l.bench.NAME --help`. A new experiment is one more module with a `main()`, its question
in its docstring and a line above; the statistics they share (means, stderrs, paired differences) are `t2l.stats`.
"""
