"""`tally watch`: velocity rules and live volumes on faust-streaming (contract §16).

The only package that imports faust; it reads `ledger.events` and never the commands topic.
"""
