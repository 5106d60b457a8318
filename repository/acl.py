"""Who may read what in the LDAP repository: the slapd access rules (seed 004 2.2-2.4).

* certificateRevocationList (with any option, e.g. ``;binary``) is readable only by members
  of the verifiers group (``cn=verifiers,ou=verifiers,<base>``), checked at every operation;
  nobody else sees it, not even that it exists.  The group's members are the registered
  verifiers in effect (repository.verifier_accounts keeps them in step with the registry);
* passwords (userPassword) are usable for binding and readable by nobody;
* everything else (CA certificates, cross pairs, link certificates, ARLs, the entries) is
  readable anonymously;
* only the rootdn writes: it is never subject to these rules, and no rule grants write.

slapd applies the first ``access to`` clause whose target matches, so the order matters.
repository.slapd puts this text, with the group's DN filled in, into the main database's
section of slapd.conf; the access log database has its own rule there (rootdn only).
"""

from __future__ import annotations

#: slapd.conf access directives; ``{group}`` is the verifiers group's DN.
ACCESS_RULES = """\
# Access (the first rule that names an attribute wins; the rootdn is never restricted).
# 1. CRLs: only members of the verifiers group, checked at every operation.
access to attrs=certificateRevocationList
    by group/groupOfNames/member.exact="{group}" read
    by * none
# 2. Passwords: usable to bind, readable by nobody.
access to attrs=userPassword
    by anonymous auth
    by * none
# 3. Everything else (CA certificates, cross pairs, link certificates, ARLs): anyone may read.
access to *
    by * read
"""


def access_rules(group_dn: str) -> str:
    """The access directives for a directory whose verifiers group is `group_dn`."""
    return ACCESS_RULES.format(group=group_dn)
