"""The certificate validation server (seed 004 1.3.1.2, 1.4.1③): a subscriber or a verifier
submits a certificate, revoca validates its path to revoca's trust anchors through the bridge's
cross certificates with the CRLs and ARLs it holds, and answers with a signed document.

A role: it imports no other role (tests/unit/test_layering.py).  `revoca serve cvs` wires it.
"""
