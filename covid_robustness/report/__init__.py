"""The report: one study's tables and figures, read from its finished runs in MLflow.

collect reads the runs and their artifacts (the only module that reads the store); summary, evalsets and
estimate turn them into rows and numbers; tables, figures, clinical, defenses, shift and paper_eps make the
sections; pages puts the sections on pages and writes them (markdown, html, records); cli is the command.
"""
