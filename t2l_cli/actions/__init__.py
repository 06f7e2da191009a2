"""Where the library meets the registry: what each verb does once its arguments are parsed, without Typer or Rich.

One module per verb module of t2l_cli (adapters, evaluate, train, tasks, bench, publish, registry, use) and serve for
the web page's extras; `common` holds what several share. The verb files call one of these and print what comes
back; another front end (`t2l serve`) calls the same. Progress and warnings come back through the callbacks passed
in. Heavy imports stay inside the functions, so `t2l --help` and `t2l ls` never load torch.
"""
