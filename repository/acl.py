"""Who may read what in the LDAP repository: the slapd access rules (seed 004 2.2-2.4).

The public reads CA certificates, cross pairs, link certificates and ARLs; registered verifiers
read CRLs too; nobody but revoca learns who the verifiers are.

* certificateRevocationList and deltaRevocationList (the delta CRL, RFC 5280 5.2.4; with
  any option, e.g. ``;binary``) are readable only by members of the verifiers group
  (``cn=verifiers,ou=verifiers,<base>``), checked at every operation;
  nobody else sees it, not even that it exists.  The group's members are the registered
  verifiers in effect (repository.verifier_accounts keeps them in step with the registry);
* passwords (userPassword) are usable for binding and readable by nobody;
* the verifier accounts, the group and their container (``ou=verifiers,<base>``) are not
  listable: anonymous clients may only bind there, a verifier reads its own account (its
  certificate) and nothing else of it.  Without this rule anyone could list every verifier,
  its certificate and the group's members.  slapd checks the group rule above on its own
  authority, so verifiers need no read access to the group;
* everything else (CA certificates, cross pairs, link certificates, ARLs, the CA entries and
  the containers above them) is readable anonymously;
* only the rootdn writes (the publisher binds as the rootdn): it is never subject to these
  rules, and no rule grants write.

The root DSE lies outside the database, so these rules do not touch it: anyone may read it
(slapd's default), which is how `LocalSlapd.answers` sees that slapd is up.

slapd applies the first ``access to`` clause whose target matches, so the order matters.
repository.slapd puts this text, with the DNs filled in, into the main database's section of
slapd.conf; the access log database has its own rule there (rootdn only).
"""

from __future__ import annotations

#: slapd.conf access directives; ``{group}`` is the verifiers group's DN, ``{verifiers}`` its container's.
ACCESS_RULES = """\
# Access (the first rule that names an attribute wins; the rootdn is never restricted).
# 1. CRLs and delta CRLs: only members of the verifiers group, checked at every operation.
access to attrs=certificateRevocationList,deltaRevocationList
    by group/groupOfNames/member.exact="{group}" read
    by * none
# 2. Passwords: usable to bind, readable by nobody.
access to attrs=userPassword
    by anonymous auth
    by * none
# 3. Verifier accounts and their group: a verifier reads its own account; nobody lists them.
access to dn.subtree="{verifiers}"
    by self read
    by * none
# 4. Everything else (CA certificates, cross pairs, link certificates, ARLs): anyone may read.
access to *
    by * read
"""


def access_rules(verifiers_dn: str, group_dn: str) -> str:
    """The access directives for a directory whose verifier accounts are under `verifiers_dn`
    and whose verifiers group is `group_dn`."""
    return ACCESS_RULES.format(verifiers=verifiers_dn, group=group_dn)
