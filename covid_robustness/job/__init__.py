"""One job of a sweep: claim its cell, train its model (or reuse the training), attack it, record it.

Only the entry point (`__main__`) imports this package; nothing below it does.
"""
