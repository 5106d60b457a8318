"""Registered verifiers (seed 004 1.3): who may read CRLs over LDAP and ask the OCSP responder."""
