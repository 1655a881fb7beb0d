"""The invoice ledger: every invoice seen, by number, with the time and fields of each stage.

Events flow from the parser into the ledger (book.py), which keeps this batch's changes in
memory and the rest in SQLite (agent/store/ledger.py), committed with the offsets of the lines
that caused them. The ledger rule types (agent/detect/ledger_*.py) judge its records in event
time; features.py gives the derived `ledger` source's windows; commands.py and reconcile.py
are the `invoices` and `reconcile` commands.
"""
