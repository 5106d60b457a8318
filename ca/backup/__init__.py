"""Backups (seed 004 5.4.5, 5.5.4, 5.5.7.2): taken daily, each verified by restoring it into a
scratch place, copied to external media monthly (recorded), read back yearly (recorded), and
restored on a fresh machine with `revoca restore`.  The audit log is their ledger: the status
page and /metrics read the age of the newest verified backup from it.
"""
