"""CRLs and ARLs (RFC 5280 section 5), streamed from the database at national scale.

One module per job:

- the DER primitives are shared with OCSP in ca.der, and each revokedCertificates element
  is encoded once at revocation time by ca.revocation.crl_entry;
- `tbs`: the fields around the entries (TBSCertList framing, extensions, signature algorithm);
- `writer`: spool the entries to a file, hash, sign the digest, publish the file atomically;
- `cache`: the previous issue's entries, so the daily issue streams only the new rows;
- `issue`: one CA's CRL or ARL from the database: number, stream, sign, archive, audit;
- `after_compromise`: what to issue at once after a CA key compromise.

Validity, period and warning thresholds are `[crl]` in ca.config (CRLConfig).

Nothing here imports the CLI, and the package root imports nothing, so `revoca crl issue`
pays only for the modules it uses.
"""
