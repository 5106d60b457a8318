"""Rules for the people in trusted roles (seed 004 5.2, 6.5.1), apart from where they are stored:

- `exclusivity`: which roles one person may not hold together (5.2.1, 5.2.4, seed 003 3.2.4);
- `approval`: when an account counts as a person of its own in an act of several people (5.2.2,
  5.2.4 (3)), and that nobody takes part in changing their own account;
- `passwords`: the age of a password (5.2.3: changed periodically) and what a new one must be.
- `credentials`: how a password is kept (a salted scrypt hash) and checked.

Pure rules on roles, names and times: no database (the store, ca.storage.operators, keeps the
accounts) and no command line (ca.cli.operator_cmds and the login gate, ca.cli.gate, apply them).
docs/officers.md explains them for the officers.
"""
